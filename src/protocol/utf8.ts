// Incremental UTF-8 validation for fragmented text messages (RFC 6455 §8.1: fail with 1007 as soon
// as the data is known to be invalid, not only when the message ends).
import { isUtf8, Buffer } from 'node:buffer';

/** Expected sequence length for a lead byte; 0 for a byte that cannot start a sequence. */
function seqLength(b: number): number {
  if (b < 0x80) return 1;
  if (b >= 0xc2 && b <= 0xdf) return 2;
  if (b >= 0xe0 && b <= 0xef) return 3;
  if (b >= 0xf0 && b <= 0xf4) return 4;
  return 0;
}

/** Where an incomplete trailing sequence starts in buf (buf.length when the end is complete). */
function incompleteTail(buf: Uint8Array): number {
  const n = buf.length;
  for (let i = n - 1; i >= 0 && i >= n - 3; i--) {
    const b = buf[i];
    if ((b & 0xc0) !== 0x80) {
      const need = seqLength(b);
      return need > n - i ? i : n;
    }
  }
  return n;
}

const PAD = Buffer.from([0x80, 0x80, 0x80]);

/** Could these bytes (an incomplete sequence) still become valid UTF-8? Pads with the lowest continuation. */
function viablePrefix(bytes: Uint8Array): boolean {
  const need = seqLength(bytes[0]);
  if (need === 0) return false;
  const probe = Buffer.concat([bytes, PAD.subarray(0, need - bytes.length)]);
  // 0x80 continuations are the smallest; a few prefixes (E0 A0, F0 90) need larger ones and still pass.
  return isUtf8(probe) || (bytes.length === 1 && (bytes[0] === 0xe0 || bytes[0] === 0xf0));
}

/** Validates a text message fragment by fragment, carrying an incomplete sequence across fragments. */
export class Utf8Validator {
  private carry: Buffer | null = null;

  /** Feed the next fragment; false as soon as the text cannot be valid UTF-8. */
  push(frag: Uint8Array): boolean {
    let start = 0;
    if (this.carry) {
      // Complete the carried sequence with the fragment's first bytes.
      const need = seqLength(this.carry[0]) - this.carry.length;
      const take = Math.min(need, frag.length);
      const joined = Buffer.concat([this.carry, frag.subarray(0, take)]);
      if (take < need) {
        this.carry = joined;
        return viablePrefix(joined);
      }
      if (!isUtf8(joined)) return false;
      this.carry = null;
      start = take;
    }
    const body = frag.subarray(start);
    const cut = incompleteTail(body);
    if (cut > 0 && !isUtf8(body.subarray(0, cut))) return false;
    if (cut < body.length) {
      this.carry = Buffer.from(body.subarray(cut));
      return viablePrefix(this.carry);
    }
    return true;
  }

  /** The message ended: valid only if no sequence is left incomplete. */
  end(): boolean {
    const ok = this.carry === null;
    this.carry = null;
    return ok;
  }
}
