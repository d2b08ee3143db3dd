// Test helpers: an independent frame builder (not our encoder), a seeded PRNG, and the backends.
import { createCodec, type Codec } from '../src/codec/index.js';
import { WasmCodec } from '../src/codec/wasm.js';

/** Both backends; the wasm one with the small-size fallback disabled so wasm runs every case. */
export const BACKENDS: [string, Codec][] = [
  ['wasm', new WasmCodec({ maskMin: 0 })],
  ['ts', createCodec({ backend: 'ts' })],
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

/** Mulberry32: small, seeded, reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
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
