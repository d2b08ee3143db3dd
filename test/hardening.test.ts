// Hardening (issue 6): every known attack on a WebSocket server, over real sockets on 127.0.0.1.
// Each attack shows three things: the attacker gets the right close code or HTTP status, memory
// stays bounded (heap measured after a forced GC), and an innocent client connected at the same
// time keeps working. Every loop is bounded in count and time.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WS from 'ws';
import * as net from 'node:net';
import * as fs from 'node:fs';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import * as zlib from 'node:zlib';
import { execSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { WebSocket, WebSocketServer } from '../src/index.js';
import { ProtocolError } from '../src/protocol/errors.js';
import { RawClient, nextEvent, raw, rng, sleep, startRoutedServer, startServer, stopServer, until, upgradeRequest, waitUpTo, within } from './helpers.js';

// ── measurement ─────────────────────────────────────────────────────────────────────────────

/** A real GC in this fork: `--expose-gc` set at run time, the function taken from a new context. */
const gc: (() => void) | null = (() => {
  try {
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as () => void;
  } catch {
    return null;
  }
})();

const MiB = 1024 * 1024;

/** Heap used and array-buffer bytes after a full collection (generous fallback without gc). */
async function memory(): Promise<{ heap: number; buffers: number }> {
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setImmediate(r));
    gc?.();
  }
  const m = process.memoryUsage();
  return { heap: m.heapUsed, buffers: m.arrayBuffers };
}
/** Bounds are tight with a real GC and loose without one. */
const slack = (bytes: number) => (gc ? bytes : bytes * 4);

function fdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

// Nothing a peer does may throw out of the server.
const uncaught: unknown[] = [];
const onUncaught = (err: unknown) => uncaught.push(err);
beforeAll(() => {
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
});
afterAll(() => {
  process.off('uncaughtException', onUncaught);
  process.off('unhandledRejection', onUncaught);
  expect(uncaught).toEqual([]);
});

// ── servers and clients ─────────────────────────────────────────────────────────────────────

const servers: WebSocketServer[] = [];
const routed: (() => Promise<void>)[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => stopServer(s, 3000)));
  await Promise.all(routed.splice(0).map((close) => close()));
  expect(uncaught).toEqual([]);
});

/** An echo server: every message goes back as it came. No 'error' listener on any connection. */
async function echoServer(opts: Parameters<typeof startServer>[0] = {}) {
  const s = await startServer(opts);
  servers.push(s.wss);
  s.wss.on('connection', (ws: WebSocket) => ws.on('message', (d: Buffer, isBinary: boolean) => ws.send(d, { binary: isBinary })));
  return s;
}

/**
 * echoServer, with upgrades routed by the test (helpers.ts startRoutedServer): `socketOf(ws)` is
 * the server side's TCP socket, for attacks measured in bytes the server has read.
 */
async function echoRoutedServer(opts: Parameters<typeof startServer>[0] = {}) {
  const s = await startRoutedServer(opts);
  routed.push(s.close);
  s.wss.on('connection', (ws: WebSocket) => ws.on('message', (d: Buffer, isBinary: boolean) => ws.send(d, { binary: isBinary })));
  return s;
}

/** The server-side connection of the next handshake, and the code its 'close' reports. */
function nextConnection(wss: WebSocketServer): { ws: Promise<WebSocket>; code: Promise<number> } {
  const ws = nextEvent<[WebSocket]>(wss, 'connection', { timeout: 10_000 }).then(([w]) => w);
  return { ws, code: ws.then((w) => nextEvent<[number]>(w, 'close', { timeout: 20_000 }).then(([c]) => c)) };
}

/** An innocent client (the `ws` package: an independent implementation). */
async function innocent(url: string): Promise<WS> {
  const c = new WS(url);
  c.on('error', () => {});
  await nextEvent(c, 'open', { timeout: 5000 });
  return c;
}

/** Round-trip one message; resolves to the latency in ms, rejects if it does not come back intact. */
async function echo(c: WS, text = `ping ${Math.random()}`, ms = 2000): Promise<number> {
  const t0 = Date.now();
  const got = nextEvent<[Buffer]>(c, 'message', { timeout: ms });
  c.send(text);
  const [d] = await got;
  if (d.toString() !== text) throw new Error('echo came back different');
  return Date.now() - t0;
}

async function attacker(port: number, request?: string): Promise<RawClient> {
  const c = await RawClient.connect(port, request);
  sockets.push(c.socket);
  return c;
}

const K = [0x37, 0xfa, 0x21, 0x3d];

// ── 1. Huge declared lengths ────────────────────────────────────────────────────────────────

describe('huge declared lengths are refused from the header', () => {
  const MAXP = 1 * MiB;
  const lengths: [string, bigint, number][] = [
    ['2^63 − 1 (MSB clear, above 2^53 − 1)', 2n ** 63n - 1n, 1009],
    ['2^63 (MSB set)', 2n ** 63n, 1002],
    ['2^64 − 1 (MSB set)', 2n ** 64n - 1n, 1002],
    ['2^53', 2n ** 53n, 1009],
    ['2^53 − 1', 2n ** 53n - 1n, 1009],
    ['maxPayload + 1', BigInt(MAXP + 1), 1009],
  ];
  const cases = (['wasm', 'ts'] as const).flatMap((codec) =>
    (['in one write', 'a byte at a time'] as const).flatMap((how) => lengths.map(([n, len, code]) => [codec, how, n, code, len] as const)),
  );
  it.each(cases)('%s codec, header %s: %s → %i, before any payload byte', async (codec, how, _n, code, len) => {
    const { wss, port, url } = await echoServer({ maxPayload: MAXP, codec });
    const good = await innocent(url);
    const before = await memory();
    const conn = nextConnection(wss);
    const bad = await attacker(port);
    const header = raw({ opcode: 2, declared: len, form: 64, key: K });
    if (how === 'in one write') bad.send(header);
    else {
      bad.socket.setNoDelay(true);
      for (const b of header) {
        bad.send(Buffer.from([b]));
        await sleep(2);
      }
    }
    // Only the 14 header bytes were sent: the close frame proves the refusal came from the header.
    await bad.until(() => bad.closeFrame() !== undefined, { timeout: 3000 });
    expect(bad.closeFrame()![0]).toBe(code);
    expect(await conn.code).toBe(code);
    expect(await echo(good)).toBeLessThan(1000);
    const after = await memory();
    expect(after.heap + after.buffers - before.heap - before.buffers).toBeLessThan(slack(1 * MiB));
    good.terminate();
  });
});

// ── 2. Fragment floods ──────────────────────────────────────────────────────────────────────

/** A data message cut into fragments of `size` bytes, each framed by raw() (independent builder). */
function fragmented(payload: Buffer, size: number, opts: { final?: boolean } = {}): Buffer {
  const frames: Buffer[] = [];
  const n = Math.ceil(payload.length / size);
  for (let i = 0; i < n; i++) {
    const last = i === n - 1;
    if (last && opts.final === false) break;
    frames.push(raw({ opcode: i === 0 ? 2 : 0, fin: last, payload: payload.subarray(i * size, (i + 1) * size), key: K }));
  }
  return Buffer.concat(frames);
}

function pattern(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 8)) & 0xff;
  return b;
}

/** Write a big stream in pieces, respecting the socket's backpressure (bounded by the socket's life). */
async function writeAll(s: net.Socket, data: Buffer, piece = 256 * 1024): Promise<void> {
  for (let at = 0; at < data.length && !s.destroyed; at += piece) {
    if (!s.write(data.subarray(at, at + piece))) {
      await Promise.race([once(s, 'drain'), once(s, 'close'), sleep(5000)]);
    }
  }
}

describe('fragment floods', () => {
  it('delivers a 4 MiB message sent in 64-byte fragments intact, while an innocent client echoes', async () => {
    const { port, url } = await echoServer();
    const good = await innocent(url);
    const msg = pattern(4 * MiB);
    const stream = fragmented(msg, 64);
    const c = await attacker(port);
    const writing = writeAll(c.socket, stream);
    expect(await echo(good)).toBeLessThan(1000);
    await writing;
    await c.until(() => c.frames.some((f) => f.opcode === 2), { timeout: 20_000 });
    const back = c.frames.find((f) => f.opcode === 2)!;
    expect(back.payload.length).toBe(msg.length);
    expect(back.payload.equals(msg)).toBe(true);
    expect(await echo(good)).toBeLessThan(1000);
    good.terminate();
  });

  it.each(['wasm', 'ts'] as const)(
    '%s codec: 100k one-byte fragments cost memory per payload byte, not per fragment object',
    async (codec) => {
      const N = 100_000;
      const { wss, port, url, socketOf } = await echoRoutedServer({ codec });
      const good = await innocent(url);
      const msg = pattern(N + 1);
      const stream = fragmented(msg, 1, { final: false }); // the message is left open
      const finalFrame = raw({ opcode: 0, fin: true, payload: msg.subarray(N), key: K });
      const conn = nextConnection(wss);
      const c = await attacker(port);
      const sock = socketOf(await conn.ws);
      const base = sock.bytesRead;
      const before = await memory();
      await writeAll(c.socket, stream);
      await until(() => sock.bytesRead - base >= stream.length, { timeout: 10_000 });
      expect(await echo(good)).toBeLessThan(1000);
      const mid = await memory();
      const heapPerFragment = (mid.heap - before.heap) / N;
      const totalPerPayloadByte = (mid.heap + mid.buffers - before.heap - before.buffers) / N;
      console.log(`[${codec}] 100k open fragments: heap +${(mid.heap - before.heap) >> 10} KiB (${heapPerFragment.toFixed(1)} B/fragment), ` +
        `buffers +${(mid.buffers - before.buffers) >> 10} KiB, total ${totalPerPayloadByte.toFixed(1)} B per payload byte`);
      // Finish the message: it arrives intact.
      c.send(finalFrame);
      await c.until(() => c.frames.some((f) => f.opcode === 2), { timeout: 10_000 });
      expect(c.frames.find((f) => f.opcode === 2)!.payload.equals(msg)).toBe(true);
      // A growable accumulator holds < 2 bytes per payload byte; one Buffer view per fragment costs ~100.
      expect(heapPerFragment).toBeLessThan(gc ? 16 : 400);
      expect(totalPerPayloadByte).toBeLessThan(gc ? 16 : 400);
      good.terminate();
    },
  );

  it.each(['wasm', 'ts'] as const)('%s codec: one frame whose payload arrives in 20k one-byte TCP segments costs memory per byte, not per segment', async (codec) => {
    const N = 20_000;
    const { wss, port, url, socketOf } = await echoRoutedServer({ codec });
    const good = await innocent(url);
    const msg = pattern(N);
    const frame = raw({ opcode: 2, payload: msg, key: K });
    const conn = nextConnection(wss);
    const c = await attacker(port);
    c.socket.setNoDelay(true);
    const sock = socketOf(await conn.ws);
    const base = sock.bytesRead;
    const before = await memory();
    const t0 = Date.now();
    let reads = 0;
    sock.on('data', () => reads++);
    c.send(frame.subarray(0, 8)); // the header
    for (let i = 8; i < frame.length - 1; i++) {
      c.send(frame.subarray(i, i + 1));
      if (i % 4 === 0) await new Promise((r) => setImmediate(r));
    }
    await until(() => sock.bytesRead - base >= frame.length - 1, { timeout: 10_000 });
    const mid = await memory();
    const perByte = (mid.heap + mid.buffers - before.heap - before.buffers) / N;
    console.log(`[${codec}] ${N}-byte payload in ${reads} server reads (${Date.now() - t0} ms): ` +
      `heap +${(mid.heap - before.heap) >> 10} KiB, buffers +${(mid.buffers - before.buffers) >> 10} KiB, ${perByte.toFixed(1)} B per payload byte`);
    c.send(frame.subarray(frame.length - 1));
    await c.until(() => c.frames.some((f) => f.opcode === 2), { timeout: 5000 });
    expect(c.frames.find((f) => f.opcode === 2)!.payload.equals(msg)).toBe(true);
    expect(await echo(good)).toBeLessThan(1000);
    // Reads of a byte each must not cost a Buffer object each while the frame is incomplete.
    if (reads > N / 4) expect(perByte).toBeLessThan(gc ? 16 : 400);
    good.terminate();
  });

  it.each([
    ['1-byte fragments, 100k of them', 1, 100_000],
    ['64-byte fragments of a 4 MiB message', 64, 4 * MiB],
  ])('maxPayload bounds the total of %s with 1009', async (_n, size, total) => {
    const MAXP = 64 * 1024;
    const { wss, port, url } = await echoServer({ maxPayload: MAXP });
    const good = await innocent(url);
    const before = await memory();
    const conn = nextConnection(wss);
    const c = await attacker(port);
    await writeAll(c.socket, fragmented(pattern(total), size, { final: false }));
    await c.until(() => c.closeFrame() !== undefined, { timeout: 10_000 });
    expect(c.closeFrame()![0]).toBe(1009);
    expect(await conn.code).toBe(1009);
    expect(await echo(good)).toBeLessThan(1000);
    c.socket.destroy();
    const after = await memory();
    expect(after.heap + after.buffers - before.heap - before.buffers).toBeLessThan(slack(2 * MiB));
    good.terminate();
  });
});

// ── 3. Ping floods and slow readers ─────────────────────────────────────────────────────────

/**
 * Floods masked 125-byte pings from `bad`, which reads nothing, until `stop()` says so, its socket
 * has stayed backed up (the server no longer reads it) for `stallMs`, or the bounds: 64 MiB sent,
 * `ms` elapsed. `stalledAt`: when the current stall began (0: none).
 */
async function floodPings(bad: RawClient, o: { stop: () => boolean; stallMs: number; ms: number }): Promise<{ sent: number; pings: number; stalledAt: number }> {
  const one = raw({ opcode: 9, payload: Buffer.alloc(125, 0x61), key: K });
  const batch = Buffer.concat(Array.from({ length: 1000 }, () => one));
  let sent = 0;
  let stalledAt = 0;
  const t0 = Date.now();
  while (!o.stop() && sent < 64 * MiB && Date.now() - t0 < o.ms) {
    if (bad.socket.writableLength > MiB) {
      stalledAt ||= Date.now();
      if (Date.now() - stalledAt > o.stallMs) break;
      await sleep(20);
      continue;
    }
    stalledAt = 0;
    bad.socket.write(batch);
    sent += batch.length;
    await new Promise((r) => setImmediate(r));
  }
  return { sent, pings: sent / one.length, stalledAt };
}

describe('ping flood from a peer that never reads', () => {
  it('stops reading the flood while its pongs wait (TCP backpressure): bounded, not dropped, every ping answered once it reads', async () => {
    const { wss, port, url } = await echoServer({ maxBackpressure: 4 * MiB });
    const good = await innocent(url);
    const conn = nextConnection(wss);
    const bad = await attacker(port);
    bad.socket.pause(); // reads nothing: the pongs would pile up on the server
    const ws = await conn.ws;
    let closed = false;
    ws.on('close', () => { closed = true; });
    let peakQueued = 0;
    const sampler = setInterval(() => { peakQueued = Math.max(peakQueued, ws.bufferedAmount); }, 2);
    const t0 = Date.now();
    // Ends once the server has read nothing for 1 s.
    const { sent, pings, stalledAt: stalledSince } = await floodPings(bad, { stop: () => closed, stallMs: 1000, ms: 15_000 });
    clearInterval(sampler);
    console.log(`ping flood, not read: stalled after ${(sent / MiB).toFixed(1)} MiB of pings (${pings}) in ${Date.now() - t0} ms; ` +
      `peak queued on the server ${(peakQueued / 1024).toFixed(0)} KiB`);
    expect(closed).toBe(false); // not dropped at maxBackpressure: it was not read
    expect(stalledSince).toBeGreaterThan(0); // the flood met TCP backpressure
    expect(sent).toBeLessThan(64 * MiB);
    // 64 KiB, plus the pongs of the rest of the read that crossed it (a read is at most 512 KiB).
    expect(peakQueued).toBeLessThan(MiB);
    expect(await echo(good)).toBeLessThan(1000);
    bad.socket.resume(); // now it reads: every ping gets its pong, and the connection lives on
    const pongs = () => bad.frames.filter((f) => f.opcode === 10).length;
    await bad.until(() => pongs() >= pings || bad.closed, { timeout: 15_000 });
    expect(pongs()).toBe(pings);
    expect(bad.frames.every((f) => f.opcode === 10 && f.payload.length === 125)).toBe(true);
    expect(closed).toBe(false);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    good.terminate();
  });

  it('the heartbeat still drops a flooder that reads nothing: its silence is its own, not a pause of ours', async () => {
    const INTERVAL = 300;
    const { wss, port, url } = await echoServer({ heartbeatInterval: INTERVAL });
    const good = await innocent(url); // (ws answers the heartbeat's pings)
    const conn = nextConnection(wss);
    const bad = await attacker(port);
    bad.socket.pause();
    await conn.ws;
    let closedAt = 0;
    void conn.code.then(() => { closedAt = Date.now(); }, () => {});
    // Once stalled, nothing more is written until the server drops it.
    const { stalledAt } = await floodPings(bad, { stop: () => closedAt !== 0, stallMs: Infinity, ms: 10_000 });
    expect(await conn.code).toBe(1006); // terminated (no close handshake with a peer that reads nothing)
    expect(stalledAt).toBeGreaterThan(0);
    expect(closedAt - stalledAt).toBeLessThan(6 * INTERVAL);
    expect(await echo(good)).toBeLessThan(1000);
    expect(good.readyState).toBe(WS.OPEN);
    good.terminate();
  });
});

describe('a peer that reads nothing, on a connection the application paused until its answer is written', () => {
  /** An echo that stops reading while an answer waits (as the CLI's /echo does). */
  async function pausingEcho(heartbeatInterval: number) {
    const s = await startServer({ heartbeatInterval });
    servers.push(s.wss);
    s.wss.on('connection', (ws: WebSocket) => ws.on('message', (d: Buffer, isBinary: boolean) => {
      ws.pause();
      ws.send(d, { binary: isBinary }, () => ws.resume());
    }));
    return s;
  }
  const MSG = 32 * MiB; // more than the kernel's socket buffers both ways hold

  it('the heartbeat drops it once nothing it was sent has moved for an interval (the answer is not held for good)', async () => {
    const INTERVAL = 250;
    const { wss, port } = await pausingEcho(INTERVAL);
    const conn = nextConnection(wss);
    const bad = await attacker(port);
    bad.socket.pause(); // reads nothing
    const ws = await conn.ws;
    let closedAt = 0;
    void conn.code.then(() => { closedAt = Date.now(); }, () => {});
    const got = new Promise((r) => ws.once('message', r));
    bad.send(raw({ opcode: 2, payload: Buffer.alloc(MSG, 1), key: K }));
    await within(got, { timeout: 10_000, what: 'the 32 MiB message' });
    const t0 = Date.now();
    expect(await conn.code).toBe(1006); // terminated
    expect(closedAt - t0).toBeLessThan(6 * INTERVAL);
  });

  it('a slow reader whose answer keeps moving is not dropped, and gets all of it', async () => {
    const INTERVAL = 250;
    const { wss, port } = await pausingEcho(INTERVAL);
    const conn = nextConnection(wss);
    const slow = await attacker(port);
    slow.socket.pause();
    const ws = await conn.ws;
    let closed = false;
    ws.on('close', () => { closed = true; });
    const got = new Promise((r) => ws.once('message', r));
    slow.send(raw({ opcode: 2, payload: Buffer.alloc(MSG, 2), key: K }));
    await within(got, { timeout: 10_000, what: 'the 32 MiB message' });
    // Reads 512 KiB every 40 ms for the first 24 MiB (about 7 intervals, while the server still
    // writes, paused), then the rest (what the kernels buffer) at once. Bounded: 20 s.
    let read = 0;
    let allowed = 0;
    slow.socket.on('data', (d: Buffer) => {
      read += d.length;
      if (read >= allowed) slow.socket.pause();
    });
    const t0 = Date.now();
    const echoed = () => slow.frames.some((f) => f.opcode === 2);
    while (!echoed() && !slow.closed && Date.now() - t0 < 20_000) {
      allowed = read < 24 * MiB ? read + 512 * 1024 : Infinity;
      slow.socket.resume();
      await sleep(40);
    }
    // (Once it is written the server reads again, and its heartbeat judges the peer as ever: this
    // one answers no ping, so it is dropped a beat or two later.)
    const closedWhenEchoed = closed;
    expect(Date.now() - t0).toBeGreaterThan(4 * INTERVAL); // it was slow: several beats saw it paused
    expect(closedWhenEchoed).toBe(false);
    const f = slow.frames.find((x) => x.opcode === 2)!;
    expect([f.payload.length, f.payload[0], f.payload[MSG - 1]]).toEqual([MSG, 2, 2]);
  });
});

// ── 4. Slowloris ────────────────────────────────────────────────────────────────────────────

/**
 * The attacker in a child process (another machine, in effect): `count` sockets, each sending a
 * never-ending handshake a byte every `every` ms. Reports each socket's lifetime and first line.
 */
const SLOWLORIS = `
const net = require('node:net');
const [port, count, every, maxMs] = process.argv.slice(1).map(Number);
const req = 'GET / HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n' +
  'Sec-WebSocket-Version: 13\\r\\nX-Pad: ' + 'a'.repeat(4000);
const socks = [];
let closed = 0, opened = 0, errors = 0;
const lifetimes = [], statuses = {};
function open(i) {
  const s = net.connect(port, '127.0.0.1');
  const st = { s, at: 0, t0: 0, res: '' };
  s.setNoDelay(true);
  s.on('connect', () => { opened++; st.t0 = Date.now(); });
  s.on('data', (d) => { st.res += d.toString('latin1'); });
  s.on('error', () => { errors++; });
  s.on('close', () => {
    closed++;
    lifetimes.push(st.t0 ? Date.now() - st.t0 : -1);
    const m = /^HTTP\\/1\\.1 (\\d+)/.exec(st.res);
    const k = m ? m[1] : 'none';
    statuses[k] = (statuses[k] || 0) + 1;
    if (closed === count) done();
  });
  socks.push(st);
}
const drip = setInterval(() => {
  for (const st of socks) if (st.t0 && !st.s.destroyed && st.at < req.length) st.s.write(req[st.at++]);
}, every);
let i = 0;
const opener = setInterval(() => {
  for (let k = 0; k < 200 && i < count; k++) open(i++);
  if (i === count) { clearInterval(opener); process.stdout.write('opened\\n'); }
}, 10);
const bail = setTimeout(done, maxMs);
function done() {
  clearInterval(drip); clearTimeout(bail);
  lifetimes.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ count, opened, closed, errors, statuses,
    p50: lifetimes[lifetimes.length >> 1], max: lifetimes[lifetimes.length - 1] }) + '\\n');
  for (const st of socks) st.s.destroy();
  setTimeout(() => process.exit(0), 10);
}
`;

describe('slowloris', () => {
  it('handshakeTimeout closes 2,000 byte-a-time handshakes (408 or reset) while a normal client connects in < 1 s', async () => {
    // Each attacking socket costs one fd here and one in the child.
    const limit = Number(execSync('sh -c "ulimit -n"').toString().trim()) || 1024;
    const COUNT = Math.min(2000, Math.floor((limit - 256) / 2));
    if (COUNT < 2000) console.log(`slowloris: ulimit -n is ${limit}, using ${COUNT} sockets instead of 2000`);
    const { wss, port, url } = await echoServer({ handshakeTimeout: 1000 });
    const fds0 = fdCount();
    const child = spawn(process.execPath, ['-e', SLOWLORIS, String(port), String(COUNT), '100', '15000'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    await until(() => out.includes('opened'), { timeout: 10_000 });
    await sleep(200);
    const innocentFdsPeak = fdCount() - fds0;
    // Normal clients, during the attack: handshake and echo well under a second.
    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      const c = await innocent(url);
      await echo(c);
      latencies.push(Date.now() - t0);
      c.terminate();
      await sleep(100);
    }
    await Promise.race([once(child, 'exit'), sleep(16_000)]);
    child.kill();
    const report = JSON.parse(out.split('\n').find((l) => l.startsWith('{')) ?? '{}');
    console.log(`slowloris: ${JSON.stringify(report)}; server held ${innocentFdsPeak} extra fds at peak; ` +
      `innocent connect+echo ${latencies.join(', ')} ms`);
    expect(report.opened).toBe(COUNT);
    expect(report.closed).toBe(COUNT);
    // Node answers a headers timeout with 408 and destroys the socket at once; when the attacker's next
    // byte is still unread on the server, that destroy is a reset and the 408 may be lost in flight.
    expect((report.statuses['408'] ?? 0) + (report.statuses.none ?? 0)).toBe(COUNT);
    expect(report.statuses['408'] ?? 0).toBeGreaterThan(0);
    expect(report.max).toBeLessThan(3000); // handshakeTimeout (1 s) + checking interval + slack
    expect(Math.max(...latencies)).toBeLessThan(1000);
    await until(() => fdCount() <= fds0 + 2, { timeout: 5000 });
    expect(wss.clients.size).toBe(0);
  });

  it('handshakeTimeout also bounds an upgrade that verifyClient never answers', async () => {
    const { port, url } = await echoServer({
      handshakeTimeout: 300,
      verifyClient: (info: { req: { headers: Record<string, unknown> } }, cb: (ok: boolean) => void) => {
        if (info.req.headers['x-good']) cb(true); // others: never called back
      },
    });
    const s = net.connect(port, '127.0.0.1');
    sockets.push(s);
    s.on('error', () => {});
    s.write(upgradeRequest('/'));
    s.resume();
    const t0 = Date.now();
    await nextEvent(s, 'close', { timeout: 3000 });
    expect(Date.now() - t0).toBeLessThan(1500);
    const good = new WS(url, { headers: { 'X-Good': '1' } });
    await nextEvent(good, 'open');
    expect(await echo(good)).toBeLessThan(1000);
    good.terminate();
  });
});

// ── 5. Malformed handshakes ─────────────────────────────────────────────────────────────────

/** Send a request (as pieces, `gap` ms apart) on a fresh socket; collect the answer until close or `ms`. */
async function exchange(port: number, pieces: Buffer[], gap = 0, ms = 3000): Promise<{ status: number; text: string; closed: boolean; ms: number }> {
  const s = net.connect(port, '127.0.0.1');
  sockets.push(s);
  s.on('error', () => {});
  s.setNoDelay(true);
  await once(s, 'connect');
  let text = '';
  let closed = false;
  s.on('data', (d: Buffer) => (text += d.toString('latin1')));
  s.on('close', () => (closed = true));
  const t0 = Date.now();
  for (const p of pieces) {
    if (s.destroyed) break;
    s.write(p);
    if (gap) await sleep(gap);
  }
  await waitUpTo(() => closed || text.startsWith('HTTP/1.1 101') && text.includes('\r\n\r\n'), { timeout: ms });
  const status = Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0);
  if (status === 101) s.destroy();
  return { status, text, closed, ms: Date.now() - t0 };
}

const latin1 = (s: string) => Buffer.from(s, 'latin1');
const withHeaders = (lines: string) => upgradeRequest('/').replace(/\r\n\r\n$/, `\r\n${lines}\r\n`);

describe('malformed handshakes', () => {
  const many = (n: number) => Array.from({ length: n }, (_, i) => `X-Filler-${i}: v${i}\r\n`).join('');
  const cases: [string, number, Buffer][] = [
    ['500 extra headers (7 KiB, under the limit)', 101, latin1(withHeaders(many(500)))],
    ['5,000 extra headers (> 16 KiB)', 431, latin1(withHeaders(many(5000)))],
    ['a 64 KiB header', 431, latin1(withHeaders(`X-Big: ${'b'.repeat(64 * 1024)}\r\n`))],
    ['a duplicated Sec-WebSocket-Key', 400, latin1(withHeaders(`Sec-WebSocket-Key: ${Buffer.alloc(16, 7).toString('base64')}\r\n`))],
    ['a duplicated Sec-WebSocket-Version', 400, latin1(withHeaders('Sec-WebSocket-Version: 13\r\n'))],
    ['subprotocol: 12k spaces inside an element', 400, latin1(upgradeRequest('/', { 'Sec-WebSocket-Protocol': `a${' '.repeat(12_000)}b` }))],
    ['subprotocol: 12k spaces then a trailing comma', 400, latin1(upgradeRequest('/', { 'Sec-WebSocket-Protocol': `a${' \t'.repeat(6000)},` }))],
    ['subprotocol: 8k commas', 400, latin1(upgradeRequest('/', { 'Sec-WebSocket-Protocol': ','.repeat(8000) }))],
    ['subprotocol: 2,000 distinct tokens', 101, latin1(upgradeRequest('/', { 'Sec-WebSocket-Protocol': Array.from({ length: 2000 }, (_, i) => `p${i}`).join(' , ') }))],
    ['subprotocol: a token repeated 3,000 times', 400, latin1(upgradeRequest('/', { 'Sec-WebSocket-Protocol': Array(3000).fill('chat').join(',') }))],
    ['Connection: 1,200 tokens before "upgrade"', 101, latin1(upgradeRequest('/', { Connection: 'keep-alive, '.repeat(1200) + 'upgrade' }))],
    ['non-ASCII bytes in Sec-WebSocket-Key', 400, latin1(upgradeRequest('/', { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZ\xff\xfe=' }))],
    ['non-ASCII bytes in a header name', 400, latin1(withHeaders('X-\xe9\xff: 1\r\n'))],
    ['UTF-8 in the request target', 400, Buffer.concat([latin1('GET /'), Buffer.from('ü€', 'utf8'), latin1(upgradeRequest('/').slice(5))])],
    ['a NUL byte in a header value', 400, latin1(withHeaders('X-Nul: a\x00b\r\n'))],
    ['an obs-fold continuation line', 400, latin1('GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n')],
    ['a TLS ClientHello on the plain port', 400, Buffer.from('160301020001000200', 'hex')],
    ['HTTP/1.0', 400, latin1(upgradeRequest('/').replace('HTTP/1.1', 'HTTP/1.0'))],
    ['Content-Length with a body on the upgrade', 101, latin1(withHeaders('Content-Length: 5\r\n') + 'hello')],
    ['Transfer-Encoding: chunked and Content-Length (smuggling shape)', 400, latin1(withHeaders('Transfer-Encoding: chunked\r\nContent-Length: 3\r\n') + '0\r\n\r\n')],
  ];
  it.each(cases)('%s → %i, answered and closed promptly', async (_n, status, req) => {
    const { url, port } = await echoServer();
    const good = await innocent(url);
    const r = await exchange(port, [req]);
    expect(r.status).toBe(status);
    if (status !== 101) expect(r.closed).toBe(true);
    expect(r.ms).toBeLessThan(1500);
    expect(await echo(good)).toBeLessThan(1000);
    good.terminate();
  });

  it.each([
    ['1,000 unknown parameters (9 KiB): the offer is declined (RFC 7692 §7.1)', 'permessage-deflate; ' + Array.from({ length: 1000 }, (_, i) => `x${i}=1`).join('; '), 101],
    ['an unterminated quoted string of 9 KiB', `permessage-deflate; a="${'x'.repeat(9000)}`, 400],
    ['5,000 empty parameters', 'permessage-deflate' + ';'.repeat(5000), 400],
  ])('permessage-deflate on, Sec-WebSocket-Extensions with %s → %i', async (_n, ext, status) => {
    const { port } = await echoServer({ perMessageDeflate: true });
    const r = await exchange(port, [latin1(upgradeRequest('/', { 'Sec-WebSocket-Extensions': ext }))]);
    expect(r.status).toBe(status);
    if (status === 101) expect(r.text).not.toMatch(/sec-websocket-extensions/i);
    expect(r.ms).toBeLessThan(1500);
  });

  it('a valid request written one byte at a time is upgraded, and the connection echoes', async () => {
    const { port } = await echoServer();
    const req = latin1(upgradeRequest('/'));
    const s = net.connect(port, '127.0.0.1');
    sockets.push(s);
    s.setNoDelay(true);
    await once(s, 'connect');
    let text = Buffer.alloc(0);
    s.on('data', (d: Buffer) => (text = Buffer.concat([text, d])));
    for (const b of req) {
      s.write(Buffer.from([b]));
      await sleep(1);
    }
    await until(() => text.includes('\r\n\r\n'), { timeout: 3000 });
    expect(text.toString('latin1')).toMatch(/^HTTP\/1\.1 101 /);
    const head = text.indexOf('\r\n\r\n') + 4;
    // A frame split into 1-byte writes too.
    for (const b of raw({ opcode: 1, payload: Buffer.from('split'), key: K })) {
      s.write(Buffer.from([b]));
      await sleep(1);
    }
    await until(() => text.length >= head + 7, { timeout: 3000 });
    expect(text.subarray(head, head + 7)).toEqual(Buffer.from([0x81, 5, ...Buffer.from('split')]));
  });

  it('frames pipelined in the same write as the handshake reach the application', async () => {
    const { wss, port } = await echoServer();
    const errors: Error[] = [];
    wss.on('connection', (ws: WebSocket) => ws.on('error', (e: Error) => errors.push(e)));
    const s = net.connect(port, '127.0.0.1');
    sockets.push(s);
    await once(s, 'connect');
    let text = Buffer.alloc(0);
    s.on('data', (d: Buffer) => (text = Buffer.concat([text, d])));
    // One write: the handshake, a message, then a protocol error (an unmasked frame).
    s.write(Buffer.concat([latin1(upgradeRequest('/')), raw({ opcode: 1, payload: Buffer.from('early'), key: K }), raw({ opcode: 1, payload: Buffer.from('x') })]));
    await until(() => text.includes('\r\n\r\n') && text.length > text.indexOf('\r\n\r\n') + 4 + 7, { timeout: 2000 });
    const head = text.indexOf('\r\n\r\n') + 4;
    // The echo of 'early' comes first, then the close frame 1002; the app's 'error' listener saw it.
    expect(text.subarray(head, head + 7)).toEqual(Buffer.from([0x81, 5, ...Buffer.from('early')]));
    await until(() => errors.length > 0, { timeout: 1000 });
    expect((errors[0] as ProtocolError).code).toBe(1002);
  });
});

// ── 6. Cross-site WebSocket hijacking ───────────────────────────────────────────────────────

describe('cross-site hijacking', () => {
  it.each([
    ['a foreign Origin', 'https://evil.example', 403],
    ['the allowed origin as a prefix of a foreign host', 'https://good.example.evil.example', 403],
    ['the allowed host on another scheme', 'http://good.example', 403],
    ['the allowed host on another port', 'https://good.example:8443', 403],
    ['Origin: null (sandboxed iframe, file://)', 'null', 403],
    ['the allowed origin', 'https://good.example', 101],
    ['the allowed origin, differently cased', 'HTTPS://Good.Example', 101],
  ])('with allowedOrigins set, %s (%s) → %i', async (_n, origin, status) => {
    const { port } = await echoServer({ allowedOrigins: ['https://good.example'] });
    const good = new WS(`ws://127.0.0.1:${port}`, { origin: 'https://good.example' });
    await nextEvent(good, 'open');
    const r = await exchange(port, [latin1(upgradeRequest('/', { Origin: origin }))]);
    expect(r.status).toBe(status);
    expect(await echo(good)).toBeLessThan(1000);
    good.terminate();
  });
});

// ── 7. No error listener ────────────────────────────────────────────────────────────────────

describe('no error listener', () => {
  it('peer protocol errors, resets and bad compressed data never throw out of the server', async () => {
    // No 'error' listener on the server or on any connection.
    const s = await startServer({ perMessageDeflate: true, maxPayload: 1024 });
    servers.push(s.wss);
    s.wss.on('connection', (ws: WebSocket) => ws.on('message', (d: Buffer, b: boolean) => ws.send(d, { binary: b })));
    const good = await innocent(s.url);
    const deflateReq = upgradeRequest('/', { 'Sec-WebSocket-Extensions': 'permessage-deflate' });
    const attacks: [string, string, Buffer, number][] = [
      ['unmasked frame', upgradeRequest('/'), raw({ opcode: 1, payload: Buffer.from('x') }), 1002],
      ['invalid UTF-8', upgradeRequest('/'), raw({ opcode: 1, payload: Buffer.from([0xc3, 0x28]), key: K }), 1007],
      ['too big', upgradeRequest('/'), raw({ opcode: 2, payload: Buffer.alloc(2000), key: K }), 1009],
      ['reserved opcode', upgradeRequest('/'), raw({ opcode: 3, key: K }), 1002],
      ['bad close code', upgradeRequest('/'), raw({ opcode: 8, payload: Buffer.from([0x03, 0xed]), key: K }), 1002],
      ['continuation first', upgradeRequest('/'), raw({ opcode: 0, payload: Buffer.from('x'), key: K }), 1002],
      ['garbage deflate data', deflateReq, raw({ opcode: 2, rsv: 4, payload: Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]), key: K }), 1007],
      ['deflate bomb (inflates past maxPayload)', deflateReq,
        raw({ opcode: 2, rsv: 4, payload: zlib.deflateRawSync(Buffer.alloc(1 << 20)), key: K }), 1009],
    ];
    for (const [name, req, bytes, code] of attacks) {
      const conn = nextConnection(s.wss);
      const c = await attacker(s.port, req);
      expect(c.response, name).toMatch(/^HTTP\/1\.1 101/);
      c.send(bytes);
      await c.until(() => c.closeFrame() !== undefined, { timeout: 3000 });
      expect([name, c.closeFrame()![0]]).toEqual([name, code]);
      expect([name, await conn.code]).toEqual([name, code]);
    }
    // Resets: during the handshake, mid-frame, and mid-message.
    for (const stage of ['handshake', 'frame', 'message'] as const) {
      const sock = net.connect(s.port, '127.0.0.1');
      sock.on('error', () => {});
      await once(sock, 'connect');
      if (stage === 'handshake') sock.write('GET / HTTP/1.1\r\nUpgrade: websocket\r\n');
      else {
        const conn = nextConnection(s.wss);
        sock.write(upgradeRequest('/'));
        await conn.ws;
        sock.write(stage === 'frame' ? raw({ opcode: 2, payload: Buffer.alloc(100), key: K }).subarray(0, 40)
          : raw({ opcode: 1, fin: false, payload: Buffer.from('part'), key: K }));
        await sleep(20);
        sock.resetAndDestroy();
        expect(await conn.code).toBe(1006);
        continue;
      }
      await sleep(20);
      sock.resetAndDestroy();
    }
    await sleep(50);
    expect(await echo(good)).toBeLessThan(1000);
    expect(uncaught).toEqual([]);
    good.terminate();
  });
});

// ── 8. Random bytes ─────────────────────────────────────────────────────────────────────────

/** A valid client byte stream: a few messages, fragmented or not, with pings, pongs, maybe a close. */
function validStream(next: () => number): Buffer {
  const key = () => [0, 1, 2, 3].map(() => (next() * 256) | 0);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => (next() * 256) | 0));
  const text = (n: number) => Buffer.from(Array.from({ length: n }, () => 'aé€😀'[(next() * 4) | 0]).join(''));
  const out: Buffer[] = [];
  const n = 1 + ((next() * 5) | 0);
  for (let i = 0; i < n; i++) {
    const kind = (next() * 6) | 0;
    if (kind === 0) out.push(raw({ opcode: 1, payload: text((next() * 40) | 0), key: key() }));
    else if (kind === 1) out.push(raw({ opcode: 2, payload: bytes((next() * (next() < 0.1 ? 70_000 : 300)) | 0), key: key() }));
    else if (kind === 2) {
      const op = next() < 0.5 ? 1 : 2;
      const p = op === 1 ? text(1 + ((next() * 30) | 0)) : bytes(1 + ((next() * 300) | 0));
      const cuts = 1 + ((next() * 4) | 0);
      let at = 0;
      for (let c = 0; c <= cuts; c++) {
        const end = c === cuts ? p.length : Math.min(p.length, at + ((next() * p.length) | 0));
        out.push(raw({ opcode: c === 0 ? op : 0, fin: c === cuts, payload: p.subarray(at, end), key: key() }));
        // A control frame between fragments is legal (§5.4).
        if (c < cuts && next() < 0.3) out.push(raw({ opcode: 9, payload: bytes((next() * 10) | 0), key: key() }));
        at = end;
      }
    } else if (kind === 3) out.push(raw({ opcode: 9, payload: bytes((next() * 126) | 0), key: key() }));
    else if (kind === 4) out.push(raw({ opcode: 10, payload: bytes((next() * 20) | 0), key: key() }));
    else out.push(raw({ opcode: 2, payload: bytes((next() * 200) | 0), key: key(), form: next() < 0.5 ? 16 : 64 }));
  }
  if (next() < 0.3) out.push(raw({ opcode: 8, payload: Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65]), key: key() }));
  return Buffer.concat(out);
}

/** Mutations of a valid stream: bit flips, truncation, splices, duplication, header smashing, pure noise. */
function mutate(s: Buffer, next: () => number): Buffer {
  const at = () => (next() * s.length) | 0;
  const rand = (n: number) => Buffer.from(Array.from({ length: n }, () => (next() * 256) | 0));
  switch ((next() * 8) | 0) {
    case 0: {
      const b = Buffer.from(s);
      for (let i = 1 + ((next() * 8) | 0); i > 0; i--) b[at()] ^= 1 << ((next() * 8) | 0);
      return b;
    }
    case 1:
      return s.subarray(0, at());
    case 2: {
      const p = at();
      return Buffer.concat([s.subarray(0, p), rand(1 + ((next() * 20) | 0)), s.subarray(p)]);
    }
    case 3: {
      const a = at();
      return Buffer.concat([s.subarray(0, a), s.subarray(Math.min(s.length, a + 1 + ((next() * 50) | 0)))]);
    }
    case 4: {
      const a = at();
      const b = Math.min(s.length, a + ((next() * 100) | 0));
      const p = at();
      return Buffer.concat([s.subarray(0, p), s.subarray(a, b), s.subarray(p)]);
    }
    case 5: {
      const b = Buffer.from(s);
      b[0] = (next() * 256) | 0;
      b[Math.min(1, b.length - 1)] = (next() * 256) | 0;
      return b;
    }
    case 6:
      return rand(1 + ((next() * 300) | 0));
    default:
      return s; // unmodified: must be served
  }
}

describe('random bytes', () => {
  it('survives thousands of seeded random and mutated frame streams; leaks no heap and no fds', async () => {
    const STREAMS = 3000;
    const PARALLEL = 50;
    const { wss, port, url } = await echoServer({ maxPayload: 64 * 1024 });
    const errors = new Map<string, number>();
    const codes = new Map<number, number>();
    wss.on('connection', (ws: WebSocket) => {
      ws.on('error', (err: Error) => {
        const k = err instanceof ProtocolError ? `${err.kind}` : `NOT A ProtocolError: ${err.stack}`;
        errors.set(k, (errors.get(k) ?? 0) + 1);
      });
      ws.on('close', (code: number) => codes.set(code, (codes.get(code) ?? 0) + 1));
    });
    const good = await innocent(url);
    const request = Buffer.from(upgradeRequest('/'));

    async function run(stream: Buffer, next: () => number): Promise<void> {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.resume();
      let closed = false;
      s.on('close', () => (closed = true));
      await Promise.race([once(s, 'connect'), once(s, 'close')]);
      if (closed) return;
      // The handshake and the stream in 1–4 writes at random cut points.
      const all = Buffer.concat([request, stream]);
      const cuts = Array.from({ length: (next() * 4) | 0 }, () => request.length + ((next() * stream.length) | 0)).sort((a, b) => a - b);
      let prev = 0;
      for (const c of [...cuts, all.length]) {
        if (!s.destroyed) s.write(all.subarray(prev, c));
        prev = c;
      }
      s.end();
      const t = sleep(3000);
      await Promise.race([once(s, 'close'), t]);
      s.destroy();
    }
    async function worker(seed: number, count: number): Promise<void> {
      const next = rng(seed);
      for (let i = 0; i < count; i++) await run(mutate(validStream(next), next), next);
    }

    await Promise.all(Array.from({ length: 10 }, (_, w) => worker(1000 + w, 10))); // warm-up
    await until(() => wss.clients.size === 1, { timeout: 3000 });
    const before = await memory();
    const fds0 = fdCount();
    const t0 = Date.now();
    let stop = false;
    const latencies: number[] = [];
    const prober = (async () => {
      for (let i = 0; i < 3000 && !stop; i++) { // bounded: 10 min of probes
        latencies.push(await echo(good));
        await sleep(200);
      }
    })();
    await Promise.all(Array.from({ length: PARALLEL }, (_, w) => worker(0xfade + w, STREAMS / PARALLEL)));
    stop = true;
    await prober;
    const ms = Date.now() - t0;
    await until(() => wss.clients.size === 1, { timeout: 5000 });
    await until(() => fdCount() <= fds0 + 2, { timeout: 5000 });
    const after = await memory();
    console.log(`fuzz: ${STREAMS} streams in ${ms} ms; server close codes ${JSON.stringify([...codes].sort())}; ` +
      `errors ${JSON.stringify([...errors])}; heap ${((after.heap - before.heap) / 1024).toFixed(0)} KiB, ` +
      `buffers ${((after.buffers - before.buffers) / 1024).toFixed(0)} KiB; fds ${fds0} → ${fdCount()}; ` +
      `innocent echo max ${Math.max(...latencies)} ms over ${latencies.length}`);
    // Every failure is a peer's protocol error mapped to its code: nothing internal (1011).
    expect([...errors.keys()].filter((k) => k.startsWith('NOT') || k === 'internal')).toEqual([]);
    expect(Math.max(...latencies)).toBeLessThan(1000);
    expect(await echo(good)).toBeLessThan(1000);
    expect(after.heap - before.heap).toBeLessThan(slack(4 * MiB));
    expect(after.buffers - before.buffers).toBeLessThan(slack(2 * MiB));
    good.terminate();
  });
});

// ── 9. Churn ────────────────────────────────────────────────────────────────────────────────

describe('churn', () => {
  it('10,000 connections in waves of 500: clients back to 0, fds returned, heap back near baseline', async () => {
    const TOTAL = 10_000;
    const WAVE = 500;
    const { wss, port, url } = await echoServer();
    let accepted = 0;
    wss.on('connection', () => accepted++);
    const request = Buffer.from(upgradeRequest('/'));
    const closeFrame = raw({ opcode: 8, payload: Buffer.from([0x03, 0xe8]), key: K });
    const hello = raw({ opcode: 1, payload: Buffer.from('hi'), key: K });

    /** One connection: handshake, one echo, then a clean close, a half-close or a reset. */
    function conn(i: number): Promise<boolean> {
      return new Promise((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        let buf = Buffer.alloc(0);
        let upgraded = false;
        const t = setTimeout(() => s.destroy(), 5000);
        s.on('error', () => {});
        s.on('connect', () => s.write(request));
        s.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          if (!upgraded) {
            const end = buf.indexOf('\r\n\r\n');
            if (end < 0) return;
            upgraded = buf.subarray(0, 12).toString() === 'HTTP/1.1 101';
            buf = buf.subarray(end + 4);
            s.write(hello);
          }
          if (upgraded && buf.length >= 4 && buf[0] === 0x81) {
            buf = buf.subarray(4);
            const mode = i % 3;
            if (mode === 0) s.write(closeFrame);
            else if (mode === 1) s.end();
            else s.resetAndDestroy();
          }
        });
        s.on('close', () => {
          clearTimeout(t);
          resolve(upgraded);
        });
      });
    }

    const good = await innocent(url);
    await Promise.all(Array.from({ length: 200 }, (_, i) => conn(i))); // warm-up
    await until(() => wss.clients.size === 1, { timeout: 3000 });
    accepted = 0;
    const before = await memory();
    const fds0 = fdCount();
    const t0 = Date.now();
    let ok = 0;
    let peakFds = 0;
    const latencies: number[] = [];
    for (let w = 0; w < TOTAL / WAVE; w++) {
      const wave = Promise.all(Array.from({ length: WAVE }, (_, i) => conn(w * WAVE + i)));
      await sleep(5);
      peakFds = Math.max(peakFds, fdCount() - fds0);
      if (w % 4 === 0) latencies.push(await echo(good));
      ok += (await wave).filter(Boolean).length;
    }
    const ms = Date.now() - t0;
    await until(() => wss.clients.size === 1, { timeout: 5000 });
    await until(() => fdCount() <= fds0 + 2, { timeout: 5000 });
    const after = await memory();
    console.log(`churn: ${ok}/${TOTAL} upgraded in ${ms} ms, peak +${peakFds} fds, fds ${fds0} → ${fdCount()}, ` +
      `heap ${((after.heap - before.heap) / 1024).toFixed(0)} KiB, buffers ${((after.buffers - before.buffers) / 1024).toFixed(0)} KiB, ` +
      `innocent echo max ${Math.max(...latencies)} ms`);
    expect(ok).toBe(TOTAL);
    expect(accepted).toBe(TOTAL);
    expect(Math.max(...latencies)).toBeLessThan(1000);
    expect(after.heap - before.heap).toBeLessThan(slack(4 * MiB));
    expect(after.buffers - before.buffers).toBeLessThan(slack(2 * MiB));
    expect(await echo(good)).toBeLessThan(1000);
    good.terminate();
    await until(() => wss.clients.size === 0, { timeout: 3000 });
    expect(wss.clients.size).toBe(0);
  });
});
