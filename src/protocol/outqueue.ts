// Outgoing bytes of one connection, between the protocol that frames them and the socket write at
// the end of the tick. Small frames are written straight into a process-wide slab (no allocation
// per frame, no concat at flush): consecutive frames of one connection form one contiguous segment,
// handed to the socket as a single Buffer. Large payloads are queued as they are (zero copy).
//
//   reserve(n) ──▶ [slab: …|conn A seg|conn B seg|free…]      push(buf) ──▶ list
//   take() ──▶ [segment views and pushed buffers, in order] ──▶ socket.write / writev

const SLAB_SIZE = 256 * 1024;

let slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
let slabUsed = 0;

/** One connection's queue of bytes to send. */
export class OutQueue {
  /** Bytes queued and not yet taken. */
  bytes = 0;
  // (Both created on first use and dropped when taken: an idle connection holds no arrays.)
  private list: Buffer[] | null = null;
  /** Positions in `list` that are views of a slab (rather than buffers pushed as they are). */
  private slabViews: number[] | null = null;
  // The open segment: slab[segStart, segEnd), still growing while it ends where the slab's free space begins.
  private seg: Buffer | null = null;
  private segStart = 0;
  private segEnd = 0;

  /**
   * Reserve `n` bytes; the caller writes them into `queue.buf` at the returned offset at once,
   * before anything else reserves. Bytes written are never touched again by anyone.
   */
  reserve(n: number): number {
    this.bytes += n;
    if (this.seg === slab && this.segEnd === slabUsed && slabUsed + n <= SLAB_SIZE) {
      slabUsed += n;
      this.segEnd = slabUsed;
      return slabUsed - n;
    }
    this.seal();
    if (slabUsed + n > slab.length) {
      slab = Buffer.allocUnsafeSlow(Math.max(SLAB_SIZE, n));
      slabUsed = 0;
    }
    this.seg = slab;
    this.segStart = slabUsed;
    slabUsed += n;
    this.segEnd = slabUsed;
    return this.segStart;
  }

  /** The buffer that the last `reserve` points into. */
  get buf(): Buffer {
    return this.seg!;
  }

  /** Queue a buffer as it is (a large payload, a pre-encoded broadcast frame). */
  push(b: Buffer): void {
    this.seal();
    (this.list ??= []).push(b);
    this.bytes += b.length;
  }

  private seal(): void {
    if (this.seg === null) return;
    const l = (this.list ??= []);
    (this.slabViews ??= []).push(l.length);
    l.push(this.seg.subarray(this.segStart, this.segEnd));
    this.seg = null;
  }

  /**
   * Everything queued, in order; the queue is empty afterwards. With `own`, slab segments are
   * copied out: a socket that is not draining would otherwise keep a whole shared slab alive for a
   * few bytes of its own (the connection layer asks for it when the socket already has a backlog).
   */
  take(own = false): Buffer[] {
    this.seal();
    const l = this.list ?? [];
    if (own && this.slabViews) for (const i of this.slabViews) l[i] = ownCopy(l[i]);
    this.list = null;
    this.slabViews = null;
    this.bytes = 0;
    return l;
  }

  clear(): void {
    this.seg = null;
    this.list = null;
    this.slabViews = null;
    this.bytes = 0;
  }
}

/**
 * A copy with a backing store of exactly its own bytes. Not Buffer.from: that copies into the
 * runtime's shared pool (8 KiB on Node 20, larger on later releases), which a slow peer would pin.
 */
function ownCopy(view: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(view.length);
  view.copy(copy);
  return copy;
}
