// Memory for incoming bytes the parser and the transport copy: the region of the frames a transient
// read (the shared read buffer) completes, a frame's reassembly buffer, a read kept for later. Below
// Node's pool limit (4 KiB by default) Buffer.allocUnsafe serves it from Node's own pool, as before;
// from there up to 32 KiB, slices of a 64 KiB block of our own, so a read of ~8 KiB (1 KiB echo at
// 1,000 connections) does not cost an ArrayBuffer of its own (`createUnsafeBuffer` was 3.3% of the
// server's profile there); anything larger gets memory of its own. A payload handed out pins at most
// its 64 KiB block, as a `ws` payload pins the read it came in (Node's read buffers are up to 64 KiB).

import { BufferView } from '../internals.js';
import { Buffer } from 'node:buffer';

const BLOCK_SIZE = 64 * 1024;
/**
 * The most memory one payload handed out may pin: a `ws` payload pins the read it came in, and
 * Node's reads are up to 64 KiB. Copies out of larger reads are made in pieces of at most this.
 */
export const PIN_MAX = BLOCK_SIZE;
const BLOCK_MAX = BLOCK_SIZE >>> 1;

let block: ArrayBuffer | null = null;
let used = 0;

/** `n` bytes of uninitialized memory for incoming bytes (written over at once by the caller). */
export function allocIncoming(n: number): Buffer {
  if (n < Buffer.poolSize >>> 1) return Buffer.allocUnsafe(n);
  if (n > BLOCK_MAX) return Buffer.allocUnsafeSlow(n);
  if (block === null || used + n > BLOCK_SIZE) {
    block = Buffer.allocUnsafeSlow(BLOCK_SIZE).buffer as ArrayBuffer;
    used = 0;
  }
  const b = new BufferView(block, used, n);
  used = (used + n + 7) & ~7; // 8-byte aligned, as Node's pool
  return b;
}

/** A copy of view[start, end) in incoming memory. */
export function copyIncoming(view: Buffer, start: number, end: number): Buffer {
  const b = allocIncoming(end - start);
  view.copy(b, 0, start, end);
  return b;
}
