// Reassembly buffer for payload that arrives in pieces (a frame over many reads, a message over
// many fragments). Memory grows with payload bytes, not with the number of pieces: the first piece
// is kept as a view; from the second on, pieces are copied into one buffer that doubles (capped),
// so 100k one-byte fragments cost ~100 KB, not 100k Buffer objects. A transient first piece (a view
// of a shared read buffer) is copied at once; capacity stays within twice the bytes received (never
// allocated from a length the peer declared).

import { allocIncoming } from './inpool.js';
import { Buffer } from 'node:buffer';

const MIN_CAPACITY = 4096;

export class Accumulator {
  private first: Buffer | null = null;
  private buf: Buffer | null = null;
  /** Bytes held. */
  length = 0;

  /**
   * Add a piece; `cap` bounds the capacity the buffer may grow to (a limit already checked).
   * `copy`: the piece is transient (kept as a view otherwise while it is the only one).
   */
  push(piece: Buffer, cap: number, copy = false): void {
    const n = piece.length;
    if (n === 0) return;
    if (this.length === 0) {
      if (!copy) {
        this.first = piece;
        this.length = n;
        return;
      }
      this.buf = allocIncoming(Math.max(n, Math.min(Math.max(2 * n, MIN_CAPACITY), cap)));
      piece.copy(this.buf, 0);
      this.length = n;
      return;
    }
    const need = this.length + n;
    if (this.buf === null || need > this.buf.length) {
      const grown = Math.max(need, Math.min(Math.max(2 * (this.buf?.length ?? this.length), MIN_CAPACITY), cap));
      const next = allocIncoming(grown);
      (this.buf ?? this.first!).copy(next, 0, 0, this.length);
      this.buf = next;
      this.first = null;
    }
    piece.copy(this.buf, this.length);
    this.length = need;
  }

  /** The bytes held, as one Buffer; the accumulator is empty afterwards. */
  take(): Buffer {
    const out = this.buf ? this.buf.subarray(0, this.length) : this.first ?? EMPTY;
    this.clear();
    return out;
  }

  clear(): void {
    this.first = null;
    this.buf = null;
    this.length = 0;
  }
}

const EMPTY = Buffer.alloc(0);
