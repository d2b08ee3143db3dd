// The native backend (node:http websocketUnmask / websocketMask on Node ≥ 26, else bufferutil) and `auto`: the probe,
// the native codec against the TS twin and wasm (randomized differential), and auto's decisions
// with tables that force each path. On a runtime without the native functions the native cases
// are skipped under a name that says so.
import { describe, expect, it } from 'vitest';
import * as http from 'node:http';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { tmpdir } from 'node:os';
import { AutoCodec, createCodec, describeCodec, HAS_NATIVE, NATIVE_SOURCE, NativeCodec, TsCodec, WasmCodec, type Codec } from '../src/codec/index.js';
import { acceptNative } from '../src/codec/native.js';
import { CHOSEN } from '../src/codec/select.js';
import type { MeasuredRow, TableEntry } from '../src/codec/types.js';
import { FrameParser, type Frame } from '../src/protocol/parser.js';
import { ProtocolError } from '../src/protocol/errors.js';
import { raw, randomBytes, rng, splitAt } from './helpers.js';

const require = createRequire(import.meta.url);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

const RUNTIME_HAS_IT = typeof (http as { websocketUnmask?: unknown }).websocketUnmask === 'function';
// bufferutil is a devDependency with a prebuilt linux-x64 addon: compiled functions, not its JS fallback.
const BUFFERUTIL = require('bufferutil') as { mask: (...a: unknown[]) => void; unmask: (...a: unknown[]) => void };
const BUFFERUTIL_COMPILED = /\[native code\]/.test(String(BUFFERUTIL.unmask));
const EXPECTED_SOURCE = RUNTIME_HAS_IT ? 'node:http' : BUFFERUTIL_COMPILED ? 'bufferutil' : null;
const KEY = 0x3d21fa37;
function refXor(b: Uint8Array, s: number, e: number, k: number, phase = 0): void {
  for (let i = s; i < e; i++) b[i] ^= (k >>> (((i - s + phase) & 3) << 3)) & 0xff;
}
/** What a fresh Node process with `env` finds through the built package, as ESM and as CommonJS (the choice is made once, at load). */
function sourceIn(env: Record<string, string>, cwd = ROOT): { esm: unknown; cjs: unknown } {
  const show = 'JSON.stringify({ has: m.HAS_NATIVE, source: m.describeCodec().nativeSource, backend: (() => { try { return m.createCodec({ backend: "native" }).backend; } catch (e) { return /no native WebSocket unmask/.test(e.message) ? "refused" : e.message; } })() })';
  const opts = { cwd, env: { ...process.env, ...env }, encoding: 'utf8' as const, timeout: 30_000 };
  const esm = execFileSync(process.execPath, ['--input-type=module', '-e', `import * as m from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/esm/index.js')).href)}; console.log(${show})`], opts);
  const cjs = execFileSync(process.execPath, ['-e', `const m = require(${JSON.stringify(join(ROOT, 'dist/cjs/index.js'))}); console.log(${show})`], opts);
  return { esm: JSON.parse(esm), cjs: JSON.parse(cjs) };
}

describe('native unmask detection', () => {
  it(`finds node:http websocketUnmask where the runtime has it, else the bufferutil addon (${process.version}: ${EXPECTED_SOURCE ?? 'none'})`, () => {
    expect(NATIVE_SOURCE).toBe(EXPECTED_SOURCE);
    expect(HAS_NATIVE).toBe(EXPECTED_SOURCE !== null);
    expect(describeCodec().native).toBe(EXPECTED_SOURCE !== null);
    expect(describeCodec().nativeSource).toBe(EXPECTED_SOURCE);
  });
  it('takes a module\'s unmask/mask only when they XOR correctly, and for an addon only compiled ones', () => {
    expect(acceptNative(BUFFERUTIL)).toEqual(BUFFERUTIL_COMPILED ? { unmask: BUFFERUTIL.unmask, mask: BUFFERUTIL.mask } : null);
    // bufferutil's own JavaScript fallback: correct, but slower than the TS twin, so refused as an addon
    const fallback = require('bufferutil/fallback') as { mask: unknown; unmask: unknown };
    expect(acceptNative(fallback)).toBeNull();
    expect(acceptNative(fallback, false)).not.toBeNull();
    // wrong results are refused whatever they are
    const wrong = { unmask: (b: Uint8Array) => b.fill(0), mask: BUFFERUTIL.mask };
    expect(acceptNative(wrong, false)).toBeNull();
    const throws = { unmask: () => { throw new Error('no'); }, mask: () => {} };
    expect(acceptNative(throws, false)).toBeNull();
    expect(acceptNative(null)).toBeNull();
    expect(acceptNative({ unmask: 1, mask: 2 }, false)).toBeNull();
  });
  it('the built package finds the same source as ESM and as CommonJS (bufferutil resolved from the package)', () => {
    const want = { has: EXPECTED_SOURCE !== null, source: EXPECTED_SOURCE, backend: EXPECTED_SOURCE ? 'native' : 'refused' };
    expect(sourceIn({})).toEqual({ esm: want, cjs: want });
  });
  it('finds bufferutil from the package, not from the working directory: the same with the process started elsewhere (a service\'s cwd is often /)', () => {
    const want = { has: EXPECTED_SOURCE !== null, source: EXPECTED_SOURCE, backend: EXPECTED_SOURCE ? 'native' : 'refused' };
    expect(sourceIn({}, tmpdir())).toEqual({ esm: want, cjs: want });
  });
  it('WASMWS_NO_BUFFERUTIL=1 switches bufferutil off, never the runtime\'s own unmask', () => {
    const want = RUNTIME_HAS_IT
      ? { has: true, source: 'node:http', backend: 'native' }
      : { has: false, source: null, backend: 'refused' };
    expect(sourceIn({ WASMWS_NO_BUFFERUTIL: '1' })).toEqual({ esm: want, cjs: want });
  });
});

const nativeCases = EXPECTED_SOURCE ? `native codec (${EXPECTED_SOURCE})` : `native codec — SKIPPED: ${process.version} has neither node:http websocketUnmask nor a compiled bufferutil`;
describe.runIf(HAS_NATIVE)(nativeCases, () => {
  const native = () => new NativeCodec({ min: 0 });
  const codecs: [string, Codec][] = [['ts', new TsCodec()], ['wasm', new WasmCodec({ maskMin: 0, scanMin: 0 })]];

  it('is what createCodec({ backend: "native" }) returns, with the TS twin below its threshold', () => {
    const c = createCodec({ backend: 'native' });
    expect(c.backend).toBe('native');
    expect((c as NativeCodec).min).toBeGreaterThan(0);
  });
  it('unmasks sub-ranges in place at every phase and offset, as ts and wasm do (randomized differential)', () => {
    const next = rng(26);
    const c = native();
    for (let t = 0; t < 400; t++) {
      const n = [0, 1, 5, 16, 24, 100, 125, 1000, 4096, 70000][(next() * 10) | 0];
      const lead = (next() * 9) | 0;
      const phase = (next() * 4) | 0;
      const key = (next() * 2 ** 32) >>> 0;
      const src = randomBytes(next, n + lead + 5);
      const want = Buffer.from(src);
      refXor(want, lead, lead + n, key, phase);
      const got = Buffer.from(src);
      c.unmask(got, lead, lead + n, key, phase);
      expect(got.equals(want), `native n=${n} lead=${lead} phase=${phase}`).toBe(true);
      for (const [name, o] of codecs) {
        const b = Buffer.from(src);
        o.unmask(b, lead, lead + n, key, phase);
        expect(b.equals(got), `${name} vs native, n=${n}`).toBe(true);
      }
    }
  });
  it('unmasks a whole buffer and a 3 MiB one, and masks into an output at an offset', () => {
    const c = native();
    const whole = randomBytes(rng(1), 3 * 1024 * 1024 + 3);
    const want = Buffer.from(whole);
    refXor(want, 0, want.length, KEY);
    c.unmask(whole, 0, whole.length, KEY, 0);
    expect(whole.equals(want)).toBe(true);
    for (const n of [0, 3, 16, 125, 1000, 70000]) {
      const src = randomBytes(rng(n), n);
      const out = Buffer.alloc(n + 10, 0xaa);
      c.mask(src, KEY, out, 6, n);
      const ref = Buffer.alloc(n + 10, 0xaa);
      src.copy(ref, 6);
      refXor(ref, 6, 6 + n, KEY);
      expect(out.equals(ref)).toBe(true);
    }
  });
  it('parses random frame streams exactly like ts and wasm, whatever the native threshold', () => {
    const next = rng(2626);
    const run = (codec: Codec, chunks: Buffer[]) => {
      const p = new FrameParser({ role: 'server', codec, maxPayload: 1 << 20 });
      const out: string[] = [];
      try {
        for (const ch of chunks) for (const f of p.push(Buffer.from(ch))) out.push(`${f.opcode}:${f.payload.toString('hex')}`);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        for (const f of e.frames as Frame[]) out.push(`${f.opcode}:${f.payload.toString('hex')}`);
        out.push(`error ${e.code}`);
      }
      return out;
    };
    for (let t = 0; t < 150; t++) {
      const parts: Buffer[] = [];
      for (let i = 0, n = 1 + ((next() * 6) | 0); i < n; i++) {
        const size = next() < 0.5 ? (next() * 130) | 0 : next() < 0.8 ? (next() * 5000) | 0 : (next() * 70000) | 0;
        parts.push(raw({ fin: next() < 0.8, opcode: [0, 1, 2, 9][(next() * 4) | 0], payload: randomBytes(next, size), key: [0, 0, 0, 0].map(() => (next() * 256) | 0) }));
      }
      const stream = Buffer.concat(parts);
      const cuts = Array.from({ length: (next() * 5) | 0 }, () => (next() * stream.length) | 0);
      const ref = run(new TsCodec(), splitAt(stream, cuts));
      for (const c of [native(), new NativeCodec({ min: 200 }), new NativeCodec()]) expect(run(c, splitAt(stream, cuts))).toEqual(ref);
      expect(run(new WasmCodec({ maskMin: 0, scanMin: 0 }), splitAt(stream, cuts))).toEqual(ref);
    }
  });
});

describe('auto codec', () => {
  const row = (sizes: number[], ns: MeasuredRow['ns']): MeasuredRow => ({ sizes, ns });
  /** A table entry where `winner` is fastest for every operation and size. */
  function entryWhere(winner: 'ts' | 'wasm' | 'native', opts: { wasmReads?: boolean } = {}): TableEntry {
    const ns = (b: string, n: number) => (b === winner ? 1 : 1000) * n;
    const mk = (sizes: number[], backends: string[]) => row(sizes, Object.fromEntries(backends.map((b) => [b, sizes.map((n) => ns(b, n))])));
    const reads = [22, 2112, 16896];
    return {
      runtime: 'test', measured: 'never', tsKernel: { word32Min: 64, word64Min: null, bindMin: 512 },
      unmask: mk([16, 1024, 65536], ['ts', 'wasm', 'native']),
      mask: mk([16, 1024, 65536], ['ts', 'wasm', 'native']),
      scanRead: row(reads, { ts: reads.map((n) => n * 10), wasm: reads.map((n) => n * (opts.wasmReads === false ? 100 : 1)) }),
      scanFrame: mk([16, 1024, 65536], ['ts', 'wasm', 'native']),
    };
  }
  const table = (entry: TableEntry) => ({ key: 'test1', entry, exact: true });

  it('is createCodec()\'s default and describes what runs for each operation and size', () => {
    const c = createCodec();
    expect(c).toBeInstanceOf(AutoCodec);
    const d = describeCodec();
    expect(d.backend).toBe('wasm');
    expect(d.wasm).toBe(true);
    expect(d.runtime).toBe(`node ${process.versions.node}`);
    expect(d.table === null ? null : d.table.split(':')[0]).toBe(CHOSEN ? `${CHOSEN.key}${CHOSEN.exact ? '' : ' (nearest measured)'}` : null);
    for (const segs of [d.unmask, d.mask, d.scan]) {
      expect(segs[0].from).toBe(0);
      for (const s of segs) expect(['ts', 'wasm', ...(HAS_NATIVE ? ['native'] : [])]).toContain(s.backend);
    }
    expect(d.tsKernel.int32From).toBeGreaterThan(0);
  });
  it('follows its table: every call to the measured winner, and only to available backends', () => {
    expect(new AutoCodec({ table: table(entryWhere('ts')) }).describe()).toMatchObject({ unmask: [{ from: 0, backend: 'ts' }], scan: [{ from: 0, backend: 'ts' }] });
    const w = new AutoCodec({ table: table(entryWhere('wasm')) }).describe();
    expect(w).toMatchObject({ unmask: [{ from: 0, backend: 'wasm' }], mask: [{ from: 0, backend: 'wasm' }], scan: [{ from: 0, backend: 'wasm' }] });
    expect(w.scanWasmFromRead).toBe(0);
    const n = new AutoCodec({ table: table(entryWhere('native')) }).describe();
    expect(n.unmask[0].backend).toBe(HAS_NATIVE ? 'native' : 'ts');
    const noWasm = new AutoCodec({ wasm: false, table: table(entryWhere('wasm')) });
    expect(noWasm.backend).toBe('ts');
    expect(noWasm.describe()).toMatchObject({ wasm: false, unmask: [{ from: 0, backend: 'ts' }], scanWasmFromRead: null });
    const slowReads = new AutoCodec({ table: table(entryWhere('wasm', { wasmReads: false })) });
    expect(slowReads.describe().scanWasmFromRead).toBeNull();
    const fixed = new AutoCodec({ table: null }).describe();
    expect(fixed).toMatchObject({ table: null, unmask: [{ from: 0, backend: 'ts' }, { from: 1024, backend: 'wasm' }], scanWasmFromRead: 2048 });
  });
  it.runIf(HAS_NATIVE)('never scans natively below the size where native unmask overtakes the TS twin (a noisy scan sample below it is ignored)', () => {
    const e = entryWhere('native');
    // native unmask wins only from 1 KiB; its scan sample at 16 B happens to be the fastest
    e.unmask = row([16, 1024, 65536], { ts: [10, 900, 60000], native: [50, 300, 9000] });
    e.scanFrame = row([16, 1024, 65536], { ts: [100, 100, 100], wasm: [200, 200, 200], native: [90, 50, 50] });
    const d = new AutoCodec({ wasm: false, table: table(e) }).describe();
    expect(d.scan).toEqual([{ from: 0, backend: 'ts' }, { from: 128, backend: 'native' }]);
    const dw = new AutoCodec({ table: table(e) }).describe();
    expect(dw.scan[0]).toEqual({ from: 0, backend: 'ts' });
  });
  it('parses random streams exactly like the TS twin whichever path its table sends each read to', () => {
    const codecs: [string, Codec][] = [
      ['auto (all ts)', new AutoCodec({ table: table(entryWhere('ts')) })],
      ['auto (all wasm)', new AutoCodec({ table: table(entryWhere('wasm')) })],
      ['auto (all native)', new AutoCodec({ table: table(entryWhere('native')) })],
      ['auto (fixed defaults)', new AutoCodec({ table: null })],
      ['auto (this runtime)', createCodec()],
      ['auto (no wasm)', new AutoCodec({ wasm: false })],
      ['auto (no native)', new AutoCodec({ native: false })],
    ];
    const next = rng(1426);
    const run = (codec: Codec, chunks: Buffer[]) => {
      const p = new FrameParser({ role: 'server', codec, maxPayload: 1 << 20 });
      const out: string[] = [];
      try {
        for (const ch of chunks) for (const f of p.push(Buffer.from(ch))) out.push(`${f.opcode}:${f.payload.toString('hex')}`);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        out.push(`error ${e.code}`);
      }
      return out;
    };
    for (let t = 0; t < 120; t++) {
      const parts: Buffer[] = [];
      for (let i = 0, n = 1 + ((next() * 8) | 0); i < n; i++) {
        const size = next() < 0.5 ? (next() * 130) | 0 : next() < 0.8 ? (next() * 3000) | 0 : (next() * 140000) | 0;
        parts.push(raw({ opcode: 2, payload: randomBytes(next, size), key: [0, 0, 0, 0].map(() => (next() * 256) | 0) }));
      }
      const stream = Buffer.concat(parts);
      const cuts = Array.from({ length: (next() * 8) | 0 }, () => (next() * stream.length) | 0);
      const ref = run(new TsCodec(), splitAt(stream, cuts));
      for (const [name, c] of codecs) expect(run(c, splitAt(stream, cuts)), name).toEqual(ref);
    }
  });
  it('unmasks and masks like the reference on every path', () => {
    for (const kind of ['ts', 'wasm', 'native'] as const) {
      const c = new AutoCodec({ table: table(entryWhere(kind)) });
      for (const n of [0, 5, 64, 1000, 70000]) {
        const b = randomBytes(rng(n + 1), n + 4);
        const want = Buffer.from(b);
        refXor(want, 2, 2 + n, KEY, 3);
        c.unmask(b, 2, 2 + n, KEY, 3);
        expect(b.equals(want), `${kind} unmask ${n}`).toBe(true);
        const out = Buffer.alloc(n + 6);
        c.mask(b.subarray(2, 2 + n), KEY, out, 6, n);
        const m = Buffer.alloc(n + 6);
        b.copy(m, 6, 2, 2 + n);
        refXor(m, 6, 6 + n, KEY);
        expect(out.equals(m), `${kind} mask ${n}`).toBe(true);
      }
    }
  });
});
