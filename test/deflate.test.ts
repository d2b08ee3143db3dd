// permessage-deflate (RFC 7692): the zlib compressor, the Protocol's ordering around it, and
// end-to-end interop with `ws` in both directions. Sockets on 127.0.0.1 only; every wait bounded.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as net from 'node:net';
import * as http from 'node:http';
import * as zlib from 'node:zlib';
import { randomBytes } from 'node:crypto';
import WS, { WebSocketServer as WSServer } from 'ws';
import { WebSocket, WebSocketServer, Protocol, ProtocolError, type MessageCompressor, type ProtocolSink } from '../src/index.js';
import { Limiter, PerMessageDeflate, sharedLimiter } from '../src/deflate/deflate.js';
import { runtimeInternals } from '../src/internals.js';
import type { DeflateParams, PerMessageDeflateOptions } from '../src/handshake/extensions.js';
import { acceptKey, generateKey } from '../src/handshake/upgrade.js';
import { createCodec } from '../src/codec/index.js';
import { nextEvent, raw, sleep, until } from './helpers.js';

const HOST = '127.0.0.1';
const KiB = 1024;
const MiB = 1024 * KiB;
const OP_TEXT = 1;
const OP_BINARY = 2;
const OP_CONT = 0;
const OP_CLOSE = 8;
const RSV1 = 4;
const KEY = [1, 2, 3, 4];

// ── helpers ───────────────────────────────────────────────────────────────────────────────

function port(s: { address(): unknown }): number {
  return (s.address() as net.AddressInfo).port;
}

async function ourServer(opts: ConstructorParameters<typeof WebSocketServer>[0] = {}): Promise<WebSocketServer> {
  const wss = new WebSocketServer({ port: 0, host: HOST, ...opts });
  await nextEvent(wss, 'listening');
  return wss;
}

async function wsServer(opts: ConstructorParameters<typeof WSServer>[0] = {}): Promise<WSServer> {
  const wss = new WSServer({ port: 0, host: HOST, ...opts });
  await nextEvent(wss, 'listening');
  return wss;
}

async function closeServer(wss: { close(cb?: () => void): void; clients: Set<{ terminate(): void }> }): Promise<void> {
  for (const c of wss.clients) c.terminate();
  await new Promise<void>((r) => {
    const t = setTimeout(r, 2000);
    wss.close(() => {
      clearTimeout(t);
      r();
    });
  });
}

/** Echo every message back with the same type. */
function echo(wss: { on(ev: 'connection', fn: (ws: any) => void): unknown }): void {
  wss.on('connection', (ws: any) => ws.on('message', (d: Buffer, isBinary: boolean) => ws.send(d, { binary: isBinary })));
}

/** Collect `n` messages of a client (as strings for text, Buffers for binary). */
function collect(ws: { on(ev: 'message', fn: (d: any, b: boolean) => void): unknown }, n: number, ms = 10_000): Promise<(string | Buffer)[]> {
  const out: (string | Buffer)[] = [];
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timeout: ${out.length}/${n} messages`)), ms);
    ws.on('message', (d: Buffer, isBinary: boolean) => {
      out.push(isBinary ? Buffer.from(d) : d.toString());
      if (out.length === n) {
        clearTimeout(t);
        resolve(out);
      }
    });
  });
}

/** Compressible text with long-distance repeats (exercises the window and context takeover). */
function text(n: number, seed = 1): string {
  const words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', '{"id":', '"name":"', 'true', 'null', '],'];
  let s = '';
  let x = seed;
  while (s.length < n) {
    x = (x * 1103515245 + 12345) >>> 0;
    s += words[x % words.length] + (x % 7 === 0 ? '\n' : ' ');
  }
  return s.slice(0, n);
}

/** The messages each interop case sends: several above the threshold (so context carries), some below. */
function payloads(): (string | Buffer)[] {
  const block = randomBytes(700); // repeated at distance 700 < 2^9: back-references for every window
  return [
    text(5000, 1),
    text(5000, 1), // identical: with context takeover it compresses to almost nothing
    'small',
    Buffer.concat([block, block, block, randomBytes(300)]),
    text(40_000, 7),
    '',
    text(3000, 3),
  ];
}

/** Inflate a frame payload as a receiver would (RFC 7692 §7.2.2), independently of src/deflate.ts. */
function inflate(payload: Buffer): Buffer {
  return zlib.inflateRawSync(Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
}

/** Deflate `data` as a sender would (RFC 7692 §7.2.1): sync flush, tail removed. */
function deflate(data: Buffer, windowBits = 15): Buffer {
  const out = zlib.deflateRawSync(data, { windowBits, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return out.subarray(0, out.length - 4);
}

/** A bomb: one sync-flushed deflate of 64 MiB of zeros, repeated `copies` times (each copy only
 *  references zeros, so the concatenation is the deflate stream of copies × 64 MiB of zeros). */
const bombUnit = (() => {
  let unit: Buffer | null = null;
  return () => (unit ??= deflate(Buffer.alloc(64 * MiB)));
})();

interface RawConn {
  socket: net.Socket;
  headers: string;
  /** Next frame from the server (unmasked), bounded in time. */
  frame(ms?: number): Promise<{ fin: boolean; rsv: number; opcode: number; payload: Buffer }>;
  /** Resolves when the server closes TCP. */
  ended: Promise<void>;
}

/** A hand-made client: upgrade request with the given extension offer, then raw frames. */
async function rawConnect(p: number, extensions?: string): Promise<RawConn> {
  const socket = net.connect(p, HOST);
  await nextEvent(socket, 'connect');
  const key = generateKey();
  socket.write(
    `GET / HTTP/1.1\r\nHost: ${HOST}:${p}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
      (extensions ? `Sec-WebSocket-Extensions: ${extensions}\r\n` : '') +
      '\r\n',
  );
  let buf = Buffer.alloc(0);
  const ended = new Promise<void>((r) => socket.on('close', () => r()));
  socket.on('data', (c) => {
    buf = Buffer.concat([buf, c]);
  });
  socket.on('error', () => {});
  const wait = async (pred: () => boolean, ms: number) => {
    await until(() => pred() || socket.destroyed, { timeout: ms, what: 'raw client: bytes from the server' });
    if (!pred()) throw new Error('raw client: closed');
  };
  await wait(() => buf.indexOf('\r\n\r\n') >= 0, 5000);
  const end = buf.indexOf('\r\n\r\n');
  const headers = buf.subarray(0, end).toString();
  expect(headers).toMatch(/^HTTP\/1\.1 101/);
  expect(headers).toContain(acceptKey(key));
  buf = buf.subarray(end + 4);
  const frame = async (ms = 5000) => {
    let hlen = 0;
    let len = 0;
    const parse = () => {
      if (buf.length < 2) return false;
      const l7 = buf[1] & 0x7f;
      hlen = 2 + (l7 === 126 ? 2 : l7 === 127 ? 8 : 0);
      if (buf.length < hlen) return false;
      len = l7 === 126 ? buf.readUInt16BE(2) : l7 === 127 ? Number(buf.readBigUInt64BE(2)) : l7;
      return buf.length >= hlen + len;
    };
    await wait(parse, ms);
    const f = { fin: (buf[0] & 0x80) !== 0, rsv: (buf[0] >> 4) & 7, opcode: buf[0] & 0x0f, payload: Buffer.from(buf.subarray(hlen, hlen + len)) };
    buf = buf.subarray(hlen + len);
    return f;
  };
  return { socket, headers, frame, ended };
}

/** Read frames until a close frame; returns its code. */
async function closeCode(c: RawConn): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const f = await c.frame();
    if (f.opcode === OP_CLOSE) return f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005;
  }
  throw new Error('no close frame');
}

// ── the compressor alone ──────────────────────────────────────────────────────────────────

const PARAMS: DeflateParams = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };

function pair(params: Partial<DeflateParams> = {}, opts: PerMessageDeflateOptions = {}, maxPayload = 100 * MiB) {
  const p = { ...PARAMS, ...params };
  return { server: new PerMessageDeflate(p, 'server', opts, maxPayload), client: new PerMessageDeflate(p, 'client', opts, maxPayload) };
}

function run(fn: (data: Buffer, cb: (err: Error | null, out?: Buffer) => void) => void, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => fn(data, (err, out) => (err ? reject(err) : resolve(out!))));
}

describe('PerMessageDeflate', () => {
  it('round-trips messages both ways, with and without context takeover', async () => {
    for (const ctx of [false, true]) {
      const { server, client } = pair({ serverNoContextTakeover: ctx, clientNoContextTakeover: ctx });
      for (const m of payloads()) {
        const b = Buffer.from(m);
        expect(await run(client.decompress.bind(client), await run(server.compress.bind(server), b))).toEqual(b);
        expect(await run(server.decompress.bind(server), await run(client.compress.bind(client), b))).toEqual(b);
      }
      server.release();
      client.release();
    }
  });

  it('strips the 00 00 ff ff tail (RFC 7692 §7.2.1) and sends an empty message as one 00 byte', async () => {
    const { server } = pair();
    const out = await run(server.compress.bind(server), Buffer.from('Hello'));
    expect(out.subarray(-4)).not.toEqual(Buffer.from([0, 0, 0xff, 0xff]));
    // §7.2.3.1: "Hello" compressed without context is f2 48 cd c9 c9 07 00
    expect(out).toEqual(Buffer.from([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]));
    expect(await run(server.compress.bind(server), Buffer.alloc(0))).toEqual(Buffer.from([0x00]));
    server.release();
  });

  it('inflates the RFC 7692 §7.2.3.2 example with context takeover (the second "Hello" as a back-reference)', async () => {
    const { client } = pair();
    expect((await run(client.decompress.bind(client), Buffer.from([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]))).toString()).toBe('Hello');
    expect((await run(client.decompress.bind(client), Buffer.from([0xf2, 0x00, 0x11, 0x00, 0x00])))
      .toString()).toBe('Hello');
    client.release();
  });

  it('inflates a message that ends its DEFLATE stream (BFINAL, the RFC 7692 §7.2.3.4 example) and every message after it, on both inflate paths', async () => {
    const bfinal = Buffer.from([0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]); // "Hello", BFINAL set
    const flushed = Buffer.from([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]); // "Hello", §7.2.3.1 (a new stream)
    const seq = [bfinal, flushed, bfinal, flushed, flushed];
    const { server, client } = pair();
    // On the spot (small messages; where zlib's sync internals may be used, else nothing is inflated there)…
    const onTheSpot = runtimeInternals().zlibSync ? 'Hello' : undefined;
    expect(seq.map((m) => server.decompressSync(m)?.toString())).toEqual(seq.map(() => onTheSpot));
    // …and on the thread pool; the last two: the window carried over from the message before (§7.2.3.2).
    const out: string[] = [];
    for (const m of [...seq, Buffer.from([0xf2, 0x00, 0x11, 0x00, 0x00])]) out.push((await run(client.decompress.bind(client), m)).toString());
    expect(out).toEqual(['Hello', 'Hello', 'Hello', 'Hello', 'Hello', 'Hello']);
    // Large ones: a whole deflate stream (Z_FINISH) then a sync-flushed message of a new stream.
    const a = Buffer.from(text(60_000, 7)), b = Buffer.from(text(50_000, 8));
    expect(await run(client.decompress.bind(client), Buffer.concat([zlib.deflateRawSync(a), Buffer.from([0])]))).toEqual(a);
    expect(await run(client.decompress.bind(client), deflate(b))).toEqual(b);
    server.release();
    client.release();
  });

  it('reuses the window across messages only with context takeover', async () => {
    const msg = Buffer.from(text(4000, 5));
    for (const [ctx, smaller] of [[false, true], [true, false]] as const) {
      const { server } = pair({ serverNoContextTakeover: ctx });
      const a = await run(server.compress.bind(server), msg);
      const b = await run(server.compress.bind(server), msg);
      expect(b.length < a.length / 4).toBe(smaller);
      server.release();
    }
  });

  it('fails with too_big (1009) as soon as the inflated size exceeds maxPayload, and drops the inflater', async () => {
    const { server } = pair({}, {}, 1 * MiB);
    const bomb = bombUnit(); // ≈ 64 KiB → 64 MiB
    expect(bomb.length).toBeLessThan(100 * KiB);
    // The zlib stream the compressor inflates with: the one its write() goes to.
    const writes = vi.spyOn(zlib.InflateRaw.prototype, 'write');
    let err: unknown;
    let contexts: unknown[] = [];
    const t0 = performance.now();
    try {
      err = await run(server.decompress.bind(server), bomb).then(() => null, (e) => e);
    } finally {
      contexts = [...writes.mock.contexts]; // mockRestore() clears them
      writes.mockRestore();
    }
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe(1009);
    expect(performance.now() - t0).toBeLessThan(2000);
    const used = contexts.filter((z) => z instanceof zlib.InflateRaw) as zlib.InflateRaw[];
    expect(used).toHaveLength(1);
    // Dropped: closed (its window and state freed) by the time the error is reported…
    expect(used[0].destroyed).toBe(true);
    // …and the next message is inflated by a fresh one: a stream that starts from scratch inflates
    // (it would not on the closed stream, nor after the bomb's half-read state).
    const { client } = pair();
    const next = await run(client.compress.bind(client), Buffer.from('after the bomb'));
    expect((await run(server.decompress.bind(server), next)).toString()).toBe('after the bomb');
    server.release();
    client.release();
  });

  it('fails with bad_deflate (1007) on a corrupt stream', async () => {
    const { server } = pair();
    // BTYPE = 11 is reserved (RFC 1951 §3.2.3): "invalid block type".
    const err = await run(server.decompress.bind(server), Buffer.from([0xff, 0xff, 0xff, 0xff])).then(() => null, (e) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe(1007);
    // The next message starts over on a fresh inflater.
    const { client } = pair();
    const ok = await run(client.compress.bind(client), Buffer.from('again'));
    expect((await run(server.decompress.bind(server), ok)).toString()).toBe('again');
    server.release();
    client.release();
  });

  it('release() closes both zlib streams and frees the limiter slot of a job in flight', async () => {
    const { server } = pair({}, { concurrencyLimit: 3 });
    // The compressor's two zlib streams: the ones its write()s go to.
    const writeD = vi.spyOn(zlib.DeflateRaw.prototype, 'write');
    const writeI = vi.spyOn(zlib.InflateRaw.prototype, 'write');
    const cb = vi.fn();
    let def: zlib.DeflateRaw[] = [];
    let inf: zlib.InflateRaw[] = [];
    try {
      await run(server.compress.bind(server), Buffer.from(text(2000)));
      await run(server.decompress.bind(server), deflate(Buffer.from('x'.repeat(100))));
      server.decompress(deflate(Buffer.alloc(8 * MiB)), cb); // in flight while we release
    } finally {
      def = [...new Set(writeD.mock.contexts)] as zlib.DeflateRaw[]; // before mockRestore() clears them
      inf = [...new Set(writeI.mock.contexts)] as zlib.InflateRaw[];
      writeD.mockRestore();
      writeI.mockRestore();
    }
    expect([def.length, inf.length]).toEqual([1, 1]);
    expect([def[0].destroyed, inf[0].destroyed]).toEqual([false, false]);
    server.release();
    expect([def[0].destroyed, inf[0].destroyed]).toEqual([true, true]);
    expect(sharedLimiter(3).active).toBe(0);
    await sleep(50);
    expect(cb).not.toHaveBeenCalled();
  });

  it('limits concurrent zlib jobs process-wide and runs the rest in FIFO order', async () => {
    const l = new Limiter(2);
    const started: number[] = [];
    const dones: (() => void)[] = [];
    for (let i = 0; i < 5; i++) l.add((done) => { started.push(i); dones.push(done); });
    expect(started).toEqual([0, 1]);
    expect(l.pending).toBe(3);
    dones[0]();
    dones[0](); // a second call is ignored
    expect(started).toEqual([0, 1, 2]);
    dones[1]();
    dones[2]();
    expect(started).toEqual([0, 1, 2, 3, 4]);
    expect(l.active).toBe(2);
    // Shared: every connection with the same concurrencyLimit uses one limiter.
    expect(sharedLimiter(7)).toBe(sharedLimiter(7));
  });

  it('never has more than concurrencyLimit zlib jobs running across many compressors', async () => {
    const limit = 4;
    const l = sharedLimiter(limit);
    const cs = Array.from({ length: 20 }, () => new PerMessageDeflate(PARAMS, 'server', { concurrencyLimit: limit }, 100 * MiB));
    let maxActive = 0;
    const data = Buffer.from(text(200_000));
    const jobs = cs.map((c) => run((d, cb) => { c.compress(d, cb); maxActive = Math.max(maxActive, l.active); }, data));
    expect(l.pending).toBeGreaterThan(0);
    await Promise.all(jobs);
    expect(maxActive).toBeLessThanOrEqual(limit);
    expect(l.active).toBe(0);
    for (const c of cs) c.release();
  });
});

// ── the Protocol around a compressor (sans I/O) ───────────────────────────────────────────

/** A compressor under manual control: each job waits until the test resolves it. */
class ManualCompressor implements MessageCompressor {
  threshold = 10;
  jobs: { kind: 'c' | 'd'; data: Buffer; cb: (err: Error | null, out?: Buffer) => void }[] = [];
  released = false;
  compress(data: Buffer, cb: (err: Error | null, out?: Buffer) => void): void {
    this.jobs.push({ kind: 'c', data, cb });
  }
  decompress(data: Buffer, cb: (err: Error | null, out?: Buffer) => void): void {
    this.jobs.push({ kind: 'd', data, cb });
  }
  /** Finish the oldest job: compress → "Z" + data, decompress → data without the "Z". */
  next(err: Error | null = null): void {
    const j = this.jobs.shift()!;
    if (err) return j.cb(err);
    j.cb(null, j.kind === 'c' ? Buffer.concat([Buffer.from('Z'), j.data]) : j.data.subarray(1));
  }
  release(): void {
    this.released = true;
  }
}

function sink() {
  const s = {
    written: [] as Buffer[],
    events: [] as string[],
    paused: 0,
    resumed: 0,
    onMessage: (d: Buffer) => s.events.push(`msg:${d}`),
    onPing: (d: Buffer) => s.events.push(`ping:${d}`),
    onPong: (d: Buffer) => s.events.push(`pong:${d}`),
    onError: (e: Error) => s.events.push(`error:${(e as ProtocolError).code ?? e.message}`),
    onEnd: () => s.events.push(`end:${s.p!.closeCode}`),
    onAbort: () => s.events.push('abort'),
    onClosed: () => s.events.push(`closed:${s.p!.closeCode}`),
    p: null as Protocol | null,
    onOutput: () => { s.written.push(Buffer.concat(s.p!.out.take())); },
    pauseReading: () => { s.paused++; },
    resumeReading: () => { s.resumed++; },
  };
  return s;
}

/** Describe written server frames as "op[+rsv1]:payload". */
function frames(written: Buffer[]): string[] {
  return written.map((b) => {
    const op = b[0] & 0x0f;
    const len = b[1] & 0x7f;
    const off = len === 126 ? 4 : len === 127 ? 10 : 2;
    const p = b.subarray(off);
    const name = ({ 1: 'text', 2: 'bin', 8: 'close', 9: 'ping', 10: 'pong' } as Record<number, string>)[op];
    return `${name}${b[0] & 0x40 ? '+z' : ''}:${op === 8 ? p.readUInt16BE(0) : p.toString()}`;
  });
}

function proto(c: MessageCompressor) {
  const s = sink();
  const p = new Protocol(s as ProtocolSink, { role: 'server', maxPayload: 1 * MiB, codec: createCodec({ backend: 'ts' }) });
  s.p = p;
  p.setCompressor(c);
  return { s, p };
}

describe('Protocol with a compressor', () => {
  it('lets nothing overtake a message being compressed: small messages, pings, close wait in order', () => {
    const c = new ManualCompressor();
    const { s, p } = proto(c);
    p.sendMessage(Buffer.from('first-big-message'), false, true);
    p.sendMessage(Buffer.from('tiny'), false, true);
    p.ping(Buffer.from('p'));
    p.sendMessage(Buffer.from('second-big-message'), false, true);
    p.sendMessage(Buffer.from('uncompressed-by-choice'), false, false);
    p.close(1000);
    expect(s.written).toEqual([]);
    expect(p.queuedBytes).toBeGreaterThan(0);
    c.next();
    expect(frames(s.written)).toEqual(['text+z:Zfirst-big-message', 'text:tiny', 'ping:p']);
    c.next();
    expect(frames(s.written).slice(3)).toEqual(['text+z:Zsecond-big-message', 'text:uncompressed-by-choice', 'close:1000']);
    expect(p.queuedBytes).toBe(0);
  });

  it("ends our half only once our close echo is written after the compression in flight (RFC 6455 §5.5.1)", () => {
    const c = new ManualCompressor();
    const { s, p } = proto(c);
    p.sendMessage(Buffer.from('a-big-message-here'), true, true);
    p.receive(raw({ opcode: OP_CLOSE, payload: Buffer.from([0x03, 0xe8]), key: KEY }));
    expect(s.events).toEqual([]);
    c.next();
    expect(frames(s.written)).toEqual(['bin+z:Za-big-message-here', 'close:1000']);
    expect(s.events).toEqual(['end:1000']);
  });

  it('on failure drops the compression in flight and queued sends, and writes the close frame at once', async () => {
    const c = new ManualCompressor();
    const { s, p } = proto(c);
    const cb1 = vi.fn();
    const cb2 = vi.fn();
    p.sendMessage(Buffer.from('a-big-message-here'), false, true, cb1);
    p.sendMessage(Buffer.from('x'), false, true, cb2);
    p.receive(raw({ opcode: OP_TEXT, payload: Buffer.from([0xff]), key: KEY })); // invalid UTF-8 → 1007
    expect(frames(s.written)).toEqual(['close:1007']);
    c.next(); // the late compression result is ignored
    expect(frames(s.written)).toEqual(['close:1007']);
    await new Promise((r) => setImmediate(r));
    expect(cb1).toHaveBeenCalledWith(expect.any(Error));
    expect(cb2).toHaveBeenCalledWith(expect.any(Error));
  });

  it('keeps received frames in order behind an inflation and pauses reading when the backlog grows', () => {
    const c = new ManualCompressor();
    const { s, p } = proto(c);
    p.receive(raw({ opcode: OP_TEXT, rsv: RSV1, payload: Buffer.from('Zcompressed'), key: KEY }));
    p.receive(raw({ opcode: 9, payload: Buffer.from('p1'), key: KEY }));
    p.receive(raw({ opcode: OP_TEXT, payload: Buffer.from('plain'), key: KEY }));
    expect(s.events).toEqual([]);
    const big = Buffer.alloc(200 * KiB, 0x61);
    for (let i = 0; i < 6; i++) p.receive(raw({ opcode: OP_BINARY, payload: big, key: KEY }));
    expect(s.paused).toBe(1);
    expect(p.backlogSize).toBeGreaterThan(1 * MiB);
    c.next();
    expect(s.events.slice(0, 3)).toEqual(['msg:compressed', 'ping:p1', 'msg:plain']);
    expect(s.events.length).toBe(9);
    expect(s.resumed).toBe(1);
    expect(p.backlogSize).toBe(0);
  });

  it('a closed connection drops queued sends and releases the compressor', async () => {
    const c = new ManualCompressor();
    const { p } = proto(c);
    const cb = vi.fn();
    p.sendMessage(Buffer.from('a-big-message-here'), false, true, cb);
    p.connectionLost();
    expect(c.released).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect(cb).toHaveBeenCalledWith(expect.any(Error));
  });
});

// ── interop with ws, every parameter combination ──────────────────────────────────────────

type Combo = PerMessageDeflateOptions & { label: string };

/** Offers (client options) across §7.1's parameters: both no_context_takeover flags × window bits. */
function offerCombos(): Combo[] {
  const out: Combo[] = [];
  const serverBits: (number | undefined)[] = [undefined, 8, 9, 10, 11, 12, 13, 14, 15];
  const clientBits: (number | boolean | undefined)[] = [false, true, 8, 9, 10, 11, 12, 13, 14, 15];
  for (const snct of [false, true]) {
    for (const cnct of [false, true]) {
      for (const sb of serverBits) {
        for (const cb of clientBits) {
          // Full cross product for the window bits with both takeover flags off; with a flag on,
          // pair the window sizes diagonally (every value still appears with every flag setting).
          if ((snct || cnct) && sb !== undefined && typeof cb === 'number' && sb !== cb) continue;
          out.push({
            label: `snct=${+snct} cnct=${+cnct} smwb=${sb ?? '-'} cmwb=${cb}`,
            serverNoContextTakeover: snct || undefined,
            clientNoContextTakeover: cnct || undefined,
            serverMaxWindowBits: sb,
            clientMaxWindowBits: cb,
            threshold: 0,
          });
        }
      }
    }
  }
  return out;
}

/** Server-imposed settings: the server limits windows / forces no_context_takeover on a bare offer. */
const SERVER_IMPOSED: Combo[] = [
  { label: 'server imposes snct', serverNoContextTakeover: true },
  { label: 'server imposes cnct', clientNoContextTakeover: true },
  ...[9, 10, 12, 15].map((b) => ({ label: `server imposes smwb=${b}`, serverMaxWindowBits: b })),
  ...[9, 11, 13, 15].map((b) => ({ label: `server imposes cmwb=${b}`, clientMaxWindowBits: b })),
  { label: 'server imposes everything', serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 9 },
];

/** Run `fn` over `items` with at most `n` at once. */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (i < items.length) await fn(items[i++]);
  }));
}

/** Send every payload from client to echo server and check what comes back. */
async function exchange(client: any, label: string): Promise<void> {
  const msgs = payloads();
  const got = collect(client, msgs.length);
  for (const m of msgs) client.send(m);
  const back = await got;
  expect(back.map((b) => (typeof b === 'string' ? b : b.toString('hex'))), label)
    .toEqual(msgs.map((m) => (typeof m === 'string' ? m : m.toString('hex'))));
}

describe('interop: our server, ws client', () => {
  let wss: WebSocketServer;
  beforeAll(async () => {
    wss = await ourServer({ perMessageDeflate: { threshold: 0 } });
    echo(wss);
  });
  afterAll(() => closeServer(wss));

  it(`echoes compressed messages for ${offerCombos().length} offers`, async () => {
    const seen = new Set<string>();
    // The negotiated parameters, as the response carries them (ws.extensions has the names only, as in ws).
    wss.on('headers', (h: string[]) => seen.add(h.find((l) => /^sec-websocket-extensions:/i.test(l))?.replace(/^[^:]*:\s*/, '') ?? ''));
    wss.on('connection', (ws) => expect(ws.extensions).toBe('permessage-deflate'));
    await pool(offerCombos(), 8, async (combo) => {
      const { label, ...pmd } = combo;
      const c = new WS(`ws://${HOST}:${port(wss)}`, { perMessageDeflate: pmd });
      await nextEvent(c, 'open');
      expect(c.extensions, label).toContain('permessage-deflate');
      await exchange(c, label);
      c.close();
      await nextEvent(c, 'close');
    });
    // The negotiated values appear in the response header (spot checks).
    expect(seen).toContain('permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9');
    expect(seen).toContain('permessage-deflate; client_max_window_bits=8');
    expect(seen).toContain('permessage-deflate');
  }, 60_000);

  it.each(SERVER_IMPOSED)('$label', async ({ label, ...opts }) => {
    const s = await ourServer({ perMessageDeflate: { ...opts, threshold: 0 } });
    echo(s);
    const c = new WS(`ws://${HOST}:${port(s)}`, { perMessageDeflate: true });
    await nextEvent(c, 'open');
    await exchange(c, label);
    c.close();
    await closeServer(s);
  });
});

describe('interop: our client, ws server', () => {
  let wss: WSServer;
  beforeAll(async () => {
    wss = await wsServer({ perMessageDeflate: { threshold: 0 } });
    echo(wss);
  });
  afterAll(() => closeServer(wss));

  it(`echoes compressed messages for ${offerCombos().length} offers`, async () => {
    await pool(offerCombos(), 8, async (combo) => {
      const { label, ...pmd } = combo;
      const c = new WebSocket(`ws://${HOST}:${port(wss)}`, { perMessageDeflate: pmd });
      await nextEvent(c, 'open');
      expect(c.extensions, label).toMatch(/^permessage-deflate/);
      await exchange(c, label);
      c.close();
      await nextEvent(c, 'close');
    });
  }, 60_000);

  it.each(SERVER_IMPOSED)('$label', async ({ label, ...opts }) => {
    const s = await wsServer({ perMessageDeflate: { ...opts, threshold: 0 } });
    echo(s);
    const c = new WebSocket(`ws://${HOST}:${port(s)}`, { perMessageDeflate: { threshold: 0 } });
    await nextEvent(c, 'open');
    await exchange(c, label);
    c.close();
    await closeServer(s);
  });

  it('offers permessage-deflate by default and the extensions property is the negotiated header', async () => {
    let offer: string | undefined;
    let response: string | undefined;
    wss.once('headers', (h, req) => {
      offer = req.headers['sec-websocket-extensions'] as string;
      response = h.find((l) => /^sec-websocket-extensions:/i.test(l))?.replace(/^[^:]*:\s*/, '');
    });
    const c = new WebSocket(`ws://${HOST}:${port(wss)}`);
    await nextEvent(c, 'open');
    expect(offer).toBe('permessage-deflate; client_max_window_bits');
    expect(response).toMatch(/^permessage-deflate/);
    expect(c.extensions).toBe('permessage-deflate'); // the names, as ws gives them
    c.close();
    const off = new WebSocket(`ws://${HOST}:${port(wss)}`, { perMessageDeflate: false });
    wss.once('headers', (_h, req) => { offer = req.headers['sec-websocket-extensions'] as string; });
    await nextEvent(off, 'open');
    expect(offer).toBeUndefined();
    expect(off.extensions).toBe('');
    off.close();
  });
});

describe('server defaults', () => {
  it('is off on the server by default: a ws client offering it gets no extension', async () => {
    const s = await ourServer();
    echo(s);
    const c = new WS(`ws://${HOST}:${port(s)}`, { perMessageDeflate: true });
    await nextEvent(c, 'open');
    expect(c.extensions).toBe('');
    await exchange(c, 'off');
    c.close();
    await closeServer(s);
  });

  it('sends messages below the threshold (default 1024) uncompressed', async () => {
    const s = await ourServer({ perMessageDeflate: true });
    s.on('connection', (ws) => {
      ws.send('x'.repeat(1023));
      ws.send('y'.repeat(1024));
    });
    const c = await rawConnect(port(s), 'permessage-deflate');
    expect(c.headers).toMatch(/Sec-WebSocket-Extensions: permessage-deflate\r?$/im);
    const a = await c.frame();
    const b = await c.frame();
    expect([a.rsv, a.payload.length]).toEqual([0, 1023]);
    expect(b.rsv).toBe(RSV1);
    expect(inflate(b.payload).toString()).toBe('y'.repeat(1024));
    c.socket.destroy();
    await closeServer(s);
  });
});

// ── edge cases end to end ─────────────────────────────────────────────────────────────────

describe('edge cases', () => {
  it('receives fragmented compressed messages (RSV1 on the first frame only), from a raw client', async () => {
    const s = await ourServer({ perMessageDeflate: true });
    echo(s);
    const c = await rawConnect(port(s), 'permessage-deflate; client_max_window_bits');
    const msg = Buffer.from(text(10_000, 9));
    const z = deflate(msg);
    const cuts = [1, Math.floor(z.length / 3), Math.floor(z.length / 2)];
    const parts = [z.subarray(0, cuts[0]), z.subarray(cuts[0], cuts[1]), z.subarray(cuts[1], cuts[2]), z.subarray(cuts[2])];
    c.socket.write(Buffer.concat(parts.map((p, i) => raw({
      opcode: i === 0 ? OP_TEXT : OP_CONT, rsv: i === 0 ? RSV1 : 0, fin: i === parts.length - 1, payload: p, key: KEY,
    }))));
    // An empty compressed message (a lone 00 byte, §7.2.3.6) and a zero-length RSV1 payload.
    c.socket.write(raw({ opcode: OP_BINARY, rsv: RSV1, payload: Buffer.from([0]), key: KEY }));
    c.socket.write(raw({ opcode: OP_TEXT, rsv: RSV1, payload: Buffer.alloc(0), key: KEY }));
    const f = await c.frame();
    expect(f.opcode).toBe(OP_TEXT);
    const echoed = f.rsv === RSV1 ? inflate(f.payload) : f.payload;
    expect(echoed.toString()).toBe(msg.toString());
    const e1 = await c.frame();
    const e2 = await c.frame();
    expect([e1.opcode, e1.payload.length, e2.opcode, e2.payload.length]).toEqual([OP_BINARY, 0, OP_TEXT, 0]);
    c.socket.destroy();
    await closeServer(s);
  });

  it('receives fragmented compressed messages from a ws server (fin: false)', async () => {
    const s = await wsServer({ perMessageDeflate: { threshold: 0 } });
    const parts = [text(3000, 1), text(5000, 2), text(10, 3)];
    s.on('connection', (ws) => {
      ws.send(parts[0], { fin: false, compress: true });
      ws.send(parts[1], { fin: false, compress: true });
      ws.send(parts[2], { fin: true, compress: true });
      ws.send('after');
    });
    const c = new WebSocket(`ws://${HOST}:${port(s)}`);
    const got = collect(c, 2);
    expect(await got).toEqual([parts.join(''), 'after']);
    c.close();
    await closeServer(s);
  });

  it('sends and receives empty messages compressed (threshold 0) both ways', async () => {
    const s = await wsServer({ perMessageDeflate: { threshold: 0 } });
    echo(s);
    const c = new WebSocket(`ws://${HOST}:${port(s)}`, { perMessageDeflate: { threshold: 0 } });
    await nextEvent(c, 'open');
    const got = collect(c, 3);
    c.send('');
    c.send(Buffer.alloc(0));
    c.send('end');
    expect(await got).toEqual(['', Buffer.alloc(0), 'end']);
    c.close();
    await closeServer(s);
  });

  it('moves 1 MiB text messages both ways (our server ↔ ws client, our client ↔ ws server)', async () => {
    const big = text(1 * MiB, 11);
    const ours = await ourServer({ perMessageDeflate: true });
    echo(ours);
    const theirs = await wsServer({ perMessageDeflate: true });
    echo(theirs);
    const a = new WS(`ws://${HOST}:${port(ours)}`, { perMessageDeflate: true });
    const b = new WebSocket(`ws://${HOST}:${port(theirs)}`);
    await Promise.all([nextEvent(a, 'open'), nextEvent(b, 'open')]);
    const ga = collect(a, 2);
    const gb = collect(b, 2);
    a.send(big);
    a.send(big);
    b.send(big);
    b.send(big);
    expect((await ga).every((m) => m === big)).toBe(true);
    expect((await gb).every((m) => m === big)).toBe(true);
    a.close();
    b.close();
    await Promise.all([closeServer(ours), closeServer(theirs)]);
  });

  it('fails a small bomb (≤ 4 KiB, inflated on the spot) with 1009 at maxPayload', async () => {
    const s = await ourServer({ perMessageDeflate: true, maxPayload: 256 * 1024 });
    echo(s);
    // ~1 KB of deflate that inflates to 1 MiB of zeros: small enough for the synchronous path.
    const small = zlib.deflateRawSync(Buffer.alloc(MiB), { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
    expect(small.length).toBeLessThanOrEqual(4096);
    const c = await rawConnect(port(s), 'permessage-deflate');
    c.socket.write(raw({ opcode: OP_BINARY, rsv: RSV1, payload: small, key: KEY }));
    expect(await closeCode(c)).toBe(1009);
    await closeServer(s);
  });

  it('keeps context takeover intact when small (on the spot) and large (thread pool) messages alternate', async () => {
    const s = await ourServer({ perMessageDeflate: true, maxPayload: 8 * MiB });
    echo(s);
    const c = new WS(`ws://${HOST}:${port(s)}`, { perMessageDeflate: true, maxPayload: 8 * MiB });
    await nextEvent(c, 'open');
    const msgs = [text(2000, 1), text(300_000, 2), text(3000, 3), randomBytes(200_000).toString('base64'), text(1500, 4), text(60_000, 5), text(2000, 6)];
    const got = collect(c, msgs.length, 20_000);
    for (const m of msgs) c.send(m);
    expect(await got).toEqual(msgs);
    c.close();
    await closeServer(s);
  });

  it('fails a decompression bomb (≈1 MB inflating to 1 GiB) with 1009 while another client keeps working, memory bounded', async () => {
    const s = await ourServer({ perMessageDeflate: true, maxPayload: 2 * MiB });
    echo(s);
    const other = new WS(`ws://${HOST}:${port(s)}`, { perMessageDeflate: true });
    await nextEvent(other, 'open');
    const unit = bombUnit();
    const copies = Math.floor((2 * MiB) / unit.length); // stay under maxPayload compressed
    const bomb = Buffer.concat(Array.from({ length: copies }, () => unit));
    expect(bomb.length).toBeLessThanOrEqual(2 * MiB);
    expect(copies * 64).toBeGreaterThanOrEqual(1024); // ≥ 1 GiB once inflated

    const c = await rawConnect(port(s), 'permessage-deflate');
    global.gc?.();
    const before = process.memoryUsage();
    let peak = before.rss;
    const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 5);
    const t0 = performance.now();
    c.socket.write(raw({ opcode: OP_BINARY, rsv: RSV1, payload: bomb, key: KEY }));
    expect(await closeCode(c)).toBe(1009);
    const elapsed = performance.now() - t0;
    clearInterval(sampler);
    // Inflating all of it would take seconds and a GiB; we stop after maxPayload.
    expect(elapsed).toBeLessThan(1500);
    expect(peak - before.rss).toBeLessThan(128 * MiB);
    await c.ended;

    // The other connection is untouched.
    await exchange(other, 'other client after the bomb');
    other.close();
    await closeServer(s);
  });

  it('fails a client receiving a bomb from a server with 1009', async () => {
    const srv = http.createServer();
    srv.on('upgrade', (req, socket) => {
      const key = req.headers['sec-websocket-key'] as string;
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n`);
      socket.write(raw({ opcode: OP_BINARY, rsv: RSV1, payload: bombUnit() }));
      socket.on('error', () => {});
      socket.on('data', () => socket.end()); // the client's close frame: finish the TCP side
    });
    await new Promise<void>((r) => srv.listen(0, HOST, r));
    const c = new WebSocket(`ws://${HOST}:${port(srv)}`, { maxPayload: 1 * MiB });
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    const [code] = await nextEvent<[number]>(c, 'close');
    expect(code).toBe(1009);
    expect((errors[0] as ProtocolError).kind).toBe('too_big');
    srv.closeAllConnections();
    srv.close();
  });

  it('fails a corrupt deflate stream with 1007', async () => {
    const s = await ourServer({ perMessageDeflate: true });
    const c = await rawConnect(port(s), 'permessage-deflate');
    c.socket.write(raw({ opcode: OP_TEXT, rsv: RSV1, payload: Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]), key: KEY }));
    expect(await closeCode(c)).toBe(1007);
    c.socket.destroy();
    await closeServer(s);
  });

  it('fails with 1007 when a compressed text message inflates to invalid UTF-8', async () => {
    const s = await ourServer({ perMessageDeflate: true });
    const c = await rawConnect(port(s), 'permessage-deflate');
    c.socket.write(raw({ opcode: OP_TEXT, rsv: RSV1, payload: deflate(Buffer.from([0x61, 0xc3, 0x28])), key: KEY }));
    expect(await closeCode(c)).toBe(1007);
    c.socket.destroy();
    await closeServer(s);
  });

  it('a raw client flushing with BFINAL blocks (RFC 7692 §7.2.3.4) between ordinary messages: every message arrives', async () => {
    const s = await ourServer({ perMessageDeflate: true });
    const got: string[] = [];
    s.on('connection', (ws) => ws.on('message', (d) => got.push(d.toString())));
    const c = await rawConnect(port(s), 'permessage-deflate');
    const bfinal = Buffer.from([0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]);
    const flushed = Buffer.from([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    const big = text(40_000, 3); // the thread-pool path
    for (const p of [bfinal, flushed, bfinal, flushed, Buffer.concat([zlib.deflateRawSync(Buffer.from(big)), Buffer.from([0])]), flushed]) {
      c.socket.write(raw({ opcode: OP_TEXT, rsv: RSV1, payload: p, key: KEY }));
    }
    await until(() => got.length === 6, { timeout: 5000, what: 'six messages' });
    expect(got).toEqual(['Hello', 'Hello', 'Hello', 'Hello', big, 'Hello']);
    c.socket.destroy();
    await closeServer(s);
  });

  it('whole compressed messages read before a protocol violation are delivered, then the connection fails with 1002 (as ws)', async () => {
    const s = await ourServer({ perMessageDeflate: true });
    const got: string[] = [];
    s.on('connection', (ws) => ws.on('message', (d) => got.push(d.toString())));
    const c = await rawConnect(port(s), 'permessage-deflate');
    const a = text(30_000, 1), b = text(30_000, 2); // large: inflated on the thread pool, the rest waits behind
    c.socket.write(Buffer.concat([
      raw({ opcode: OP_TEXT, rsv: RSV1, payload: deflate(Buffer.from(a)), key: KEY }),
      raw({ opcode: OP_TEXT, rsv: RSV1, payload: deflate(Buffer.from(b)), key: KEY }),
      raw({ opcode: OP_TEXT, payload: Buffer.from('small'), key: KEY }),
      raw({ opcode: 0x3, payload: Buffer.alloc(0), key: KEY }), // reserved opcode
      raw({ opcode: OP_TEXT, payload: Buffer.from('after the violation'), key: KEY }),
    ]));
    expect(await closeCode(c)).toBe(1002);
    expect(got).toEqual([a, b, 'small']);
    c.socket.destroy();
    await closeServer(s);
  });

  it('fails with 1002 on RSV1 when nothing was negotiated', async () => {
    const s = await ourServer({ perMessageDeflate: false });
    const c = await rawConnect(port(s), 'permessage-deflate');
    expect(c.headers).not.toMatch(/Sec-WebSocket-Extensions/i);
    c.socket.write(raw({ opcode: OP_TEXT, rsv: RSV1, payload: deflate(Buffer.from('hello')), key: KEY }));
    expect(await closeCode(c)).toBe(1002);
    c.socket.destroy();
    await closeServer(s);
  });

  it('fails with 1002 on RSV1 on a continuation frame even when negotiated', async () => {
    const s = await ourServer({ perMessageDeflate: true });
    const c = await rawConnect(port(s), 'permessage-deflate');
    const z = deflate(Buffer.from(text(100)));
    c.socket.write(raw({ opcode: OP_TEXT, rsv: RSV1, fin: false, payload: z.subarray(0, 10), key: KEY }));
    c.socket.write(raw({ opcode: OP_CONT, rsv: RSV1, payload: z.subarray(10), key: KEY }));
    expect(await closeCode(c)).toBe(1002);
    c.socket.destroy();
    await closeServer(s);
  });

  it('keeps compressed and small uncompressed messages in send order, then closes after them', async () => {
    // our client → ws server, and our server → ws client
    const theirs = await wsServer({ perMessageDeflate: true });
    const received: string[] = [];
    const closed = new Promise<number>((resolve) => theirs.on('connection', (ws) => {
      ws.on('message', (d) => received.push(d.toString().slice(0, 12)));
      ws.on('close', (code) => resolve(code));
    }));
    const c = new WebSocket(`ws://${HOST}:${port(theirs)}`);
    await nextEvent(c, 'open');
    const expected: string[] = [];
    for (let i = 0; i < 200; i++) {
      const m = i % 3 === 0 ? `big ${String(i).padStart(4, '0')}   ` + text(4000 + i, i) : `small ${i}`;
      expected.push(m.slice(0, 12));
      c.send(m);
      if (i % 10 === 0) c.ping();
    }
    c.close(1000);
    expect(await Promise.race([closed, sleep(5000).then(() => 'timeout')])).toBe(1000);
    expect(received).toEqual(expected);
    await closeServer(theirs);

    const ours = await ourServer({ perMessageDeflate: true });
    ours.on('connection', (ws) => {
      for (let i = 0; i < 200; i++) ws.send(i % 3 === 0 ? `big ${String(i).padStart(4, '0')}   ` + text(4000 + i, i) : `small ${i}`);
      ws.close(1000);
    });
    const w = new WS(`ws://${HOST}:${port(ours)}`, { perMessageDeflate: true });
    const got: string[] = [];
    w.on('message', (d) => got.push(d.toString().slice(0, 12)));
    const [code] = await nextEvent<[number]>(w, 'close');
    expect(code).toBe(1000);
    expect(got).toEqual(expected);
    await closeServer(ours);
  });
});

// ── broadcast ─────────────────────────────────────────────────────────────────────────────

describe('broadcast', () => {
  it('compresses once per window size when server_no_context_takeover is on', async () => {
    const s = await ourServer({ perMessageDeflate: { serverNoContextTakeover: true } });
    const clients = [
      ...Array.from({ length: 4 }, () => new WS(`ws://${HOST}:${port(s)}`, { perMessageDeflate: true })),
      ...Array.from({ length: 3 }, () => new WS(`ws://${HOST}:${port(s)}`, { perMessageDeflate: { serverMaxWindowBits: 10 } })),
      new WS(`ws://${HOST}:${port(s)}`, { perMessageDeflate: false }),
    ];
    await Promise.all(clients.map((c) => nextEvent(c, 'open')));
    await until(() => s.clients.size === clients.length);
    const shared = vi.spyOn(PerMessageDeflate.prototype, 'compressShared');
    const own = vi.spyOn(PerMessageDeflate.prototype, 'compress');
    const msgs = [text(5000, 1), 'short', text(8000, 2)];
    const got = Promise.all(clients.map((c) => collect(c, msgs.length)));
    for (const m of msgs) expect(s.broadcast(m)).toBe(clients.length);
    const all = await got;
    for (const g of all) expect(g).toEqual(msgs);
    expect(shared).toHaveBeenCalledTimes(2 * 2); // two big messages × two window sizes
    expect(own).not.toHaveBeenCalled();
    shared.mockRestore();
    own.mockRestore();
    for (const c of clients) c.close();
    await closeServer(s);
  });

  it('compresses per connection with context takeover, in order with other sends', async () => {
    const s = await ourServer({ perMessageDeflate: true });
    const clients = Array.from({ length: 3 }, () => new WS(`ws://${HOST}:${port(s)}`, { perMessageDeflate: true }));
    await Promise.all(clients.map((c) => nextEvent(c, 'open')));
    await until(() => s.clients.size === clients.length);
    const own = vi.spyOn(PerMessageDeflate.prototype, 'compress');
    const ownSync = vi.spyOn(PerMessageDeflate.prototype, 'compressSync');
    const msgs = [text(5000, 1), 'tiny', text(5000, 1), 'tiny2'];
    const got = Promise.all(clients.map((c) => collect(c, msgs.length + 1)));
    for (const m of msgs) s.broadcast(m);
    for (const ws of s.clients) ws.send('direct');
    for (const g of await got) expect(g).toEqual([...msgs, 'direct']);
    // Each connection compresses each big message once with its own context (small ones on the spot).
    // (compressSync answers undefined when the message must go through compress(), e.g. with
    // WASMWS_INTERNALS=off: only the compressions that happened count.)
    const onTheSpot = ownSync.mock.calls.filter((c, i) => (c[0] as Buffer).length >= 1024 && ownSync.mock.results[i].value !== undefined);
    expect(own.mock.calls.length + onTheSpot.length).toBe(2 * 3);
    own.mockRestore();
    ownSync.mockRestore();
    for (const c of clients) c.close();
    await closeServer(s);
  });
});

describe('closing while a message inflates or deflates', () => {
  it('our client still delivers a large compressed message when the server closes TCP right after it', async () => {
    const s = await ourServer({ perMessageDeflate: true });
    const big = randomBytes(512 * 1024).toString('hex'); // compresses, but not below the on-the-spot limit
    s.on('connection', (ws: any) => ws.on('message', (d: Buffer) => { if (String(d) === 'go') ws.send(big); }));
    const c = new WebSocket(`ws://${HOST}:${port(s)}`);
    await nextEvent(c, 'open');
    const got: string[] = [];
    c.on('message', (d: Buffer) => got.push(d.toString()));
    const closed = new Promise<number>((r) => c.on('close', (code: number) => r(code)));
    c.send('go');
    c.close(1000, 'bye');
    expect(await closed).toBe(1000);
    expect(got).toEqual([big]);
    await closeServer(s);
  });

  it('a server close() while its close reply waits behind a compression still sends both', async () => {
    const s = await ourServer({ perMessageDeflate: true });
    const big = randomBytes(1024 * 1024).toString('hex');
    s.on('connection', (ws: any) => ws.on('message', (d: Buffer) => {
      if (String(d) !== 'go') return;
      ws.send(big);
      setImmediate(() => ws.close(1001, 'shutdown'));
    }));
    const c = new WS(`ws://${HOST}:${port(s)}`, { perMessageDeflate: true });
    await nextEvent(c, 'open');
    let msgs = 0;
    c.on('message', () => msgs++);
    const closed = new Promise<number>((r) => c.on('close', (code: number) => r(code)));
    c.send('go');
    c.close(1000, 'bye');
    expect(await closed).toBe(1000);
    expect(msgs).toBe(1);
    await closeServer(s);
  });
});

// ── resources ─────────────────────────────────────────────────────────────────────────────

describe('resources', () => {
  it('frees zlib contexts on close and leaves no limiter slot taken', async () => {
    const s = await ourServer({ perMessageDeflate: { threshold: 0 } });
    echo(s);
    const release = vi.spyOn(PerMessageDeflate.prototype, 'release');
    const clients = Array.from({ length: 5 }, () => new WS(`ws://${HOST}:${port(s)}`, { perMessageDeflate: true }));
    await Promise.all(clients.map((c) => nextEvent(c, 'open')));
    await Promise.all(clients.map((c) => exchange(c, 'pre-close')));
    // Close some mid-flight: a big message is being inflated when the socket goes away.
    for (const c of clients.slice(0, 2)) {
      c.send(text(2 * MiB, 4));
      c.terminate();
    }
    for (const c of clients.slice(2)) c.close();
    await until(() => s.clients.size === 0);
    expect(release).toHaveBeenCalledTimes(5);
    await until(() => sharedLimiter().active === 0 && sharedLimiter().pending === 0);
    release.mockRestore();
    await closeServer(s);
  });
});
