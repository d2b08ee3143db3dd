/** Frame opcodes (RFC 6455 §5.2, §11.8). */
export const Opcode = {
  CONTINUATION: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa,
} as const;
export type Opcode = (typeof Opcode)[keyof typeof Opcode];

/** The GUID concatenated with Sec-WebSocket-Key (RFC 6455 §1.3). */
export const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Longest payload of a control frame (RFC 6455 §5.5). */
export const MAX_CONTROL_PAYLOAD = 125;
/** Longest close reason: 125 minus the 2-byte code (RFC 6455 §5.5.1). */
export const MAX_CLOSE_REASON = 123;
/** Largest payload length that the 7-bit form holds; 126 and 127 select the extended forms. */
export const LEN7_MAX = 125;
export const LEN16_MARK = 126;
export const LEN64_MARK = 127;
export const LEN16_MAX = 0xffff;
/** Longest frame header: 2 + 8 (64-bit length) + 4 (masking key). */
export const MAX_HEADER = 14;
export const MASK_KEY_SIZE = 4;
/** Default limit on a message's size, as in `ws`. */
export const DEFAULT_MAX_PAYLOAD = 100 * 1024 * 1024;

/** Close codes (RFC 6455 §7.4.1) that this package sends or checks. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  NO_STATUS: 1005,
  ABNORMAL: 1006,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  MANDATORY_EXTENSION: 1010,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  /** Reported only, never sent: the TLS handshake failed (§7.4.1). */
  TLS_HANDSHAKE: 1015,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
