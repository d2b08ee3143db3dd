#!/usr/bin/env node
// Memory per idle connection, right after the connections open and again once the server has been
// idle for a while: Node's own floor (bench/echo-server.mjs --impl http-floor: an HTTP server that
// answers the upgrade and keeps the socket), wasmws and ws, each in its own server process, with
// the idle clients of bench/loadgen.mjs in another process.
//
//   npm run build && node bench/idle-settled.mjs [--conns 10000] [--settle 20000] [--only http-floor,wasmws,ws]
//
// Why both: opening thousands of connections in a burst grows V8's young generation to its
// maximum (32 MiB on 64-bit Node 20), and a plain gc() does not give that back, so RSS ÷ N right
// after the burst counts ~3 KiB per connection (at 10,000) that no connection holds. V8's memory
// reducer shrinks it once the process has been idle for some seconds: the settled figure is what a
// long-lived server holding idle connections keeps. Per connection = (after − before) / N, from the
// server's `mem` report (after gc); `new space` is V8's young generation at that moment.
import { startServer, openIdle, fileLimit, sleep, mdTable } from './harness.mjs';

const args = process.argv.slice(2);
const arg = (k, d) => (args.includes(`--${k}`) ? args[args.indexOf(`--${k}`) + 1] : d);
const N = Number(arg('conns', 10_000));
const SETTLE = Number(arg('settle', 20_000));
const kinds = arg('only', 'http-floor,wasmws,ws').split(',');
const KiB = 1024;
const MiB = KiB * KiB;
const LABEL = { 'http-floor': 'Node floor (http upgrade, socket kept)', wasmws: 'wasmws', 'wasmws-wasm': 'wasmws (wasm codec)', ws: 'ws' };

const rows = [];
for (const kind of kinds) {
  const server = await startServer(kind, { pin: false });
  const clients = [];
  try {
    const before = await server.ask('mem');
    const perProc = Math.max(1, Math.min(N, fileLimit() - 200));
    for (let left = N; left > 0; left -= perProc) {
      clients.push(await openIdle({ port: server.port, conns: Math.min(perProc, left), deflate: false, touch: false, text: true, size: 16 }, 120_000));
    }
    const by = Date.now() + 15_000;
    while ((await server.ask('conns')).conns < N && Date.now() < by) await sleep(100);
    const now = await server.ask('mem', 60_000);
    if (now.conns !== N) throw new Error(`${kind}: server counts ${now.conns} connections, expected ${N}`);
    await sleep(SETTLE);
    const settled = await server.ask('mem', 60_000);
    const per = (m, k) => (m[k] - before[k]) / N / KiB;
    rows.push({ kind, now, settled, per });
    console.error(`[idle-settled] ${kind}: RSS right after ${per(now, 'rss').toFixed(2)} KiB/conn, settled ${per(settled, 'rss').toFixed(2)}`);
  } finally {
    for (const c of clients) await c.stop();
    await server.stop();
  }
}

const ws = rows.find((r) => r.kind === 'ws');
console.log(`${N.toLocaleString('en-US')} idle connections, per connection (KiB); settled = after ${SETTLE / 1000} s idle (node ${process.version})\n`);
console.log(mdTable(
  ['server', 'RSS right after', 'heap used right after', 'RSS settled', 'heap used settled', 'heap total settled', 'new space right after → settled (MiB)', 'settled RSS ÷ ws'],
  rows.map((r) => [
    LABEL[r.kind] ?? r.kind,
    r.per(r.now, 'rss').toFixed(2),
    r.per(r.now, 'heapUsed').toFixed(2),
    r.per(r.settled, 'rss').toFixed(2),
    r.per(r.settled, 'heapUsed').toFixed(2),
    r.per(r.settled, 'heapTotal').toFixed(2),
    `${(r.now.newSpace / MiB).toFixed(0)} → ${(r.settled.newSpace / MiB).toFixed(0)}`,
    ws ? (r.per(r.settled, 'rss') / ws.per(ws.settled, 'rss')).toFixed(2) + '×' : '',
  ]),
));
