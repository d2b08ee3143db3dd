// A drop-in for the `bufferutil` package (the native addon `ws` uses): same two functions, same
// semantics, backed by the codec `auto` builds: per size the primitive measured fastest on this
// runtime (TS twin for small calls, wasm SIMD, or node:http's native unmask on Node ≥ 26).
import { createCodec } from './codec/index.js';

const codec = createCodec();

function keyOf(mask: Uint8Array): number {
  return (mask[0] | (mask[1] << 8) | (mask[2] << 16) | (mask[3] << 24)) >>> 0;
}

/** Mask `source` with the 4-byte `mask` into `output` at `offset`, for `length` bytes. */
export function mask(source: Uint8Array, mask: Uint8Array, output: Uint8Array, offset: number, length: number): void {
  codec.mask(source, keyOf(mask), output, offset, length);
}

/** Unmask `buffer` in place with the 4-byte `mask`. */
export function unmask(buffer: Uint8Array, mask: Uint8Array): void {
  codec.unmask(buffer, 0, buffer.length, keyOf(mask), 0);
}

export default { mask, unmask };
