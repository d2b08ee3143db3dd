// Outgoing bytes of one connection, between the protocol that frames them and the socket write at
// the end of the tick. Small frames are written straight into a process-wide slab (no allocation
// per frame, no concat at flush): consecutive frames of one connection form one contiguous segment,
// handed to the socket as a single Buffer. Large payloads are queued as they are (zero copy).
//
//   reserve(n) ──▶ [slab: …|conn A seg|conn B seg|free…]      push(buf) ──▶ list
//   take() ──▶ [segment views and pushed buffers, in order] ──▶ socket.write / writev
//
// Slabs are reused. Every segment counts as live in its slab from its first reserve until whoever
// took it says it is done (releaseSlabs: the write that carried it completed, or it was copied, or
// dropped); a slab with no live segment is written over again instead of a new one being
// allocated. Each new 256 KiB slab is memory V8 counts as external, and that count, not the heap,
// is what set off its collections in an echo at 1,000 connections (--trace-gc: "external memory
// pressure", a full mark-compact every ~120 ms). A segment handed to something that does not say
// when it is done with it (the socket's own write(): TLS, HTTP/2 streams, other Duplexes) is never
// released: its slab is left to the GC, as before.

import { Buffer } from 'node:buffer';
const SLAB_SIZE = 256 * 1024;

/** A slab of outgoing bytes: `used` bytes handed out since it was (re)started, `live` segments not done with. */
export class Slab {
  readonly buf: Buffer;
  used = 0;
  live = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafeSlow(size);
  }
}

/** The slab reserves come from. */
let slab = new Slab(SLAB_SIZE);
/** A full slab whose segments are all done: the next one, instead of an allocation. */
let spare: Slab | null = null;

function nextSlab(n: number): void {
  if (n > SLAB_SIZE) {
    slab = new Slab(n); // (frames this large are queued as they are: only as a safety net)
  } else if (spare !== null) {
    slab = spare;
    spare = null;
    slab.used = 0;
  } else {
    slab = new Slab(SLAB_SIZE);
  }
}

/** One segment of each of these slabs is done with (written, copied or dropped); empties the list. */
export function releaseSlabs(slabs: Slab[]): void {
  for (let i = 0; i < slabs.length; i++) release(slabs[i]);
  slabs.length = 0;
}

function release(s: Slab): void {
  if (--s.live !== 0) return;
  if (s === slab) s.used = 0; // nothing in it is live: start it over
  else if (spare === null && s.buf.length === SLAB_SIZE) spare = s;
}

/** One connection's queue of bytes to send. */
export class OutQueue {
  /** Bytes queued and not yet taken. */
  bytes = 0;
  // (Both created on first use and dropped when taken: an idle connection holds no arrays.)
  private list: Buffer[] | null = null;
  /** Positions in `list` that are views of a slab (rather than buffers pushed as they are)… */
  private slabViews: number[] | null = null;
  /** …and the slab of each. */
  private viewSlabs: Slab[] | null = null;
  // The open segment: seg.buf[segStart, segEnd), still growing while it ends where the slab's free space begins.
  private seg: Slab | null = null;
  private segStart = 0;
  private segEnd = 0;

  /**
   * Reserve `n` bytes; the caller writes them into `queue.buf` at the returned offset at once,
   * before anything else reserves. Bytes written are never touched again by anyone.
   */
  reserve(n: number): number {
    this.bytes += n;
    const s = slab;
    if (this.seg === s && this.segEnd === s.used && s.used + n <= s.buf.length) {
      s.used += n;
      this.segEnd = s.used;
      return s.used - n;
    }
    this.seal();
    if (slab.used + n > slab.buf.length) nextSlab(n);
    const t = slab;
    t.live++;
    this.seg = t;
    this.segStart = t.used;
    t.used += n;
    this.segEnd = t.used;
    return this.segStart;
  }

  /** The buffer that the last `reserve` points into. */
  get buf(): Buffer {
    return this.seg!.buf;
  }

  /** Queue a buffer as it is (a large payload, a pre-encoded broadcast frame). */
  push(b: Buffer): void {
    this.seal();
    (this.list ??= []).push(b);
    this.bytes += b.length;
  }

  private seal(): void {
    const s = this.seg;
    if (s === null) return;
    const l = (this.list ??= []);
    (this.slabViews ??= []).push(l.length);
    (this.viewSlabs ??= []).push(s);
    l.push(s.buf.subarray(this.segStart, this.segEnd));
    this.seg = null;
  }

  /**
   * Everything queued, in order; the queue is empty afterwards. With `own`, slab segments are
   * copied out (and done with): a socket that is not draining would otherwise keep a whole shared
   * slab alive for a few bytes of its own (the connection layer asks for it when the socket already
   * has a backlog). With `slabs`, the slabs of the views handed out are appended to it, and the
   * caller passes them to releaseSlabs once nothing reads those views any more; without it, they
   * stay live for good.
   */
  take(own = false, slabs?: Slab[]): Buffer[] {
    this.seal();
    const l = this.list ?? [];
    const vs = this.viewSlabs;
    if (vs !== null) {
      if (own) {
        for (const i of this.slabViews!) l[i] = ownCopy(l[i]);
        releaseSlabs(vs);
      } else if (slabs !== undefined) {
        for (let i = 0; i < vs.length; i++) slabs.push(vs[i]);
      }
    }
    this.list = null;
    this.slabViews = null;
    this.viewSlabs = null;
    this.bytes = 0;
    return l;
  }

  /** Drop everything queued (nothing of it was handed out). */
  clear(): void {
    if (this.seg !== null) release(this.seg);
    if (this.viewSlabs !== null) releaseSlabs(this.viewSlabs);
    this.seg = null;
    this.list = null;
    this.slabViews = null;
    this.viewSlabs = null;
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
