#!/usr/bin/env node
// What do more worker processes buy? Starts `wasmws serve --workers N` for each N, drives /echo
// with raw TCP sockets (pre-masked 16-byte binary frames, pipelined) from client threads, and
// prints echoed messages per second.
//
//   node bench/workers.mjs [--workers 1,2] [--seconds 5] [--connections 64] [--size 16]
//                          [--depth 32] [--threads 2] [--warmup 1]
// Needs the build (npm run build). Bounded: each config runs warmup + seconds, then SIGTERM.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

// ── client thread ───────────────────────────────────────────────────────────────────────────
if (!isMainThread) {
  const { port, connections, size, depth, warmupMs, measureMs } = workerData;
  // One masked binary frame (client → server), repeated: the server echoes 2 + size bytes each.
  const mask = randomBytes(4);
  const header = Buffer.from([0x82, 0x80 | size, ...mask]);
  const payload = randomBytes(size);
  for (let i = 0; i < size; i++) payload[i] ^= mask[i & 3];
  const frame = Buffer.concat([header, payload]);
  const reply = 2 + size;
  const batch = Buffer.concat(Array.from({ length: Math.max(depth, 256) }, () => frame));
  const sendN = (sock, n) => {
    while (n > 0) {
      const k = Math.min(n, batch.length / frame.length);
      sock.write(k * frame.length === batch.length ? batch : batch.subarray(0, k * frame.length));
      n -= k;
    }
  };
  let counting = false;
  let count = 0;
  const socks = [];
  const open = () =>
    new Promise((resolve, reject) => {
      const sock = connect(port, '127.0.0.1');
      sock.setNoDelay(true);
      let handshake = Buffer.alloc(0);
      let carry = 0;
      let upgraded = false;
      sock.on('error', reject);
      sock.on('connect', () => {
        sock.write(
          `GET /echo HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        );
      });
      sock.on('data', (chunk) => {
        if (!upgraded) {
          handshake = Buffer.concat([handshake, chunk]);
          const end = handshake.indexOf('\r\n\r\n');
          if (end === -1) return;
          if (!handshake.subarray(0, 12).toString().includes('101')) return reject(new Error(handshake.toString()));
          upgraded = true;
          chunk = handshake.subarray(end + 4);
          socks.push(sock);
          resolve();
          sendN(sock, depth);
          if (chunk.length === 0) return;
        }
        // Every echoed frame is exactly `reply` bytes: count whole ones, refill the pipeline.
        carry += chunk.length;
        const n = Math.floor(carry / reply);
        carry -= n * reply;
        if (counting) count += n;
        if (n > 0) sendN(sock, n);
      });
    });
  const all = [];
  for (let i = 0; i < connections; i++) all.push(open());
  await Promise.all(all);
  await new Promise((r) => setTimeout(r, warmupMs));
  counting = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, measureMs));
  counting = false;
  const elapsed = performance.now() - t0;
  parentPort.postMessage({ count, elapsed });
  for (const s of socks) s.destroy();
  process.exit(0);
}

// ── main ────────────────────────────────────────────────────────────────────────────────────
function parse(argv) {
  const o = { workers: [1, 2], seconds: 5, connections: 64, size: 16, depth: 32, threads: 2, warmup: 1 };
  for (let i = 0; i < argv.length; i++) {
    const [k, v] = argv[i].includes('=') ? argv[i].split('=') : [argv[i], argv[++i]];
    const key = k.replace(/^--/, '');
    if (key === 'help' || key === 'h') {
      console.log('usage: node bench/workers.mjs [--workers 1,2] [--seconds 5] [--connections 64] [--size 16] [--depth 32] [--threads 2] [--warmup 1]');
      process.exit(0);
    }
    if (!(key in o)) throw new Error(`unknown option ${k}`);
    o[key] = key === 'workers' ? v.split(',').map(Number) : Number(v);
  }
  if (o.size > 125) throw new Error('--size must be ≤ 125 (one-byte length form)');
  return o;
}

function startServer(workers) {
  const proc = spawn(process.execPath, [join(root, 'bin', 'wasmws.js'), 'serve', '--port', '0', '--workers', String(workers), '--heartbeat', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 20_000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on http:\/\/[^:]+:(\d+)\//.exec(out);
      const codec = /codec (\w+)/.exec(out);
      if (m && codec) {
        clearTimeout(t);
        resolve({ proc, port: Number(m[1]), codec: codec[1] });
      }
    });
    proc.on('exit', (code) => reject(new Error(`server exited ${code}: ${out}`)));
  });
}

async function runOne(o, workers) {
  const { proc, port, codec } = await startServer(workers);
  const per = Math.ceil(o.connections / o.threads);
  const results = await Promise.all(
    Array.from({ length: o.threads }, (_, i) => {
      const connections = Math.min(per, o.connections - i * per);
      const w = new Worker(fileURLToPath(import.meta.url), {
        workerData: { port, connections, size: o.size, depth: o.depth, warmupMs: o.warmup * 1000, measureMs: o.seconds * 1000 },
      });
      return new Promise((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      });
    }),
  );
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  const msgs = results.reduce((a, r) => a + r.count, 0);
  const secs = Math.max(...results.map((r) => r.elapsed)) / 1000;
  return { workers, codec, msgsPerSec: Math.round(msgs / secs) };
}

const o = parse(process.argv.slice(2));
console.log(`echo load: ${o.connections} connections, ${o.size} B binary messages, ${o.depth} in flight per connection, ` +
  `${o.threads} client threads, ${o.seconds} s per config; ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), node ${process.version}`);
const rows = [];
for (const w of o.workers) {
  const r = await runOne(o, w);
  rows.push(r);
  console.log(`workers=${r.workers}  codec=${r.codec}  ${r.msgsPerSec.toLocaleString('en-US')} msgs/s`);
}
const base = rows[0].msgsPerSec;
for (const r of rows.slice(1)) console.log(`workers=${r.workers} vs workers=${rows[0].workers}: ×${(r.msgsPerSec / base).toFixed(2)}`);
