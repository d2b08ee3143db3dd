#!/usr/bin/env node
// Memory per idle connection, right after the connections open and again once the server has been
// idle for a while: the bare Node floor (an HTTP server that answers the upgrade and keeps the
// socket), wasmws and ws, each in its own server process, with raw clients in another process.
//
//   npm run build && node bench/idle-settled.mjs [--conns 10000] [--settle 20000] [--only wasmws,ws,http]
//
// Why both: opening thousands of connections in a burst grows V8's young generation to its
// maximum (32 MiB on 64-bit Node 20), and a plain gc() does not give that back, so RSS ÷ N right
// after the burst counts ~3 KiB per connection (at 10,000) that no connection holds. V8's memory
// reducer shrinks it once the process has been idle for some seconds: the settled figure is what a
// long-lived server holding idle connections keeps. Per connection = (after − before) / N, after
// gc() (the server runs with --expose-gc); `new space` is V8's young generation at that moment.
import { fork } from 'node:child_process';
import net from 'node:net';
import http from 'node:http';
import v8 from 'node:v8';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';

const HOST = '127.0.0.1';
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';
const self = fileURLToPath(import.meta.url);
const role = process.argv[2];

if (role === '--server') {
  // ── server process: one kind, reports memory on request ──
  const kind = process.argv[3];
  const held = new Set();
  const srv = http.createServer((_req, res) => res.writeHead(426).end());
  if (kind === 'http') {
    srv.on('upgrade', (_req, socket) => {
      held.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => held.delete(socket));
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${ACCEPT}\r\n\r\n`);
    });
  } else {
    const { WebSocketServer } = kind === 'ws'
      ? createRequire(import.meta.url)('ws')
      : await import(pathToFileURL(new URL('../dist/esm/index.js', import.meta.url).pathname).href);
    const wss = new WebSocketServer({ server: srv });
    wss.on('connection', (ws) => {
      held.add(ws);
      ws.on('error', () => {});
      ws.on('close', () => held.delete(ws));
    });
  }
  const mem = async () => {
    for (let i = 0; i < 4; i++) {
      globalThis.gc();
      await new Promise((r) => setTimeout(r, 50));
    }
    const u = process.memoryUsage();
    const ns = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    return { rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, newSpace: ns ? ns.space_size : 0, held: held.size };
  };
  process.on('message', async (m) => process.send({ re: m, ...(await mem()) }));
  srv.listen(0, HOST, () => process.send({ re: 'ready', port: srv.address().port }));
} else if (role === '--client') {
  // ── client process: N raw upgrades, kept open until told ──
  const [port, n] = [Number(process.argv[3]), Number(process.argv[4])];
  let open = 0;
  const socks = [];
  const connectNext = (i) => {
    if (i >= n) return;
    const s = net.connect(port, HOST);
    socks.push(s);
    s.on('error', () => {});
    s.once('data', () => {
      if (++open === n) process.send('open');
    });
    s.on('connect', () => {
      s.write(`GET / HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      connectNext(i + 64); // 64 connects in flight: the listen queue never overflows
    });
  };
  for (let i = 0; i < Math.min(64, n); i++) connectNext(i);
  process.on('message', () => process.exit(0));
} else {
  // ── the driver ──
  const args = process.argv.slice(2);
  const arg = (k, d) => (args.includes(`--${k}`) ? args[args.indexOf(`--${k}`) + 1] : d);
  const N = Number(arg('conns', 10_000));
  const SETTLE = Number(arg('settle', 20_000));
  const kinds = arg('only', 'http,wasmws,ws').split(',');
  const KiB = 1024;
  const rows = [];
  for (const kind of kinds) {
    const server = fork(self, ['--server', kind], { execArgv: ['--expose-gc'] });
    const replies = [];
    let wake = null;
    server.on('message', (m) => { replies.push(m); wake?.(); });
    const next = async (re, ms = 60_000) => {
      const by = Date.now() + ms;
      for (;;) {
        const i = replies.findIndex((m) => m.re === re);
        if (i >= 0) return replies.splice(i, 1)[0];
        if (Date.now() > by) throw new Error(`${kind}: no ${re} within ${ms} ms`);
        await new Promise((r) => { wake = r; setTimeout(r, 200); });
      }
    };
    const ask = (what) => { server.send(what); return next(what); };
    let client = null;
    try {
      const { port } = await next('ready', 20_000);
      const before = await ask('before');
      client = fork(self, ['--client', String(port), String(N)]);
      await new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`${kind}: clients did not open in 120 s`)), 120_000);
        client.once('message', () => { clearTimeout(t); resolve(); });
      });
      let now = await ask('now');
      for (let i = 0; i < 50 && now.held < N; i++) now = await ask('now');
      if (now.held !== N) throw new Error(`${kind}: server holds ${now.held} of ${N}`);
      await new Promise((r) => setTimeout(r, SETTLE));
      const settled = await ask('settled');
      const per = (a, k) => (a[k] - before[k]) / N / KiB;
      rows.push({ kind, now, settled, before, per });
      console.error(`[idle-settled] ${kind}: right after RSS ${per(now, 'rss').toFixed(2)} KiB/conn, settled ${per(settled, 'rss').toFixed(2)}`);
    } finally {
      client?.kill();
      server.kill();
    }
  }
  const label = { http: 'Node floor (http upgrade, socket kept)', wasmws: 'wasmws', ws: 'ws' };
  const ws = rows.find((r) => r.kind === 'ws');
  console.log(`${N.toLocaleString('en-US')} idle connections, per connection (KiB); settled = after ${SETTLE / 1000} s idle (node ${process.version})\n`);
  console.log('| server | RSS right after | heap used right after | RSS settled | heap used settled | heap total settled | new space right after → settled (MiB) | settled RSS ÷ ws |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    const ratio = ws ? (r.per(r.settled, 'rss') / ws.per(ws.settled, 'rss')).toFixed(2) + '×' : '';
    console.log(`| ${label[r.kind]} | ${r.per(r.now, 'rss').toFixed(2)} | ${r.per(r.now, 'heapUsed').toFixed(2)} | ${r.per(r.settled, 'rss').toFixed(2)} | ${r.per(r.settled, 'heapUsed').toFixed(2)} | ${r.per(r.settled, 'heapTotal').toFixed(2)} | ${(r.now.newSpace / 1048576).toFixed(0)} → ${(r.settled.newSpace / 1048576).toFixed(0)} | ${ratio} |`);
  }
}
