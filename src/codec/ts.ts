// The pure-TypeScript twin of assembly/index.ts: same functions, same table, same statuses.
import type { Codec, ScanResult } from './types.js';
import {
  MAX_SAFE_LENGTH, ROW_WORDS, SCAN_ERR_LENGTH_MSB, SCAN_ERR_TOO_BIG, SCAN_OK,
  SCAN_PARTIAL_HEADER, SCAN_PARTIAL_PAYLOAD, TABLE_CAPACITY,
} from './layout.js';

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** Below this many bytes a plain byte loop beats building an Int32Array view. */
const WORD_LOOP_MIN = 64;
const TWO_32 = 0x100000000;

/** Rotate the LE key so that byte i of a region uses byte (i & 3) when the region starts at `phase`. */
function rotateKey(key: number, phase: number): number {
  const s = (phase & 3) << 3;
  return s === 0 ? key | 0 : ((key >>> s) | (key << (32 - s))) | 0;
}

/** XOR buf[start, end) in place with `key`, starting at mask byte `phase`. */
export function unmask(buf: Uint8Array, start: number, end: number, key: number, phase: number): void {
  let k = rotateKey(key, phase);
  let i = start;
  if (end - start >= WORD_LOOP_MIN && LITTLE_ENDIAN) {
    // Bytes up to a 4-byte boundary of the underlying ArrayBuffer, then whole words.
    while (((buf.byteOffset + i) & 3) !== 0) {
      buf[i++] ^= k & 0xff;
      k = (k >>> 8) | (k << 24);
    }
    const words = (end - i) >>> 2;
    const w = new Int32Array(buf.buffer, buf.byteOffset + i, words);
    for (let j = 0; j < words; j++) w[j] ^= k;
    i += words << 2;
  }
  while (i < end) {
    buf[i++] ^= k & 0xff;
    k = (k >>> 8) | (k << 24);
  }
}

/** output[offset + i] = source[i] ^ mask byte (i & 3), for i < length. */
export function mask(source: Uint8Array, key: number, output: Uint8Array, offset: number, length: number): void {
  if (length >= WORD_LOOP_MIN) {
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

/** Read the masking key at p as a little-endian u32, like the wasm `load<u32>`. */
function readKey(b: Uint8Array, p: number): number {
  return (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
}

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
}

/**
 * Walk every frame in buf[ptr, end), unmasking payloads in place and writing one table row per
 * complete frame (offsets relative to ptr). Twin of `scanFrames` in assembly/index.ts.
 */
export function scanFrames(buf: Uint8Array, ptr: number, end: number, capacity: number, maxPayload: number, r: ScanResult): number {
  const table = r.table;
  const len = end - ptr;
  let pos = 0;
  let count = 0;
  let status = SCAN_OK;
  let row = 0;
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
    table[row] = b0 | (b1 << 8);
    table[row + 1] = off;
    table[row + 3] = key;
    if (plen > have) {
      if (masked && key !== 0) unmask(buf, ptr + off, ptr + off + have, key, 0);
      table[row + 2] = have;
      r.partialLength = plen;
      pos = len;
      status = SCAN_PARTIAL_PAYLOAD;
      break;
    }
    if (masked && key !== 0) unmask(buf, ptr + off, ptr + off + plen, key, 0);
    table[row + 2] = plen;
    row += ROW_WORDS;
    count++;
    pos = off + plen;
  }
  r.count = count;
  r.consumed = pos;
  r.status = status;
  return count;
}
