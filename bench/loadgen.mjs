#!/usr/bin/env node
// Raw-socket WebSocket load client for the echo and memory suites. It does as little as possible per
// message, so that the server is what gets measured:
// - net.connect + the handshake bytes written by hand; the 101 is checked, nothing else parsed;
// - frames masked ONCE at startup: one pre-masked buffer of W frames, written (or a prefix of it)
//   again and again — never re-masked, never copied;
// - pipelined: W messages in flight per connection; the echoed stream is counted by walking frame
//   headers (server frames are unmasked, so payloads are skipped, never read or unmasked); when
//   the in-flight count drains to W/2 the connection is refilled back to W;
// - reads land in one shared buffer (net `onread`), so counting allocates nothing.
//
//   node bench/loadgen.mjs '<json options>'   → prints one JSON result line on stdout
//
// Modes (options.mode):
//   throughput — msgs/s over `measureMs` after `warmupMs`, client CPU% (process.cpuUsage) and the
//                server's CPU% (/proc/<serverPid>/stat utime+stime) over the same window;
//   latency    — each connection sends one message every 1000/rate ms (phases staggered); per
//                connection a FIFO of send times (echo keeps order) gives each round-trip time;
//                p50/p90/p99/max over the messages sent inside the measurement window;
//   idle       — opens `conns` connections (optionally one message each way: `touch`), prints
//                {"re":"opened"}, then holds them until stdin says `exit` or closes.
// Everything is bounded: connect timeouts, fixed windows, a hard lifetime (MAX_LIFETIME_MS).
import { connect } from 'node:net';
import { randomBytes, randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { deflateRawSync, constants as zc } from 'node:zlib';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const HOST = '127.0.0.1';
const MAX_LIFETIME_MS = 10 * 60_000;
const CONNECT_TIMEOUT_MS = 15_000;
const CONNECT_CONCURRENCY = 200;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

// ── frames ───────────────────────────────────────────────────────────────────────────────────

/** A masked client frame (RFC 6455 §5.2) with a fixed key; `rsv1` marks a compressed message. */
export function maskedFrame(payload, opcode = OP_BINARY, rsv1 = false) {
  const n = payload.length;
  const lenBytes = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const head = 2 + lenBytes + 4;
  const f = Buffer.allocUnsafe(head + n);
  f[0] = 0x80 | (rsv1 ? 0x40 : 0) | opcode;
  if (lenBytes === 0) f[1] = 0x80 | n;
  else if (lenBytes === 2) { f[1] = 0x80 | 126; f.writeUInt16BE(n, 2); }
  else { f[1] = 0x80 | 127; f.writeUInt32BE(Math.floor(n / 2 ** 32), 2); f.writeUInt32BE(n >>> 0, 6); }
  const key = randomBytes(4);
  key.copy(f, head - 4);
  for (let i = 0; i < n; i++) f[head + i] = payload[i] ^ key[i & 3];
  return f;
}

/** 1 KiB-ish JSON-like text with the usual redundancy (keys repeat, values vary). */
export function jsonText(size, seed = 1) {
  let x = seed >>> 0;
  const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const items = [];
  let s = '';
  for (let i = 0; s.length < size; i++) {
    items.push({ id: 1000 + i, user: `user${(rnd() * 500) | 0}`, online: rnd() > 0.5, score: +(rnd() * 100).toFixed(2) });
    s = JSON.stringify({ type: 'update', seq: seed, items });
  }
  return Buffer.from(s.slice(0, size));
}

/**
 * The frame this run sends: random binary, or JSON text; with `deflate`, the text compressed once
 * on its own (no context: valid for a server inflating with or without context takeover), flushed
 * with Z_SYNC_FLUSH and the 00 00 ff ff tail removed (RFC 7692 §7.2.1).
 */
export function buildMessageFrame({ size, text = false, deflate = false }) {
  if (deflate) {
    const raw = jsonText(size);
    const z = deflateRawSync(raw, { finishFlush: zc.Z_SYNC_FLUSH });
    return maskedFrame(z.subarray(0, z.length - 4), OP_TEXT, true);
  }
  if (text) return maskedFrame(jsonText(size), OP_TEXT);
  const p = Buffer.allocUnsafe(size);
  randomFillSync(p);
  return maskedFrame(p, OP_BINARY);
}

// ── incoming stream: count frames by their headers ─────────────────────────────────────────

/** Walks server→client frames across chunk boundaries; calls onFrames(k) with complete data messages. */
class FrameCounter {
  constructor(onFrames, onClose) {
    this.skip = 0; // payload bytes of the current frame still to come
    this.inFrame = false;
    this.dataFrame = false;
    this.hdr = Buffer.alloc(14);
    this.hlen = 0;
    this.onFrames = onFrames;
    this.onClose = onClose;
  }

  push(buf, i, end) {
    let done = 0;
    while (i < end) {
      if (this.inFrame) {
        const k = Math.min(this.skip, end - i);
        this.skip -= k;
        i += k;
        if (this.skip === 0) {
          this.inFrame = false;
          if (this.dataFrame) done++;
        }
        continue;
      }
      // A header: fast path when it is whole in this chunk, else gather it byte by byte.
      let h = buf;
      let at = i;
      if (this.hlen > 0 || end - i < 14) {
        while (i < end && (this.hlen < 2 || this.hlen < headerLength(this.hdr[1]))) this.hdr[this.hlen++] = buf[i++];
        if (this.hlen < 2 || this.hlen < headerLength(this.hdr[1])) break;
        h = this.hdr;
        at = 0;
        this.hlen = 0;
      } else {
        i += headerLength(buf[i + 1]);
      }
      const b0 = h[at];
      const b1 = h[at + 1] & 0x7f;
      const len = b1 < 126 ? b1 : b1 === 126 ? h.readUInt16BE(at + 2) : h.readUInt32BE(at + 2) * 2 ** 32 + h.readUInt32BE(at + 6);
      const opcode = b0 & 0x0f;
      if (opcode === OP_CLOSE) this.onClose?.();
      this.dataFrame = (b0 & 0x80) !== 0 && opcode < 8; // FIN of a data message
      this.skip = len;
      this.inFrame = true;
      if (len === 0) {
        this.inFrame = false;
        if (this.dataFrame) done++;
      }
    }
    if (done) this.onFrames(done);
  }
}

function headerLength(b1) {
  const l = b1 & 0x7f;
  return (l < 126 ? 2 : l === 126 ? 4 : 10) + (b1 & 0x80 ? 4 : 0);
}

// ── connections ──────────────────────────────────────────────────────────────────────────────

/** Opens one connection; resolves { sock, counter, extensions } after the 101. */
function openConnection(port, { deflate = false, path = '/' } = {}, onFrames = () => {}) {
  return new Promise((resolve, reject) => {
    let head = '';
    let upgraded = false;
    let conn = null;
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('connect/handshake timeout')); }, CONNECT_TIMEOUT_MS);
    const sock = connect({
      host: HOST,
      port,
      onread: {
        buffer: READ_BUFFER,
        callback(n, buf) {
          if (upgraded) { conn.counter.push(buf, 0, n); return; }
          head += buf.latin1Slice(0, n);
          const end = head.indexOf('\r\n\r\n');
          if (end === -1) {
            if (head.length > 16384) { sock.destroy(); reject(new Error('handshake response too large')); }
            return;
          }
          clearTimeout(timer);
          if (!/^HTTP\/1\.1 101/.test(head)) { sock.destroy(); reject(new Error(`handshake failed: ${head.split('\r\n')[0]}`)); return; }
          const ext = /\r\nsec-websocket-extensions:\s*([^\r]*)/i.exec(head.slice(0, end + 2))?.[1] ?? '';
          if (deflate && !/permessage-deflate/i.test(ext)) { sock.destroy(); reject(new Error('server did not accept permessage-deflate')); return; }
          upgraded = true;
          conn = { sock, counter: new FrameCounter(onFrames), extensions: ext, closed: false };
          conn.counter.onClose = () => { conn.closed = true; };
          const rest = Buffer.from(head.slice(end + 4), 'latin1');
          if (rest.length) conn.counter.push(rest, 0, rest.length);
          resolve(conn);
        },
      },
    });
    sock.setNoDelay(true);
    sock.on('error', (err) => { clearTimeout(timer); if (!upgraded) reject(err); });
    sock.on('connect', () => {
      const ext = deflate ? 'Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; client_max_window_bits\r\n' : '';
      sock.write(
        `GET ${path} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${ext}\r\n`,
      );
    });
  });
}

/** Opens `n` connections, CONNECT_CONCURRENCY at a time; `makeHandler(i)` gives each its onFrames. */
async function openMany(port, n, opts, makeHandler) {
  const conns = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      conns[i] = await openConnection(port, opts, makeHandler(i));
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONNECT_CONCURRENCY, n) }, worker));
  return conns;
}

// ── CPU accounting ───────────────────────────────────────────────────────────────────────────

let clkTck = 100;
/** utime + stime of a process (all its threads) in seconds, from /proc; null where unavailable. */
export function procCpuSeconds(pid) {
  if (!pid) return null;
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / clkTck; // fields 14 and 15 of proc(5)
  } catch {
    return null;
  }
}

function cpuSnapshot(serverPid) {
  const u = process.cpuUsage();
  return { t: performance.now(), client: (u.user + u.system) / 1e6, server: procCpuSeconds(serverPid) };
}

function cpuPercent(a, b) {
  const wall = (b.t - a.t) / 1000;
  return {
    clientCpu: +((100 * (b.client - a.client)) / wall).toFixed(1),
    serverCpu: a.server === null || b.server === null ? null : +((100 * (b.server - a.server)) / wall).toFixed(1),
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ── modes ────────────────────────────────────────────────────────────────────────────────────

/** In-flight window per connection: `window` messages, capped so all connections hold ≤ maxInflightBytes. */
export function windowFor(frameBytes, conns, window, maxInflightBytes = 32 * 1024 * 1024) {
  return Math.max(1, Math.min(window, Math.floor(maxInflightBytes / (conns * frameBytes))));
}

async function throughput(o) {
  const frame = buildMessageFrame(o);
  const W = windowFor(frame.length, o.conns, o.window ?? 128, o.maxInflightBytes);
  const batch = Buffer.concat(Array.from({ length: W }, () => frame));
  const half = W >> 1;
  let total = 0;
  let running = false;
  const inflight = new Int32Array(o.conns);
  const conns = await openMany(o.port, o.conns, o, (i) => (k) => {
    total += k;
    const left = (inflight[i] -= k);
    if (running && left <= half) {
      const add = W - left;
      conns[i].sock.write(add === W ? batch : batch.subarray(0, add * frame.length));
      inflight[i] = W;
    }
  });
  let errors = 0;
  for (const c of conns) c.sock.on('error', () => errors++);
  running = true;
  for (let i = 0; i < conns.length; i++) { conns[i].sock.write(batch); inflight[i] = W; }
  await sleep(o.warmupMs);
  const n0 = total;
  const c0 = cpuSnapshot(o.serverPid);
  await sleep(o.measureMs);
  const n1 = total;
  const c1 = cpuSnapshot(o.serverPid);
  running = false;
  const stalled = conns.filter((c, i) => c.closed || c.sock.destroyed).length;
  for (const c of conns) c.sock.destroy();
  const secs = (c1.t - c0.t) / 1000;
  return { msgs: n1 - n0, msgsPerSec: Math.round((n1 - n0) / secs), seconds: +secs.toFixed(2), window: W, frameBytes: frame.length, ...cpuPercent(c0, c1), errors, closedConns: stalled };
}

async function latency(o) {
  const frame = buildMessageFrame(o);
  const period = 1000 / o.rate;
  let tStart = Infinity;
  let tEnd = Infinity;
  const samples = [];
  const fifos = Array.from({ length: o.conns }, () => ({ t: new Float64Array(4096), head: 0, tail: 0 }));
  let received = 0;
  const conns = await openMany(o.port, o.conns, o, (i) => (k) => {
    const now = performance.now();
    const q = fifos[i];
    for (let j = 0; j < k && q.head < q.tail; j++) {
      const sent = q.t[q.head++ & 4095];
      received++;
      if (sent >= tStart && sent < tEnd) samples.push(now - sent);
    }
  });
  let overflow = 0;
  const timers = [];
  const begin = performance.now();
  for (let i = 0; i < conns.length; i++) {
    const q = fifos[i];
    const send = () => {
      if (q.tail - q.head >= 4096) { overflow++; return; }
      q.t[q.tail++ & 4095] = performance.now();
      conns[i].sock.write(frame);
    };
    // Stagger the phases so the sends are spread evenly over each period.
    timers.push(setTimeout(() => { send(); timers.push(setInterval(send, period)); }, (i * period) / conns.length));
  }
  await sleep(o.warmupMs);
  tStart = performance.now();
  const c0 = cpuSnapshot(o.serverPid);
  await sleep(o.measureMs);
  tEnd = performance.now();
  const c1 = cpuSnapshot(o.serverPid);
  for (const t of timers) clearTimeout(t);
  // Let the last messages of the window come back (bounded).
  const drainBy = performance.now() + 2000;
  while (fifos.some((q) => q.head < q.tail) && performance.now() < drainBy) await sleep(10);
  for (const c of conns) c.sock.destroy();
  samples.sort((a, b) => a - b);
  const pct = (p) => (samples.length ? +samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))].toFixed(3) : null);
  const secs = (tEnd - tStart) / 1000;
  const inWindow = samples.length;
  return { samples: inWindow, ratePerSec: Math.round(inWindow / secs), p50ms: pct(50), p90ms: pct(90), p99ms: pct(99), maxMs: samples.length ? +samples[samples.length - 1].toFixed(3) : null, ...cpuPercent(c0, c1), overflow, lost: fifos.reduce((a, q) => a + q.tail - q.head, 0), elapsed: +((performance.now() - begin) / 1000).toFixed(1) };
}

async function idle(o) {
  let touched = 0;
  const t0 = performance.now();
  const conns = await openMany(o.port, o.conns, o, () => (k) => { touched += k; });
  if (o.touch) {
    // One message each way per connection (e.g. so both deflate contexts exist), bounded.
    const frame = buildMessageFrame(o);
    for (const c of conns) c.sock.write(frame);
    const by = performance.now() + 30_000;
    while (touched < conns.length && performance.now() < by) await sleep(20);
  }
  process.stdout.write(JSON.stringify({ re: 'opened', conns: conns.length, touched, openSeconds: +((performance.now() - t0) / 1000).toFixed(1) }) + '\n');
  await new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin });
    rl.on('line', (l) => { if (l.trim() === 'exit') resolve(); });
    rl.on('close', resolve);
  });
  for (const c of conns) c.sock.destroy();
  return null;
}

export async function runLoad(o) {
  if (o.mode === 'throughput') return throughput(o);
  if (o.mode === 'latency') return latency(o);
  if (o.mode === 'idle') return idle(o);
  throw new Error(`unknown mode ${o.mode}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  setTimeout(() => { console.error('loadgen: lifetime exceeded'); process.exit(3); }, MAX_LIFETIME_MS).unref();
  if (process.env.CLK_TCK) clkTck = Number(process.env.CLK_TCK);
  const opts = JSON.parse(process.argv[2] ?? '{}');
  runLoad(opts).then(
    (r) => {
      if (r) process.stdout.write(JSON.stringify({ re: 'result', ...r }) + '\n');
      process.exit(0);
    },
    (err) => {
      process.stdout.write(JSON.stringify({ re: 'error', error: String(err?.message ?? err) }) + '\n');
      process.exit(1);
    },
  );
}
