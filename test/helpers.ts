// Test helpers: an independent frame builder (not our encoder), a seeded PRNG, the backends, the
// waits every suite uses (until, poll, waitUpTo, within, nextEvent, sleep: each bounded in time,
// each polling loop in count too), hand-driven peers, and the built package for subprocess tests.
import { createCodec, type Codec } from '../src/codec/index.js';
import { rng, TEST_KEY, upgradeRequest } from './fixtures.mjs';

export { rng, TEST_KEY, upgradeRequest };
import { WasmCodec } from '../src/codec/wasm.js';
import { HAS_NATIVE, NativeCodec } from '../src/codec/native.js';

/**
 * Every backend: wasm and TS everywhere, the runtime's native unmask where it has one (Node ≥ 26;
 * test/codec-native.test.ts says so where it is absent), and `auto` as createCodec() builds it.
 * wasm and native with their small-size fallback disabled, so they run every case.
 */
export const BACKENDS: [string, Codec][] = [
  ['wasm', new WasmCodec({ maskMin: 0, scanMin: 0 })],
  ['ts', createCodec({ backend: 'ts' })],
  ...(HAS_NATIVE ? [['native', new NativeCodec({ min: 0 })] as [string, Codec]] : []),
  ['auto', createCodec({ backend: 'auto' })],
];

/**
 * The most one payload handed out may pin: 64 KiB (a `ws` payload pins the read it came in, and
 * Node's reads are up to 64 KiB), or Node's own buffer pool where small copies come from, if that is
 * larger (Node 26: `Buffer.poolSize` 64 KiB, its pool an ArrayBuffer of 64 KiB + 64 B).
 */
export const PIN_BOUND = Math.max(64 * 1024, Buffer.allocUnsafe(1).buffer.byteLength);

export interface RawFrame {
  fin?: boolean;
  rsv?: number; // 3 bits: rsv1 = 4, rsv2 = 2, rsv3 = 1
  opcode: number;
  payload?: Uint8Array;
  key?: number[] | null; // masking key bytes; null/undefined = unmasked
  /** Force a length form: 7, 16 or 64 (default: shortest). */
  form?: 7 | 16 | 64;
  /** Declare this length instead of payload.length (for header-only tests). */
  declared?: bigint;
}

/** Build a frame byte by byte from RFC 6455 §5.2, independently of src/frame.ts. */
export function raw(f: RawFrame): Buffer {
  const payload = Buffer.from(f.payload ?? []);
  const len = f.declared ?? BigInt(payload.length);
  const form = f.form ?? (len <= 125n ? 7 : len <= 0xffffn ? 16 : 64);
  const bytes: number[] = [((f.fin ?? true) ? 0x80 : 0) | ((f.rsv ?? 0) << 4) | f.opcode];
  const m = f.key ? 0x80 : 0;
  if (form === 7) bytes.push(m | Number(len));
  else if (form === 16) bytes.push(m | 126, Number(len >> 8n) & 0xff, Number(len) & 0xff);
  else {
    bytes.push(m | 127);
    for (let i = 7; i >= 0; i--) bytes.push(Number((len >> BigInt(i * 8)) & 0xffn));
  }
  if (f.key) bytes.push(...f.key);
  const body = Buffer.from(payload);
  if (f.key) for (let i = 0; i < body.length; i++) body[i] ^= f.key[i & 3];
  return Buffer.concat([Buffer.from(bytes), body]);
}


export function randomBytes(next: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (next() * 256) | 0;
  return b;
}

/** Split `buf` at the given cut points into fresh copies (the parser may unmask in place). */
export function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...cuts].sort((a, b) => a - b).concat(buf.length)) {
    out.push(Buffer.from(buf.subarray(prev, c)));
    prev = c;
  }
  return out;
}

// ── socket helpers ──────────────────────────────────────────────────────────────────────────
import * as net from 'node:net';
import * as http from 'node:http';
import { WebSocketServer, type ServerOptions } from '../src/node/server.js';
import type { WebSocket } from '../src/node/websocket.js';
import { FrameParser, type Frame } from '../src/protocol/parser.js';

/** Start a server on 127.0.0.1 with a free port. */
export async function startServer(opts: Partial<ServerOptions> = {}): Promise<{ wss: WebSocketServer; port: number; url: string }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', ...opts } as ServerOptions);
  await nextEvent(wss, 'listening');
  const port = (wss.address() as net.AddressInfo).port;
  return { wss, port, url: `ws://127.0.0.1:${port}` };
}

/** Close a server, bounded in time. */
export function stopServer(wss: WebSocketServer, ms = 5000): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    wss.close(() => {
      clearTimeout(t);
      resolve();
    });
  });
}


// ── waiting ─────────────────────────────────────────────────────────────────────────────────
// Every wait of the suites goes through these: each is bounded in time, and each polling loop in
// its number of checks too (at most twice the checks that fit in the time, a guard against a clock
// that does not move). On timeout they reject with what they waited for.

export interface WaitOptions {
  /** Give up after this many ms (default 5000). */
  timeout?: number;
  /** Polling period in ms (until: 5, poll: 20). */
  interval?: number;
  /** What is awaited, for the timeout message. */
  what?: string;
}

function waitOptions(opts: WaitOptions | undefined, interval: number): Required<WaitOptions> {
  // Tests are not type-checked when they run: refuse the old `(pred, ms)` form loudly.
  if (opts !== undefined && (typeof opts !== 'object' || opts === null)) throw new TypeError('wait options must be an object: { timeout, interval, what }');
  const o: Required<WaitOptions> = { timeout: 5000, interval, what: 'a condition' };
  for (const [k, v] of Object.entries(opts ?? {})) if (v !== undefined) (o as Record<string, unknown>)[k] = v;
  if (!(o.timeout > 0) || !(o.interval > 0)) throw new RangeError('timeout and interval must be positive');
  return o;
}

function timedOut(o: Required<WaitOptions>, detail = ''): Error {
  return new Error(`timed out after ${o.timeout} ms waiting for ${o.what}${detail}`);
}

/** Resolve after `ms` (a pause, not a wait for something: prefer until / nextEvent). */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll the synchronous `pred` until it holds; rejects after `timeout`. */
export async function until(pred: () => boolean, opts?: WaitOptions): Promise<void> {
  const o = waitOptions(opts, 5);
  const end = Date.now() + o.timeout;
  const maxChecks = 2 * Math.ceil(o.timeout / o.interval) + 2;
  for (let i = 0; i < maxChecks; i++) {
    if (pred()) return;
    if (Date.now() >= end) break;
    await sleep(o.interval);
  }
  throw timedOut(o);
}

/** Like until, but resolves to whether `pred` came to hold within `timeout` instead of rejecting. */
export async function waitUpTo(pred: () => boolean, opts?: WaitOptions): Promise<boolean> {
  try {
    await until(pred, opts);
    return true;
  } catch {
    return pred();
  }
}

/**
 * Call the (async) `probe` until it returns a truthy value, and resolve to that value; a probe that
 * throws counts as "not yet". Rejects after `timeout` (with the last value or error seen).
 */
export async function poll<T>(probe: () => T | Promise<T>, opts?: WaitOptions): Promise<NonNullable<T>> {
  const o = waitOptions(opts, 20);
  const end = Date.now() + o.timeout;
  const maxChecks = 2 * Math.ceil(o.timeout / o.interval) + 2;
  let last: unknown;
  for (let i = 0; i < maxChecks; i++) {
    try {
      const v = await probe();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= end) break;
    await sleep(o.interval);
  }
  throw timedOut(o, ` (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

/** Settle as `p` does, or reject after `timeout`. */
export function within<T>(p: Promise<T>, opts?: WaitOptions): Promise<T> {
  const o = waitOptions(opts, 1);
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    t = setTimeout(() => reject(timedOut(o)), o.timeout);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

interface Emitter {
  once(event: string, listener: (...args: any[]) => void): unknown;
  removeListener(event: string, listener: (...args: any[]) => void): unknown;
}

/**
 * The arguments of the next `event` of `emitter`; rejects after `timeout`. Unlike events.once it
 * does not reject on 'error' (several tests wait for 'close' after one).
 */
export function nextEvent<T = any[]>(emitter: Emitter, event: string, opts?: WaitOptions): Promise<T> {
  const o = waitOptions({ what: `'${event}'`, ...opts }, 1);
  return new Promise((resolve, reject) => {
    const listener = (...args: unknown[]) => {
      clearTimeout(t);
      resolve(args as T);
    };
    const t = setTimeout(() => {
      emitter.removeListener(event, listener);
      reject(timedOut(o));
    }, o.timeout);
    emitter.once(event, listener);
  });
}

/**
 * Something tests wait on: `until(pred)` has the contract of the function until (resolves once
 * `pred` holds, rejects after `timeout`), but re-checks `pred` each time the subclass calls
 * `wake()` (an event arrived) instead of polling.
 */
export class Waitable {
  private waiters: (() => void)[] = [];
  /** Default timeout of `until`, in ms. */
  protected waitMs = 5000;

  protected wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  until(pred: () => boolean, opts?: WaitOptions): Promise<void> {
    const o = waitOptions({ timeout: this.waitMs, ...opts }, 1);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(timedOut(o));
      }, o.timeout);
      const check = () => {
        if (pred()) {
          clearTimeout(t);
          resolve();
        } else this.waiters.push(check);
      };
      check();
    });
  }
}

// ── peers ───────────────────────────────────────────────────────────────────────────────────

export interface RawClientOptions {
  /** Let the frame parser accept RSV1 on data frames (the test negotiated permessage-deflate). */
  allowRsv1?: boolean;
}

/** A hand-driven client: raw TCP, our own handshake bytes, frames parsed as a client would. */
export class RawClient extends Waitable {
  socket!: net.Socket;
  frames: Frame[] = [];
  response = '';
  closed = false;
  private readonly parser: FrameParser;

  private constructor(opts: RawClientOptions) {
    super();
    this.parser = new FrameParser({ role: 'client', maxPayload: 1 << 30, allowRsv1: opts.allowRsv1 === true });
  }

  static async connect(port: number, request?: string, opts: RawClientOptions = {}): Promise<RawClient> {
    const c = new RawClient(opts);
    c.socket = net.connect(port, '127.0.0.1');
    c.socket.on('error', () => {});
    await nextEvent(c.socket, 'connect');
    let head = Buffer.alloc(0);
    let upgraded = false;
    c.socket.on('data', (chunk: Buffer) => {
      if (!upgraded) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        c.response = head.subarray(0, end).toString('latin1');
        upgraded = true;
        chunk = head.subarray(end + 4);
        c.wake();
      }
      try {
        c.frames.push(...c.parser.push(chunk));
      } catch {
        // a malformed server frame: tests look at frames
      }
      c.wake();
    });
    c.socket.on('close', () => {
      c.closed = true;
      c.wake();
    });
    c.socket.write(request ?? upgradeRequest('/'));
    await c.until(() => c.response !== '' || c.closed, { what: 'the handshake response' });
    return c;
  }

  /** The close frame the server sent, as [code, reason]. */
  closeFrame(): [number, string] | undefined {
    const f = this.frames.find((x) => x.opcode === 8);
    if (!f) return undefined;
    return f.payload.length >= 2 ? [f.payload.readUInt16BE(0), f.payload.subarray(2).toString()] : [1005, ''];
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }
}

/**
 * A WebSocketServer whose upgrades the test routes itself (an http.Server, `noServer` and
 * handleUpgrade), for tests that need the server side's TCP socket: `socketOf(ws)` is the socket
 * node:http handed to the 'upgrade' listener and the test handed to handleUpgrade, not anything
 * read from the connection. 'connection' is emitted as with `port`.
 */
export async function startRoutedServer(opts: Partial<ServerOptions> = {}): Promise<{
  wss: WebSocketServer; http: http.Server; port: number; url: string; socketOf(ws: WebSocket): net.Socket; close(): Promise<void>;
}> {
  const wss = new WebSocketServer({ ...opts, noServer: true } as ServerOptions);
  const server = http.createServer((_req, res) => res.writeHead(426).end());
  const sockets = new WeakMap<WebSocket, net.Socket>();
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.set(ws, socket);
      wss.emit('connection', ws, req);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    wss, http: server, port, url: `ws://127.0.0.1:${port}`,
    socketOf(ws) {
      const s = sockets.get(ws);
      if (!s) throw new Error('not a connection of this server');
      return s;
    },
    async close() {
      for (const ws of wss.clients) ws.terminate();
      await stopServer(wss);
      server.closeAllConnections();
      await within(new Promise<void>((r) => server.close(() => r())), { timeout: 5000, what: 'the http server to close' }).catch(() => {});
    },
  };
}

// ── the built package, for tests that run it as a subprocess ─────────────────────────────────

import { existsSync, readdirSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname as pathDirname, join as pathJoin } from 'node:path';
import { fileURLToPath as toPath } from 'node:url';

const ROOT = pathJoin(pathDirname(toPath(import.meta.url)), '..');

/**
 * The environment for a `wasmws` subprocess: this process's, without HOST and PORT (the CLI reads
 * them), so that it binds 127.0.0.1 whatever the machine's environment says; `extra` added.
 */
export function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.HOST;
  delete env.PORT;
  return { ...env, ...extra };
}

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = pathJoin(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Build dist/ when `entry` is missing or older than src/ (`npm test` builds first; this covers ad-hoc runs). */
export function ensureDist(entry: string): void {
  if (existsSync(entry) && statSync(entry).mtimeMs >= newest(pathJoin(ROOT, 'src'))) return;
  const r = spawnSync(process.execPath, [pathJoin(ROOT, 'scripts', 'build-ts.mjs')], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  // tsc emits even when a type error elsewhere fails the run; callers need only dist/esm.
  if (!existsSync(entry)) throw new Error(`build failed:\n${r.stdout}\n${r.stderr}`);
}
