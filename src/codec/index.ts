import type { Codec } from './types.js';
import { TsCodec } from './ts.js';
import { WasmCodec } from './wasm.js';

export type { Codec, ScanResult } from './types.js';
export type CodecBackend = 'auto' | 'wasm' | 'ts';
export interface CodecOptions {
  /** `auto` (default) picks wasm where it instantiates; `WASMWS_CODEC=ts|wasm` overrides `auto`. */
  backend?: CodecBackend;
}

let tsCodec: TsCodec | undefined;
let wasmCodec: WasmCodec | undefined;
let wasmFailed = false;

/**
 * The codec for a backend. Codecs are shared by every connection of the process: each call is
 * synchronous and keeps nothing between calls, so one table and one linear memory serve all.
 */
export function createCodec(opts: CodecOptions = {}): Codec {
  let backend = opts.backend ?? 'auto';
  if (backend === 'auto') {
    const env = envBackend();
    if (env === 'ts' || env === 'wasm') backend = env;
  }
  if (backend === 'ts') return (tsCodec ??= new TsCodec());
  if (backend === 'wasm') return (wasmCodec ??= new WasmCodec());
  if (backend !== 'auto') throw new TypeError(`unknown codec backend: ${String(backend)}`);
  if (!wasmFailed) {
    try {
      return (wasmCodec ??= new WasmCodec());
    } catch {
      wasmFailed = true; // no WebAssembly here (e.g. node --jitless): the TS twin serves
    }
  }
  return (tsCodec ??= new TsCodec());
}

/** WASMWS_CODEC, or undefined where the environment is unreadable (Deno without --allow-env throws). */
function envBackend(): string | undefined {
  try {
    return typeof process !== 'undefined' ? process.env?.WASMWS_CODEC : undefined;
  } catch {
    return undefined;
  }
}

/** Resolve a `codec` option that may be a Codec, a backend name or undefined. */
export function resolveCodec(codec: Codec | CodecBackend | undefined): Codec {
  if (codec && typeof codec === 'object') return codec;
  return createCodec({ backend: codec });
}

export { TsCodec, WasmCodec };
