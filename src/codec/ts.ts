// The pure-TypeScript twin of assembly/index.ts: same functions, same table, same statuses.
//
// XOR kernels (which one runs for which length is measured per runtime by bench/codec-table.mjs
// and read from src/codec/table.ts):
//   xorBytes  4 bytes per step, no typed-array view: fastest for short payloads
//   xor32     Int32Array words, 8 per step: the word kernel on JavaScriptCore (Bun), where BigInt allocates
//   xor64     BigUint64Array words, 8 per step: V8 compiles 64-bit BigInt XOR on a BigUint64Array to
//             machine ops, twice the bytes per step of xor32 (measured ~2× at 64 KiB on Node 20–26)
// Word views cost: `buf.buffer` and `buf.byteOffset` are runtime calls in V8 (~7–13 ns each on
// Node 20) and a new view costs 30–50 ns more. So the views of the last buffer's ArrayBuffer are
// cached, keyed by the buffer itself: the frames of one socket read (one chunk) all hit, and
// scanFrames binds the chunk once up front. A call on another buffer only takes a word kernel (and
// re-binds) from `bindMin` bytes, where that cost is paid back.
import type { Codec, CodecDescription, ScanResult } from './types.js';
import {
  MAX_SAFE_LENGTH, ROW_WORDS, SCAN_ERR_LENGTH_MSB, SCAN_ERR_TOO_BIG, SCAN_OK,
  SCAN_PARTIAL_HEADER, SCAN_PARTIAL_PAYLOAD, TABLE_CAPACITY,
} from './layout.js';
import { TS_KERNEL } from './select.js';
import { Buffer } from 'node:buffer';

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const HAS_BIG64 = typeof BigUint64Array === 'function' && typeof BigInt === 'function';
/** Lengths from which xor32 runs on the bound buffer (below: xorBytes). Word kernels need little-endian. */
const WORD32_MIN = LITTLE_ENDIAN ? Math.max(8, TS_KERNEL.word32Min) : Infinity;
/** Lengths from which xor64 runs; Infinity where it never wins (or BigInt64 arrays are missing). */
const WORD64_MIN = LITTLE_ENDIAN && HAS_BIG64 && TS_KERNEL.word64Min !== null ? Math.max(16, TS_KERNEL.word64Min) : Infinity;
/** Lengths from which a call on a buffer other than the bound one binds it and takes a word kernel. */
const BIND_MIN = Math.max(WORD32_MIN, TS_KERNEL.bindMin ?? 512);
/** scanFrames binds regions of at least this many bytes (their payloads then all take the cheap path). */
const SCAN_BIND_MIN = 256;
/** Views over ArrayBuffers up to this size are cached; a larger one gets a view of the region (not kept alive). */
const VIEW_CACHE_MAX = 1 << 20;
const TWO_32 = 0x100000000;

/** Rotate the LE key so that byte i of a region uses byte (i & 3) when the region starts at `phase`. */
export function rotateKey(key: number, phase: number): number {
  const s = (phase & 3) << 3;
  return s === 0 ? key | 0 : ((key >>> s) | (key << (32 - s))) | 0;
}

/** XOR buf[i, end) with the (rotated) key k, 4 bytes per step. */
export function xorBytes(buf: Uint8Array, i: number, end: number, k: number): void {
  const k0 = k & 0xff, k1 = (k >>> 8) & 0xff, k2 = (k >>> 16) & 0xff, k3 = (k >>> 24) & 0xff;
  for (const e4 = end - 3; i < e4; i += 4) {
    buf[i] ^= k0;
    buf[i + 1] ^= k1;
    buf[i + 2] ^= k2;
    buf[i + 3] ^= k3;
  }
  if (i < end) {
    buf[i] ^= k0;
    if (++i < end) {
      buf[i] ^= k1;
      if (++i < end) buf[i] ^= k2;
    }
  }
}

// The bound buffer: its byteOffset and word views of its ArrayBuffer (created on first use).
let boundBuf: Uint8Array | null = null;
let boundBase = 0;
let boundAb: ArrayBufferLike | null = null;
let view32: Int32Array | null = null;
let view64: BigUint64Array | null = null;
// The 64-bit key of the last xor64 call (one frame's chunks, and the bufferutil drop-in's repeated
// calls, share it).
let lastKey = 0;
let lastKey64 = 0n;

/** w[j, we) ^= k, 8 words per step. */
function words32(w: Int32Array, j: number, we: number, k: number): void {
  for (const e8 = we - 7; j < e8; j += 8) {
    w[j] ^= k;
    w[j + 1] ^= k;
    w[j + 2] ^= k;
    w[j + 3] ^= k;
    w[j + 4] ^= k;
    w[j + 5] ^= k;
    w[j + 6] ^= k;
    w[j + 7] ^= k;
  }
  for (; j < we; j++) w[j] ^= k;
}

/** w[j, we) ^= kk, 8 words (64 bytes) per step. */
function words64(w: BigUint64Array, j: number, we: number, kk: bigint): void {
  for (const e8 = we - 7; j < e8; j += 8) {
    w[j] ^= kk;
    w[j + 1] ^= kk;
    w[j + 2] ^= kk;
    w[j + 3] ^= kk;
    w[j + 4] ^= kk;
    w[j + 5] ^= kk;
    w[j + 6] ^= kk;
    w[j + 7] ^= kk;
  }
  for (; j < we; j++) w[j] ^= kk;
}

/** Make `buf` the bound buffer; false if its ArrayBuffer is too large to keep alive in a cache. */
export function bind(buf: Uint8Array): boolean {
  const ab = buf.buffer;
  if (ab !== boundAb) {
    if (ab.byteLength > VIEW_CACHE_MAX) return false;
    boundAb = ab;
    view32 = null;
    view64 = null;
  }
  boundBuf = buf;
  boundBase = buf.byteOffset;
  return true;
}

/** XOR buf[s, e) with key k using Int32Array words (little-endian only); any alignment, any length. */
export function xor32(buf: Uint8Array, s: number, e: number, k: number): void {
  let base: number;
  if (buf === boundBuf || bind(buf)) base = boundBase;
  else return xorFresh32(buf, s, e, k);
  const lead = -(base + s) & 3;
  if (e - s < lead + 4) return xorBytes(buf, s, e, k);
  if (lead !== 0) {
    xorBytes(buf, s, s + lead, k);
    s += lead;
    k = (k >>> (lead << 3)) | (k << (32 - (lead << 3)));
  }
  let j = (base + s) >>> 2;
  const we = j + ((e - s) >>> 2);
  let w = view32;
  if (w === null || we > w.length) {
    const ab = boundAb!;
    w = view32 = new Int32Array(ab, 0, ab.byteLength >>> 2);
  }
  words32(w, j, we, k);
  const done = (we << 2) - base;
  if (done < e) xorBytes(buf, done, e, k);
}

/** xor32 through a view of the region only (buffers whose ArrayBuffer is not cached). */
function xorFresh32(buf: Uint8Array, s: number, e: number, k: number): void {
  const base = buf.byteOffset;
  const lead = -(base + s) & 3;
  if (e - s < lead + 4) return xorBytes(buf, s, e, k);
  if (lead !== 0) {
    xorBytes(buf, s, s + lead, k);
    s += lead;
    k = (k >>> (lead << 3)) | (k << (32 - (lead << 3)));
  }
  const words = (e - s) >>> 2;
  words32(new Int32Array(buf.buffer, base + s, words), 0, words, k);
  const done = s + (words << 2);
  if (done < e) xorBytes(buf, done, e, k);
}

/** xor64 through a view of the region only (buffers whose ArrayBuffer is not cached). */
function xorFresh64(buf: Uint8Array, s: number, e: number, k: number): void {
  const base = buf.byteOffset;
  const lead = -(base + s) & 7;
  if (e - s < lead + 8) return xorBytes(buf, s, e, k);
  if (lead !== 0) {
    xorBytes(buf, s, s + lead, k);
    s += lead;
    const r = (lead & 3) << 3;
    if (r !== 0) k = (k >>> r) | (k << (32 - r));
  }
  const words = (e - s) >>> 3;
  words64(new BigUint64Array(buf.buffer, base + s, words), 0, words, key64(k));
  const done = s + (words << 3);
  if (done < e) xorBytes(buf, done, e, k);
}

/** The 64-bit BigInt of a 32-bit key repeated twice (the last one is cached). */
function key64(k: number): bigint {
  k |= 0;
  if (k === lastKey) return lastKey64;
  const u = BigInt(k >>> 0);
  lastKey = k;
  return (lastKey64 = (u << 32n) | u);
}

/** XOR buf[s, e) with key k using BigUint64Array words (little-endian only); any alignment, any length. */
export function xor64(buf: Uint8Array, s: number, e: number, k: number): void {
  let base: number;
  if (buf === boundBuf || bind(buf)) base = boundBase;
  else return xorFresh64(buf, s, e, k);
  const lead = -(base + s) & 7;
  if (e - s < lead + 8) return xorBytes(buf, s, e, k);
  if (lead !== 0) {
    xorBytes(buf, s, s + lead, k);
    s += lead;
    const r = (lead & 3) << 3;
    if (r !== 0) k = (k >>> r) | (k << (32 - r));
  }
  const kk = key64(k);
  let j = (base + s) >>> 3;
  const we = j + ((e - s) >>> 3);
  let w = view64;
  if (w === null || we > w.length) {
    const ab = boundAb!;
    w = view64 = new BigUint64Array(ab, 0, ab.byteLength >>> 3);
  }
  words64(w, j, we, kk);
  const done = (we << 3) - base;
  if (done < e) xorBytes(buf, done, e, k);
}

/**
 * Give the word kernels type feedback before their first real call. A first call on a big payload
 * runs the loop in the interpreter without feedback, gets compiled on the stack and then
 * deoptimizes at every path it had not seen yet, over and over (measured on Node 20: up to ~1,800
 * deopts and about half the speed for the first seconds). A few calls on a small buffer cover every
 * path of xorBytes, xor32 and xor64; the buffer is not kept bound.
 */
function warmUp(): void {
  if (!LITTLE_ENDIAN) return;
  const b = new Uint8Array(320);
  for (let i = 0; i < 24; i++) {
    const s = i & 7, e = s + 200 + ((i * 5) & 15);
    xorBytes(b, s, s + (i & 7), i);
    xor32(b, s, e, i);
    if (WORD64_MIN !== Infinity) xor64(b, s, e, i);
  }
  boundBuf = null;
  boundAb = null;
  view32 = null;
  view64 = null;
  lastKey = 0;
  lastKey64 = 0n;
}
warmUp();

/** XOR buf[start, end) in place with `key`, starting at mask byte `phase`. */
export function unmask(buf: Uint8Array, start: number, end: number, key: number, phase: number): void {
  const k = rotateKey(key, phase);
  const n = end - start;
  if (n < WORD32_MIN || (n < BIND_MIN && buf !== boundBuf)) xorBytes(buf, start, end, k);
  else if (n < WORD64_MIN) xor32(buf, start, end, k);
  else xor64(buf, start, end, k);
}

/** output[offset + i] = source[i] ^ mask byte (i & 3), for i < length. */
export function mask(source: Uint8Array, key: number, output: Uint8Array, offset: number, length: number): void {
  if (length >= WORD32_MIN) {
    output.set(length === source.length ? source : source.subarray(0, length), offset);
    unmask(output, offset, offset + length, key, 0);
    return;
  }
  const k0 = key & 0xff, k1 = (key >>> 8) & 0xff, k2 = (key >>> 16) & 0xff, k3 = key >>> 24;
  let i = 0;
  for (const n = length & ~3; i < n; i += 4) {
    output[offset + i] = source[i] ^ k0;
    output[offset + i + 1] = source[i + 1] ^ k1;
    output[offset + i + 2] = source[i + 2] ^ k2;
    output[offset + i + 3] = source[i + 3] ^ k3;
  }
  for (; i < length; i++) output[offset + i] = source[i] ^ ((key >>> ((i & 3) << 3)) & 0xff);
}

/** The TS twin's kernel thresholds on this runtime. */
export function tsKernelRanges(): CodecDescription['tsKernel'] {
  const f = (n: number) => (n === Infinity ? null : n);
  return { int32From: f(WORD32_MIN), bigint64From: f(WORD64_MIN), otherBufferFrom: f(BIND_MIN) };
}

/** Read the masking key at p as a little-endian u32, like the wasm `load<u32>`. */
function readKey(b: Uint8Array, p: number): number {
  return (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
}

/** In-place unmask of one payload: `unmask` for the TS twin, a native one for NativeCodec. */
export type PayloadUnmask = (buf: Uint8Array, start: number, end: number, key: number, phase: number) => void;

/** TS implementation of the Codec: scans and unmasks the caller's chunk in place. */
export class TsCodec implements Codec {
  readonly backend = 'ts' as const;
  private readonly result: ScanResult = {
    count: 0, consumed: 0, status: SCAN_OK, partialLength: 0,
    table: new Uint32Array(TABLE_CAPACITY * ROW_WORDS), data: Buffer.alloc(0), dataOffset: 0, prefixOffset: 0,
  };

  unmask(buf: Uint8Array, start: number, end: number, key: number, phase: number): void {
    unmask(buf, start, end, key, phase);
  }

  mask(source: Uint8Array, key: number, output: Uint8Array, offset: number, length: number): void {
    mask(source, key, output, offset, length);
  }

  scan(chunk: Buffer, start: number, end: number, maxPayload: number, prefix: number, key: number, phase: number): ScanResult {
    const r = this.result;
    if (prefix > 0 && key !== 0) unmask(chunk, start, start + prefix, key, phase);
    r.data = chunk;
    r.prefixOffset = start;
    r.dataOffset = start + prefix;
    scanFrames(chunk, start + prefix, end, TABLE_CAPACITY, maxPayload, r);
    r.consumed += prefix;
    return r;
  }

  describe(): CodecDescription {
    const all = [{ from: 0, backend: 'ts' as const }];
    return { backend: this.backend, runtime: '', table: null, unmask: all, mask: all, scan: all, scanWasmFromRead: null, tsKernel: tsKernelRanges(), native: false, nativeSource: null, wasm: false };
  }
}

/**
 * Walk every frame in buf[ptr, end), unmasking payloads in place and writing one table row per
 * complete frame (offsets relative to ptr). Twin of `scanFrames` in assembly/index.ts. Payloads of
 * `bigMin` bytes or more go to `big` (a native unmask); the TS twin passes Infinity.
 *
 * The one frame-header decoder in TypeScript: FrameParser decodes a header split across reads with
 * it too (one row, capacity 1). The decoding stays inline here rather than in helper functions: V8
 * inlines at most ~920 bytes of bytecode into one function, the unmask chain takes ~810 of them, and
 * header helpers would push the 64-bit word loop out (measured: 10–20% slower TS scans).
 */
export function scanFrames(
  buf: Uint8Array, ptr: number, end: number, capacity: number, maxPayload: number, r: ScanResult,
  bigMin = Infinity, big: PayloadUnmask = unmask,
): number {
  const table = r.table;
  const len = end - ptr;
  let pos = 0;
  let count = 0;
  let status = SCAN_OK;
  let row = 0;
  if (len >= SCAN_BIND_MIN && buf !== boundBuf) bind(buf);
  while (pos < len) {
    if (count >= capacity) break;
    const avail = len - pos;
    if (avail < 2) { status = SCAN_PARTIAL_HEADER; break; }
    const h = ptr + pos;
    const b0 = buf[h];
    const b1 = buf[h + 1];
    const len7 = b1 & 0x7f;
    const masked = b1 >> 7;
    let hlen = 2 + (masked << 2);
    if (len7 === 126) hlen += 2;
    else if (len7 === 127) hlen += 8;
    if (avail < hlen) { status = SCAN_PARTIAL_HEADER; break; }
    let plen = len7;
    let keyAt = h + 2;
    if (len7 === 126) {
      plen = (buf[h + 2] << 8) | buf[h + 3];
      keyAt = h + 4;
    } else if (len7 === 127) {
      const hi = ((buf[h + 2] << 24) | (buf[h + 3] << 16) | (buf[h + 4] << 8) | buf[h + 5]) >>> 0;
      const lo = ((buf[h + 6] << 24) | (buf[h + 7] << 16) | (buf[h + 8] << 8) | buf[h + 9]) >>> 0;
      keyAt = h + 10;
      // RFC 6455 §5.2: "the most significant bit MUST be 0".
      if (hi >>> 31) { status = SCAN_ERR_LENGTH_MSB; break; }
      if (hi > 0x1fffff) { status = SCAN_ERR_TOO_BIG; break; }
      plen = hi * TWO_32 + lo;
    }
    if (plen > maxPayload || plen > MAX_SAFE_LENGTH) { status = SCAN_ERR_TOO_BIG; break; }
    const key = masked ? readKey(buf, keyAt) : 0;
    const off = pos + hlen;
    const have = avail - hlen;
    // Row fields as literals named in comments (imported bindings cost ~5% per frame here; a test
    // checks each literal against src/codec/layout.ts).
    table[row /* ROW_BITS */] = b0 | (b1 << 8);
    table[row + 1 /* ROW_OFFSET */] = off;
    table[row + 3 /* ROW_KEY */] = key;
    if (plen > have) {
      if (masked && key !== 0) {
        if (have >= bigMin) big(buf, ptr + off, ptr + off + have, key, 0);
        else unmask(buf, ptr + off, ptr + off + have, key, 0);
      }
      table[row + 2 /* ROW_LENGTH */] = have;
      r.partialLength = plen;
      pos = len;
      status = SCAN_PARTIAL_PAYLOAD;
      break;
    }
    if (masked && key !== 0) {
      if (plen >= bigMin) big(buf, ptr + off, ptr + off + plen, key, 0);
      else unmask(buf, ptr + off, ptr + off + plen, key, 0);
    }
    table[row + 2 /* ROW_LENGTH */] = plen;
    row += ROW_WORDS;
    count++;
    pos = off + plen;
  }
  r.count = count;
  r.consumed = pos;
  r.status = status;
  return count;
}
