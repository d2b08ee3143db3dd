#!/usr/bin/env node
// Event-loop lag while many clients upload as fast as they can: what one turn of fair reading lets
// the busy sockets take from everything else (timers, heartbeats, new connections). The server
// (this file with --serve, in its own process) sinks every message and times a 5 ms interval's
// lateness; raw-socket clients in this process each stream 64 KiB binary frames (mask key 0) for
// the given time. Variants are builds (a dist/esm/index.js each), run interleaved.
//
//   node bench/upload-lag.mjs [--conns 200] [--ms 4000] [--rounds 2] label=DIST [label=DIST ...]
//   e.g. node bench/upload-lag.mjs before=/tmp/before/dist/esm/index.js now=dist/esm/index.js
import { fork } from 'node:child_process';
import net from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const INTERVAL = 5;

if (process.argv[2] === '--serve') {
  const { WebSocketServer } = await import(pathToFileURL(process.env.WASMWS_DIST).href);
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', maxPayload: 1 << 30 });
  await new Promise((r) => wss.on('listening', r));
  let bytes = 0;
  wss.on('connection', (ws) => ws.on('message', (d) => { bytes += d.length; }));
  const lags = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    lags.push(now - last - INTERVAL);
    last = now;
  }, INTERVAL);
  process.send({ port: wss.address().port });
  process.on('message', () => {
    clearInterval(timer);
    lags.sort((a, b) => a - b);
    const q = (f) => lags[Math.min(lags.length - 1, Math.floor(lags.length * f))];
    process.send({ bytes, p50: q(0.5), p99: q(0.99), max: lags.at(-1) });
    process.exit(0);
  });
  setTimeout(() => process.exit(1), 120_000).unref(); // bounded whatever happens
} else {
  const opt = { conns: 200, ms: 4000, rounds: 2 };
  const sides = [];
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    if (args[i].startsWith('--')) opt[args[i].slice(2)] = Number(args[++i]);
    else {
      const eq = args[i].indexOf('=');
      sides.push({ label: args[i].slice(0, eq), dist: resolve(args[i].slice(eq + 1)) });
    }
  }
  if (sides.length === 0) {
    console.error('usage: node bench/upload-lag.mjs [--conns N] [--ms N] [--rounds N] label=DIST ...');
    process.exit(2);
  }
  const head = Buffer.alloc(14);
  head[0] = 0x82;
  head[1] = 0x80 | 127;
  head.writeUInt32BE(65536, 6); // 64-bit length 65536, then a zero mask key
  const batch = Buffer.concat(Array(16).fill(Buffer.concat([head, Buffer.alloc(65536, 7)])));
  const self = fileURLToPath(import.meta.url);
  console.log(`${opt.conns} clients uploading 64 KiB frames for ${opt.ms} ms; lateness of a ${INTERVAL} ms timer in the server`);
  for (let round = 0; round < opt.rounds; round++) {
    for (const side of round % 2 ? [...sides].reverse() : sides) {
      const s = fork(self, ['--serve'], { env: { ...process.env, WASMWS_DIST: side.dist } });
      const { port } = await new Promise((r) => s.once('message', r));
      const socks = [];
      for (let i = 0; i < opt.conns; i++) {
        const c = net.connect(port, '127.0.0.1');
        c.on('error', () => {});
        c.on('data', () => {});
        c.write(`GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
        socks.push(c);
      }
      await new Promise((r) => setTimeout(r, 1000));
      const end = Date.now() + opt.ms;
      const pump = (c) => {
        while (Date.now() < end && !c.destroyed && c.write(batch));
        if (Date.now() < end && !c.destroyed) c.once('drain', () => pump(c));
      };
      socks.forEach(pump);
      await new Promise((r) => setTimeout(r, opt.ms));
      s.send('stop');
      const r = await new Promise((res) => s.once('message', res));
      console.log(`${side.label.padEnd(10)} uploaded ${(r.bytes / 1e9).toFixed(2)} GB; lag p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, max ${r.max.toFixed(1)} ms`);
      socks.forEach((c) => c.destroy());
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
