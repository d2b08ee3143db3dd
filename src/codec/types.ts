/** What one scan of a region found; the object is reused by the codec between calls. */
export interface ScanResult {
  /** Complete frames in the table. */
  count: number;
  /** Bytes of the region handled, counted from the region's start (including the prefix). */
  consumed: number;
  /** SCAN_* status from layout.ts. */
  status: number;
  /** For SCAN_PARTIAL_PAYLOAD: the partial frame's whole payload length. */
  partialLength: number;
  /** Rows of 4 × u32: b0 | b1 << 8, payload offset, payload length, masking key (LE). */
  table: Uint32Array;
  /** Where unmasked payloads live: row i's payload starts at data[dataOffset + offset_i]. */
  data: Buffer;
  dataOffset: number;
  /** Where the continuation prefix (payload of a frame begun earlier) starts in `data`. */
  prefixOffset: number;
}

/** The hot path, in two interchangeable implementations (WebAssembly SIMD and pure TypeScript). */
export interface Codec {
  readonly backend: 'wasm' | 'ts';
  /**
   * Unmask the first `prefix` bytes of chunk[start, end) with `key` from mask byte `phase` (the
   * tail of a frame begun in an earlier chunk), then parse every frame after them, unmasking
   * payloads, until the region ends, a frame is incomplete, a length is refused or the table is
   * full. Rows' offsets count from start + prefix. May unmask chunk in place.
   */
  scan(chunk: Buffer, start: number, end: number, maxPayload: number, prefix: number, key: number, phase: number): ScanResult;
  /** XOR buf[start, end) in place with `key` (LE u32), starting at mask byte `phase`. */
  unmask(buf: Uint8Array, start: number, end: number, key: number, phase: number): void;
  /** output[offset + i] = source[i] ^ mask[i & 3] for i < length (bufferutil's `mask`). */
  mask(source: Uint8Array, key: number, output: Uint8Array, offset: number, length: number): void;
}
