import type { Codec, CodecDescription } from './types.js';
import { TsCodec } from './ts.js';
import { WasmCodec } from './wasm.js';
import { HAS_NATIVE, NATIVE_SOURCE, NativeCodec } from './native.js';
import { AutoCodec } from './auto.js';
import { RUNTIME } from './runtime.js';
import { readEnv } from '../env.js';

export type { BackendName, Codec, CodecDescription, ScanResult, Segment, TableEntry } from './types.js';
export type CodecBackend = 'auto' | 'wasm' | 'ts' | 'native';
export interface CodecOptions {
  /**
   * `auto` (default): per operation and size the primitive measured fastest on this runtime
   * (wasm, TS twin, or the runtime's native unmask); `WASMWS_CODEC=ts|wasm|native` overrides `auto`.
   */
  backend?: CodecBackend;
}

let tsCodec: TsCodec | undefined;
let wasmCodec: WasmCodec | undefined;
let nativeCodec: NativeCodec | undefined;
let autoCodec: AutoCodec | undefined;

/**
 * The codec for a backend. Codecs are shared by every connection of the process: each call is
 * synchronous and keeps nothing between calls, so one table and one linear memory serve all.
 * `ts`, `wasm` and `native` run that backend (with the TS twin for calls too small for it);
 * `native` throws where the runtime has none (HAS_NATIVE), `wasm` where WebAssembly is missing.
 */
export function createCodec(opts: CodecOptions = {}): Codec {
  let backend = opts.backend ?? 'auto';
  if (backend === 'auto') {
    const env = readEnv('WASMWS_CODEC');
    if (env === 'ts' || env === 'wasm' || env === 'native') backend = env;
  }
  if (backend === 'ts') return (tsCodec ??= new TsCodec());
  if (backend === 'wasm') return (wasmCodec ??= new WasmCodec());
  if (backend === 'native') return (nativeCodec ??= new NativeCodec());
  if (backend !== 'auto') throw new TypeError(`unknown codec backend: ${String(backend)}`);
  return (autoCodec ??= new AutoCodec());
}


/** Resolve a `codec` option that may be a Codec, a backend name or undefined. */
export function resolveCodec(codec: Codec | CodecBackend | undefined): Codec {
  if (codec && typeof codec === 'object') return codec;
  return createCodec({ backend: codec });
}

/**
 * What runs for each operation and size in a codec (default: the one `auto` picks here): the
 * backend per size range for unmask, mask and scan, the measured table entry that decided, and
 * which primitives this runtime has.
 */
export function describeCodec(codec: Codec = createCodec()): CodecDescription {
  const d = codec.describe?.() ?? {
    backend: codec.backend, runtime: '', table: null, unmask: [{ from: 0, backend: codec.backend }], mask: [{ from: 0, backend: codec.backend }],
    scan: [{ from: 0, backend: codec.backend }], scanWasmFromRead: null, tsKernel: { int32From: null, bigint64From: null, otherBufferFrom: null }, native: false, nativeSource: null, wasm: false,
  };
  return { ...d, runtime: d.runtime || `${RUNTIME.name} ${RUNTIME.version}` };
}

export { AutoCodec, HAS_NATIVE, NATIVE_SOURCE, NativeCodec, TsCodec, WasmCodec };
