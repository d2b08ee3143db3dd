// Linear-memory layout of the wasm codec; mirrors the comment at the top of assembly/index.ts.

/** RESULT block: count, consumed, status, partial length (lo, hi), touched, as u32. */
export const RESULT_PTR = 0;
/** First row of the frame table; each row is 4 × u32 (b0|b1<<8, offset, length, key). */
export const TABLE_PTR = 64;
export const ROW_WORDS = 4;
/** Rows per scan call; the table ends exactly at DATA_PTR. */
export const TABLE_CAPACITY = (65536 - TABLE_PTR) / (ROW_WORDS * 4);
/** Where the chunk being scanned is copied. */
export const DATA_PTR = 65536;
/** Largest region handed to one scan; larger pushes are scanned in slices so memory stays small. */
export const MAX_SCAN = 1 << 20;

// Scan status codes (assembly/index.ts SCAN_*).
export const SCAN_OK = 0;
export const SCAN_PARTIAL_HEADER = 1;
export const SCAN_PARTIAL_PAYLOAD = 2;
export const SCAN_ERR_LENGTH_MSB = 3;
export const SCAN_ERR_TOO_BIG = 4;

/** Largest payload length JS numbers hold exactly (2^53 − 1); beyond it a frame is refused (1009). */
export const MAX_SAFE_LENGTH = Number.MAX_SAFE_INTEGER;
