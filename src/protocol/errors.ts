import { CloseCode } from './constants.js';

export { CloseCode };

/**
 * Failure kinds → close code: the one table that maps a reason for failing the connection to the
 * close frame we send (RFC 6455 §7.1.7 "Fail the WebSocket Connection"), and a reason for aborting
 * it (dropping the transport without a closing handshake) to the code reported locally (§7.1.5).
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
  // Aborts: local decisions, reported as 1006 (no close frame was exchanged in time).
  close_timeout: CloseCode.ABNORMAL,
  terminated: CloseCode.ABNORMAL,
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
