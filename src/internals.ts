// Private runtime APIs wasmws uses for speed, each feature-detected once with a fallback on public
// APIs. A runtime that changes or lacks one costs speed, never correctness.
//
//   Buffer[Symbol.species]  Node's internal FastBuffer: a view constructor without subarray's
//                           argument work (parser payload views). Fallback: Buffer.from(ab, off, len).
//   zlib stream internals   _handle.writeSync and friends, what zlib's own *Sync functions drive,
//                           for small permessage-deflate messages on the spot (src/deflate/deflate.ts).
//                           Fallback: every message through the public async zlib stream API.
//   net.Socket internals    _handle.readStop()/readStart(), the handle's `reading` flag and _read,
//                           to hold a busy connection's reads back for a turn (fair reading under
//                           load, src/node/transport.ts). Fallback: never held back (every ready
//                           socket is read and processed each turn).
//   stream_wrap binding     process.binding('stream_wrap'): streamBaseState and WriteWrap, what
//                           net.Socket itself uses, to read and write an upgraded TCP connection's
//                           handle without the Readable/Writable layers (src/node/transport.ts).
//                           Not used under --pending-deprecation (process.binding would warn).
//                           Fallback: the socket's 'data' events and write().
//   handle.useUserBuffer    with raw I/O, every handle reads into one shared buffer, each read
//                           copied out at once (what net.connect's `onread` option does). Fallback
//                           (a handle without it, or WASMWS_READ_BUFFER=off): Node's buffer per read.
//
// WASMWS_INTERNALS=off forces every fallback (the test suites run the same cases both ways).

import { envFlag, envOff, readEnv } from './env.js';
import { Buffer } from 'node:buffer';

/** Whether private runtime APIs may be used at all (WASMWS_INTERNALS=off says no). */
export const INTERNALS_ALLOWED: boolean = !envOff('WASMWS_INTERNALS'); // unreadable (Deno without --allow-env): detection decides

/** `new BufferView(ab, offset, length)`: a Buffer viewing those bytes of `ab`, no copy. */
export type BufferViewConstructor = new (ab: ArrayBufferLike, offset: number, length: number) => Buffer;

/** The public-API view constructor (a plain function: `new` returns the Buffer it builds). */
const PublicBufferView = function (ab: ArrayBufferLike, offset: number, length: number): Buffer {
  return Buffer.from(ab as ArrayBuffer, offset, length);
} as unknown as BufferViewConstructor;

function detectFastBuffer(): BufferViewConstructor | null {
  if (!INTERNALS_ALLOWED) return null;
  try {
    const species = (Buffer as unknown as { [Symbol.species]?: unknown })[Symbol.species];
    // Only a distinct subclass is the fast path (Bun's species is Buffer itself, whose
    // three-argument constructor is the deprecated `new Buffer`).
    if (typeof species !== 'function' || species === Buffer) return null;
    const ab = new Uint8Array([1, 2, 3, 4]).buffer;
    const v = new (species as BufferViewConstructor)(ab, 1, 2);
    if (!Buffer.isBuffer(v) || v.buffer !== ab || v.byteOffset !== 1 || v.length !== 2 || v[0] !== 2 || v[1] !== 3) return null;
    if (v.toString('hex') !== '0203' || !(v.subarray(1) instanceof Buffer)) return null;
    return species as BufferViewConstructor;
  } catch {
    return null;
  }
}

const fastBuffer = detectFastBuffer();

/** The fastest correct view constructor on this runtime. */
export const BufferView: BufferViewConstructor = fastBuffer ?? PublicBufferView;

/** Node's stream_wrap binding: the shared read/write state and the write request class. */
export interface StreamWrapBinding {
  streamBaseState: Int32Array;
  WriteWrap: new () => object;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
  kLastWriteWasAsync: number;
}

function pendingDeprecation(): boolean {
  const opts = `${(process.execArgv ?? []).join(' ')} ${readEnv('NODE_OPTIONS') ?? ''}`;
  return /--pending-deprecation/.test(opts) || envFlag('NODE_PENDING_DEPRECATION');
}

function detectStreamWrap(): StreamWrapBinding | null {
  // WASMWS_RAW_IO=off leaves only this one out (benchmarks compare both paths in one build).
  if (!INTERNALS_ALLOWED || envOff('WASMWS_RAW_IO')) return null;
  try {
    const p = process as unknown as { binding?: (name: string) => unknown; versions: Record<string, string | undefined> };
    // Node itself only: Bun and Deno emulate parts of process.binding, not libuv stream handles.
    if (typeof p.binding !== 'function' || p.versions.bun || p.versions.deno || !p.versions.node) return null;
    if (pendingDeprecation()) return null;
    const b = p.binding('stream_wrap') as Partial<StreamWrapBinding>;
    const ints = [b.kReadBytesOrError, b.kArrayBufferOffset, b.kLastWriteWasAsync];
    if (!(b.streamBaseState instanceof Int32Array) || typeof b.WriteWrap !== 'function') return null;
    if (!ints.every((k) => Number.isInteger(k) && (k as number) >= 0 && (k as number) < b.streamBaseState!.length)) return null;
    new b.WriteWrap(); // constructible without arguments, as net.Socket does
    return b as StreamWrapBinding;
  } catch {
    return null;
  }
}

/** The stream_wrap binding, where it may be used (the transport also checks each socket's handle). */
export const streamWrap: StreamWrapBinding | null = detectStreamWrap();

/** Raw handles read into one shared buffer where they can (WASMWS_READ_BUFFER=off: Node's buffer per read). */
export const sharedReadBuffer: boolean = streamWrap !== null && !envOff('WASMWS_READ_BUFFER');
/** WASMWS_READ_BUFFER=plain: the shared read buffer is memory of its own, not in wasm linear memory. */
export const readBufferPlain: boolean = /^plain$/i.test(readEnv('WASMWS_READ_BUFFER') ?? '');

/** Which private APIs are in use on this runtime (for describe() and tests). */
export interface InternalsReport {
  /** WASMWS_INTERNALS allows private APIs. */
  allowed: boolean;
  /** Buffer[Symbol.species] is the payload view constructor. */
  bufferSpecies: boolean;
  /** permessage-deflate (de)compresses small messages synchronously through zlib's internals. */
  zlibSync: boolean;
  /** Upgraded TCP connections are read and written through their handle (stream_wrap). */
  rawSocketIo: boolean;
  /** With raw I/O, their handles read into one shared buffer (useUserBuffer), each read copied out. */
  sharedReadBuffer: boolean;
}

let zlibSyncProbe: () => boolean = () => false;

/** @internal deflate.ts registers its own probe (it owns the code the probe exercises). */
export function registerZlibSyncProbe(probe: () => boolean): void {
  zlibSyncProbe = probe;
}

/** Which private runtime APIs wasmws uses here, and whether they were allowed. */
export function runtimeInternals(): InternalsReport {
  return { allowed: INTERNALS_ALLOWED, bufferSpecies: fastBuffer !== null, zlibSync: zlibSyncProbe(), rawSocketIo: streamWrap !== null, sharedReadBuffer };
}
