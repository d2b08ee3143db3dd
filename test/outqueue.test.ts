import { describe, expect, it } from 'vitest';
import { OutQueue, releaseSlabs, type Slab } from '../src/protocol/outqueue.js';

function put(q: OutQueue, s: string): void {
  const at = q.reserve(s.length);
  q.buf.write(s, at, 'latin1');
}

/** Move on to a slab that holds no segment of anything else (earlier cases keep theirs for good). */
function freshSlab(): void {
  const q = new OutQueue();
  const slabs: Slab[] = [];
  put(q, 'f'.repeat(256 * 1024));
  q.take(false, slabs);
  releaseSlabs(slabs);
}

describe('OutQueue', () => {
  it('keeps each connection\'s bytes in order when several connections share the slab', () => {
    const a = new OutQueue();
    const b = new OutQueue();
    put(a, 'a1');
    put(a, 'a2');
    put(b, 'b1');
    put(a, 'a3');
    a.push(Buffer.from('A-big'));
    put(a, 'a4');
    put(b, 'b2');
    expect(a.bytes).toBe(13);
    expect(Buffer.concat(a.take()).toString()).toBe('a1a2a3A-biga4');
    expect(Buffer.concat(b.take()).toString()).toBe('b1b2');
    expect(a.bytes).toBe(0);
  });

  it('joins consecutive frames of one connection into one segment', () => {
    const q = new OutQueue();
    for (let i = 0; i < 100; i++) put(q, `m${i % 10}`);
    const segs = q.take();
    expect(segs.length).toBeLessThanOrEqual(2); // 2 only if the slab filled up in between
    expect(Buffer.concat(segs).toString()).toBe(Array.from({ length: 100 }, (_, i) => `m${i % 10}`).join(''));
  });

  it('never changes bytes already taken when the slab fills and is replaced', () => {
    const q = new OutQueue();
    const taken: Buffer[] = [];
    for (let i = 0; i < 200; i++) {
      put(q, String.fromCharCode(65 + (i % 26)).repeat(1000));
      taken.push(...q.take());
    }
    expect(taken.every((t, i) => t.length === 1000 && t.every((c) => c === 65 + (i % 26)))).toBe(true);
  });

  it('take(true) copies slab segments out, so a slow socket pins only its own bytes', () => {
    const q = new OutQueue();
    put(q, 'small');
    const big = Buffer.from('pushed as is');
    q.push(big);
    put(q, 'tail');
    const [a, b, c] = q.take(true);
    expect([a.toString(), b.toString(), c.toString()]).toEqual(['small', 'pushed as is', 'tail']);
    expect(b).toBe(big); // pushed buffers are handed over untouched
    // Not a view of the 256 KiB slab, nor of the runtime's shared Buffer pool: exactly its own bytes.
    expect(a.buffer.byteLength).toBe(a.length);
    expect(c.buffer.byteLength).toBe(c.length);
    put(q, 'view');
    expect(q.take()[0].buffer.byteLength).toBeGreaterThanOrEqual(256 * 1024);
  });

  it('reuses a slab once every segment taken from it is released, instead of allocating another', () => {
    freshSlab();
    const q = new OutQueue();
    const slabs: Slab[] = [];
    put(q, 'first');
    const [a] = q.take(false, slabs);
    expect(slabs.length).toBe(1);
    releaseSlabs(slabs);
    expect(slabs.length).toBe(0);
    put(q, 'again');
    const [b] = q.take(false, slabs);
    expect(b.buffer).toBe(a.buffer); // the same memory …
    expect(b.byteOffset).toBe(a.byteOffset); // … from its start again
    expect(b.toString()).toBe('again');
    releaseSlabs(slabs);
    // Megabytes through one connection that releases as it goes: one slab (and at most a spare).
    const seen = new Set<ArrayBufferLike>();
    for (let i = 0; i < 2000; i++) {
      put(q, 'x'.repeat(1000));
      for (const v of q.take(false, slabs)) seen.add(v.buffer);
      releaseSlabs(slabs);
    }
    expect(seen.size).toBeLessThanOrEqual(2);
  });

  it('never writes over a segment still held (taken and not released), whatever goes through after', () => {
    freshSlab();
    const held = new OutQueue();
    const heldSlabs: Slab[] = [];
    const views: Buffer[] = [];
    for (let i = 0; i < 50; i++) {
      put(held, String.fromCharCode(97 + (i % 26)).repeat(900));
      views.push(...held.take(false, heldSlabs));
    }
    const other = new OutQueue();
    const slabs: Slab[] = [];
    for (let i = 0; i < 5000; i++) {
      put(other, String.fromCharCode(65 + (i % 26)).repeat(1000));
      const [v] = other.take(false, slabs);
      expect(v.every((c) => c === 65 + (i % 26))).toBe(true);
      releaseSlabs(slabs);
    }
    expect(views.every((v, i) => v.length === 900 && v.every((c) => c === 97 + (i % 26)))).toBe(true);
    releaseSlabs(heldSlabs);
    // Dropped (clear) and copied (take(true)) segments count as done too.
    put(other, 'dropped');
    other.clear();
    put(other, 'copied');
    const [c] = other.take(true);
    expect(c.toString()).toBe('copied');
    put(other, 'next');
    const [n] = other.take(false, slabs);
    expect(n.byteOffset).toBe(0); // every segment of the current slab is done: it starts over
    releaseSlabs(slabs);
  });
});
