// Autobahn "fuzzingserver" mode, client side: Autobahn plays the server and tests the client. The
// cases of test/conformance.test.ts (crossbario/autobahn-testsuite case/caseX_Y.py) are mirrored here
// against our client (`new WebSocket(url)`), which runs the standard Autobahn client driver's logic:
// echo every message with its type until closed.
//
// The fake fuzzingserver is raw node:net plus the pure handshake helpers of src/handshake.ts; its
// frames are built by test/helpers.ts raw() (unmasked, as a server's must be, §5.1) and the client's
// frames are decoded by an independent reader below. A case passes with Autobahn's "OK" verdict:
//  - the client's frames (messages reassembled, pongs) up to its close frame equal expected[OK];
//  - every client frame is masked (§5.3); nothing follows the client's close frame (§5.5.1);
//  - closedByMe (the server closes): the client echoes the server's code (§5.5.1);
//  - !closedByMe: the client fails the connection itself within 1 s with a code in closeCode.
// The server then closes TCP first (§7.1.1) and the client must report 'close'.
//
// The end: scripts/autobahn-client.mjs (the built package) run as a subprocess against a tiny fake
// fuzzingserver (getCaseCount / runCase / updateReports).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import * as zlib from 'node:zlib';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { WebSocket } from '../src/index.js';
import type { ClientOptions } from '../src/node/client.js';
import { buildAcceptResponse, buildErrorResponse, validateUpgrade } from '../src/handshake/upgrade.js';
import { Waitable, ensureDist, raw, rng, within } from './helpers.js';
import { B, RESERVED_OPCODE_CASES, INVALID_PAYLOAD, NORMAL, PROTOCOL_ERROR, U, closePayload, eventsOf, frame, msg, pong, sleep, tick, type Ev } from './autobahn.js';

// ── plumbing ──────────────────────────────────────────────────────────────────────────────

const MiB = 1024 * 1024;


const closeFrame = (code?: number, reason: Buffer | string = Buffer.alloc(0)): Buffer => frame(8, closePayload(code, reason));

/** A frame as the client sent it, decoded independently of src/parser.ts. */
interface CFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

/** RFC 6455 §5.2, byte by byte: accumulates chunks, returns whole frames, unmasked. */
class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  error = '';
  push(chunk: Buffer): CFrame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: CFrame[] = [];
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      const len7 = b[1] & 0x7f;
      const masked = (b[1] & 0x80) !== 0;
      let off = 2;
      let len: number;
      if (len7 === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len7 === 127) {
        if (b.length < 10) break;
        const big = b.readBigUInt64BE(2);
        if (big > BigInt(1 << 30)) {
          this.error = `frame length ${big}`;
          break;
        }
        len = Number(big);
        off = 10;
      } else len = len7;
      const keyAt = off;
      if (masked) off += 4;
      if (b.length < off + len) break;
      const payload = Buffer.from(b.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= b[keyAt + (i & 3)];
      out.push({ fin: (b[0] & 0x80) !== 0, rsv: (b[0] >> 4) & 7, opcode: b[0] & 0x0f, masked, payload });
      this.buf = b.subarray(off + len);
    }
    return out;
  }
}

/** The server's end of one connection. */
class Peer extends Waitable {
  frames: CFrame[] = [];
  closed = false;
  private reader = new FrameReader();
  protected waitMs = 1000;
  constructor(readonly socket: net.Socket, readonly req: Req, head: Buffer) {
    super();
    socket.on('data', (c: Buffer) => this.data(c));
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    if (head.length) this.data(head);
  }
  private data(c: Buffer): void {
    this.frames.push(...this.reader.push(c));
    this.wake();
  }
  send(...bytes: Buffer[]): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(Buffer.concat(bytes));
  }
  /** Frames one TCP write each, with a turn of the event loop between (Autobahn sync=True). */
  async sendSync(...frames: Buffer[]): Promise<void> {
    for (const f of frames) {
      this.send(f);
      await tick();
    }
  }
  /** Bytes in chops of `size` octets, one write each (Autobahn chopsize). */
  async chop(bytes: Buffer, size: number): Promise<void> {
    for (let i = 0; i < bytes.length; i += size) {
      this.send(Buffer.from(bytes.subarray(i, i + size)));
      await tick();
    }
  }
  closeFrames(): CFrame[] {
    return this.frames.filter((f) => f.opcode === 8);
  }
}

interface Req {
  path: string;
  query: URLSearchParams;
  headers: Record<string, string>;
}
interface Route {
  /** The Sec-WebSocket-Extensions response to the client's offer (undefined: decline). */
  extensions?: (offer: string | undefined) => string | undefined;
  /** Bytes written in the same TCP write as the 101 response (the client gets them as `head`). */
  first?: Buffer;
  peer(p: Peer): void;
}

/** A fake fuzzingserver: raw TCP, the handshake answered with src/handshake.ts, frames by hand. */
class FakeServer {
  readonly server: net.Server;
  readonly sockets = new Set<net.Socket>();
  port = 0;
  constructor(route: (req: Req) => Route | undefined) {
    this.server = net.createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {});
      socket.setNoDelay(true);
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        const lines = head.subarray(0, end).toString('latin1').split('\r\n');
        const [method, url, version] = lines[0].split(' ');
        const headers: Record<string, string> = {};
        for (const l of lines.slice(1)) {
          const i = l.indexOf(':');
          const k = l.slice(0, i).trim().toLowerCase();
          headers[k] = headers[k] !== undefined ? `${headers[k]}, ${l.slice(i + 1).trim()}` : l.slice(i + 1).trim();
        }
        const u = new URL(url, 'http://127.0.0.1');
        const req: Req = { path: u.pathname, query: u.searchParams, headers };
        const v = validateUpgrade({ method, httpVersion: version.replace('HTTP/', ''), headers, url });
        const r = v.ok ? route(req) : undefined;
        if (!v.ok || !r) {
          socket.end(v.ok ? buildErrorResponse(404, 'Not found') : buildErrorResponse(v.status, v.message, v.headers));
          return;
        }
        const extensions = r.extensions?.(headers['sec-websocket-extensions']);
        const accept = Buffer.from(buildAcceptResponse({ key: v.key, extensions }), 'latin1');
        socket.write(r.first ? Buffer.concat([accept, r.first]) : accept);
        r.peer(new Peer(socket, req, head.subarray(end + 4)));
      };
      socket.on('data', onData);
    });
  }
  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Our client as the Autobahn client driver runs it: echo every message with its type. */
class EchoClient {
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  closeEvent: { code: number; reason: string } | undefined;
  errors: Error[] = [];
  constructor(url: string, opts: ClientOptions = {}, onMessage?: (ws: WebSocket, data: Buffer, isBinary: boolean) => void) {
    const ws = (this.ws = new WebSocket(url, { maxPayload: 64 * MiB, ...opts }));
    ws.on('error', (e: Error) => this.errors.push(e));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (onMessage) onMessage(ws, data, isBinary);
      else if (ws.readyState === WebSocket.OPEN) ws.send(data, { binary: isBinary });
    });
    this.opened = new Promise((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('close', () => reject(new Error('closed before open')));
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) =>
      ws.on('close', (code: number, reason: Buffer) => resolve((this.closeEvent = { code, reason: reason.toString() }))),
    );
  }
}

// ── Autobahn's view of the client's frames ────────────────────────────────────────────────

/** Messages reassembled, pings and pongs, up to the client's close. */
const clientEvents = (frames: CFrame[]): Ev[] => eventsOf(frames).evs;

interface Expectation {
  ok: Ev[];
  nonStrict?: Ev[];
  close: { byMe: boolean; codes: number[] };
  /** The case sends its own close frame (Autobahn's suppressClose). */
  suppressClose?: boolean;
  informational?: boolean;
}
const echoClean = (...ok: Ev[]): Expectation => ({ ok, close: { byMe: true, codes: [NORMAL] } });
const failWith = (code: number, ok: Ev[] = [], nonStrict?: Ev[]): Expectation => ({ ok, nonStrict, close: { byMe: false, codes: [code] } });

interface Ctx {
  peer: Peer;
  client: EchoClient;
  marks: Ev[];
  /** The client's connection is still open as Autobahn sees it: no close frame from it, TCP up. */
  open(): boolean;
}

let server: FakeServer;
const routes = new Map<string, Route>();
let seq = 0;

/** Connect our client to a fresh route; resolves with both ends once the client is open. */
async function connectCase(
  extensions?: Route['extensions'],
  opts: ClientOptions = {},
  onMessage?: (ws: WebSocket, data: Buffer, isBinary: boolean) => void,
  first?: Buffer,
): Promise<{ peer: Peer; client: EchoClient }> {
  const path = `/case/${++seq}`;
  const peerP = new Promise<Peer>((resolve) => routes.set(path, { extensions, first, peer: resolve }));
  const client = new EchoClient(`ws://127.0.0.1:${server.port}${path}`, opts, onMessage);
  const peer = await within(peerP, { timeout: 1000, what: 'client connection' });
  routes.delete(path);
  await within(client.opened, { timeout: 1000, what: 'client open' });
  return { peer, client };
}

/** The client's close frame payload → code (undefined when it sent none). */
const codeOf = (p: Buffer): number | undefined => (p.length >= 2 ? p.readUInt16BE(0) : undefined);

/** Run one case (Autobahn fuzzingserver) against a fresh client connection and assert its OK verdict. */
async function runCase(exp: Expectation, run: (t: Ctx) => Promise<void> | void, opts: { extensions?: Route['extensions'] } = {}): Promise<Ctx> {
  const { peer, client } = await connectCase(opts.extensions);
  const t: Ctx = { peer, client, marks: [], open: () => !peer.closed && peer.closeFrames().length === 0 };
  const got = () => [...t.marks, ...clientEvents(peer.frames)];
  const outcome = (): 'OK' | 'NON-STRICT' | 'FAILED' => {
    const g = JSON.stringify(got());
    if (g === JSON.stringify(exp.ok)) return 'OK';
    if (exp.nonStrict && g === JSON.stringify(exp.nonStrict)) return 'NON-STRICT';
    return 'FAILED';
  };
  let serverSentClose = false;
  let clientClosedFirst = false;
  try {
    await run(t);
    if (exp.close.byMe) {
      if (!exp.suppressClose) {
        // finishWhenDone: Autobahn closes as soon as the events match (else after its timer).
        await peer.until(() => outcome() === 'OK' || !t.open(), { timeout: 1500 }).catch(() => {});
        if (t.open()) peer.send(closeFrame(exp.close.codes[0]));
      }
      serverSentClose = true;
    }
    await peer.until(() => !t.open(), { timeout: 1000 }).catch(() => {});
    const first = peer.closeFrames()[0];
    if (first && !serverSentClose) {
      // The client failed the connection: Autobahn answers its close (echoing the code).
      clientClosedFirst = true;
      peer.send(closeFrame(codeOf(first.payload)));
    }
    // Let anything the client (wrongly) sends after its close arrive, then the server closes TCP first.
    await sleep(20);
    peer.socket.end();
    await within(client.closed, { timeout: 1000, what: "client 'close' event" });
  } finally {
    if (!peer.socket.destroyed) peer.socket.destroy();
    client.ws.terminate();
  }
  // Behaviour.
  const verdict = outcome();
  if (exp.informational) expect(['OK', 'NON-STRICT'], `events: ${JSON.stringify(got())}`).toContain(verdict);
  else expect({ verdict, received: got() }).toEqual({ verdict: 'OK', received: exp.ok });
  // Framing: masked (§5.3), exactly one close, nothing after it (§5.5.1).
  expect(peer.frames.filter((f) => !f.masked), 'every client frame must be masked').toEqual([]);
  const closes = peer.closeFrames();
  expect(closes.length, 'the client sends exactly one close frame').toBe(1);
  expect(peer.frames.indexOf(closes[0]), 'no frame after the client\'s close').toBe(peer.frames.length - 1);
  const payload = closes[0].payload;
  expect(payload.length, 'a close payload is empty or ≥ 2 bytes').not.toBe(1);
  expect(isUtf8(payload.subarray(2)), 'close reason is UTF-8').toBe(true);
  const code = codeOf(payload);
  if (code !== undefined) expect(exp.close.codes, `client close code ${code}`).toContain(code);
  if (!exp.close.byMe) {
    // !closedByMe: the client failed the connection by itself (within Autobahn's 1 s).
    expect(clientClosedFirst, 'the client must fail the connection itself').toBe(true);
    expect(client.closeEvent?.code).toBe(code);
  }
  return t;
}

const WAIT = 150; // Autobahn's 1 s "timeout A/B" pauses, shortened.

beforeAll(async () => {
  server = new FakeServer((req) => routes.get(req.path));
  await server.listen();
});
afterAll(async () => {
  await server.close();
});

// ── 1 Framing ─────────────────────────────────────────────────────────────────────────────

describe('1 framing (client echoes boundary sizes)', () => {
  const sizes: [string, number, number][] = [
    ['1', 0, 0], ['2', 125, 0], ['3', 126, 0], ['4', 127, 0], ['6', 65535, 0], ['7', 65536, 0], ['8', 65536, 997], ['x', MiB, 0],
  ];
  for (const [n, len, chop] of sizes) {
    const name = n === 'x' ? '9.1.3/9.2.3' : `1.1.${n}/1.2.${n}`;
    it(`${name.split('/')[0]} text ${len} bytes${chop ? ` in chops of ${chop}` : ''}`, async () => {
      const p = Buffer.alloc(len, '*');
      await runCase(echoClean(msg(p)), (t) => (chop ? t.peer.chop(frame(1, p), chop) : t.peer.send(frame(1, p))));
    });
    it(`${name.split('/')[1]} binary ${len} bytes${chop ? ` in chops of ${chop}` : ''}`, async () => {
      const p = Buffer.alloc(len, 0xfe);
      await runCase(echoClean(msg(p, true)), (t) => (chop ? t.peer.chop(frame(2, p), chop) : t.peer.send(frame(2, p))));
    });
  }
  it('1 MiB binary in 64 KiB fragments', async () => {
    const p = randomBytes(MiB);
    const fs: Buffer[] = [];
    for (let i = 0; i < p.length; i += 65536) fs.push(frame(i === 0 ? 2 : 0, p.subarray(i, i + 65536), { fin: i + 65536 >= p.length }));
    await runCase(echoClean(msg(p, true)), (t) => t.peer.send(...fs));
  });
  it('10.1.1-like: 65536-byte text in 1300-byte frames', async () => {
    const p = Buffer.alloc(65536, '*');
    const fs: Buffer[] = [];
    for (let i = 0; i < p.length; i += 1300) fs.push(frame(i === 0 ? 1 : 0, p.subarray(i, i + 1300), { fin: i + 1300 >= p.length }));
    await runCase(echoClean(msg(p)), (t) => t.peer.send(...fs));
  });
});

// ── 2 Pings/Pongs ─────────────────────────────────────────────────────────────────────────

describe('2 pings and pongs (client auto-pongs)', () => {
  it('2.1 ping without payload', () => runCase(echoClean(pong()), (t) => t.peer.send(frame(9))));
  it('2.2 ping with small text payload', () => runCase(echoClean(pong('Hello, world!')), (t) => t.peer.send(frame(9, 'Hello, world!'))));
  const bin = B([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]);
  it('2.3 ping with small binary payload', () => runCase(echoClean(pong(bin)), (t) => t.peer.send(frame(9, bin))));
  const p125 = Buffer.alloc(125, 0xfe);
  it('2.4 ping with 125-byte payload', () => runCase(echoClean(pong(p125)), (t) => t.peer.send(frame(9, p125))));
  it('2.5 ping with 126-byte payload → 1002', () => runCase(failWith(PROTOCOL_ERROR), (t) => t.peer.send(frame(9, Buffer.alloc(126, 0xfe)))));
  it('2.6 ping with 125-byte payload in octet-wise chops', () => runCase(echoClean(pong(p125)), (t) => t.peer.chop(frame(9, p125), 1)));
  it('2.7 unsolicited pong without payload', () => runCase(echoClean(), (t) => t.peer.send(frame(10))));
  it('2.8 unsolicited pong with payload', () => runCase(echoClean(), (t) => t.peer.send(frame(10, 'unsolicited pong payload'))));
  it('2.9 unsolicited pong, then ping', () =>
    runCase(echoClean(pong('ping payload')), (t) => t.peer.send(frame(10, 'unsolicited pong payload'), frame(9, 'ping payload'))));
  const ten = Array.from({ length: 10 }, (_, i) => `payload-${i}`);
  it('2.10 ten pings', () => runCase(echoClean(...ten.map((p) => pong(p))), (t) => t.peer.send(...ten.map((p) => frame(9, p)))));
  it('2.11 ten pings in octet-wise chops', () =>
    runCase(echoClean(...ten.map((p) => pong(p))), async (t) => {
      for (const p of ten) await t.peer.chop(frame(9, p), 1);
    }));
});

// ── 3 Reserved bits / 4 Opcodes / masked server frames ────────────────────────────────────

describe('3 reserved bits → 1002 (no extension negotiated)', () => {
  const hello = 'Hello, world!';
  it('3.1 text with RSV = 1', () => runCase(failWith(PROTOCOL_ERROR), (t) => t.peer.send(frame(1, hello, { rsv: 1 }))));
  it('3.2 text, text with RSV = 2, ping', () =>
    runCase(failWith(PROTOCOL_ERROR, [msg(hello)], []), (t) => t.peer.send(frame(1, hello), frame(1, hello, { rsv: 2 }), frame(9))));
  it('3.3 text, text with RSV = 3, ping (sync)', () =>
    runCase(failWith(PROTOCOL_ERROR, [msg(hello)], []), (t) => t.peer.sendSync(frame(1, hello), frame(1, hello, { rsv: 3 }), frame(9))));
  it('3.4 text, text with RSV = 4, ping (sync)', () =>
    runCase(failWith(PROTOCOL_ERROR, [msg(hello)], []), (t) => t.peer.sendSync(frame(1, hello), frame(1, hello, { rsv: 4 }), frame(9))));
  it('3.5 binary with RSV = 5', () => runCase(failWith(PROTOCOL_ERROR), (t) => t.peer.send(frame(2, B([0, 0xff, 0xfe]), { rsv: 5 }))));
  it('3.6 ping with RSV = 6', () => runCase(failWith(PROTOCOL_ERROR), (t) => t.peer.send(frame(9, hello, { rsv: 6 }))));
  it('3.7 close with RSV = 7', () => runCase(failWith(PROTOCOL_ERROR), (t) => t.peer.send(raw({ opcode: 8, rsv: 7 }))));
});

describe('4 reserved opcodes → 1002', () => {
  const hello = 'Hello, world!';
  for (const [name, op, around, withPayload] of RESERVED_OPCODE_CASES) {
    it(`${name} opcode ${op}${around ? ' after a text message, then ping' : ''}`, () => {
      const bad = frame(op, withPayload ? 'reserved opcode payload' : '');
      if (!around) return runCase(failWith(PROTOCOL_ERROR), (t) => t.peer.send(bad));
      return runCase(failWith(PROTOCOL_ERROR, [msg(hello)], []), (t) => t.peer.send(frame(1, hello), bad, frame(9)));
    });
  }
});

describe('frames in the same TCP segment as the 101 response', () => {
  it('text, binary, ping and a fragmented text right behind the handshake are all handled', async () => {
    const first = Buffer.concat([frame(1, 'early'), frame(2, B([1, 2, 3])), frame(9, 'p'), frame(1, 'frag', { fin: false }), frame(0, 'ment')]);
    const { peer, client } = await connectCase(undefined, {}, undefined, first);
    await peer.until(() => clientEvents(peer.frames).length >= 4);
    expect(clientEvents(peer.frames)).toEqual([msg('early'), msg(B([1, 2, 3]), true), pong('p'), msg('fragment')]);
    peer.send(closeFrame(NORMAL));
    await peer.until(() => peer.closeFrames().length > 0);
    peer.socket.end();
    expect((await within(client.closed, { timeout: 1000, what: 'close' })).code).toBe(NORMAL);
  });
  it('a masked frame right behind the handshake → 1002', async () => {
    const { peer, client } = await connectCase(undefined, {}, undefined, frame(1, 'x', { key: [1, 2, 3, 4] }));
    await peer.until(() => peer.closeFrames().length > 0);
    expect(peer.frames.map((f) => [f.opcode, codeOf(f.payload)])).toEqual([[8, PROTOCOL_ERROR]]);
    peer.socket.end();
    expect((await within(client.closed, { timeout: 1000, what: 'close' })).code).toBe(PROTOCOL_ERROR);
  });
});

describe('masked server frames → 1002 (§5.1)', () => {
  const key = [0x37, 0xfa, 0x21, 0x3d];
  it('a masked text frame', () => runCase(failWith(PROTOCOL_ERROR), (t) => t.peer.send(frame(1, 'Hello', { key }))));
  it('a masked ping after a good text (the text is echoed, no pong)', () =>
    runCase(failWith(PROTOCOL_ERROR, [msg('Hello')]), (t) => t.peer.send(frame(1, 'Hello'), frame(9, 'x', { key }))));
  it('a masked continuation inside a fragmented message', () =>
    runCase(failWith(PROTOCOL_ERROR), (t) => t.peer.send(frame(1, 'frag1', { fin: false }), frame(0, 'frag2', { key }))));
  it('a masked close frame', () => runCase(failWith(PROTOCOL_ERROR), (t) => t.peer.send(raw({ opcode: 8, payload: B([0x03, 0xe8]), key }))));
  it('a masked frame split octet-wise', () => runCase(failWith(PROTOCOL_ERROR), (t) => t.peer.chop(frame(2, Buffer.alloc(200, 1), { key }), 1)));
});

// ── 5 Fragmentation ───────────────────────────────────────────────────────────────────────

describe('5 fragmentation', () => {
  type Mode = 'one' | 'frames' | 'octets';
  async function sendAll(t: Ctx, frames: Buffer[], mode: Mode) {
    if (mode === 'one') t.peer.send(...frames);
    else if (mode === 'frames') await t.peer.sendSync(...frames);
    else for (const f of frames) await t.peer.chop(f, 1);
  }
  it('5.1 ping in 2 fragments', () =>
    runCase(failWith(PROTOCOL_ERROR), (t) => t.peer.send(frame(9, 'fragment1', { fin: false }), frame(0, 'fragment2'))));
  it('5.2 pong in 2 fragments', () =>
    runCase(failWith(PROTOCOL_ERROR), (t) => t.peer.send(frame(10, 'fragment1', { fin: false }), frame(0, 'fragment2'))));
  const modes: [string, Mode][] = [['', 'one'], [' (frame-wise chops)', 'frames'], [' (octet-wise chops)', 'octets']];
  modes.forEach(([label, mode], i) => {
    it(`5.${3 + i} text in 2 fragments${label}`, () =>
      runCase(echoClean(msg('fragment1fragment2')), (t) => sendAll(t, [frame(1, 'fragment1', { fin: false }), frame(0, 'fragment2')], mode)));
    it(`5.${6 + i} text in 2 fragments with a ping between${label}`, () =>
      runCase(echoClean(pong('pongme!'), msg('fragment1fragment2')), (t) =>
        sendAll(t, [frame(1, 'fragment1', { fin: false }), frame(9, 'pongme!'), frame(0, 'fragment2')], mode)));
    it(`5.${9 + i} continuation (FIN) with nothing to continue${label}`, () =>
      runCase(failWith(PROTOCOL_ERROR), (t) => sendAll(t, [frame(0, 'fragment1'), frame(1, 'fragment2', { fin: false }), frame(0, 'fragment3')], mode)));
    it(`5.${12 + i} continuation (no FIN) with nothing to continue${label}`, () =>
      runCase(failWith(PROTOCOL_ERROR), (t) =>
        sendAll(t, [frame(0, 'fragment1', { fin: false }), frame(1, 'fragment2', { fin: false }), frame(0, 'fragment3')], mode)));
  });
  it('5.15 text in 2 fragments, then a continuation with nothing to continue, then text', () =>
    runCase(failWith(PROTOCOL_ERROR, [msg('fragment1fragment2')], []), (t) =>
      t.peer.send(frame(1, 'fragment1', { fin: false }), frame(0, 'fragment2'), frame(0, 'fragment3', { fin: false }), frame(1, 'fragment4'))));
  it('5.18 text in 2 fragments, both with the text opcode', () =>
    runCase(failWith(PROTOCOL_ERROR), (t) => t.peer.send(frame(1, 'fragment1', { fin: false }), frame(1, 'fragment2'))));
  const frags = ['fragment1', 'fragment2', 'fragment3', 'fragment4', 'fragment5'];
  const pings = ['pongme 1!', 'pongme 2!'];
  for (const [name, sync] of [['5.19', false], ['5.20', true]] as const) {
    it(`${name} fragmented text with interleaved pings and a pause${sync ? ' (sync)' : ''}`, () =>
      runCase(echoClean(pong(pings[0]), pong(pings[1]), msg(frags.join(''))), async (t) => {
        const go = (...fs: Buffer[]) => (sync ? t.peer.sendSync(...fs) : t.peer.send(...fs));
        await go(frame(1, frags[0], { fin: false }), frame(0, frags[1], { fin: false }), frame(9, pings[0]));
        // The client answers the first ping before it has the last fragment.
        await t.peer.until(() => t.peer.frames.some((f) => f.opcode === 10), { timeout: 1000 });
        await sleep(50);
        await go(frame(0, frags[2], { fin: false }), frame(0, frags[3], { fin: false }), frame(9, pings[1]), frame(0, frags[4]));
      }));
  }
  it('fragmented binary with a ping between every fragment', () => {
    const parts = Array.from({ length: 8 }, (_, i) => Buffer.alloc(1000, i));
    const fs = parts.flatMap((p, i) => [frame(i === 0 ? 2 : 0, p, { fin: i === parts.length - 1 }), ...(i < parts.length - 1 ? [frame(9, `p${i}`)] : [])]);
    return runCase(echoClean(...parts.slice(0, -1).map((_, i) => pong(`p${i}`)), msg(Buffer.concat(parts), true)), (t) => t.peer.send(...fs));
  });
});

// ── 6 UTF-8 ───────────────────────────────────────────────────────────────────────────────

describe('6 UTF-8', () => {
  it('6.1.1 empty text message', () => runCase(echoClean(msg('')), (t) => t.peer.send(frame(1))));
  it('6.1.2 text message of 3 empty fragments', () =>
    runCase(echoClean(msg('')), (t) => t.peer.send(frame(1, '', { fin: false }), frame(0, '', { fin: false }), frame(0, ''))));
  it('6.1.3 empty, non-empty, empty fragments', () =>
    runCase(echoClean(msg('middle frame payload')), (t) =>
      t.peer.send(frame(1, '', { fin: false }), frame(0, 'middle frame payload', { fin: false }), frame(0, ''))));
  const hello = U('Hello-µ@ßöäüàá-UTF-8!!');
  it('6.2.1 valid UTF-8 in one fragment', () => runCase(echoClean(msg(hello)), (t) => t.peer.send(frame(1, hello))));
  it('6.2.2 valid UTF-8 in 2 fragments split on a code point boundary', () =>
    runCase(echoClean(msg(hello)), (t) => t.peer.send(frame(1, U('Hello-µ@ßöä'), { fin: false }), frame(0, U('üàá-UTF-8!!')))));
  const oneOctetFrames = (p: Buffer) => Array.from(p, (b, i) => frame(i === 0 ? 1 : 0, B([b]), { fin: i === p.length - 1 }));
  it('6.2.3 valid UTF-8 in 1-octet fragments', () => runCase(echoClean(msg(hello)), (t) => t.peer.send(...oneOctetFrames(hello))));
  const kosme = B('\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5');
  it('6.2.4 valid UTF-8 (κόσμε) in 1-octet fragments', () => runCase(echoClean(msg(kosme)), (t) => t.peer.send(...oneOctetFrames(kosme))));
  const bad = Buffer.concat([kosme, B('\xed\xa0\x80'), B('edited')]);
  it('6.3.1 invalid UTF-8 (surrogate) in one fragment → 1007', () => runCase(failWith(INVALID_PAYLOAD), (t) => t.peer.send(frame(1, bad))));
  it('6.3.2 invalid UTF-8 in 1-octet fragments → 1007', () => runCase(failWith(INVALID_PAYLOAD), (t) => t.peer.send(...oneOctetFrames(bad))));

  // 6.4.x fail fast: OK = [timeout A] (the client fails after part 2), NON-STRICT = [timeout A, timeout B].
  const P1 = kosme;
  const P2 = B('\xf4\x90\x80\x80');
  const P3 = B('edited');
  const PAYLOAD = Buffer.concat([P1, P2, P3]);
  async function threeParts(t: Ctx, parts: [Buffer, Buffer, Buffer]) {
    t.peer.send(parts[0]);
    await sleep(WAIT);
    if (!t.open()) return;
    t.marks.push('timeout A');
    t.peer.send(parts[1]);
    await sleep(WAIT);
    if (!t.open()) return;
    t.marks.push('timeout B');
    t.peer.send(parts[2]);
  }
  // Strict: the client must fail inside the fragmented message, not at its end.
  const failFast = failWith(INVALID_PAYLOAD, ['timeout A']);
  it('6.4.1 fail fast: 3 fragments, the 2nd makes the text invalid (0x110000)', () =>
    runCase(failFast, (t) => threeParts(t, [frame(1, P1, { fin: false }), frame(0, P2, { fin: false }), frame(0, P3)])));
  it('6.4.2 fail fast: 3 fragments, the 2nd is the single invalid octet', () =>
    runCase(failFast, (t) =>
      threeParts(t, [frame(1, PAYLOAD.subarray(0, 12), { fin: false }), frame(0, PAYLOAD.subarray(12, 13), { fin: false }), frame(0, PAYLOAD.subarray(13))])));
  const whole = frame(1, PAYLOAD);
  const hdr = whole.length - PAYLOAD.length;
  it('6.4.3 fail fast: one frame in 3 chops, the 2nd chop makes it invalid', () =>
    runCase(failFast, (t) => threeParts(t, [whole.subarray(0, hdr + 11), whole.subarray(hdr + 11, hdr + 15), whole.subarray(hdr + 15)])));
  it('6.4.4 fail fast: one frame in 3 chops, the 2nd chop is the single invalid octet', () =>
    runCase(failFast, (t) => threeParts(t, [whole.subarray(0, hdr + 12), whole.subarray(hdr + 12, hdr + 13), whole.subarray(hdr + 13)])));
  it('fail fast with a ping between fragments: pong for the 1st ping only, then 1007', () =>
    runCase(failWith(INVALID_PAYLOAD, [pong('a')]), (t) =>
      t.peer.sendSync(frame(1, P1, { fin: false }), frame(9, 'a'), frame(0, P2, { fin: false }), frame(9, 'b'), frame(0, P3))));

  // A selection of Markus Kuhn's decoder tests (6.5 – 6.23), one text frame each.
  const seqs: [string, boolean, string][] = [
    ['6.5.2', true, 'hello\xC2\xA2world'], ['6.5.4', true, 'hello\xF0\xA4\xAD\xA2world'],
    ['6.6.1', false, '\xce'], ['6.6.3', false, '\xce\xba\xe1'], ['6.6.4', false, '\xce\xba\xe1\xbd'],
    ['6.7.4', true, '\xf0\x90\x80\x80'], ['6.8.1', false, '\xf8\x88\x80\x80\x80'], ['6.9.4', true, '\xf4\x8f\xbf\xbf'],
    ['6.11.5', false, '\xf4\x90\x80\x80'], ['6.12.1', false, '\x80'], ['6.12.8', false, '\x80\xbf\x80\xbf\x80\xbf'],
    ['6.13.1', false, '\xc0 \xc1 \xc2 '], ['6.14.1', false, '\xc0'], ['6.14.8', false, '\xf7\xbf\xbf'],
    ['6.16.1', false, '\xfe'], ['6.16.3', false, '\xfe\xfe\xff\xff'], ['6.17.1', false, '\xc0\xaf'], ['6.17.3', false, '\xf0\x80\x80\xaf'],
    ['6.18.2', false, '\xe0\x9f\xbf'], ['6.19.1', false, '\xc0\x80'], ['6.20.1', false, '\xed\xa0\x80'], ['6.20.7', false, '\xed\xbf\xbf'],
    ['6.21.1', false, '\xed\xa0\x80\xed\xb0\x80'], ['6.22.1', true, '\xef\xbf\xbe'], ['6.22.34', true, '\xf4\x8f\xbf\xbf'], ['6.23.1', true, '\xef\xbf\xb9'],
  ];
  for (const [name, valid, s] of seqs) {
    const p = B(s);
    it(`${name} ${valid ? 'valid' : 'invalid → 1007'} ${p.toString('hex').slice(0, 40)}`, () =>
      runCase(valid ? echoClean(msg(p)) : failWith(INVALID_PAYLOAD), (t) => t.peer.send(frame(1, p))));
  }
});

// ── 7 Close handling ──────────────────────────────────────────────────────────────────────

describe('7 close handling (the server closes; the client echoes the code)', () => {
  const byMe = (codes: number[], ok: Ev[] = []): Expectation => ({ ok, close: { byMe: true, codes }, suppressClose: true });
  it('7.1.1 text message, then close', () =>
    runCase(byMe([NORMAL], [msg('Hello World!')]), (t) => t.peer.send(frame(1, 'Hello World!'), closeFrame(NORMAL))));
  it('7.1.2 two close frames', () => runCase(byMe([NORMAL]), (t) => t.peer.send(closeFrame(NORMAL), frame(8))));
  it('7.1.3 close, then ping (no pong)', () => runCase(byMe([NORMAL]), (t) => t.peer.send(closeFrame(NORMAL), frame(9))));
  it('7.1.4 close, then text (no echo)', () => runCase(byMe([NORMAL]), (t) => t.peer.send(closeFrame(NORMAL), frame(1, 'Hello World!'))));
  it('7.1.5 fragment, close, fragment', () =>
    runCase(byMe([NORMAL]), (t) => t.peer.send(frame(1, 'fragment1', { fin: false }), closeFrame(NORMAL), frame(0, 'fragment2'))));
  it('7.1.6 256 KiB text, small text, close, ping (informational)', () => {
    const big = Buffer.alloc(256 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = 'BAsd7&jh23'.charCodeAt(i % 10);
    return runCase({ ...byMe([NORMAL], [msg(big), msg('Hello World!')]), nonStrict: [], informational: true }, (t) =>
      t.peer.send(frame(1, big), frame(1, 'Hello World!'), closeFrame(NORMAL), frame(9)));
  });
  it('7.3.1 close with empty payload (echoed empty)', async () => {
    await runCase(byMe([NORMAL]), (t) => t.peer.send(frame(8)));
  });
  it('7.3.2 close with 1-byte payload → 1002', () => runCase(byMe([PROTOCOL_ERROR]), (t) => t.peer.send(frame(8, 'a'))));
  it('7.3.3 close with code 1000', () => runCase(byMe([NORMAL]), (t) => t.peer.send(closeFrame(NORMAL))));
  it('7.3.4 close with code and reason', () => runCase(byMe([NORMAL]), (t) => t.peer.send(closeFrame(NORMAL, 'Hello World!'))));
  it('7.3.5 close with code and 123-byte reason', () => runCase(byMe([NORMAL]), (t) => t.peer.send(closeFrame(NORMAL, '*'.repeat(123)))));
  it('7.3.6 close with code and 124-byte reason (126-byte payload) → 1002', () =>
    runCase(byMe([PROTOCOL_ERROR]), (t) => t.peer.send(closeFrame(NORMAL, '*'.repeat(124)))));
  it('7.5.1 close with invalid UTF-8 reason → 1002/1007', () =>
    runCase(byMe([PROTOCOL_ERROR, INVALID_PAYLOAD]), (t) =>
      t.peer.send(closeFrame(NORMAL, B('\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64')))));
  [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999].forEach((code, i) => {
    it(`7.7.${i + 1} close with valid code ${code} (echoed)`, async () => {
      const t = await runCase(byMe([NORMAL, code]), (t) => t.peer.send(closeFrame(code, 'bye')));
      expect(codeOf(t.peer.closeFrames()[0].payload), 'the client echoes the code').toBe(code);
      expect(t.client.closeEvent, "the client's 'close' event has the server's code").toEqual({ code, reason: 'bye' });
    });
  });
  [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535].forEach((code, i) => {
    it(`7.9.${i + 1}-like close with invalid code ${code} → 1002`, () => runCase(byMe([PROTOCOL_ERROR]), (t) => t.peer.send(closeFrame(code))));
  });
  it("the client's 'close' event reports the server's code and reason", async () => {
    const { peer, client } = await connectCase();
    peer.send(closeFrame(4001, 'going'));
    await peer.until(() => peer.closeFrames().length > 0);
    peer.socket.end();
    expect(await within(client.closed, { timeout: 1000, what: 'close' })).toEqual({ code: 4001, reason: 'going' });
    expect(codeOf(peer.closeFrames()[0].payload)).toBe(4001);
  });
  it('7.3.1: an empty close is answered with an empty close and reported as 1005', async () => {
    const { peer, client } = await connectCase();
    peer.send(frame(8));
    await peer.until(() => peer.closeFrames().length > 0);
    peer.socket.end();
    expect((await within(client.closed, { timeout: 1000, what: 'close' })).code).toBe(1005);
    expect(peer.closeFrames()[0].payload.length).toBe(0);
  });
});

// ── No data after the client's close ──────────────────────────────────────────────────────

describe('after sending its close the client sends no more data frames', () => {
  it('the application closes, then sends and pings: only the close goes out', async () => {
    const { peer, client } = await connectCase(undefined, {}, (ws) => {
      ws.close(NORMAL, 'done');
      ws.send('after close');
      ws.send(Buffer.from('after close'), { binary: true });
      expect(() => ws.ping('x')).not.toThrow();
    });
    peer.send(frame(1, 'trigger'));
    await peer.until(() => peer.closeFrames().length > 0);
    // The server keeps talking before it answers: nothing may be echoed, no pong.
    peer.send(frame(1, 'more'), frame(9, 'ping?'), frame(2, B([1, 2, 3])));
    await sleep(100);
    peer.send(closeFrame(NORMAL));
    peer.socket.end();
    await within(client.closed, { timeout: 1000, what: 'close' });
    expect(peer.frames.map((f) => f.opcode)).toEqual([8]);
    expect(codeOf(peer.frames[0].payload)).toBe(NORMAL);
    expect(client.closeEvent?.code).toBe(NORMAL);
  });
  it('after failing (1002) the client ignores later frames in later TCP segments', async () => {
    const { peer, client } = await connectCase();
    peer.send(frame(1, 'ok'), frame(1, 'x', { rsv: 2 }));
    await peer.until(() => peer.closeFrames().length > 0);
    peer.send(frame(1, 'late text'), frame(9, 'late ping'), frame(2, B([9])));
    await sleep(100);
    peer.send(closeFrame(PROTOCOL_ERROR));
    peer.socket.end();
    await within(client.closed, { timeout: 1000, what: 'close' });
    expect(clientEvents(peer.frames)).toEqual([msg('ok')]);
    expect(peer.frames.map((f) => f.opcode)).toEqual([1, 8]);
    expect(codeOf(peer.closeFrames()[0].payload)).toBe(PROTOCOL_ERROR);
  });
  it('a message in flight when the server closes is echoed before the close, nothing after', async () => {
    const big = randomBytes(MiB);
    const { peer, client } = await connectCase();
    peer.send(frame(2, big), closeFrame(NORMAL), frame(1, 'after close'), frame(9));
    await peer.until(() => peer.closeFrames().length > 0);
    await sleep(50);
    peer.socket.end();
    await within(client.closed, { timeout: 1000, what: 'close' });
    expect(clientEvents(peer.frames)).toEqual([msg(big, true)]);
    expect(peer.frames.at(-1)!.opcode).toBe(8);
  });
  it('the server drops TCP without a close: the client reports 1006 and sends nothing more', async () => {
    const { peer, client } = await connectCase();
    peer.send(frame(1, 'hi'));
    await peer.until(() => peer.frames.length > 0);
    peer.socket.destroy();
    expect((await within(client.closed, { timeout: 1000, what: 'close' })).code).toBe(1006);
  });
});

// ── 12 / 13 permessage-deflate (representative) ───────────────────────────────────────────

interface Negotiated {
  serverNoCtx: boolean;
  clientNoCtx: boolean;
  serverBits: number;
  clientBits: number;
}
function parseResponse(header: string): Negotiated {
  const n: Negotiated = { serverNoCtx: false, clientNoCtx: false, serverBits: 15, clientBits: 15 };
  for (const p of header.split(';').slice(1).map((s) => s.trim())) {
    const [k, v] = p.split('=');
    if (k === 'server_no_context_takeover') n.serverNoCtx = true;
    else if (k === 'client_no_context_takeover') n.clientNoCtx = true;
    else if (k === 'server_max_window_bits') n.serverBits = Number(v);
    else if (k === 'client_max_window_bits') n.clientBits = Number(v);
  }
  return n;
}

function zrun(z: zlib.DeflateRaw | zlib.InflateRaw, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const onData = (b: Buffer) => out.push(b);
    z.on('data', onData);
    z.once('error', reject);
    z.write(data);
    z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
      z.off('data', onData);
      z.off('error', reject);
      resolve(Buffer.concat(out));
    });
  });
}

/** Autobahn's side of 12.x / 13.x: compress, send, read the client's echo, inflate, compare. */
async function compressedEcho(response: string, messages: { data: Buffer; binary: boolean }[], fragSize: number): Promise<void> {
  let offered: string | undefined;
  const { peer, client } = await connectCase((offer) => {
    offered = offer;
    return response;
  });
  const n = parseResponse(response);
  let deflater: zlib.DeflateRaw | null = null;
  let inflater: zlib.InflateRaw | null = null;
  let next = 0;
  try {
    expect(offered, 'the client offers permessage-deflate by default').toMatch(/^permessage-deflate\b/);
    expect(client.ws.extensions).toBe('permessage-deflate'); // the names, as ws gives them
    for (const [i, m] of messages.entries()) {
      if (!deflater || n.serverNoCtx) {
        deflater?.close();
        deflater = zlib.createDeflateRaw({ windowBits: Math.max(9, n.serverBits) });
      }
      let payload = await zrun(deflater, m.data);
      if (payload.subarray(-4).equals(B([0, 0, 0xff, 0xff]))) payload = payload.subarray(0, -4);
      const op = m.binary ? 2 : 1;
      if (fragSize === 0 || payload.length <= fragSize) peer.send(frame(op, payload, { rsv: 4 }));
      else {
        const fs: Buffer[] = [];
        for (let o = 0; o < payload.length; o += fragSize) {
          fs.push(frame(o === 0 ? op : 0, payload.subarray(o, o + fragSize), { rsv: o === 0 ? 4 : 0, fin: o + fragSize >= payload.length }));
        }
        peer.send(...fs);
      }
      // The client's echo: the next whole message.
      let end = -1;
      await peer.until(() => {
        for (let j = next; j < peer.frames.length; j++) {
          if (peer.frames[j].opcode === 8) return true;
          if (peer.frames[j].opcode < 8 && peer.frames[j].fin) return (end = j) >= 0;
        }
        return peer.closed;
      }, { timeout: 1500 });
      const cf = peer.closeFrames()[0];
      expect(cf && codeOf(cf.payload), `message ${i}: the client closed`).toBeUndefined();
      expect(end, `message ${i}: echoed`).toBeGreaterThanOrEqual(0);
      const fs = peer.frames.slice(next, end + 1).filter((f) => f.opcode < 8);
      next = end + 1;
      expect(fs.every((f) => f.masked)).toBe(true);
      expect(fs[0].opcode, `message ${i}: type`).toBe(op);
      expect(fs.slice(1).every((f) => f.opcode === 0 && f.rsv === 0), 'continuations without RSV1').toBe(true);
      expect(fs[0].rsv & 3, 'RSV2/RSV3 clear').toBe(0);
      let data: Buffer = Buffer.concat(fs.map((f) => f.payload));
      if (fs[0].rsv & 4) {
        if (!inflater || n.clientNoCtx) {
          // A fresh inflater per message under client_no_context_takeover, and exactly the negotiated
          // window: a client that keeps its context or uses a larger window fails to inflate here.
          inflater?.close();
          inflater = zlib.createInflateRaw({ windowBits: n.clientBits });
        }
        data = await zrun(inflater, Buffer.concat([data, B([0, 0, 0xff, 0xff])]));
      }
      expect(data.length, `message ${i}: length`).toBe(m.data.length);
      expect(data.equals(m.data), `message ${i}: content`).toBe(true);
    }
    peer.send(closeFrame(NORMAL));
    await peer.until(() => peer.closeFrames().length > 0);
    peer.socket.end();
    await within(client.closed, { timeout: 1000, what: 'close' });
    expect(codeOf(peer.closeFrames()[0].payload)).toBe(NORMAL);
    expect(peer.frames.at(-1)!.opcode).toBe(8);
  } finally {
    deflater?.close();
    inflater?.close();
    client.ws.terminate();
  }
}

describe('12 / 13 permessage-deflate (representative)', () => {
  const r = rng(12);
  const words = ['Habe', 'nun', 'ach!', 'Philosophie', 'Juristerei', 'und', 'Medizin', 'heißem', 'Bemühn', 'Größe', 'Übel', '{"id":', '"name":', '},'];
  let text = '';
  while (text.length < 140_000) text += words[(r() * words.length) | 0] + (r() < 0.1 ? '\n' : ' ');
  const TEXT = U(text);
  const BIN = Buffer.from(Array.from({ length: 140_000 }, (_, i) => ((Math.sin(i / 64) * 100 + 128 + r() * 16) & 0xff)));
  const SIZES = [16, 64, 256, 1024, 4096, 16384, 65536, 131072];
  // Consecutive slices of the data, as Autobahn's sendOne does; 2 per size.
  const slice = (src: Buffer, at: number, len: number, binary: boolean) => {
    let d = src.subarray(at, at + len);
    // Text: whole code points only (trim to a boundary at both ends).
    if (!binary) while (d.length && !isUtf8(d)) d = (d[0] & 0xc0) === 0x80 ? d.subarray(1) : d.subarray(0, -1);
    return d;
  };
  const msgs = (src: Buffer, binary: boolean) => SIZES.flatMap((len) => [0, 1].map((k) => ({ data: slice(src, k * 97, len, binary), binary })));
  it('12.1-like: text messages 16 B – 128 KiB, context takeover', () => compressedEcho('permessage-deflate', msgs(TEXT, false), 0));
  it('12.2-like: binary messages 16 B – 128 KiB, auto-fragmented at 256 bytes', () => compressedEcho('permessage-deflate', msgs(BIN, true), 256));
  it('13.2-like: server_no_context_takeover', () => compressedEcho('permessage-deflate; server_no_context_takeover', msgs(TEXT, false), 1024));
  it('13.x-like: client_no_context_takeover (each echo inflates on its own)', () =>
    compressedEcho('permessage-deflate; client_no_context_takeover', msgs(TEXT, false), 0));
  it('13.3-like: client_max_window_bits=9 (the echo inflates with a 512-byte window)', () =>
    compressedEcho('permessage-deflate; client_max_window_bits=9', msgs(TEXT, false), 4096));
  it('13.6-like: both no_context_takeover, client_max_window_bits=9', () =>
    compressedEcho('permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=9', msgs(BIN, true), 0));
  const pmd = () => 'permessage-deflate';
  it('7.1.6-like with compression: a large compressed echo in flight, then the server closes', async () => {
    const { peer, client } = await connectCase(pmd);
    const big = TEXT.subarray(0, 100_000);
    expect(isUtf8(big)).toBe(true);
    const p = zlib.deflateRawSync(big, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
    peer.send(frame(1, p, { rsv: 4 }), frame(1, 'small'), closeFrame(NORMAL), frame(9), frame(1, 'after'));
    await peer.until(() => peer.closeFrames().length > 0);
    await sleep(50);
    peer.socket.end();
    expect((await within(client.closed, { timeout: 1000, what: 'close' })).code).toBe(NORMAL);
    // Whatever was echoed went before the close (the client may also drop the echoes: Autobahn's
    // 7.1.6 is informational); nothing after it, and the echoes inflate to what was sent.
    const last = peer.frames.at(-1)!;
    expect(last.opcode).toBe(8);
    expect(codeOf(last.payload)).toBe(NORMAL);
    const data = peer.frames.filter((f) => f.opcode === 1);
    expect(data.length).toBeLessThanOrEqual(2);
    if (data.length > 0) {
      const first = data[0].rsv & 4 ? zlib.inflateRawSync(Buffer.concat([data[0].payload, B([0, 0, 0xff, 0xff])]), { finishFlush: zlib.constants.Z_SYNC_FLUSH }) : data[0].payload;
      expect(first.equals(big)).toBe(true);
    }
    if (data.length > 1) expect(data[1].payload.toString()).toBe('small');
  });
  it('RSV1 on a continuation frame → 1002', () =>
    runCase(failWith(PROTOCOL_ERROR), (t) => {
      const p = zlib.deflateRawSync(U('Hello'), { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
      t.peer.send(frame(1, p.subarray(0, 2), { rsv: 4, fin: false }), frame(0, p.subarray(2), { rsv: 4 }));
    }, { extensions: pmd }));
  it('a compressed message that does not inflate → 1007', () =>
    runCase(failWith(INVALID_PAYLOAD), (t) => t.peer.send(frame(1, B([0xff, 0xff, 0xff, 0xff, 0x00]), { rsv: 4 })), { extensions: pmd }));
  it('compressed text that inflates to invalid UTF-8 → 1007', () =>
    runCase(failWith(INVALID_PAYLOAD), (t) => {
      const p = zlib.deflateRawSync(B('\xce\xba\xed\xa0\x80edited'), { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
      t.peer.send(frame(1, p, { rsv: 4 }));
    }, { extensions: pmd }));
});

// ── scripts/autobahn-client.mjs end to end ────────────────────────────────────────────────

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const script = join(root, 'scripts', 'autobahn-client.mjs');
const built = join(root, 'dist', 'esm', 'index.js');

function ensureBuilt(): void {
  ensureDist(built);
}

function runScript(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [script, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`script did not exit within 10 s\n${out}\n${err}`));
    }, 10_000);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, out, err });
    });
  });
}

describe('scripts/autobahn-client.mjs against a fake fuzzingserver', () => {
  const CASES = 3;
  const expected = (i: number) => [
    { data: U(`case ${i}: Hello, wörld!`), binary: false },
    { data: Buffer.from([i, 0x00, 0xff, 0xfe, 0x80]), binary: true },
    { data: U(`fragment-1/${i} fragment-2 fragment-3 κόσμε`), binary: false },
  ];
  let fuzz: FakeServer;
  let log: string[] = [];
  let echoes = new Map<number, { data: Buffer; binary: boolean }[]>();
  let offers: (string | undefined)[] = [];
  let hang = new Set<number>();

  /** Autobahn's close: send 1000, wait for the echo, drop TCP (bounded). */
  async function finish(p: Peer): Promise<void> {
    p.send(closeFrame(NORMAL));
    await p.until(() => p.closeFrames().length > 0 || p.closed, { timeout: 1500 }).catch(() => {});
    p.socket.end();
  }
  async function runCaseOn(p: Peer, i: number): Promise<void> {
    const [a, b, c] = expected(i);
    const third = c.data;
    p.send(frame(1, a.data), frame(2, b.data));
    p.send(frame(1, third.subarray(0, 10), { fin: false }), frame(9, 'ping'), frame(0, third.subarray(10, 22), { fin: false }), frame(0, third.subarray(22)));
    await p.until(() => clientEvents(p.frames).filter((e) => e.startsWith('message')).length >= 3 || p.closed, { timeout: 1500 }).catch(() => {});
    // Record the echoed messages, reassembled, with their types.
    const got: { data: Buffer; binary: boolean }[] = [];
    let parts: Buffer[] = [];
    let op = 0;
    for (const f of p.frames) {
      if (!f.masked) got.push({ data: B('unmasked'), binary: false });
      if (f.opcode === 1 || f.opcode === 2) (op = f.opcode), (parts = [f.payload]);
      else if (f.opcode === 0) parts.push(f.payload);
      else continue;
      if (f.fin) got.push({ data: Buffer.concat(parts), binary: op === 2 });
    }
    echoes.set(i, got);
    if (hang.has(i)) return; // never closes: the script's per-case timeout must end it
    await finish(p);
  }

  beforeAll(async () => {
    ensureBuilt();
    fuzz = new FakeServer((req) => {
      if (req.path === '/getCaseCount') {
        return {
          peer: (p) => {
            log.push('getCaseCount');
            p.send(frame(1, String(CASES)));
            void finish(p);
          },
        };
      }
      if (req.path === '/runCase') {
        const i = Number(req.query.get('case'));
        return {
          extensions: (offer) => {
            offers.push(offer);
            return undefined; // decline: frames stay plain so that the test reads them directly
          },
          peer: (p) => {
            log.push(`runCase ${i} ${req.query.get('agent')}`);
            void runCaseOn(p, i);
          },
        };
      }
      if (req.path === '/updateReports') {
        return {
          peer: (p) => {
            log.push(`updateReports ${req.query.get('agent')}`);
            void finish(p);
          },
        };
      }
      return undefined;
    });
    await fuzz.listen();
  }, 150_000);
  afterAll(async () => {
    await fuzz?.close();
  });
  const reset = () => {
    log = [];
    echoes = new Map();
    offers = [];
    hang = new Set();
  };

  it('runs every case, echoes text as text and binary as binary, updates the reports, exits 0', async () => {
    reset();
    const r = await runScript(['--url', `ws://127.0.0.1:${fuzz.port}`]);
    expect(r.err).toBe('');
    expect(r.code, r.out).toBe(0);
    expect(log).toEqual(['getCaseCount', 'runCase 1 wasmws', 'runCase 2 wasmws', 'runCase 3 wasmws', 'updateReports wasmws']);
    for (let i = 1; i <= CASES; i++) {
      const got = echoes.get(i)!;
      expect(got.map((m) => ({ data: m.data.toString('hex'), binary: m.binary })), `case ${i}`).toEqual(
        expected(i).map((m) => ({ data: m.data.toString('hex'), binary: m.binary })),
      );
    }
    expect(offers).toHaveLength(CASES);
    for (const o of offers) expect(o, 'permessage-deflate offered (cases 12.x / 13.x)').toMatch(/^permessage-deflate\b/);
    expect(r.out).toMatch(/3 cases/);
  });

  it('--cases and --agent select a subset', async () => {
    reset();
    const r = await runScript(['--url', `ws://127.0.0.1:${fuzz.port}/`, '--cases', '2-3,9', '--agent', 'my agent', '--quiet']);
    expect(r.code, r.out + r.err).toBe(0);
    expect(log).toEqual(['getCaseCount', 'runCase 2 my agent', 'runCase 3 my agent', 'updateReports my agent']);
    expect(echoes.get(2)).toHaveLength(3);
  });

  it('a case that never ends is cut off by --timeout; the run goes on and exits 1', async () => {
    reset();
    hang.add(2);
    const r = await runScript(['--url', `ws://127.0.0.1:${fuzz.port}`, '--timeout', '300']);
    expect(r.code).toBe(1);
    expect(log).toEqual(['getCaseCount', 'runCase 1 wasmws', 'runCase 2 wasmws', 'runCase 3 wasmws', 'updateReports wasmws']);
    expect(r.out).toMatch(/case 2: timed out after 300 ms/);
  });

  it('no fuzzingserver: exit 1 with a message; a bad flag: exit 2', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const r = await runScript(['--url', `ws://127.0.0.1:${port}`]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/no case count/);
    const u = await runScript(['--cases', 'all']);
    expect(u.code).toBe(2);
    expect(u.err).toMatch(/--cases/);
  });
});
