#!/usr/bin/env node
// Accept under load (issue 14): N clients connect at once and each starts echoing as soon as it is
// open; how many are open after 0.5/1/2/5/10 s, and what echo throughput the open ones get.
//
//   node bench/accept.mjs [--targets wasmws-wasm,ws,bun] [--variant label:impl:ENV=VALUE...]
//                         [--rounds 3] [--conns 1000] [--window 64] [--size 1024] [--duration 10000]
//                         [--backlog N] [--monitor] [--json out.json] [--label text]
//                         [--server-args '--foo 1'] [--node-args '--cpu-prof ...']
//
// A variant runs echo-server.mjs --impl <impl> with extra environment, e.g. another build, or
// another Node for the server (NODE_BIN):
//   --variant before:wasmws-wasm:WASMWS_DIST=/tmp/before/dist/esm/index.js
//   --variant node22:wasmws-wasm:NODE_BIN=/path/to/node22
//
// The server (bench/echo-server.mjs --impl X, which runs bench/bun-echo.js under Bun for `bun`) runs
// pinned to core 0 (`taskset -c 0`), the load generator (this file with --client) to core 1.
// Rounds are interleaved between targets (r1: A B C, r2: A B C, ...); the table shows medians.
//
// The client is cheap on purpose (as bench/loadgen.mjs): raw net sockets, a handcrafted upgrade,
// one pre-masked batch of W frames written again and again, server frames counted by their headers
// into one shared read buffer. All N net.connect() calls are made in one synchronous loop; each
// socket writes its upgrade request on 'connect' and, on the 101, writes W frames and keeps W in
// flight (refilling when half have come back). Times are taken on the client; a checkpoint counts
// connections whose 101 arrived before it. The client also reports its own event-loop delay (so a
// slow client would show) and the parent samples the kernel's listen-queue counters
// (/proc/net/netstat: ListenOverflows, ListenDrops; SYN cookies) over the run.
// Everything is bounded: each client run lasts `duration` ms (+ a grace), the server is killed after.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { buildMessageFrame } from './loadgen.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const HOST = '127.0.0.1';
const CHECKPOINTS = [500, 1000, 2000, 5000, 10000];
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

// ── client ─────────────────────────────────────────────────────────────────────────────────

function headerLength(b1) {
  const l = b1 & 0x7f;
  return (l < 126 ? 2 : l === 126 ? 4 : 10) + (b1 & 0x80 ? 4 : 0);
}

/** Counts complete server→client data frames across chunk boundaries (payloads skipped). */
class FrameCounter {
  constructor() {
    this.skip = 0;
    this.inFrame = false;
    this.data = false;
    this.hdr = Buffer.alloc(14);
    this.hlen = 0;
  }
  push(buf, i, end) {
    let done = 0;
    while (i < end) {
      if (this.inFrame) {
        const k = Math.min(this.skip, end - i);
        this.skip -= k;
        i += k;
        if (this.skip === 0) { this.inFrame = false; if (this.data) done++; }
        continue;
      }
      let h = buf;
      let at = i;
      if (this.hlen > 0 || end - i < 14) {
        while (i < end && (this.hlen < 2 || this.hlen < headerLength(this.hdr[1]))) this.hdr[this.hlen++] = buf[i++];
        if (this.hlen < 2 || this.hlen < headerLength(this.hdr[1])) break;
        h = this.hdr;
        at = 0;
        this.hlen = 0;
      } else i += headerLength(buf[i + 1]);
      const b1 = h[at + 1] & 0x7f;
      const len = b1 < 126 ? b1 : b1 === 126 ? h.readUInt16BE(at + 2) : h.readUInt32BE(at + 2) * 2 ** 32 + h.readUInt32BE(at + 6);
      const op = h[at] & 0x0f;
      this.data = (h[at] & 0x80) !== 0 && op < 8;
      this.skip = len;
      this.inFrame = true;
      if (len === 0) { this.inFrame = false; if (this.data) done++; }
    }
    return done;
  }
}

async function client(o) {
  const N = o.conns;
  const W = o.window;
  const frame = buildMessageFrame({ size: o.size });
  const batch = Buffer.concat(Array.from({ length: W }, () => frame));
  const half = W >> 1;
  const tConnect = new Float64Array(N).fill(NaN);
  const tOpen = new Float64Array(N).fill(NaN);
  const inflight = new Int32Array(N);
  const socks = new Array(N);
  let msgs = 0;
  let errors = 0;
  let refused = 0;
  let running = true;
  const msgTimeline = []; // [t, msgs] every 250 ms
  const eld = monitorEventLoopDelay({ resolution: 10 });
  eld.enable();

  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    let head = '';
    let open = false;
    const counter = new FrameCounter();
    const sock = connect({
      host: HOST,
      port: o.port,
      onread: {
        buffer: READ_BUFFER,
        callback(n, buf) {
          if (open) {
            const k = counter.push(buf, 0, n);
            if (k === 0) return;
            msgs += k;
            const left = (inflight[i] -= k);
            if (running && left <= half) {
              const add = W - left;
              sock.write(add === W ? batch : batch.subarray(0, add * frame.length));
              inflight[i] = W;
            }
            return;
          }
          head += buf.latin1Slice(0, n);
          const end = head.indexOf('\r\n\r\n');
          if (end === -1) return;
          if (!head.startsWith('HTTP/1.1 101')) { refused++; sock.destroy(); return; }
          open = true;
          tOpen[i] = performance.now() - t0;
          const rest = Buffer.from(head.slice(end + 4), 'latin1');
          if (rest.length) msgs += counter.push(rest, 0, rest.length);
          if (running) { sock.write(batch); inflight[i] = W; }
        },
      },
    });
    socks[i] = sock;
    sock.setNoDelay(true);
    sock.on('error', () => { errors++; });
    sock.on('connect', () => {
      tConnect[i] = performance.now() - t0;
      sock.write(
        `GET / HTTP/1.1\r\nHost: ${HOST}:${o.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
  }
  const tLoop = performance.now() - t0;
  const timeline = setInterval(() => msgTimeline.push([Math.round(performance.now() - t0), msgs]), 250);
  await new Promise((r) => setTimeout(r, o.duration));
  running = false;
  clearInterval(timeline);
  const tEnd = performance.now() - t0;
  const msgsEnd = msgs;
  eld.disable();
  for (const s of socks) s.destroy();

  const count = (arr, t) => { let c = 0; for (const x of arr) if (x <= t) c++; return c; };
  const at = (t) => {
    // messages echoed by time t (from the 250 ms timeline)
    let best = 0;
    for (const [tt, m] of msgTimeline) if (tt <= t) best = m;
    return best;
  };
  const open = {};
  const connected = {};
  for (const c of CHECKPOINTS) { open[c] = count(tOpen, c); connected[c] = count(tConnect, c); }
  const sortedOpen = Array.from(tOpen).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  const lastT = msgTimeline.length ? msgTimeline[msgTimeline.length - 1][0] : tEnd;
  return {
    open,
    connected,
    openTotal: sortedOpen.length,
    p50OpenMs: sortedOpen.length ? Math.round(sortedOpen[Math.floor(sortedOpen.length / 2)]) : null,
    lastOpenMs: sortedOpen.length ? Math.round(sortedOpen[sortedOpen.length - 1]) : null,
    msgsPerSec: Math.round(msgsEnd / (tEnd / 1000)),
    msgsPerSec5to10: Math.round((at(lastT) - at(5000)) / ((lastT - 5000) / 1000)),
    msgsPerSec0to2: Math.round(at(2000) / 2),
    connectLoopMs: Math.round(tLoop),
    clientLoopDelayP99Ms: +(eld.percentile(99) / 1e6).toFixed(1),
    clientLoopDelayMaxMs: +(eld.max / 1e6).toFixed(1),
    errors,
    refused,
  };
}

// ── parent ─────────────────────────────────────────────────────────────────────────────────

function netstat() {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
    const out = {};
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const k = lines[i].split(/\s+/);
      const v = lines[i + 1].split(/\s+/);
      if (k[0] !== 'TcpExt:') continue;
      for (let j = 1; j < k.length; j++) out[k[j]] = Number(v[j]);
    }
    return out;
  } catch {
    return {};
  }
}
const NETSTAT_KEYS = ['ListenOverflows', 'ListenDrops', 'SyncookiesSent', 'TCPReqQFullDoCookies', 'TCPReqQFullDrop'];

function lineReader(stream, onLine) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (d) => {
    buf += d;
    let k;
    while ((k = buf.indexOf('\n')) !== -1) { const l = buf.slice(0, k); buf = buf.slice(k + 1); onLine(l); }
  });
}

/** A target: an echo-server.mjs impl, or a variant `label:impl:ENV=VALUE:...` (e.g. another build via WASMWS_DIST). */
function parseTarget(t) {
  const [label, impl = label, ...envs] = t.split(':');
  return { label, impl, env: Object.fromEntries(envs.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)])) };
}

function startServer(target, o) {
  const { impl, env } = parseTarget(target);
  return new Promise((resolve, reject) => {
    // NODE_BIN (in a variant's environment): run the server with another Node.
    const args = ['-c', '0', env.NODE_BIN ?? process.execPath, ...o.nodeArgs, join(here, 'echo-server.mjs'), '--impl', impl, '--port', '0'];
    if (o.backlog) args.push('--backlog', String(o.backlog));
    args.push(...o.serverArgs);
    const child = spawn('taskset', args, { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, BUN_PATH: process.env.BUN_PATH ?? defaultBun(), ...env } });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${impl}: no ready line in 20 s`)); }, 20_000);
    lineReader(child.stdout, (l) => {
      let m;
      try { m = JSON.parse(l); } catch { return; }
      if (m.ready === true) { clearTimeout(timer); resolve({ child, ready: m }); }
      else if (m.ready === false) { clearTimeout(timer); reject(new Error(`${impl}: ${m.error}`)); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${impl}: exited ${code}`)); });
  });
}

function defaultBun() {
  const p = join(process.env.HOME ?? '', '.cache/wasmws-rt/bun-1.4.5/node_modules/@oven/bun-linux-x64/bin/bun');
  try { readFileSync(p, { flag: 'r' }).length; return p; } catch { return ''; }
}

function runClient(o, port) {
  return new Promise((resolve, reject) => {
    const opts = { port, conns: o.conns, window: o.window, size: o.size, duration: o.duration };
    const child = spawn('taskset', ['-c', '1', process.execPath, fileURLToPath(import.meta.url), '--client', JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const kill = setTimeout(() => child.kill('SIGKILL'), o.duration + 20_000);
    let result = null;
    lineReader(child.stdout, (l) => { try { result = JSON.parse(l); } catch { /* ignore */ } });
    child.on('exit', (code) => {
      clearTimeout(kill);
      if (result) resolve(result);
      else reject(new Error(`client exited ${code} without a result`));
    });
  });
}

async function stopServer(child) {
  if (child.exitCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  try { child.stdin.write('exit\n'); } catch { /* closed */ }
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(t);
}

/**
 * --monitor: every 250 ms, the kernel's view of the server port with `ss`: the listening socket's
 * accept queue (Recv-Q) and backlog (Send-Q), server-side SYN-RECV sockets, and the server side of
 * established connections: how many, and how many hold unread bytes (Recv-Q > 0).
 */
async function monitor(port, duration) {
  const { execFileSync } = await import('node:child_process');
  const out = [];
  const t0 = performance.now();
  while (performance.now() - t0 < duration + 200) {
    const t = Math.round(performance.now() - t0);
    try {
      const l = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' }).trim().split(/\s+/);
      const syn = execFileSync('ss', ['-tnH', 'state', 'syn-recv', `sport = :${port}`], { encoding: 'utf8' }).split('\n').filter(Boolean).length;
      const est = execFileSync('ss', ['-tnH', 'state', 'established', `sport = :${port}`], { encoding: 'utf8' }).split('\n').filter(Boolean);
      const unread = est.filter((x) => Number(x.trim().split(/\s+/)[0]) > 0).length;
      out.push({ t, acceptQ: Number(l[1]), backlog: Number(l[2]), synRecv: syn, estab: est.length, estabUnread: unread });
    } catch { /* ss missing */ }
    await new Promise((r) => setTimeout(r, 250));
  }
  return out;
}

const median = (xs) => {
  const v = xs.filter((x) => x !== null && x !== undefined && !Number.isNaN(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};

function parseArgs(argv) {
  const o = { targets: ['wasmws-wasm', 'ws', 'bun'], rounds: 3, conns: 1000, window: 64, size: 1024, duration: 10_000, backlog: 0, json: null, serverArgs: [], nodeArgs: [], label: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => argv[++i];
    if (a === '--targets') o.targets = v().split(',');
    else if (a === '--variant') o.targets.push(v());
    else if (a === '--rounds') o.rounds = Number(v());
    else if (a === '--conns') o.conns = Number(v());
    else if (a === '--window') o.window = Number(v());
    else if (a === '--size') o.size = Number(v());
    else if (a === '--duration') o.duration = Math.min(60_000, Number(v()));
    else if (a === '--backlog') o.backlog = Number(v());
    else if (a === '--json') o.json = v();
    else if (a === '--label') o.label = v();
    else if (a === '--monitor') o.monitor = true;
    else if (a === '--server-args') o.serverArgs = v().split(' ').filter(Boolean);
    else if (a === '--node-args') o.nodeArgs = v().split(' ').filter(Boolean);
    else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const runs = Object.fromEntries(o.targets.map((t) => [t, []]));
  const versions = {};
  for (let r = 0; r < o.rounds; r++) {
    for (const impl of o.targets) {
      let srv;
      try {
        srv = await startServer(impl, o);
      } catch (err) {
        console.error(String(err.message ?? err));
        continue;
      }
      versions[impl] = srv.ready.version;
      await new Promise((res) => setTimeout(res, 300));
      const n0 = netstat();
      const mon = o.monitor ? monitor(srv.ready.port, o.duration) : null;
      const res = await runClient(o, srv.ready.port);
      const n1 = netstat();
      if (mon) res.monitor = await mon;
      res.kernel = Object.fromEntries(NETSTAT_KEYS.map((k) => [k, (n1[k] ?? 0) - (n0[k] ?? 0)]));
      await stopServer(srv.child);
      runs[impl].push(res);
      console.error(`round ${r + 1} ${parseTarget(impl).label}: open ${CHECKPOINTS.map((c) => res.open[c]).join('/')} · ${res.msgsPerSec5to10} msg/s (5–10 s) · overflows ${res.kernel.ListenOverflows}`);
      await new Promise((res2) => setTimeout(res2, 500));
    }
  }
  const rows = [];
  const head = ['target', ...CHECKPOINTS.map((c) => `open @${c / 1000}s`), 'last open (ms)', 'echo msg/s 0–2 s', 'echo msg/s 5–10 s', 'client loop p99 (ms)', 'ListenOverflows', 'runs (open @10s)'];
  rows.push(`| ${head.join(' | ')} |`);
  rows.push(`| ${head.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`);
  for (const impl of o.targets) {
    const rs = runs[impl];
    if (!rs.length) { rows.push(`| ${impl} | ${head.slice(1).map(() => 'n/a').join(' | ')} |`); continue; }
    const m = (f) => median(rs.map(f));
    rows.push(`| ${parseTarget(impl).label}${versions[impl] ? ` (${versions[impl]})` : ''} | ${CHECKPOINTS.map((c) => m((x) => x.open[c])).join(' | ')} | ${m((x) => x.lastOpenMs)} | ${m((x) => x.msgsPerSec0to2)} | ${m((x) => x.msgsPerSec5to10)} | ${m((x) => x.clientLoopDelayP99Ms)} | ${m((x) => x.kernel.ListenOverflows)} | ${rs.map((x) => x.open[10000]).join(', ')} |`);
  }
  const table = rows.join('\n');
  process.stdout.write(`\n${o.label ? `${o.label}\n\n` : ''}${o.conns} clients at once, ${o.size} B binary echo, ${o.window} in flight each; median of ${o.rounds} interleaved rounds; server on core 0, client on core 1${o.backlog ? `; backlog ${o.backlog}` : ''}\n\n${table}\n`);
  if (o.json) writeFileSync(o.json, JSON.stringify({ options: o, versions, runs }, null, 2));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  setTimeout(() => { console.error('accept: lifetime exceeded'); process.exit(3); }, 20 * 60_000).unref();
  if (process.argv[2] === '--client') {
    client(JSON.parse(process.argv[3])).then((r) => { process.stdout.write(JSON.stringify(r) + '\n'); process.exit(0); }, (e) => { console.error(e); process.exit(1); });
  } else {
    main().catch((e) => { console.error(e); process.exit(1); });
  }
}
