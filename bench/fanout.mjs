#!/usr/bin/env node
// Fan-out: one publisher → N subscribers, deliveries/s (messages × subscribers / time from the first
// publish to the last byte received). Subscribers are raw-socket counters in another process
// (bench/fanout-client.mjs); the publisher server in its own (bench/fanout-server.mjs,
// bench/bun-fanout.js), pinned to the other core where taskset exists.
//
//   local:  wasmws wss.publish  vs  ws (for each client: send)  vs  Bun server.publish
//   redis:  two server processes and one redis-server: publish on A, subscribers on B —
//           wasmws + RedisBroker  vs  socket.io + @socket.io/redis-adapter
//
//   npm run build && node bench/fanout.mjs [--quick] [--only local|redis]
// Writes bench/results/fanout.md and fanout.json; `npm run bench:report` runs it too
// (`export async function runFanout({ quick, only, log })` → { rows, versions, markdown }).
// Text messages of 16 B and 1 KiB, 10 per event-loop turn on the publisher. Every wait is bounded.
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as net from 'node:net';
import { cpus } from 'node:os';
import { runEnvironment, mdTable } from './harness.mjs';
import { findBun } from './echo-server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
// Bun: $BUN_PATH, PATH, the usual install places (findBun), or the CI's pinned runtime cache.
const CI_BUN = join(process.env.HOME ?? '/root', '.cache/wasmws-rt/_oven_bun-linux-x64_1.4.5/node_modules/@oven/bun-linux-x64/bin/bun');
const BUN = findBun()?.path ?? CI_BUN;
const HAS_TASKSET = spawnSync('sh', ['-c', 'command -v taskset']).status === 0;
const TWO = cpus().length > 1;
const BATCH = 10;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function child(cmd, core) {
  const argv = HAS_TASKSET && core != null && TWO ? ['taskset', '-c', String(core), ...cmd] : cmd;
  const p = spawn('sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'sh', ...argv], { stdio: ['pipe', 'pipe', 'inherit'] });
  const queue = [];
  const waiters = [];
  let exited = false;
  createInterface({ input: p.stdout }).on('line', (l) => {
    let m;
    try { m = JSON.parse(l); } catch { return; }
    const i = waiters.findIndex((w) => w.pred(m));
    if (i >= 0) waiters.splice(i, 1)[0].resolve(m);
    else queue.push(m);
  });
  p.on('exit', () => {
    exited = true;
    for (const w of waiters.splice(0)) w.reject(new Error(`${cmd.join(' ')} exited`));
  });
  p.stdin.on('error', () => {});
  return {
    next(pred, ms = 30_000, what = 'answer') {
      const i = queue.findIndex(pred);
      if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0]);
      if (exited) return Promise.reject(new Error(`${cmd.join(' ')} exited`));
      return new Promise((resolve, reject) => {
        const w = { pred, resolve: (m) => { clearTimeout(t); resolve(m); }, reject };
        const t = setTimeout(() => { waiters.splice(waiters.indexOf(w), 1); reject(new Error(`timed out: ${what}`)); }, ms);
        waiters.push(w);
      });
    },
    send(line) { if (!exited) p.stdin.write(line + '\n'); },
    async stop() {
      if (exited) return;
      const gone = new Promise((r) => p.once('exit', r));
      this.send('exit');
      p.stdin.end();
      await Promise.race([gone, sleep(3000)]);
      if (!exited) p.kill('SIGKILL');
    },
  };
}

const server = async (impl, core, redis) => {
  const cmd = impl === 'bun' ? [BUN, join(here, 'bun-fanout.js')] : [process.execPath, join(here, 'fanout-server.mjs'), '--impl', impl, ...(redis ? ['--redis', redis] : [])];
  const c = child(cmd, core);
  const ready = await c.next((m) => 'ready' in m, 20_000, `${impl} start`);
  return { ...c, port: ready.port, version: ready.version };
};

const frameSize = (impl, size) => {
  const len = impl === 'socketio' ? size + 10 : size; // socket.io: 42["m","…"]
  return len + (len <= 125 ? 2 : len <= 65535 ? 4 : 10);
};

async function measure({ impl, pub, subServer, conns, size, count, socketio, log }) {
  const client = child([process.execPath, join(here, 'fanout-client.mjs'), JSON.stringify({ port: subServer.port, path: socketio ? '/socket.io/?EIO=4&transport=websocket' : '/?t=bench', conns, socketio })], 0);
  try {
    const opened = await client.next((m) => m.re === 'opened' || m.re === 'error', 180_000, 'subscribers open');
    if (opened.re === 'error') throw new Error(opened.error);
    const end = Date.now() + 30_000;
    let n = 0;
    while (Date.now() < end) {
      subServer.send('conns');
      n = (await subServer.next((m) => m.re === 'conns')).conns;
      if (n >= conns) break;
      await sleep(100);
    }
    if (n < conns) throw new Error(`only ${n} of ${conns} subscribed`);
    await sleep(300); // Redis SUBSCRIBE / adapter joins settle
    const rows = [];
    for (const s of size) {
      const msgs = count(s);
      client.send('reset');
      await sleep(50);
      const target = msgs * conns * frameSize(impl, s);
      client.send(`target ${target}`);
      pub.send(`run ${msgs} ${s} ${BATCH}`);
      const started = await pub.next((m) => m.re === 'started', 10_000, 'started');
      const reached = await client.next((m) => m.re === 'reached', 120_000, `${impl} ${conns}×${s} B delivered`);
      const secs = (reached.t - started.t) / 1000;
      const rate = (msgs * conns) / secs;
      rows.push({ impl, conns, size: s, messages: msgs, deliveries: msgs * conns, seconds: +secs.toFixed(3), deliveriesPerSec: Math.round(rate) });
      log(`fanout: ${impl.padEnd(13)} ${String(conns).padStart(5)} subs × ${String(s).padStart(4)} B: ${(rate / 1e6).toFixed(2)} M deliveries/s (${msgs} msgs in ${secs.toFixed(2)} s)`);
      await sleep(200);
    }
    return rows;
  } finally {
    await client.stop();
  }
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

async function startRedis() {
  const port = await freePort();
  const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((r) => { const s = net.connect(port, '127.0.0.1'); s.on('connect', () => { s.destroy(); r(true); }); s.on('error', () => r(false)); });
    if (ok) break;
    await sleep(50);
  }
  return { url: `redis://127.0.0.1:${port}`, stop: () => p.kill('SIGKILL') };
}

/** The fan-out suite: local (wasmws, ws, Bun) and through Redis (wasmws, socket.io). */
export async function runFanout({ quick = false, only = null, log = console.log } = {}) {
  const rows = [];
  const versions = {};
  const SUBS = quick ? [1000] : [1000, 10_000];
  // Deliveries per cell: ~2 M at 16 B, ~0.4 M at 1 KiB (memory stays bounded by that × frame size).
  const localCount = (conns) => (s) => Math.max(10, Math.round((s <= 16 ? 2_000_000 : 400_000) / conns / (quick ? 4 : 1)));

  if (only !== 'redis') {
    for (const impl of ['wasmws', 'ws', 'bun']) {
      if (impl === 'bun' && !existsSync(BUN)) { log('fanout: Bun not installed, skipped'); continue; }
      for (const conns of SUBS) {
        const srv = await server(impl, TWO ? 1 : null);
        versions[impl] = srv.version;
        try {
          rows.push(...(await measure({ impl, pub: srv, subServer: srv, conns, size: [16, 1024], count: localCount(conns), log })));
        } catch (err) {
          log(`fanout: ${impl} ${conns}: ${err.message}`);
          rows.push({ impl, conns, note: `failed: ${err.message}` });
        } finally {
          await srv.stop();
        }
      }
    }
  }

  if (only !== 'local') {
    const redis = await startRedis();
    try {
      for (const impl of ['wasmws-redis', 'socketio']) {
        for (const conns of quick ? [1000] : [1000, 10_000]) {
          const a = await server(impl, null, redis.url);
          const b = await server(impl, null, redis.url);
          versions[impl] = a.version;
          try {
            const count = (s) => Math.max(10, Math.round((s <= 16 ? 1_000_000 : 200_000) / conns / (quick ? 4 : 1)));
            rows.push(...(await measure({ impl, pub: a, subServer: b, conns, size: [16, 1024], count, socketio: impl === 'socketio', log })));
          } catch (err) {
            log(`fanout: ${impl} ${conns}: ${err.message}`);
            rows.push({ impl, conns, note: `failed: ${err.message}` });
          } finally {
            await a.stop();
            await b.stop();
          }
        }
      }
    } finally {
      redis.stop();
    }
  }

  // ── report ───────────────────────────────────────────────────────────────────────────────────
  const fmt = (r) => (r >= 1e6 ? `${(r / 1e6).toFixed(2)} M` : `${Math.round(r / 1e3)} k`);
  const cell = (impl, conns, size) => rows.find((r) => r.impl === impl && r.conns === conns && r.size === size)?.deliveriesPerSec;
  const lines = [];
  const ratio = (a, b) => (a && b ? `${(a / b).toFixed(2)}×` : '—');
  if (only !== 'redis') {
    lines.push('**One process** (deliveries/s; publisher and subscribers in separate processes, pinned to separate cores):', '');
    const t = [];
    for (const conns of SUBS) for (const size of [16, 1024]) {
      const w = cell('wasmws', conns, size), ws = cell('ws', conns, size), bun = cell('bun', conns, size);
      t.push([`${size === 16 ? '16 B' : '1 KiB'} → ${conns.toLocaleString('en')} subs`, w ? fmt(w) : '—', ws ? fmt(ws) : '—', bun ? fmt(bun) : '—', ratio(w, ws), ratio(w, bun)]);
    }
    lines.push(mdTable(['case', 'wasmws publish', 'ws loop', 'Bun publish', 'wasmws ÷ ws', 'wasmws ÷ Bun'], t), '');
  }
  if (only !== 'local') {
    lines.push('**Two processes through Redis** (publish on A, subscribers on B; deliveries/s on B):', '');
    const t = [];
    for (const conns of quick ? [1000] : [1000, 10_000]) for (const size of [16, 1024]) {
      const w = cell('wasmws-redis', conns, size), s = cell('socketio', conns, size);
      t.push([`${size === 16 ? '16 B' : '1 KiB'} → ${conns.toLocaleString('en')} subs`, w ? fmt(w) : '—', s ? fmt(s) : '—', ratio(w, s)]);
    }
    lines.push(mdTable(['case', 'wasmws + RedisBroker', 'socket.io + redis-adapter', 'ratio'], t), '');
  }
  const env = runEnvironment('bench/fanout.mjs');
  const commit = process.env.WASMWS_COMMIT ?? (spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: here, encoding: 'utf8' }).stdout || '').trim();
  const md = [`## Fan-out`, '', `- date: ${env.date}`, `- node: ${env.node}`, `- cpu: ${env.cpu} × ${env.cpus}`, `- versions: ${[...new Set(Object.values(versions))].join(', ')}${commit ? ` (wasmws at ${commit})` : ''}`, `- batch: ${BATCH} messages published per event-loop turn`, `- command: \`node bench/fanout.mjs${quick ? ' --quick' : ''}${only ? ` --only ${only}` : ''}\``, '', ...lines].join('\n');
  return { env, commit, versions, rows, markdown: lines.join('\n'), md };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes('--quick');
  const only = (() => { const i = process.argv.indexOf('--only'); return i > 0 ? process.argv[i + 1] : null; })();
  const { env, versions, rows, md } = await runFanout({ quick, only });
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results', 'fanout.md'), md + '\n');
  writeFileSync(join(here, 'results', 'fanout.json'), JSON.stringify({ env, versions, rows }, null, 2) + '\n');
  console.log('\n' + md);
  process.exit(0);
}
