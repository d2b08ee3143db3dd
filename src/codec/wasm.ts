// The WebAssembly backend: one instance (one linear memory, fixed in size) per process, scratch
// space for the region being scanned right now. Nothing outlives a call in wasm memory: a scan
// copies the chunk in, parses and unmasks every frame with SIMD, and copies the unmasked bytes back
// into the chunk, so payloads are views of the caller's chunk exactly as with the TS twin; unless
// the caller says it copies the payloads out anyway (`scratch`: a transient read), then they are
// read from linear memory and the copy back is skipped. A chunk that already lies in linear memory
// (the socket read buffer, wasmReadBuffer) is scanned where it is, with neither copy.
import type { Codec, CodecDescription, ScanResult } from './types.js';
import { WASM_BASE64 } from './wasm-binary.js';
import {
  DATA_PTR, DATA_SIZE, MAX_SAFE_LENGTH, MAX_SCAN, MEMORY_PAGES, READ_PTR, READ_SIZE, RESULT_CONSUMED, RESULT_PARTIAL_HI, RESULT_PARTIAL_LO, RESULT_PTR, RESULT_STATUS,
  RESULT_TOUCHED, ROW_WORDS, TABLE_CAPACITY, TABLE_PTR,
} from './layout.js';
import { mask as tsMask, tsKernelRanges, unmask as tsUnmask, TsCodec } from './ts.js';
import { Buffer } from 'node:buffer';

/** The typed view of the module's exports (assembly/index.ts). */
export interface CodecExports {
  memory: WebAssembly.Memory;
  unmask(ptr: number, len: number, key: number, phase: number): void;
  maskTo(src: number, dst: number, len: number, key: number, phase: number): void;
  scanFrames(ptr: number, len: number, capacity: number, maxLo: number, maxHi: number): number;
}

const PAGE = 65536;
const TWO_32 = 0x100000000;
/**
 * Below these sizes the TS twin does the job, because the wasm call plus the copies in and out cost
 * more than they save (measured by `npm run bench`: wasm with copies overtakes the TS loop between
 * 512 B and 1 KiB for mask/unmask; the wasm parser overtakes the TS parser between 2 and 4 KiB chunks).
 */
export const WASM_MASK_MIN = 1024;
export const WASM_SCAN_MIN = 2048;

/** The one instance and its views (memory never grows: the views stay valid). */
interface Shared {
  ex: CodecExports;
  mem: Buffer;
  u32: Uint32Array;
  table: Uint32Array;
}
let shared: Shared | undefined;
/** The TS twin that serves small scans for every WasmCodec (its 64 KiB table is scratch, like wasm memory). */
let smallScans: TsCodec | undefined;

/** Compile and instantiate the embedded module synchronously (works from CJS and ESM alike). */
function loadWasm(): Shared {
  if (shared) return shared;
  const mod = new WebAssembly.Module(Buffer.from(WASM_BASE64, 'base64'));
  const ex = new WebAssembly.Instance(mod, {}).exports as unknown as CodecExports;
  const buf = ex.memory.buffer;
  const u32 = new Uint32Array(buf);
  const s: Shared = { ex, mem: Buffer.from(buf), u32, table: u32.subarray(TABLE_PTR >>> 2, (TABLE_PTR >>> 2) + TABLE_CAPACITY * ROW_WORDS) };
  if (s.mem.length !== MEMORY_PAGES * PAGE) throw new Error(`wasm memory is ${s.mem.length} bytes, layout.ts expects ${MEMORY_PAGES * PAGE}`);
  return (shared = s);
}

/**
 * A view of the socket read buffer in linear memory (layout.ts READ_PTR): the wasm scan parses
 * chunks that lie there in place, with no copy in. null where wasm cannot be loaded. The memory
 * never grows, so the view, and the raw pointer a socket handle keeps to it, stay valid.
 */
export function wasmReadBuffer(): Buffer | null {
  let s: Shared;
  try {
    s = loadWasm();
  } catch {
    return null; // no WebAssembly here (e.g. --jitless): the caller allocates a plain buffer
  }
  return s.mem.subarray(READ_PTR, READ_PTR + READ_SIZE);
}

/** WebAssembly implementation of the Codec. All WasmCodec objects share the one instance. */
export class WasmCodec implements Codec {
  readonly backend = 'wasm' as const;
  private readonly s: Shared;
  private readonly result: ScanResult;
  private readonly small: TsCodec;
  /** Use the TS twin for mask/unmask of JS buffers shorter than this. */
  readonly maskMin: number;
  /** Use the TS twin for scans of regions shorter than this. */
  readonly scanMin: number;

  /** `maskMin: 0, scanMin: 0` makes wasm do every call (the tests run both backends that way). */
  constructor(opts: { maskMin?: number; scanMin?: number } = {}) {
    this.s = loadWasm();
    this.maskMin = opts.maskMin ?? WASM_MASK_MIN;
    this.scanMin = opts.scanMin ?? WASM_SCAN_MIN;
    this.small = (smallScans ??= new TsCodec()); // one TS table for every WasmCodec, like the one instance
    this.result = {
      count: 0, consumed: 0, status: 0, partialLength: 0,
      table: this.s.table, data: Buffer.alloc(0), dataOffset: 0, prefixOffset: 0,
    };
  }

  scan(chunk: Buffer, start: number, end: number, maxPayload: number, prefix: number, key: number, phase: number, scratch = false): ScanResult {
    const n = end - start;
    // Regions beyond one slice (the parser never asks for one) go to the TS twin: scratch is fixed.
    if (n < this.scanMin || n > MAX_SCAN) return this.small.scan(chunk, start, end, maxPayload, prefix, key, phase);
    const s = this.s;
    const ex = s.ex;
    // A chunk in the read buffer (layout.ts READ_PTR) is parsed and unmasked where it lies.
    const inPlace = chunk.buffer === s.mem.buffer && chunk.byteOffset >= READ_PTR;
    const ptr = inPlace ? chunk.byteOffset + start : DATA_PTR;
    if (!inPlace) chunk.copy(s.mem, DATA_PTR, start, end);
    const unmaskPrefix = prefix > 0 && key !== 0;
    if (unmaskPrefix) ex.unmask(ptr, prefix, key, phase);
    const max = maxPayload < MAX_SAFE_LENGTH ? maxPayload : MAX_SAFE_LENGTH;
    const count = ex.scanFrames(ptr + prefix, n - prefix, TABLE_CAPACITY, max % TWO_32 >>> 0, Math.floor(max / TWO_32));
    const u32 = s.u32;
    const r = this.result;
    const base = RESULT_PTR >>> 2;
    r.count = count;
    r.consumed = u32[base + RESULT_CONSUMED] + prefix;
    r.status = u32[base + RESULT_STATUS];
    r.partialLength = u32[base + RESULT_PARTIAL_LO] + u32[base + RESULT_PARTIAL_HI] * TWO_32;
    r.table = s.table;
    if (inPlace) {
      r.data = chunk; // unmasked in place, as the TS twin does
      r.prefixOffset = start;
      r.dataOffset = start + prefix;
      return r;
    }
    if (scratch) {
      // The caller copies what it keeps before its next call: payloads are read from linear memory.
      r.data = s.mem;
      r.prefixOffset = DATA_PTR;
      r.dataOffset = DATA_PTR + prefix;
      return r;
    }
    // Unmasked bytes go back where they came from: [0, consumed) covers every payload touched.
    if (unmaskPrefix || u32[base + RESULT_TOUCHED] !== 0) s.mem.copy(chunk, start, DATA_PTR, DATA_PTR + r.consumed);
    r.data = chunk;
    r.prefixOffset = start;
    r.dataOffset = start + prefix;
    return r;
  }

  unmask(buf: Uint8Array, start: number, end: number, key: number, phase: number): void {
    if (end - start < this.maskMin) return tsUnmask(buf, start, end, key, phase);
    const s = this.s;
    for (let at = start; at < end; at += MAX_SCAN) {
      const n = Math.min(MAX_SCAN, end - at);
      s.mem.set(buf.subarray(at, at + n), DATA_PTR);
      s.ex.unmask(DATA_PTR, n, key, phase + (at - start));
      buf.set(s.mem.subarray(DATA_PTR, DATA_PTR + n), at);
    }
  }

  mask(source: Uint8Array, key: number, output: Uint8Array, offset: number, length: number): void {
    if (length < this.maskMin) return tsMask(source, key, output, offset, length);
    const s = this.s;
    for (let at = 0; at < length; at += MAX_SCAN) {
      const n = Math.min(MAX_SCAN, length - at);
      s.mem.set(source.subarray(at, at + n), DATA_PTR);
      s.ex.unmask(DATA_PTR, n, key, 0);
      output.set(s.mem.subarray(DATA_PTR, DATA_PTR + n), offset + at);
    }
  }

  describe(): CodecDescription {
    const segs = (min: number) => (min > 0 ? [{ from: 0, backend: 'ts' as const }, { from: min, backend: 'wasm' as const }] : [{ from: 0, backend: 'wasm' as const }]);
    return {
      backend: 'wasm', runtime: '', table: null, unmask: segs(this.maskMin), mask: segs(this.maskMin), scan: [{ from: 0, backend: 'wasm' }],
      scanWasmFromRead: this.scanMin, tsKernel: tsKernelRanges(), native: false, nativeSource: null, wasm: true,
    };
  }

  /** Scratch view of wasm memory for benchmarks that measure unmasking with no copies. */
  scratch(n: number): { view: Buffer; unmaskInPlace(key: number): void } {
    const s = this.s;
    // Scratch is [DATA_PTR, DATA_PTR + DATA_SIZE): memory is fixed (layout.ts). Scans, unmask and
    // mask work in slices of at most MAX_SCAN, which fit; only this benchmark hook asks for more.
    if (n > DATA_SIZE) throw new RangeError(`wasm scratch holds ${DATA_SIZE} bytes, ${n} asked`);
    const view = s.mem.subarray(DATA_PTR, DATA_PTR + n);
    return { view, unmaskInPlace: (key: number) => s.ex.unmask(DATA_PTR, n, key, 0) };
  }
}

/** The raw exports of the shared instance (benchmarks measure unmasking in linear memory with it). */
export function wasmExports(): CodecExports {
  return loadWasm().ex;
}
