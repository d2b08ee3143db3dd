// permessage-deflate suite: echo throughput with compression on vs off, and server memory per idle
// connection with compression on vs off. `export async function runDeflate(opts)` returns rows.
//
// Imports the BUILT package (../dist/esm), so `npm run build` must run first (`npm run bench` does).
//
// Method notes:
// - throughput: one server and 16 clients in this process (127.0.0.1), each client keeps
//   PIPELINE messages in flight; a message is 1 KiB of JSON-like text (= the default threshold, so
//   it is compressed when the extension is on). msgs/s counts echoes received by the clients over a
//   fixed window after a warm-up; both directions are compressed, so this is CPU of both ends.
// - memory: the server runs in a child process (so client memory does not count); 1000 clients
//   connect from this process. The child reports RSS after gc() with 0 connections and with 1000.
//   Modes: off; on but idle (zlib contexts are created lazily, on first message); on after one
//   compressed message each way (deflate + inflate contexts live, context takeover); the same with
//   server_no_context_takeover + client_no_context_takeover and 10-bit windows.
// - Everything is bounded: fixed durations, connection timeouts, the child is killed at the end.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const HOST = '127.0.0.1';
const here = fileURLToPath(import.meta.url);
const CONNS = 16;
const PIPELINE = 8;
const MSG_SIZE = 1024;
const IDLE_CONNS = 1000;

async function load() {
  return import('../dist/esm/index.js');
}

/** 1 KiB of JSON-like text with the usual redundancy (keys repeat, values vary). */
function jsonish(size, seed) {
  let x = seed >>> 0;
  const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const items = [];
  let s = '';
  for (let i = 0; s.length < size; i++) {
    items.push({ id: 1000 + i, user: `user${(rnd() * 500) | 0}`, online: rnd() > 0.5, score: +(rnd() * 100).toFixed(2), tags: ['a', 'b', 'c'].slice(0, 1 + ((rnd() * 3) | 0)) });
    s = JSON.stringify({ type: 'update', seq: seed, items });
  }
  return s.slice(0, size);
}

function timeout(ms, what) {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), ms).unref());
}

function opened(ws, ms = 5000) {
  return Promise.race([
    new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    }),
    timeout(ms, 'open'),
  ]);
}

async function throughput(lib, compress, seconds, log, name = 'wasmws') {
  const wss = new lib.WebSocketServer({ port: 0, host: HOST, perMessageDeflate: compress });
  await new Promise((r) => wss.once('listening', r));
  wss.on('connection', (ws) => {
    ws.on('message', (d, isBinary) => ws.send(d, { binary: isBinary }));
  });
  const port = wss.address().port;
  const msgs = Array.from({ length: 64 }, (_, i) => jsonish(MSG_SIZE, i));
  const clients = Array.from({ length: CONNS }, () => new lib.WebSocket(`ws://${HOST}:${port}`, { perMessageDeflate: compress }));
  await Promise.all(clients.map((c) => opened(c)));
  let received = 0;
  let counting = false;
  let running = true;
  for (const c of clients) {
    let i = 0;
    c.on('message', () => {
      if (counting) received++;
      if (running) c.send(msgs[i++ & 63]);
    });
    for (let k = 0; k < PIPELINE; k++) c.send(msgs[i++ & 63]);
  }
  await new Promise((r) => setTimeout(r, 500)); // warm-up
  const sock0 = clients.map((c) => c._socket.bytesWritten);
  counting = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  counting = false;
  const dt = (performance.now() - t0) / 1000;
  const sent = clients.reduce((a, c, i) => a + c._socket.bytesWritten - sock0[i], 0);
  running = false;
  const wireIn = sent / Math.max(1, received);
  for (const c of clients) c.terminate();
  await Promise.race([new Promise((r) => wss.close(r)), timeout(3000, 'server close')]).catch(() => {});
  const row = {
    test: `echo throughput (${name} server + client)`,
    compression: compress ? 'on' : 'off',
    connections: CONNS,
    'message bytes': MSG_SIZE,
    'msgs/s': Math.round(received / dt),
    'wire bytes/msg (client→server)': Math.round(wireIn),
  };
  log?.(`deflate: ${JSON.stringify(row)}`);
  return row;
}

/** Ask the child server something and wait for its answer. */
function ask(child, msg, ms = 15_000) {
  return Promise.race([
    new Promise((resolve) => {
      const on = (m) => {
        if (m && m.re === msg.cmd) {
          child.off('message', on);
          resolve(m);
        }
      };
      child.on('message', on);
      child.send(msg);
    }),
    timeout(ms, `child ${msg.cmd}`),
  ]);
}

async function memory(lib, mode, log) {
  const child = fork(here, ['--deflate-child'], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const { port } = await ask(child, { cmd: 'listen', pmd: mode.server });
    const base = await ask(child, { cmd: 'rss' });
    const clients = [];
    for (let i = 0; i < IDLE_CONNS; i += 50) {
      const batch = Array.from({ length: Math.min(50, IDLE_CONNS - i) }, () => new lib.WebSocket(`ws://${HOST}:${port}`, { perMessageDeflate: mode.client }));
      await Promise.all(batch.map((c) => opened(c, 10_000)));
      clients.push(...batch);
    }
    if (mode.exchange) {
      // One compressed message each way per connection, so both zlib contexts exist.
      const msg = jsonish(2 * MSG_SIZE, 1);
      await Promise.race([
        Promise.all(clients.map((c) => new Promise((r) => { c.once('message', r); c.send(msg); }))),
        timeout(20_000, 'exchange'),
      ]);
    }
    const loaded = await ask(child, { cmd: 'rss' });
    if (loaded.conns !== IDLE_CONNS) throw new Error(`child has ${loaded.conns} connections`);
    for (const c of clients) c.terminate();
    const row = {
      test: 'memory per idle connection (server RSS)',
      compression: mode.name,
      connections: IDLE_CONNS,
      'RSS KiB/conn': +((loaded.rss - base.rss) / IDLE_CONNS / 1024).toFixed(1),
      'heap+external KiB/conn': +((loaded.heapExt - base.heapExt) / IDLE_CONNS / 1024).toFixed(1),
    };
    log?.(`deflate: ${JSON.stringify(row)}`);
    return row;
  } finally {
    child.kill();
  }
}

const MEMORY_MODES = [
  { name: 'off', server: false, client: false, exchange: false },
  { name: 'on, idle (no message yet)', server: true, client: true, exchange: false },
  { name: 'on, after 1 msg each way', server: true, client: true, exchange: true },
  {
    name: 'on, no_context_takeover + 10-bit windows, after 1 msg',
    server: { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 10 },
    client: true,
    exchange: true,
  },
];

/** Run the suite; `quick` shortens the throughput windows. Bounded well under 60 s. */
export async function runDeflate(opts = {}) {
  const lib = await load();
  const seconds = opts.quick ? 1 : 3;
  const rows = [];
  for (const compress of [false, true]) rows.push(await throughput(lib, compress, seconds, opts.log));
  // ws on both ends, same harness (its API matches), for scale.
  const ws = await import('ws');
  const wsLib = { WebSocketServer: ws.WebSocketServer, WebSocket: ws.default };
  for (const compress of [false, true]) rows.push(await throughput(wsLib, compress, seconds, opts.log, 'ws'));
  for (const mode of MEMORY_MODES) rows.push(await memory(lib, mode, opts.log));
  return rows;
}

// ── child: a server that reports its memory ──
async function childMain() {
  const lib = await load();
  let wss = null;
  process.on('message', async (m) => {
    if (m.cmd === 'listen') {
      wss = new lib.WebSocketServer({ port: 0, host: HOST, perMessageDeflate: m.pmd });
      wss.on('connection', (ws) => ws.on('message', (d, isBinary) => ws.send(d, { binary: isBinary })));
      await new Promise((r) => wss.once('listening', r));
      process.send({ re: 'listen', port: wss.address().port });
    } else if (m.cmd === 'rss') {
      for (let i = 0; i < 3; i++) {
        globalThis.gc?.();
        await new Promise((r) => setTimeout(r, 50));
      }
      const u = process.memoryUsage();
      process.send({ re: 'rss', rss: u.rss, heapExt: u.heapUsed + u.external, conns: wss ? wss.clients.size : 0 });
    }
  });
  process.on('disconnect', () => process.exit(0));
}

if (process.argv[2] === '--deflate-child') childMain();
else if (process.argv[1] === here) {
  // Standalone: node --expose-gc bench/deflate.mjs [--quick]
  runDeflate({ quick: process.argv.includes('--quick'), log: (m) => console.error(m) }).then((rows) => {
    console.table(rows);
    process.exit(0);
  }, (err) => {
    console.error(err);
    process.exit(1);
  });
}
