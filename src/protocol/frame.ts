// Frame encoding (RFC 6455 §5.2) and close-frame payloads (§5.5.1, §7.4).
import { randomFillSync } from 'node:crypto';
import { isUtf8, Buffer } from 'node:buffer';
import { CloseCode, LEN16_MARK, LEN16_MAX, LEN64_MARK, LEN7_MAX, MASK_KEY_SIZE, MAX_CLOSE_REASON, MAX_HEADER, Opcode } from './constants.js';
import { fail } from './errors.js';
import { createCodec, type Codec } from '../codec/index.js';

export interface EncodeOptions {
  /** FIN bit; default true. */
  fin?: boolean;
  /** Mask the payload (client → server frames, RFC 6455 §5.3); default false. */
  mask?: boolean;
  /** RSV1 (permessage-deflate's "compressed" bit); default false. */
  rsv1?: boolean;
  /** Codec used to mask; default the process codec. */
  codec?: Codec;
}

// Masking keys come from a pool of random bytes refilled from crypto (RFC 6455 §5.3 asks for a
// strong source), so a frame does not pay a crypto call each.
const KEY_POOL_SIZE = 8192;
const keyPool = Buffer.allocUnsafe(KEY_POOL_SIZE);
let keyPos = KEY_POOL_SIZE;

/** A fresh masking key as a little-endian u32 (the form the codecs take). */
export function randomMaskKey(): number {
  if (keyPos === KEY_POOL_SIZE) {
    randomFillSync(keyPool);
    keyPos = 0;
  }
  const k = keyPool.readUInt32LE(keyPos);
  keyPos += MASK_KEY_SIZE;
  return k;
}

/** Size of the header for a payload of `length` bytes. */
export function headerSize(length: number, masked: boolean): number {
  const base = length <= LEN7_MAX ? 2 : length <= LEN16_MAX ? 4 : 10;
  return masked ? base + MASK_KEY_SIZE : base;
}

/**
 * Write a frame header into `out` at `at` with the shortest length form (§5.2: "the minimal number
 * of bytes MUST be used"); returns the header's size. `key` is written when `masked`.
 */
export function writeHeader(out: Buffer, at: number, opcode: number, length: number, fin: boolean, rsv1: boolean, masked: boolean, key: number): number {
  out[at] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode;
  const m = masked ? 0x80 : 0;
  let p = at + 2;
  if (length <= LEN7_MAX) {
    out[at + 1] = m | length;
  } else if (length <= LEN16_MAX) {
    out[at + 1] = m | LEN16_MARK;
    out[p] = length >>> 8;
    out[p + 1] = length & 0xff;
    p += 2;
  } else {
    out[at + 1] = m | LEN64_MARK;
    out.writeUInt32BE(Math.floor(length / 0x100000000), p);
    out.writeUInt32BE(length >>> 0, p + 4);
    p += 8;
  }
  if (masked) {
    out[p] = key & 0xff;
    out[p + 1] = (key >>> 8) & 0xff;
    out[p + 2] = (key >>> 16) & 0xff;
    out[p + 3] = key >>> 24;
    p += MASK_KEY_SIZE;
  }
  return p - at;
}

/**
 * Encode one frame into a single Buffer. Server frames are unmasked; client frames (`mask: true`)
 * are masked with a fresh random key.
 */
export function encodeFrame(opcode: number, payload: Uint8Array | string = EMPTY, opts: EncodeOptions = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const masked = opts.mask === true;
  const len = data.length;
  const out = Buffer.allocUnsafe(headerSize(len, masked) + len);
  const key = masked ? randomMaskKey() : 0;
  const h = writeHeader(out, 0, opcode, len, opts.fin !== false, opts.rsv1 === true, masked, key);
  if (masked) (opts.codec ?? createCodec()).mask(data, key, out, h, len);
  else out.set(data, h);
  return out;
}

/**
 * Encode a frame as [header, payload] for writev, copying nothing when unmasked. Masked frames copy
 * the payload (masking must not change the caller's buffer).
 */
export function encodeFrameParts(opcode: number, data: Uint8Array, opts: EncodeOptions = {}): Buffer[] {
  const masked = opts.mask === true;
  const len = data.length;
  const header = Buffer.allocUnsafe(headerSize(len, masked));
  const key = masked ? randomMaskKey() : 0;
  writeHeader(header, 0, opcode, len, opts.fin !== false, opts.rsv1 === true, masked, key);
  if (!masked) return [header, Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)];
  const body = Buffer.allocUnsafe(len);
  (opts.codec ?? createCodec()).mask(data, key, body, 0, len);
  return [header, body];
}

const EMPTY = Buffer.alloc(0);
export { MAX_HEADER };

/** Close codes an endpoint may send or receive in a close frame (RFC 6455 §7.4.1, §7.4.2). */
export function isValidCloseCode(code: number): boolean {
  return Number.isInteger(code) &&
    ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
      (code >= 3000 && code <= 4999));
}

/** Build a close frame payload: 2-byte code then UTF-8 reason (≤ 123 bytes). No code: empty. */
export function encodeClosePayload(code?: number, reason: string | Uint8Array = ''): Buffer {
  if (code === undefined) {
    if (reason.length > 0) throw new TypeError('a close reason needs a close code');
    return EMPTY;
  }
  if (!isValidCloseCode(code)) throw new RangeError(`invalid close code: ${code}`);
  const r = typeof reason === 'string' ? Buffer.from(reason) : reason;
  if (r.length > MAX_CLOSE_REASON) throw new RangeError(`close reason longer than ${MAX_CLOSE_REASON} bytes`);
  const out = Buffer.allocUnsafe(2 + r.length);
  out.writeUInt16BE(code, 0);
  out.set(r, 2);
  return out;
}

/** A decoded close frame: `code` 1005 when the frame had no payload (RFC 6455 §7.1.5). */
export interface CloseInfo {
  code: number;
  reason: string;
}

/** Decode a close frame payload; a 1-byte payload, a bad code or non-UTF-8 reason fails the connection. */
export function decodeClosePayload(payload: Uint8Array): CloseInfo {
  if (payload.length === 0) return { code: CloseCode.NO_STATUS, reason: '' };
  if (payload.length === 1) fail('bad_close_payload', 'close frame payload of 1 byte');
  const code = (payload[0] << 8) | payload[1];
  if (!isValidCloseCode(code)) fail('bad_close_code', `invalid close code ${code}`);
  const reason = payload.subarray(2);
  if (!isUtf8(reason)) fail('invalid_utf8', 'close reason is not valid UTF-8');
  return { code, reason: Buffer.from(reason.buffer, reason.byteOffset, reason.byteLength).toString('utf8') };
}

export { Opcode };
