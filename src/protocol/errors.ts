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
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/**
 * Failure kinds → close code: the one table that maps a reason for failing the connection to the
 * close frame we send (RFC 6455 §7.1.7 "Fail the WebSocket Connection").
 */
export const ERRORS = {
  reserved_bits: CloseCode.PROTOCOL_ERROR,
  bad_opcode: CloseCode.PROTOCOL_ERROR,
  control_too_long: CloseCode.PROTOCOL_ERROR,
  control_fragmented: CloseCode.PROTOCOL_ERROR,
  unmasked_client_frame: CloseCode.PROTOCOL_ERROR,
  masked_server_frame: CloseCode.PROTOCOL_ERROR,
  unexpected_continuation: CloseCode.PROTOCOL_ERROR,
  unfinished_message: CloseCode.PROTOCOL_ERROR,
  length_msb: CloseCode.PROTOCOL_ERROR,
  bad_close_payload: CloseCode.PROTOCOL_ERROR,
  bad_close_code: CloseCode.PROTOCOL_ERROR,
  invalid_utf8: CloseCode.INVALID_PAYLOAD,
  bad_deflate: CloseCode.INVALID_PAYLOAD,
  too_big: CloseCode.MESSAGE_TOO_BIG,
  backpressure: CloseCode.POLICY_VIOLATION,
  internal: CloseCode.INTERNAL_ERROR,
} as const;
export type ErrorKind = keyof typeof ERRORS;

/** An error that fails the connection; `code` is the close code to send the peer. */
export class ProtocolError extends Error {
  readonly code: number;
  readonly kind: ErrorKind;
  /** Frames completed in the same push before the error (the parser fills this in). */
  frames: unknown[] = [];
  constructor(kind: ErrorKind, message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.kind = kind;
    this.code = ERRORS[kind];
  }
}

/** Shorthand used by every rule check: throw the ProtocolError for `kind`. */
export function fail(kind: ErrorKind, message: string): never {
  throw new ProtocolError(kind, message);
}
