// The WebAssembly backend: one instance (one linear memory) per process, scratch space for the
// region being scanned right now. Nothing outlives a call in wasm memory.
import type { Codec, ScanResult } from './types.js';
import { WASM_BASE64 } from './wasm-binary.js';
import {
  DATA_PTR, MAX_SAFE_LENGTH, MAX_SCAN, RESULT_PTR, ROW_WORDS, SCAN_PARTIAL_PAYLOAD, TABLE_CAPACITY, TABLE_PTR,
} from './layout.js';
import { mask as tsMask, unmask as tsUnmask } from './ts.js';

/** The typed view of the module's exports (assembly/index.ts). */
interface CodecExports {
  memory: WebAssembly.Memory;
  unmask(ptr: number, len: number, key: number, phase: number): void;
  maskTo(src: number, dst: number, len: number, key: number, phase: number): void;
  scanFrames(ptr: number, len: number, capacity: number, maxLo: number, maxHi: number): number;
}

const PAGE = 65536;
const TWO_32 = 0x100000000;
/**
 * Below these sizes the TS twin does the job, because the wasm call plus the copies in and out cost
 * more than they save (measured by `npm run bench`, the `mask`/`unmask` rows). In-place scans of a
 * region already copied into wasm memory are not affected.
 */
export const WASM_MASK_MIN = 256;

let instance: CodecExports | undefined;

/** Compile and instantiate the embedded module synchronously (works from CJS and ESM alike). */
export function loadWasm(): CodecExports {
  if (instance) return instance;
  const bytes = Buffer.from(WASM_BASE64, 'base64');
  const mod = new WebAssembly.Module(bytes);
  instance = new WebAssembly.Instance(mod, {}).exports as unknown as CodecExports;
  return instance;
}

/** WebAssembly implementation of the Codec. All WasmCodec objects share the one instance. */
export class WasmCodec implements Codec {
  readonly backend = 'wasm' as const;
  private readonly ex: CodecExports;
  private mem!: Buffer;
  private u32!: Uint32Array;
  private readonly result: ScanResult;
  /** Use the TS twin for mask/unmask of JS buffers shorter than this (0 in tests: wasm always). */
  readonly maskMin: number;

  constructor(opts: { maskMin?: number } = {}) {
    this.ex = loadWasm();
    this.maskMin = opts.maskMin ?? WASM_MASK_MIN;
    this.refresh();
    this.result = {
      count: 0, consumed: 0, status: 0, partialLength: 0,
      table: new Uint32Array(0), data: Buffer.alloc(0), dataOffset: 0, prefixOffset: 0,
    };
  }

  /** Views must be rebuilt whenever memory grows (the old ArrayBuffer is detached). */
  private refresh(): void {
    const buf = this.ex.memory.buffer;
    this.mem = Buffer.from(buf);
    this.u32 = new Uint32Array(buf);
  }

  /** Make sure [DATA_PTR, DATA_PTR + n) exists in linear memory. */
  private reserve(n: number): void {
    const need = DATA_PTR + n;
    if (this.ex.memory.buffer.byteLength < need) {
      this.ex.memory.grow(Math.ceil((need - this.ex.memory.buffer.byteLength) / PAGE));
    }
    if (this.mem.buffer !== this.ex.memory.buffer) this.refresh();
  }

  scan(chunk: Buffer, start: number, end: number, maxPayload: number, prefix: number, key: number, phase: number): ScanResult {
    const n = end - start;
    this.reserve(n);
    const mem = this.mem;
    chunk.copy(mem, DATA_PTR, start, end);
    if (prefix > 0 && key !== 0) this.ex.unmask(DATA_PTR, prefix, key, phase);
    const max = Math.min(maxPayload, MAX_SAFE_LENGTH);
    const count = this.ex.scanFrames(DATA_PTR + prefix, n - prefix, TABLE_CAPACITY, max % TWO_32 >>> 0, Math.floor(max / TWO_32));
    const u32 = this.u32;
    const r = this.result;
    const base = RESULT_PTR >>> 2;
    r.count = count;
    r.consumed = u32[base + 1] + prefix;
    r.status = u32[base + 2];
    r.partialLength = u32[base + 3] + u32[base + 4] * TWO_32;
    const rowBase = TABLE_PTR >>> 2;
    r.table = u32.subarray(rowBase, rowBase + TABLE_CAPACITY * ROW_WORDS);
    // Copy every payload out in one piece: [lo, hi) relative to DATA_PTR.
    const rows = count + (r.status === SCAN_PARTIAL_PAYLOAD ? 1 : 0);
    let lo = prefix > 0 ? 0 : prefix;
    let hi = prefix;
    if (rows > 0) {
      if (prefix === 0) lo = prefix + u32[rowBase + 1];
      const last = rowBase + (rows - 1) * ROW_WORDS;
      hi = prefix + u32[last + 1] + u32[last + 2];
    }
    const data = Buffer.allocUnsafe(hi - lo);
    if (hi > lo) mem.copy(data, 0, DATA_PTR + lo, DATA_PTR + hi);
    r.data = data;
    r.prefixOffset = -lo;
    r.dataOffset = prefix - lo;
    return r;
  }

  unmask(buf: Uint8Array, start: number, end: number, key: number, phase: number): void {
    const len = end - start;
    if (len < this.maskMin) return tsUnmask(buf, start, end, key, phase);
    for (let at = start; at < end; at += MAX_SCAN) {
      const n = Math.min(MAX_SCAN, end - at);
      this.reserve(n);
      const src = buf.subarray(at, at + n);
      this.mem.set(src, DATA_PTR);
      this.ex.unmask(DATA_PTR, n, key, phase + (at - start));
      buf.set(this.mem.subarray(DATA_PTR, DATA_PTR + n), at);
    }
  }

  mask(source: Uint8Array, key: number, output: Uint8Array, offset: number, length: number): void {
    if (length < this.maskMin) return tsMask(source, key, output, offset, length);
    for (let at = 0; at < length; at += MAX_SCAN) {
      const n = Math.min(MAX_SCAN, length - at);
      this.reserve(n);
      this.mem.set(source.subarray(at, at + n), DATA_PTR);
      this.ex.unmask(DATA_PTR, n, key, 0);
      output.set(this.mem.subarray(DATA_PTR, DATA_PTR + n), offset + at);
    }
  }

  /** Scratch view of wasm memory for benchmarks that measure unmasking with no copies. */
  scratch(n: number): { view: Buffer; unmaskInPlace(key: number): void } {
    this.reserve(n);
    const view = this.mem.subarray(DATA_PTR, DATA_PTR + n);
    return { view, unmaskInPlace: (key: number) => this.ex.unmask(DATA_PTR, n, key, 0) };
  }
}
