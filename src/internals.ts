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
//
// WASMWS_INTERNALS=off forces every fallback (the test suites run the same cases both ways).

import { readEnv } from './env.js';

/** Whether private runtime APIs may be used at all (WASMWS_INTERNALS=off says no). */
export const INTERNALS_ALLOWED: boolean = (() => {
  const v = readEnv('WASMWS_INTERNALS'); // unreadable (Deno without --allow-env): detection decides
  return v === undefined || !/^(off|0|false|no)$/i.test(v);
})();

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

/** Which private APIs are in use on this runtime (for describe() and tests). */
export interface InternalsReport {
  /** WASMWS_INTERNALS allows private APIs. */
  allowed: boolean;
  /** Buffer[Symbol.species] is the payload view constructor. */
  bufferSpecies: boolean;
  /** permessage-deflate (de)compresses small messages synchronously through zlib's internals. */
  zlibSync: boolean;
}

let zlibSyncProbe: () => boolean = () => false;

/** @internal deflate.ts registers its own probe (it owns the code the probe exercises). */
export function registerZlibSyncProbe(probe: () => boolean): void {
  zlibSyncProbe = probe;
}

/** Which private runtime APIs wasmws uses here, and whether they were allowed. */
export function runtimeInternals(): InternalsReport {
  return { allowed: INTERNALS_ALLOWED, bufferSpecies: fastBuffer !== null, zlibSync: zlibSyncProbe() };
}
