// wasmws hot path: XOR (un)masking and frame-header scanning (RFC 6455 §5.2, §5.3).
//
// Numbers in, numbers out: no strings, no allocation (runtime "stub"). The JS side owns the layout
// of linear memory; every function takes byte offsets into it.
//
// Memory layout (offsets in bytes, [fields] in u32 words; the same names and values are in
// src/codec/layout.ts, which the TS side reads the block and the table with):
//
//   0 ─────────── RESULT_PTR: RESULT block, 6 × u32 (on SCAN_ERR_*, `consumed` is the bad frame's offset)
//                   [RESULT_COUNT      0] complete frames written to the table
//                   [RESULT_CONSUMED   1] bytes of the region fully handled (complete frames + a
//                                         partial frame's header and available payload)
//                   [RESULT_STATUS     2] SCAN_* below
//                   [RESULT_PARTIAL_LO 3] for SCAN_PARTIAL_PAYLOAD: payload length, low 32 bits
//                   [RESULT_PARTIAL_HI 4]                           payload length, high 32 bits
//                   [RESULT_TOUCHED    5] 1 when some payload bytes were unmasked (JS must copy them back)
//  64 ─────────── TABLE_PTR: the frame table, capacity × ROW_WORDS × u32, one row per frame:
//                   [ROW_BITS   0] b0 | b1 << 8: the first two header bytes (FIN, RSV1-3, opcode | MASK, len7)
//                   [ROW_OFFSET 1] payload offset, relative to the scanned region's start
//                   [ROW_LENGTH 2] payload length (for the partial frame: the bytes available so far)
//                   [ROW_KEY    3] masking key as a little-endian u32 (0 when unmasked)
//   dataPtr ───── the chunk being scanned, placed there by JS

/** Scan finished the region exactly (or stopped at table capacity: consumed < length). */
export const SCAN_OK: u32 = 0;
/** The region ends inside a frame header: bytes from `consumed` on must be kept. */
export const SCAN_PARTIAL_HEADER: u32 = 1;
/** The region ends inside a payload: row `count` holds the header and the bytes available. */
export const SCAN_PARTIAL_PAYLOAD: u32 = 2;
/** A 64-bit length with its most significant bit set (RFC 6455 §5.2): close 1002. */
export const SCAN_ERR_LENGTH_MSB: u32 = 3;
/** A length above 2^53 − 1 or above maxPayload: close 1009. */
export const SCAN_ERR_TOO_BIG: u32 = 4;

const RESULT_PTR: usize = 0;
const RESULT_COUNT: usize = 0;
const RESULT_CONSUMED: usize = 1;
const RESULT_STATUS: usize = 2;
const RESULT_PARTIAL_LO: usize = 3;
const RESULT_PARTIAL_HI: usize = 4;
const RESULT_TOUCHED: usize = 5;
const TABLE_PTR: usize = 64;
const ROW_WORDS: usize = 4;
const ROW_BITS: usize = 0;
const ROW_OFFSET: usize = 1;
const ROW_LENGTH: usize = 2;
const ROW_KEY: usize = 3;

/** XOR `len` bytes at `ptr` in place with `key` (LE u32), starting at mask byte `phase` (0–3). */
export function unmask(ptr: usize, len: usize, key: u32, phase: u32): void {
  maskTo(ptr, ptr, len, key, phase);
}

/** XOR `len` bytes from `src` into `dst` (may be equal) with `key`, starting at mask byte `phase`. */
export function maskTo(src: usize, dst: usize, len: usize, key: u32, phase: u32): void {
  // Rotate so that byte i of the region uses byte (i & 3) of the rotated key.
  const k = rotr<u32>(key, (phase & 3) << 3);
  const kv = i32x4.splat(<i32>k);
  let i: usize = 0;
  const end64 = len & ~<usize>63;
  while (i < end64) {
    v128.store(dst + i, v128.xor(v128.load(src + i), kv));
    v128.store(dst + i + 16, v128.xor(v128.load(src + i + 16), kv));
    v128.store(dst + i + 32, v128.xor(v128.load(src + i + 32), kv));
    v128.store(dst + i + 48, v128.xor(v128.load(src + i + 48), kv));
    i += 64;
  }
  const end16 = len & ~<usize>15;
  while (i < end16) {
    v128.store(dst + i, v128.xor(v128.load(src + i), kv));
    i += 16;
  }
  const k64 = (<u64>k) | ((<u64>k) << 32);
  if (i + 8 <= len) {
    store<u64>(dst + i, load<u64>(src + i) ^ k64);
    i += 8;
  }
  if (i + 4 <= len) {
    store<u32>(dst + i, load<u32>(src + i) ^ k);
    i += 4;
  }
  let kb = k;
  while (i < len) {
    store<u8>(dst + i, load<u8>(src + i) ^ <u8>kb);
    kb >>= 8;
    i++;
  }
}

/**
 * Walk every frame in [ptr, ptr+len): parse each header, check its length against maxPayload
 * (given as two 32-bit halves so no BigInt crosses the boundary), unmask its payload in place and
 * write a table row. Stops at the first incomplete frame, at a length error, or after `capacity`
 * rows. Returns the number of complete frames; the RESULT block says the rest.
 */
export function scanFrames(ptr: usize, len: usize, capacity: u32, maxLo: u32, maxHi: u32): u32 {
  const maxPayload: u64 = (<u64>maxHi << 32) | <u64>maxLo;
  let pos: usize = 0;
  let count: u32 = 0;
  let status = SCAN_OK;
  let row = TABLE_PTR;
  let touched: u32 = 0;
  while (pos < len) {
    if (count >= capacity) break;
    const avail = len - pos;
    if (avail < 2) { status = SCAN_PARTIAL_HEADER; break; }
    const h = ptr + pos;
    const b0 = <u32>load<u8>(h);
    const b1 = <u32>load<u8>(h, 1);
    const len7 = b1 & 0x7f;
    const masked = b1 >> 7;
    let hlen: usize = 2 + (masked << 2);
    if (len7 == 126) hlen += 2;
    else if (len7 == 127) hlen += 8;
    if (avail < hlen) { status = SCAN_PARTIAL_HEADER; break; }
    let plen: u64 = <u64>len7;
    let keyAt: usize = h + 2;
    if (len7 == 126) {
      plen = <u64>bswap<u16>(load<u16>(h, 2));
      keyAt = h + 4;
    } else if (len7 == 127) {
      plen = bswap<u64>(load<u64>(h, 2));
      keyAt = h + 10;
      // RFC 6455 §5.2: "the most significant bit MUST be 0".
      if (plen >> 63) { status = SCAN_ERR_LENGTH_MSB; break; }
      if (plen > 0x1FFFFFFFFFFFFF) { status = SCAN_ERR_TOO_BIG; break; }
    }
    if (plen > maxPayload) { status = SCAN_ERR_TOO_BIG; break; }
    const key: u32 = masked ? load<u32>(keyAt) : 0;
    const off = pos + hlen;
    const have: usize = avail - hlen;
    store<u32>(row, b0 | (b1 << 8), ROW_BITS << 2);
    store<u32>(row, <u32>off, ROW_OFFSET << 2);
    store<u32>(row, key, ROW_KEY << 2);
    if (plen > <u64>have) {
      // Payload continues in a later chunk: unmask what is here, report the full length.
      if (masked && have > 0) {
        maskTo(ptr + off, ptr + off, have, key, 0);
        touched = 1;
      }
      store<u32>(row, <u32>have, ROW_LENGTH << 2);
      store<u32>(RESULT_PTR, <u32>plen, RESULT_PARTIAL_LO << 2);
      store<u32>(RESULT_PTR, <u32>(plen >> 32), RESULT_PARTIAL_HI << 2);
      pos = len;
      status = SCAN_PARTIAL_PAYLOAD;
      break;
    }
    const n = <usize>plen;
    if (masked && n > 0) {
      maskTo(ptr + off, ptr + off, n, key, 0);
      touched = 1;
    }
    store<u32>(row, <u32>n, ROW_LENGTH << 2);
    row += ROW_WORDS << 2;
    count++;
    pos = off + n;
  }
  store<u32>(RESULT_PTR, count, RESULT_COUNT << 2);
  store<u32>(RESULT_PTR, <u32>pos, RESULT_CONSUMED << 2);
  store<u32>(RESULT_PTR, status, RESULT_STATUS << 2);
  store<u32>(RESULT_PTR, touched, RESULT_TOUCHED << 2);
  return count;
}
