#!/usr/bin/env node
// The server under test for the echo and memory suites, in its own process (so its CPU and memory
// are its own, and it can be pinned to a core with `taskset`).
//
//   node --expose-gc bench/echo-server.mjs --impl wasmws|wasmws-wasm|wasmws-ts|ws|ws-nobufferutil|bun
//   (wasmws: the default codec, auto; wasmws-wasm / wasmws-ts: that backend forced)
//                                          [--port 0] [--deflate 0|1]
//
// Echoes every message with its type (binary stays binary). Listens on 127.0.0.1 only.
// Line protocol: prints one JSON line `{"ready":true,"port":P,"pid":PID,...}` on stdout once
// listening; then reads commands from stdin, one per line, and answers with one JSON line:
//   mem   → {"re":"mem","rss","heapUsed","heapTotal","external","arrayBuffers","conns"} after gc
//   exit  → exits (0) — a clean exit, so `--cpu-prof` writes its profile.
// Exits when stdin closes (the parent died) and after MAX_LIFETIME_MS whatever happens.
// `ws-nobufferutil` sets WS_NO_BUFFER_UTIL=1 before ws is loaded. `bun` runs bench/bun-echo.js
// with the Bun binary found in $BUN_PATH, `which bun` or the known install paths (see findBun).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import v8 from 'node:v8';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const HOST = '127.0.0.1';
const MAX_LIFETIME_MS = 30 * 60_000;
export const IMPLS = ['wasmws', 'wasmws-wasm', 'wasmws-ts', 'ws', 'ws-nobufferutil', 'bun'];

/** Known places a Bun binary may be: env BUN_PATH, PATH, ~/.bun, the scratch npm install. */
export function findBun() {
  const candidates = [];
  if (process.env.BUN_PATH) candidates.push(process.env.BUN_PATH);
  const which = spawnSync('sh', ['-c', 'command -v bun'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) candidates.push(which.stdout.trim());
  const home = process.env.HOME ?? '';
  candidates.push(
    join(home, '.bun/bin/bun'),
    '/tmp/bun/node_modules/@oven/bun-linux-x64/bin/bun',
    '/tmp/bun/node_modules/@oven/bun-linux-x64-baseline/bin/bun',
    join(here, '../node_modules/@oven/bun-linux-x64/bin/bun'),
  );
  for (const c of candidates) {
    if (!c || !existsSync(c)) continue;
    const v = spawnSync(c, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    if (v.status === 0) return { path: c, version: v.stdout.trim() };
  }
  return null;
}

function parseArgs(argv) {
  const o = { impl: 'wasmws', port: 0, deflate: false, backlog: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--impl') o.impl = argv[++i];
    else if (a === '--port') o.port = Number(argv[++i]);
    else if (a === '--deflate') o.deflate = argv[++i] === '1';
    else if (a === '--backlog') o.backlog = Number(argv[++i]);
    else throw new Error(`unknown argument: ${a}`);
  }
  if (o.backlog === undefined && process.env.ECHO_BACKLOG) o.backlog = Number(process.env.ECHO_BACKLOG);
  if (!IMPLS.includes(o.impl) && o.impl !== 'http-floor') throw new Error(`--impl must be one of ${IMPLS.join(', ')}, http-floor`);
  return o;
}

async function memReport(conns) {
  for (let i = 0; i < 4; i++) {
    globalThis.gc?.();
    await new Promise((r) => setTimeout(r, 40));
  }
  const u = process.memoryUsage();
  // V8's young generation (it grows during a burst of handshakes and shrinks only once idle).
  const newSpace = v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space')?.space_size ?? 0;
  return { re: 'mem', rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, external: u.external, arrayBuffers: u.arrayBuffers, newSpace, conns: conns(), gc: typeof globalThis.gc === 'function' };
}

function commands(conns) {
  const rl = createInterface({ input: process.stdin });
  rl.on('line', async (line) => {
    const cmd = line.trim();
    if (cmd === 'mem') process.stdout.write(JSON.stringify(await memReport(conns)) + '\n');
    else if (cmd === 'conns') process.stdout.write(JSON.stringify({ re: 'conns', conns: conns() }) + '\n');
    else if (cmd === 'exit') process.exit(0);
  });
  rl.on('close', () => process.exit(0));
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  setTimeout(() => process.exit(3), MAX_LIFETIME_MS).unref();
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));

  if (o.impl === 'bun') {
    const bun = findBun();
    if (!bun) {
      process.stdout.write(JSON.stringify({ ready: false, error: 'Bun: not installed' }) + '\n');
      process.exit(2);
    }
    // Bun shares our stdin/stdout: it prints the ready line (with its own pid) and answers commands.
    const child = spawn(bun.path, [join(here, 'bun-echo.js'), String(o.port), o.deflate ? '1' : '0'], { stdio: 'inherit' });
    const stop = () => child.kill('SIGTERM');
    process.removeAllListeners('SIGTERM');
    process.on('SIGTERM', () => { stop(); process.exit(0); });
    child.on('exit', (code) => process.exit(code ?? 0));
    return;
  }

  if (o.impl === 'http-floor') {
    // Node's own floor for an idle upgraded connection (bench/idle-settled.mjs): an HTTP server
    // that answers the upgrade and keeps the socket, no WebSocket library.
    const held = new Set();
    const server = createServer((_req, res) => res.writeHead(426).end());
    server.on('upgrade', (req, socket) => {
      held.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => held.delete(socket));
      const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    });
    server.listen(o.port, HOST, o.backlog, () => {
      process.stdout.write(JSON.stringify({ ready: true, impl: o.impl, port: server.address().port, pid: process.pid, version: `node ${process.version} http` }) + '\n');
    });
    commands(() => held.size);
    return;
  }

  if (o.impl === 'ws' || o.impl === 'ws-nobufferutil') {
    if (o.impl === 'ws-nobufferutil') process.env.WS_NO_BUFFER_UTIL = '1';
    else delete process.env.WS_NO_BUFFER_UTIL;
    const require = createRequire(import.meta.url);
    const { WebSocketServer } = require('ws');
    let bufferutil = false;
    if (!process.env.WS_NO_BUFFER_UTIL) {
      try { require('bufferutil'); bufferutil = true; } catch { /* not installed */ }
    }
    const wss = new WebSocketServer({ port: o.port, host: HOST, backlog: o.backlog, perMessageDeflate: o.deflate });
    wss.on('connection', (ws) => {
      ws.on('error', () => {});
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
    wss.on('listening', () => {
      const version = require('ws/package.json').version;
      process.stdout.write(JSON.stringify({ ready: true, impl: o.impl, port: wss.address().port, pid: process.pid, version: `ws ${version}`, bufferutil, deflate: o.deflate }) + '\n');
    });
    commands(() => wss.clients.size);
    return;
  }

  const codec = o.impl === 'wasmws-ts' ? 'ts' : o.impl === 'wasmws-wasm' ? 'wasm' : 'auto';
  // WASMWS_DIST: another build's dist/esm/index.js (bench/accept.mjs compares builds in one run).
  const { WebSocketServer } = await import(process.env.WASMWS_DIST ? pathToFileURL(process.env.WASMWS_DIST).href : '../dist/esm/index.js');
  const wss = new WebSocketServer({ port: o.port, host: HOST, backlog: o.backlog, perMessageDeflate: o.deflate, codec });
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  wss.on('listening', () => {
    process.stdout.write(JSON.stringify({ ready: true, impl: o.impl, port: wss.address().port, pid: process.pid, version: `wasmws (codec ${codec})`, deflate: o.deflate }) + '\n');
  });
  commands(() => wss.clients.size);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
