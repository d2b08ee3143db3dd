// The TS twin's XOR kernels (every kernel on every runtime, whichever the table picks here), their
// view cache, and the table logic `auto` decides with (entry lookup, segments, crossovers).
import { describe, expect, it } from 'vitest';
import { bind, rotateKey, unmask, mask, xor32, xor64, xorBytes } from '../src/codec/ts.js';
import { backendAt, crossoverOf, segmentsOf, tableEntry } from '../src/codec/select.js';
import { RUNTIME, runtimeKey, type RuntimeId } from '../src/codec/runtime.js';
import { CODEC_TABLE } from '../src/codec/table.js';
import type { MeasuredRow, TableEntry } from '../src/codec/types.js';
import { randomBytes, rng } from './helpers.js';

const KEY = 0x3d21fa37;

/** Reference XOR: byte i of the region with byte (i & 3) of the LE key k. */
function refXor(b: Uint8Array, s: number, e: number, k: number): void {
  for (let i = s; i < e; i++) b[i] ^= (k >>> (((i - s) & 3) << 3)) & 0xff;
}

const KERNELS: [string, (b: Uint8Array, s: number, e: number, k: number) => void][] = [
  ['xorBytes', xorBytes], ['xor32', xor32], ['xor64', xor64],
];

describe.each(KERNELS)('%s kernel', (_name, kernel) => {
  it('XORs exactly at every length 0..300 and every byte alignment 0..7, touching nothing outside', () => {
    const next = rng(7);
    for (let n = 0; n <= 300; n += n < 80 ? 1 : 7) {
      for (let lead = 0; lead < 8; lead++) {
        const backing = randomBytes(next, n + lead + 9);
        const want = Buffer.from(backing);
        refXor(want, lead, lead + n, KEY);
        kernel(backing, lead, lead + n, KEY);
        expect(backing.equals(want), `n=${n} lead=${lead}`).toBe(true);
      }
    }
  });

  it('works on views at odd byte offsets of their ArrayBuffer, alternating buffers (view cache)', () => {
    const next = rng(8);
    const abA = new ArrayBuffer(4096), abB = new ArrayBuffer(4096);
    const views = [new Uint8Array(abA, 3, 2000), new Uint8Array(abB, 5, 2000), new Uint8Array(abA, 1001, 1500), Buffer.from(abB, 7, 3000)];
    for (const v of views) v.set(randomBytes(next, v.length));
    for (let t = 0; t < 200; t++) {
      const v = views[(next() * views.length) | 0];
      const s = (next() * 500) | 0;
      const e = s + ((next() * (v.length - s)) | 0);
      const k = (next() * 2 ** 32) >>> 0;
      const want = Buffer.from(v);
      refXor(want, s, e, k);
      kernel(v, s, e, k);
      expect(Buffer.from(v.buffer, v.byteOffset, v.length).equals(want), `t=${t}`).toBe(true);
    }
  });

  it('handles a buffer over 1 MiB (not cached) and a 64 KiB socket-sized one', () => {
    for (const n of [65536, (1 << 20) + 77]) {
      const b = randomBytes(rng(n), n + 16).subarray(3, 3 + n);
      const want = Buffer.from(b);
      refXor(want, 0, n, KEY);
      kernel(b, 0, n, KEY);
      expect(b.equals(want)).toBe(true);
    }
  });

  it('sees a resizable ArrayBuffer grow after its views were cached', () => {
    const ab = new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer)(256, { maxByteLength: 8192 });
    const v = new Uint8Array(ab); // length-tracking
    v.fill(0x11);
    kernel(v, 0, 200, KEY); // binds and caches views of 256 bytes
    (ab as unknown as { resize(n: number): void }).resize(4096);
    v.fill(0x22);
    const want = Buffer.from(v);
    refXor(want, 16, 4000, KEY);
    kernel(v, 16, 4000, KEY);
    expect(Buffer.from(v).equals(want)).toBe(true);
  });
});

describe('TS twin unmask / mask dispatch', () => {
  it('gives the reference bytes for every phase, whether the buffer is the bound one or not', () => {
    const next = rng(9);
    const a = randomBytes(next, 70000), b = randomBytes(next, 70000);
    for (let t = 0; t < 300; t++) {
      const buf = next() < 0.5 ? a : b;
      if (next() < 0.3) bind(buf);
      const n = [0, 3, 16, 31, 64, 125, 200, 511, 513, 1024, 4099, 65536][(next() * 12) | 0];
      const s = (next() * 1000) | 0;
      const phase = (next() * 4) | 0;
      const want = Buffer.from(buf);
      refXor(want, s, s + n, rotateKey(KEY, phase));
      unmask(buf, s, s + n, KEY, phase);
      expect(buf.equals(want), `t=${t} n=${n} phase=${phase}`).toBe(true);
    }
  });
  it('masks into an output at any offset for lengths around every kernel threshold', () => {
    for (const n of [0, 7, 8, 15, 16, 23, 24, 31, 32, 45, 63, 64, 65, 127, 128, 181, 255, 256, 511, 512, 1023, 1024, 70000]) {
      const src = randomBytes(rng(n), n);
      for (const off of [0, 2, 6, 14]) {
        const out = Buffer.alloc(n + off + 3, 0xaa);
        mask(src, KEY, out, off, n);
        const want = Buffer.alloc(n + off + 3, 0xaa);
        src.copy(want, off);
        refXor(want, off, off + n, KEY);
        expect(out.equals(want), `n=${n} off=${off}`).toBe(true);
      }
    }
  });
});

describe('codec table logic', () => {
  const row = (sizes: number[], ns: MeasuredRow['ns']): MeasuredRow => ({ sizes, ns });

  it('segments a row by the fastest available backend, switching at the geometric mean', () => {
    const r = row([16, 256, 4096, 65536], { ts: [10, 50, 800, 9000], wasm: [100, 120, 300, 2500], native: [40, 45, 100, 900] });
    expect(segmentsOf(r, ['ts', 'wasm', 'native'])).toEqual([{ from: 0, backend: 'ts' }, { from: 64, backend: 'native' }]);
    expect(segmentsOf(r, ['ts', 'wasm'])).toEqual([{ from: 0, backend: 'ts' }, { from: 1024, backend: 'wasm' }]);
    expect(segmentsOf(r, ['ts'])).toEqual([{ from: 0, backend: 'ts' }]);
    expect(segmentsOf(undefined, ['ts'])).toBeNull();
    // Within 10% of the fastest, the backend already running keeps the size: noise is not a switch.
    expect(segmentsOf(row([16, 64, 256], { ts: [10, 20, 30], native: [12, 19, 28] }), ['ts', 'native'])).toEqual([{ from: 0, backend: 'ts' }]);
    expect(segmentsOf(row([16], { wasm: [1] }), ['ts'])).toBeNull();
  });
  it('finds where one backend stays ahead for good (crossover), or says never', () => {
    const r = row([22, 66, 264, 1056], { ts: [30, 80, 300, 1200], wasm: [100, 110, 170, 400] });
    expect(crossoverOf(r, 'ts', 'wasm')).toBe(132);
    expect(crossoverOf(row([1, 2], { ts: [1, 1], wasm: [2, 2] }), 'ts', 'wasm')).toBeNull();
    expect(crossoverOf(row([8, 16], { ts: [5, 9], wasm: [2, 2] }), 'ts', 'wasm')).toBe(0);
  });
  it('looks a segment up by size', () => {
    const s = [{ from: 0, backend: 'ts' as const }, { from: 300, backend: 'native' as const }, { from: 9000, backend: 'wasm' as const }];
    expect([0, 299, 300, 8999, 9000, 1e9].map((n) => backendAt(s, n))).toEqual(['ts', 'ts', 'native', 'native', 'wasm', 'wasm']);
  });
  it('picks the entry of this runtime, else the nearest major of the same runtime, else the same engine', () => {
    const e = {} as TableEntry;
    const table = { node20: e, node22: e, node26: e, bun1: e };
    const rt = (name: RuntimeId['name'], major: number, engine: RuntimeId['engine']): RuntimeId => ({ name, major, engine, version: `${major}.0.0` });
    expect(tableEntry(rt('node', 22, 'v8'), table)).toMatchObject({ key: 'node22', exact: true });
    expect(tableEntry(rt('node', 24, 'v8'), table)).toMatchObject({ key: 'node22', exact: false });
    expect(tableEntry(rt('node', 30, 'v8'), table)).toMatchObject({ key: 'node26', exact: false });
    expect(tableEntry(rt('node', 18, 'v8'), table)).toMatchObject({ key: 'node20', exact: false });
    expect(tableEntry(rt('deno', 2, 'v8'), table)).toMatchObject({ key: 'node26', exact: false });
    expect(tableEntry(rt('bun', 2, 'jsc'), table)).toMatchObject({ key: 'bun1', exact: false });
    expect(tableEntry(rt('unknown', 0, 'unknown'), table)).toBeNull();
  });
  it('has a measured entry for this runtime in the committed table', () => {
    expect(Object.keys(CODEC_TABLE), `no entry ${runtimeKey(RUNTIME)}: run npm run bench -- --suite codec`).toContain(runtimeKey(RUNTIME));
    const e = CODEC_TABLE[runtimeKey(RUNTIME)];
    for (const r of [e.unmask, e.mask, e.scanRead, e.scanFrame]) {
      for (const ns of Object.values(r.ns)) expect(ns).toHaveLength(r.sizes.length);
    }
  });
});
