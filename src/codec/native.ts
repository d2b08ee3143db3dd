// The native in-place unmask, where there is one: Node ≥ 26 ships `http.websocketUnmask(buffer,
// mask)` (XOR a whole view in place) and `http.websocketMask(source, mask, output, offset, length)`
// (bufferutil's `mask`), SIMD in C++; on older Node the `bufferutil` addon, where the application
// installed it (the one `ws` uses; not declared as a peer, so that aliasing `bufferutil` to
// wasmws/bufferutil does not conflict with itself), has the same two functions. Both work on JS
// buffers where they are: no copy into linear memory and back. Public APIs, so WASMWS_INTERNALS does not switch them off.
//
// Found once: node:http first (the runtime's own, and the faster of the two where both exist), then
// `bufferutil` on Node, resolved from this package and from the working directory, taken only if
// its functions are compiled code (bufferutil falls back to plain JS when its build is missing,
// and the TS twin is faster than that) and unless WASMWS_NO_BUFFERUTIL is set (as ws's
// WS_NO_BUFFER_UTIL). Every candidate passes a functional probe (odd offsets and lengths against a
// reference XOR) or is unused.
//
// Reached through process.getBuiltinModule, not an import of node:http or node:module: the codec
// stays free of I/O modules, and runtimes without them simply have no native path.
import type { Codec, CodecDescription, ScanResult } from './types.js';
import { ROW_WORDS, SCAN_OK, TABLE_CAPACITY } from './layout.js';
import { mask as tsMask, rotateKey, scanFrames, tsKernelRanges, unmask as tsUnmask } from './ts.js';
import { RUNTIME } from './runtime.js';
import { MODULE_LOCATION } from './location.js';
import { envFlag } from '../env.js';
import { Buffer } from 'node:buffer';

/** WASMWS_NO_BUFFERUTIL is set (to anything but '' or '0'). */
const noBufferutil = (): boolean => envFlag('WASMWS_NO_BUFFERUTIL');

type UnmaskFn = (buffer: ArrayBufferView, mask: ArrayBufferView) => void;
type MaskFn = (source: ArrayBufferView, mask: ArrayBufferView, output: ArrayBufferView, offset: number, length: number) => void;

/** Where the native functions come from. */
export type NativeSource = 'node:http' | 'bufferutil';

/** Below this many bytes NativeCodec hands a call to the TS twin unless told otherwise (the call and the view cost ~40 ns). */
export const NATIVE_MIN = 256;


/** Whether fn is compiled code rather than JavaScript (a native addon's or the runtime's own). */
function isCompiled(fn: unknown): boolean {
  return typeof fn === 'function' && /\{\s*\[native code\]\s*\}\s*$/.test(Function.prototype.toString.call(fn));
}

/**
 * The module's `unmask` / `mask` (node:http's `websocketUnmask` / `websocketMask`) if both XOR
 * correctly (in place through a view at an odd offset with an odd length; into an output at an
 * offset, source untouched) and, with `compiled` (for an addon), both are compiled code; else null.
 * Exported for the tests: with `compiled`, a correct pair written in JavaScript is refused.
 */
export function acceptNative(mod: unknown, compiled = true): { unmask: UnmaskFn; mask: MaskFn } | null {
  try {
    const m = mod as { unmask?: unknown; mask?: unknown; websocketUnmask?: unknown; websocketMask?: unknown } | null | undefined;
    const unmask = m?.websocketUnmask ?? m?.unmask, mask = m?.websocketMask ?? m?.mask;
    if (typeof unmask !== 'function' || typeof mask !== 'function') return null;
    if (compiled && (!isCompiled(unmask) || !isCompiled(mask))) return null;
    const key = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);
    const ref = (b: number, i: number) => b ^ key[i & 3];
    const backing = new Uint8Array(67);
    for (let i = 0; i < backing.length; i++) backing[i] = (i * 37 + 11) & 0xff;
    const before = backing.slice();
    (unmask as UnmaskFn)(new Uint8Array(backing.buffer, 3, 61), key);
    for (let i = 0; i < backing.length; i++) {
      const want = i < 3 || i >= 64 ? before[i] : ref(before[i], i - 3);
      if (backing[i] !== want) return null;
    }
    const src = before.subarray(0, 41);
    const out = new Uint8Array(50).fill(0xaa);
    (mask as MaskFn)(src, key, out, 5, 41);
    for (let i = 0; i < out.length; i++) {
      const want = i < 5 || i >= 46 ? 0xaa : ref(src[i - 5], i - 5);
      if (out[i] !== want) return null;
    }
    for (let i = 0; i < src.length; i++) if (src[i] !== before[i]) return null;
    return { unmask: unmask as UnmaskFn, mask: mask as MaskFn };
  } catch {
    return null;
  }
}

function probe(): { unmask: UnmaskFn; mask: MaskFn; source: NativeSource } | null {
  let getBuiltin: ((id: string) => unknown) | undefined;
  try {
    getBuiltin = typeof process !== 'undefined' ? (process as unknown as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule : undefined;
    if (typeof getBuiltin !== 'function') return null;
    const own = acceptNative(getBuiltin('node:http'), false); // the runtime's own: JS wrappers over its binding
    if (own) return { ...own, source: 'node:http' };
  } catch {
    return null;
  }
  // bufferutil: Node only (on Bun and Deno loading an addon is theirs to judge), never forced.
  if (RUNTIME.name !== 'node' || noBufferutil()) return null;
  let createRequire: ((from: string) => (id: string) => unknown) | undefined;
  try {
    createRequire = (getBuiltin('node:module') as { createRequire?: typeof createRequire } | undefined)?.createRequire;
  } catch {
    return null;
  }
  if (typeof createRequire !== 'function') return null;
  const from: string[] = [];
  from.push(MODULE_LOCATION);
  try {
    from.push(`${process.cwd()}/`);
  } catch {
    // no working directory (deleted): this package's location only
  }
  for (const f of from) {
    try {
      const got = acceptNative(createRequire(f)('bufferutil'));
      if (got) return { ...got, source: 'bufferutil' };
    } catch {
      // not installed here
    }
  }
  return null;
}

const native = probe();

/** Whether a native unmask (node:http's, else bufferutil's) is here and passed the probe. */
export const HAS_NATIVE: boolean = native !== null;

/** Where the native unmask comes from (null: none). */
export const NATIVE_SOURCE: NativeSource | null = native?.source ?? null;

/** The 4 mask bytes handed to the native functions (they take a view, not a number). */
const KEY = new Uint8Array(4);
function setKey(k: number): Uint8Array {
  KEY[0] = k;
  KEY[1] = k >>> 8;
  KEY[2] = k >>> 16;
  KEY[3] = k >>> 24;
  return KEY;
}

/** XOR buf[start, end) in place with `key` from mask byte `phase`, natively (HAS_NATIVE must hold). */
export function nativeUnmask(buf: Uint8Array, start: number, end: number, key: number, phase: number): void {
  const k = setKey(rotateKey(key, phase));
  if (start === 0 && end === buf.length) native!.unmask(buf, k);
  else native!.unmask(new Uint8Array(buf.buffer, buf.byteOffset + start, end - start), k);
}

/** bufferutil's `mask`, natively (HAS_NATIVE must hold). */
export function nativeMask(source: Uint8Array, key: number, output: Uint8Array, offset: number, length: number): void {
  native!.mask(source, setKey(key), output, offset, length);
}

/**
 * The native backend: the runtime's in-place unmask for calls of `min` bytes or more, the TS twin
 * below; scans walk headers in TS and unmask each payload in place, natively from `min` bytes.
 * Throws where the runtime has no native unmask (HAS_NATIVE).
 */
export class NativeCodec implements Codec {
  readonly backend = 'native' as const;
  /** Calls (and scanned payloads) shorter than this go to the TS twin. */
  readonly min: number;
  private readonly result: ScanResult = {
    count: 0, consumed: 0, status: SCAN_OK, partialLength: 0,
    table: new Uint32Array(TABLE_CAPACITY * ROW_WORDS), data: Buffer.alloc(0), dataOffset: 0, prefixOffset: 0,
  };

  /** `min: 0` makes the native functions do every call (the tests run that way). */
  constructor(opts: { min?: number } = {}) {
    if (!native) throw new Error('this runtime has no native WebSocket unmask (node:http websocketUnmask on Node >= 26, or the bufferutil addon on Node)');
    this.min = opts.min ?? NATIVE_MIN;
  }

  unmask(buf: Uint8Array, start: number, end: number, key: number, phase: number): void {
    if (end - start < this.min) tsUnmask(buf, start, end, key, phase);
    else nativeUnmask(buf, start, end, key, phase);
  }

  mask(source: Uint8Array, key: number, output: Uint8Array, offset: number, length: number): void {
    if (length < this.min) tsMask(source, key, output, offset, length);
    else nativeMask(source, key, output, offset, length);
  }

  scan(chunk: Buffer, start: number, end: number, maxPayload: number, prefix: number, key: number, phase: number): ScanResult {
    const r = this.result;
    if (prefix > 0 && key !== 0) this.unmask(chunk, start, start + prefix, key, phase);
    r.data = chunk;
    r.prefixOffset = start;
    r.dataOffset = start + prefix;
    scanFrames(chunk, start + prefix, end, TABLE_CAPACITY, maxPayload, r, this.min, nativeUnmask);
    r.consumed += prefix;
    return r;
  }

  describe(): CodecDescription {
    const segs = this.min > 0 ? [{ from: 0, backend: 'ts' as const }, { from: this.min, backend: 'native' as const }] : [{ from: 0, backend: 'native' as const }];
    return { backend: 'native', runtime: '', table: null, unmask: segs, mask: segs, scan: segs, scanWasmFromRead: null, tsKernel: tsKernelRanges(), native: true, nativeSource: NATIVE_SOURCE, wasm: false };
  }
}
