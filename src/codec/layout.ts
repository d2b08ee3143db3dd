// Linear-memory layout of the wasm codec; mirrors the comment at the top of assembly/index.ts,
// which declares the same names (RESULT_*, ROW_*) with the same values.

/** RESULT block: 6 × u32, fields RESULT_* below (word indices). */
export const RESULT_PTR = 0;
/** Complete frames written to the table. */
export const RESULT_COUNT = 0;
/** Bytes of the region fully handled (on SCAN_ERR_*: the bad frame's offset). */
export const RESULT_CONSUMED = 1;
/** SCAN_* status. */
export const RESULT_STATUS = 2;
/** SCAN_PARTIAL_PAYLOAD: the partial frame's whole payload length, low and high 32 bits. */
export const RESULT_PARTIAL_LO = 3;
export const RESULT_PARTIAL_HI = 4;
/** 1 when some payload bytes were unmasked in linear memory (JS must copy them back). */
export const RESULT_TOUCHED = 5;

/**
 * First row of the frame table; each row is ROW_WORDS × u32, fields ROW_* below (word indices).
 * The two per-frame loops (scanFrames in ts.ts, FrameParser.consume) write the offsets as literals,
 * each followed by the field's name in a block comment (`row + 1`, then ROW_OFFSET): an imported
 * binding there costs ~5% per frame on V8. test/codec.test.ts checks every such literal against
 * these values, and assembly/index.ts's declarations of the same names.
 */
export const TABLE_PTR = 64;
export const ROW_WORDS = 4;
/** b0 | b1 << 8: the first two header bytes (FIN, RSV1-3, opcode | MASK, 7-bit length). */
export const ROW_BITS = 0;
/** Payload offset, relative to the scanned region's start. */
export const ROW_OFFSET = 1;
/** Payload length (for the partial frame: the bytes available so far). */
export const ROW_LENGTH = 2;
/** Masking key as a little-endian u32 (0 when unmasked). */
export const ROW_KEY = 3;
/** Rows per scan call; the table ends exactly at DATA_PTR. */
export const TABLE_CAPACITY = (65536 - TABLE_PTR) / (ROW_WORDS * 4);
/** Where the chunk being scanned is copied. */
export const DATA_PTR = 65536;
/** Largest region handed to one scan; larger pushes are scanned in slices so memory stays small. */
export const MAX_SCAN = 1 << 20;
/** Scratch at DATA_PTR: one scan slice, or two for a benchmark's in-memory mask (source and output). */
export const DATA_SIZE = 2 * MAX_SCAN + 65536;
/**
 * The shared socket read buffer (src/node/transport.ts) when wasm is there: reads land in linear
 * memory and the wasm scan parses them where they are. Memory is fixed at MEMORY_PAGES, initial
 * and maximum (asconfig.json): it never grows, so its ArrayBuffer is never detached or moved, which
 * the socket handle, holding a raw pointer to the read buffer, relies on.
 */
export const READ_PTR = DATA_PTR + DATA_SIZE;
/** 512 KiB, as Bun reads: a 64 KiB message in one read (bench: 1.45× at 64 KiB × 1,000 against 64 KiB). */
export const READ_SIZE = 512 * 1024;
export const MEMORY_PAGES = (READ_PTR + READ_SIZE) / 65536;

// Scan status codes (assembly/index.ts SCAN_*).
export const SCAN_OK = 0;
export const SCAN_PARTIAL_HEADER = 1;
export const SCAN_PARTIAL_PAYLOAD = 2;
export const SCAN_ERR_LENGTH_MSB = 3;
export const SCAN_ERR_TOO_BIG = 4;

/** Largest payload length JS numbers hold exactly (2^53 − 1); beyond it a frame is refused (1009). */
export const MAX_SAFE_LENGTH = Number.MAX_SAFE_INTEGER;
