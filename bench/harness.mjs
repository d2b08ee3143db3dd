// Process plumbing shared by the echo and memory suites: start a server under test
// (bench/echo-server.mjs) or a load client (bench/loadgen.mjs) in its own process, pinned to its own
// core where `taskset` exists, with the open-files limit raised to the hard limit; talk to both with
// JSON lines. Every wait is bounded.
import { spawn, spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const ECHO_SERVER = join(here, 'echo-server.mjs');
export const LOADGEN = join(here, 'loadgen.mjs');

export const HAS_TASKSET = spawnSync('sh', ['-c', 'command -v taskset'], { encoding: 'utf8' }).status === 0;
/** Client on core 0, server on core 1 (the last core when there are more). */
export const CLIENT_CORE = 0;
export const SERVER_CORE = cpus().length > 1 ? 1 : 0;

/** Soft and hard RLIMIT_NOFILE as a child started through `sh` would see them after raising soft→hard. */
export function fileLimit() {
  const r = spawnSync('sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; ulimit -n'], { encoding: 'utf8' });
  const n = Number(r.stdout.trim());
  return Number.isFinite(n) ? n : 1024; // "unlimited" → NaN → be conservative
}

/** argv that runs `cmd` with the fd limit raised and (when possible) pinned to `core`. */
function wrap(cmd, core) {
  const pinned = HAS_TASKSET && core != null ? ['taskset', '-c', String(core), ...cmd] : cmd;
  return ['sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'sh', ...pinned]];
}

function timeout(ms, what) {
  let t;
  const p = new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms); });
  p.cancel = () => clearTimeout(t);
  return p;
}

/** A child speaking JSON lines on stdout; `next(pred, ms)` waits for a matching line. */
function jsonChild(argv, opts = {}) {
  const [bin, args] = argv;
  const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'inherit'], env: opts.env ?? process.env });
  const lines = [];
  const waiters = new Set();
  let exited = null;
  createInterface({ input: child.stdout }).on('line', (line) => {
    let msg;
    try { msg = JSON.parse(line); } catch { return; }
    for (const w of waiters) if (w.pred(msg)) { waiters.delete(w); w.resolve(msg); return; }
    lines.push(msg);
  });
  child.on('exit', (code, signal) => {
    exited = { code, signal };
    for (const w of waiters) w.reject(new Error(`child exited (${code ?? signal}) while waiting`));
    waiters.clear();
  });
  child.stdin.on('error', () => {});
  const next = (pred, ms, what = 'child answer') => {
    const i = lines.findIndex(pred);
    if (i >= 0) return Promise.resolve(lines.splice(i, 1)[0]);
    if (exited) return Promise.reject(new Error(`child exited (${exited.code ?? exited.signal})`));
    const to = timeout(ms, what);
    const p = new Promise((resolve, reject) => waiters.add({ pred, resolve, reject }));
    return Promise.race([p, to]).finally(() => to.cancel());
  };
  const send = (line) => { if (!exited) child.stdin.write(line + '\n'); };
  const stop = async (ms = 3000) => {
    if (exited) return;
    const gone = new Promise((r) => child.once('exit', r));
    send('exit');
    child.stdin.end();
    const to = timeout(ms, 'child exit');
    try { await Promise.race([gone, to]); } catch { child.kill('SIGKILL'); await gone; } finally { to.cancel(); }
  };
  return { child, next, send, stop, get exited() { return exited; } };
}

/**
 * Starts a server under test; resolves { impl, port, pid, info, ask(cmd), stop() } once it listens.
 * `pid` is the process actually serving (for bun: the bun process, not the node wrapper).
 * Rejects with `notInstalled` set when the impl is bun and no Bun binary is found.
 */
export async function startServer(impl, { deflate = false, nodeFlags = [], pin = true } = {}) {
  const c = jsonChild(wrap(['node', '--expose-gc', ...nodeFlags, ECHO_SERVER, '--impl', impl, '--deflate', deflate ? '1' : '0'], pin ? SERVER_CORE : null));
  let ready;
  try {
    ready = await c.next((m) => 'ready' in m, 20_000, `${impl} server start`);
  } catch (err) {
    await c.stop();
    throw err;
  }
  if (!ready.ready) {
    await c.stop();
    const err = new Error(ready.error ?? `${impl} did not start`);
    err.notInstalled = /not installed/.test(ready.error ?? '');
    throw err;
  }
  return {
    impl,
    deflate,
    port: ready.port,
    pid: ready.pid,
    info: ready,
    ask: (cmd, ms = 20_000) => { c.send(cmd); return c.next((m) => m.re === cmd, ms, `${impl} ${cmd}`); },
    stop: () => c.stop(),
    get exited() { return c.exited; },
  };
}

/** Runs bench/loadgen.mjs once (throughput or latency) on the client core; resolves its result. */
export async function runLoadgen(opts, ms) {
  const c = jsonChild(wrap(['node', LOADGEN, JSON.stringify(opts)], CLIENT_CORE));
  try {
    const r = await c.next((m) => m.re === 'result' || m.re === 'error', ms, `loadgen ${opts.mode}`);
    if (r.re === 'error') throw new Error(`loadgen: ${r.error}`);
    return r;
  } finally {
    await c.stop(2000);
  }
}

/** Starts an idle-connections client (loadgen idle mode); resolves { opened, stop() } once all are open. */
export async function openIdle(opts, ms) {
  const c = jsonChild(wrap(['node', LOADGEN, JSON.stringify({ ...opts, mode: 'idle' })], CLIENT_CORE));
  try {
    const r = await c.next((m) => m.re === 'opened' || m.re === 'error', ms, 'idle client open');
    if (r.re === 'error') throw new Error(`loadgen: ${r.error}`);
    return { opened: r, stop: () => c.stop(5000) };
  } catch (err) {
    await c.stop(2000);
    throw err;
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The median of the rounds (NaN when there are none). */
export function median(xs) {
  const a = [...xs].sort((x, y) => x - y);
  return a.length === 0 ? NaN : a.length % 2 ? a[(a.length - 1) / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
}

/** Machine description for a report. */
export function machine() {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    loadavg: loadavg().map((x) => +x.toFixed(2)),
    taskset: HAS_TASKSET ? `server on core ${SERVER_CORE}, clients on core ${CLIENT_CORE}` : 'not available (unpinned)',
    fileLimit: fileLimit(),
  };
}

/** What every results file records about the run: when, on what, and the command that made it. */
export function runEnvironment(script) {
  const flags = process.execArgv.join(' ');
  const args = process.argv.slice(2).join(' ');
  return {
    date: new Date().toISOString(),
    node: process.version,
    cpu: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    platform: `${process.platform}-${process.arch}`,
    loadavg: loadavg().map((x) => +x.toFixed(2)),
    args,
    command: `node ${flags ? flags + ' ' : ''}${script}${args ? ' ' + args : ''}`,
  };
}

// ── formatting ──────────────────────────────────────────────────────────────────────────────

export function mdTable(head, body, align) {
  const al = align ?? head.map((_, i) => (i === 0 ? '---' : '---:'));
  return [`| ${head.join(' | ')} |`, `| ${al.join(' | ')} |`, ...body.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export function fmtSize(n) {
  return n >= 1024 * 1024 ? `${n / 1024 / 1024} MiB` : n >= 1024 ? `${n / 1024} KiB` : `${n} B`;
}

export function fmtRate(n) {
  if (n == null) return '–';
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(Math.round(n));
}

export function fmtRatio(r) {
  if (r == null || !Number.isFinite(r)) return '–';
  return r >= 10 ? `${r.toFixed(1)}×` : `${r.toFixed(2)}×`;
}
