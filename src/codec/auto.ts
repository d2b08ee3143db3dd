// `auto`: per operation and size, the primitive that a benchmark measured fastest on this runtime
// (src/codec/table.ts, produced by bench/codec-table.mjs), among those available here:
//
//   unmask / mask of a JS buffer   by length: TS twin for tiny calls, then wasm (copy in, SIMD,
//                                  copy back) or a native in-place unmask (node:http on Node ≥ 26,
//                                  else the bufferutil addon where it is installed)
//   scan of a read                 by the payload length of its first frame: wasm batch-scans a read
//                                  of many small frames in one call (copied into linear memory
//                                  once); big frames are unmasked where they are (native, else TS
//                                  or wasm as measured); reads too short for the wasm call go to TS
//
// A runtime without a measured entry of its own uses the nearest one (same runtime, nearest major;
// else same engine); with none at all, the fixed defaults of the wasm backend (WASM_MASK_MIN,
// WASM_SCAN_MIN) and no native path.
import type { BackendName, Codec, CodecDescription, ScanResult, Segment } from './types.js';
import { TsCodec, mask as tsMask, tsKernelRanges, unmask as tsUnmask } from './ts.js';
import { WasmCodec, WASM_MASK_MIN, WASM_SCAN_MIN } from './wasm.js';
import { HAS_NATIVE, NATIVE_SOURCE, NativeCodec, nativeMask, nativeUnmask } from './native.js';
import { backendAt, CHOSEN, crossoverOf, monotone, segmentsOf, withoutBelow, type ChosenEntry } from './select.js';
import { RUNTIME } from './runtime.js';

const TS = 0, WASM = 1, NATIVE = 2;
const ID: Record<BackendName, number> = { ts: TS, wasm: WASM, native: NATIVE };

export interface AutoCodecOptions {
  /** Use wasm where it wins (default: wherever the module instantiates). */
  wasm?: boolean;
  /** Use the runtime's native unmask where it wins (default: wherever the probe passed). */
  native?: boolean;
  /** The measured entry to decide from (default: this runtime's); null: the fixed defaults. */
  table?: ChosenEntry | null;
}

/** Segments as parallel arrays for a cheap lookup on the hot path. */
interface Cuts {
  from: number[];
  id: number[];
}
const cutsOf = (s: Segment[]): Cuts => ({ from: s.map((x) => x.from), id: s.map((x) => ID[x.backend]) });
function pick(c: Cuts, n: number): number {
  const from = c.from;
  let i = 0;
  while (i + 1 < from.length && n >= from[i + 1]) i++;
  return c.id[i];
}

/** The payload length the first frame header at p declares (capped; a partial header counts as small). */
function firstPayload(b: Uint8Array, p: number, n: number): number {
  const len7 = b[p + 1] & 0x7f;
  if (len7 < 126) return len7;
  if (len7 === 126) return n >= 4 ? (b[p + 2] << 8) | b[p + 3] : 126;
  if (n < 10) return 65536;
  return b[p + 2] | b[p + 3] | b[p + 4] | b[p + 5] ? 0x7fffffff : ((b[p + 6] << 24) | (b[p + 7] << 16) | (b[p + 8] << 8) | b[p + 9]) >>> 0;
}

/** The codec `auto` builds: every call goes to the measured-fastest available primitive. */
export class AutoCodec implements Codec {
  /** The backend that scans a read full of small frames (wasm where it loads). */
  readonly backend: BackendName;
  private readonly ts: TsCodec;
  private readonly wasm: WasmCodec | null;
  private readonly native: NativeCodec | null;
  private readonly table: ChosenEntry | null;
  private readonly segs: { unmask: Segment[]; mask: Segment[]; scan: Segment[]; scanNoWasm: Segment[] };
  private readonly uCuts: Cuts;
  private readonly mCuts: Cuts;
  private readonly sCuts: Cuts;
  private readonly sCutsNoWasm: Cuts;
  /** Reads shorter than this are not worth the wasm call. */
  private readonly wasmReadMin: number;

  constructor(opts: AutoCodecOptions = {}) {
    let wasm: WasmCodec | null = null;
    if (opts.wasm !== false) {
      try {
        wasm = new WasmCodec({ maskMin: 0, scanMin: 0 });
      } catch {
        wasm = null; // no WebAssembly here (e.g. node --jitless)
      }
    }
    const native = opts.native !== false && HAS_NATIVE;
    const table = opts.table === undefined ? CHOSEN : opts.table;
    const avail: BackendName[] = ['ts'];
    if (wasm) avail.push('wasm');
    if (native) avail.push('native');
    const noWasm = avail.filter((b) => b !== 'wasm');
    const e = table?.entry;
    const fixed = (min: number): Segment[] => (wasm ? [{ from: 0, backend: 'ts' }, { from: min, backend: 'wasm' }] : [{ from: 0, backend: 'ts' }]);
    const unmask = segmentsOf(e?.unmask, avail, { monotone: true }) ?? fixed(WASM_MASK_MIN);
    const mask = segmentsOf(e?.mask, avail, { monotone: true }) ?? fixed(WASM_MASK_MIN);
    // A native scan unmasks payloads natively from where native overtakes the TS twin per call;
    // below that it is the TS scan with an extra call in between, so it never takes those sizes
    // (a noisy sample must not send small frames to it).
    const nativeFrom = native ? segmentsOf(e?.unmask, ['ts', 'native'], { monotone: true })?.find((s) => s.backend === 'native')?.from ?? Infinity : Infinity;
    const scanRow = e ? withoutBelow(e.scanFrame, 'native', nativeFrom) : undefined;
    const scan = segmentsOf(scanRow, avail) ?? (wasm ? [{ from: 0, backend: 'wasm' as const }] : [{ from: 0, backend: 'ts' as const }]);
    const scanNoWasm = segmentsOf(scanRow, noWasm) ?? [{ from: 0, backend: 'ts' }];
    this.wasmReadMin = !wasm ? Infinity : e ? crossoverOf(monotone(e.scanRead), 'ts', 'wasm') ?? Infinity : WASM_SCAN_MIN;
    this.ts = new TsCodec();
    this.wasm = wasm;
    this.native = native ? new NativeCodec({ min: nativeFrom }) : null;
    this.table = table;
    this.segs = { unmask, mask, scan, scanNoWasm };
    this.uCuts = cutsOf(unmask);
    this.mCuts = cutsOf(mask);
    this.sCuts = cutsOf(scan);
    this.sCutsNoWasm = cutsOf(scanNoWasm);
    this.backend = wasm && this.wasmReadMin !== Infinity ? 'wasm' : backendAt(scanNoWasm, 65536);
  }

  unmask(buf: Uint8Array, start: number, end: number, key: number, phase: number): void {
    const id = pick(this.uCuts, end - start);
    if (id === TS) tsUnmask(buf, start, end, key, phase);
    else if (id === NATIVE) nativeUnmask(buf, start, end, key, phase);
    else this.wasm!.unmask(buf, start, end, key, phase);
  }

  mask(source: Uint8Array, key: number, output: Uint8Array, offset: number, length: number): void {
    const id = pick(this.mCuts, length);
    if (id === TS) tsMask(source, key, output, offset, length);
    else if (id === NATIVE) nativeMask(source, key, output, offset, length);
    else this.wasm!.mask(source, key, output, offset, length);
  }

  scan(chunk: Buffer, start: number, end: number, maxPayload: number, prefix: number, key: number, phase: number, scratch = false): ScanResult {
    const at = start + prefix;
    const rest = end - at;
    let id = TS;
    if (rest >= 2) {
      const f = Math.min(firstPayload(chunk, at, rest), rest);
      id = end - start >= this.wasmReadMin ? pick(this.sCuts, f) : pick(this.sCutsNoWasm, f);
    }
    if (prefix > 0 && key !== 0) {
      // A frame's tail: as an unmask of its own, unless wasm scans this read and would copy the
      // tail into linear memory anyway while no in-place primitive beats it.
      const u = pick(this.uCuts, prefix);
      if (id === WASM && u !== NATIVE) return this.wasm!.scan(chunk, start, end, maxPayload, prefix, key, phase, scratch);
      this.unmask(chunk, start, at, key, phase);
    }
    const codec = id === WASM ? this.wasm! : id === NATIVE ? this.native! : this.ts;
    // A prefix stays in `chunk` (unmasked there, or never masked): then payloads must be too.
    const r = codec.scan(chunk, at, end, maxPayload, 0, 0, 0, scratch && prefix === 0);
    r.consumed += prefix;
    r.prefixOffset = start;
    return r;
  }

  describe(): CodecDescription {
    const t = this.table;
    return {
      backend: this.backend,
      runtime: `${RUNTIME.name} ${RUNTIME.version}`,
      table: t ? `${t.key}${t.exact ? '' : ' (nearest measured)'}: ${t.entry.runtime}, measured ${t.entry.measured}` : null,
      unmask: this.segs.unmask,
      mask: this.segs.mask,
      scan: this.wasmReadMin === Infinity ? this.segs.scanNoWasm : this.segs.scan,
      scanWasmFromRead: this.wasmReadMin === Infinity ? null : this.wasmReadMin,
      tsKernel: tsKernelRanges(),
      native: this.native !== null,
      nativeSource: this.native !== null ? NATIVE_SOURCE : null,
      wasm: this.wasm !== null,
    };
  }
}
