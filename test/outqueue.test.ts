import { describe, expect, it } from 'vitest';
import { OutQueue } from '../src/protocol/outqueue.js';

function put(q: OutQueue, s: string): void {
  const at = q.reserve(s.length);
  q.buf.write(s, at, 'latin1');
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
});
