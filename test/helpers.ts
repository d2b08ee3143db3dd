// Test helpers: an independent frame builder (not our encoder), a seeded PRNG, and the backends.
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
import { once } from 'node:events';
import { WebSocketServer, type ServerOptions } from '../src/node/server.js';
import { FrameParser, type Frame } from '../src/protocol/parser.js';

/** Start a server on 127.0.0.1 with a free port. */
export async function startServer(opts: Partial<ServerOptions> = {}): Promise<{ wss: WebSocketServer; port: number; url: string }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', ...opts } as ServerOptions);
  await once(wss, 'listening');
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


/** A hand-driven client: raw TCP, our own handshake bytes, frames parsed as a client would. */
/** Something tests wait on: `until(pred)` re-checks `pred` each time the subclass calls `wake()`. */
export class Waitable {
  private waiters: (() => void)[] = [];
  /** Default bound of `until`, in ms. */
  protected waitMs = 5000;

  protected wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Wait until `pred` holds (re-checked on every event), at most `ms`. */
  until(pred: () => boolean, ms = this.waitMs): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('timed out waiting')), ms);
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

export class RawClient extends Waitable {
  socket!: net.Socket;
  frames: Frame[] = [];
  response = '';
  closed = false;
  private parser = new FrameParser({ role: 'client', maxPayload: 1 << 30 });

  static async connect(port: number, request?: string): Promise<RawClient> {
    const c = new RawClient();
    c.socket = net.connect(port, '127.0.0.1');
    c.socket.on('error', () => {});
    await once(c.socket, 'connect');
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
    await c.until(() => c.response !== '' || c.closed);
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


/** Resolve when `emitter` emits `event`, or reject after `ms`. */
export function eventually<T = unknown[]>(emitter: NodeJS.EventEmitter, event: string, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${event}`)), ms);
    emitter.once(event, (...args: unknown[]) => {
      clearTimeout(t);
      resolve(args as T);
    });
  });
}

// ── the built package, for tests that run it as a subprocess ─────────────────────────────────
import { existsSync, readdirSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname as pathDirname, join as pathJoin } from 'node:path';
import { fileURLToPath as toPath } from 'node:url';

const ROOT = pathJoin(pathDirname(toPath(import.meta.url)), '..');

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
