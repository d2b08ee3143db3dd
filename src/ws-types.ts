// The type names @types/ws exports (import type { RawData } from 'ws', or WebSocket.RawData on the
// default export), defined for our classes, so that code typed against ws type-checks against us.
import type { ClientRequest, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { WebSocket } from './node/websocket.js';

/** A received message as 'message' listeners get it (Buffer unless binaryType says otherwise). */
export type RawData = Buffer | ArrayBuffer | Buffer[];

/** Certificate and key material, as TLS options take it. */
export type CertMeta = string | string[] | Buffer | Buffer[];

/** What browser-style listeners (`onopen`, `addEventListener('open', …)`) receive. */
export interface Event {
  type: string;
  target: WebSocket;
}

export interface ErrorEvent {
  error: any;
  message: string;
  type: string;
  target: WebSocket;
}

export interface CloseEvent {
  wasClean: boolean;
  code: number;
  reason: string;
  type: string;
  target: WebSocket;
}

export interface MessageEvent {
  /** Text as a string; binary as binaryType says (Buffer, ArrayBuffer or Buffer[]). */
  data: string | Buffer | ArrayBuffer | Buffer[];
  type: string;
  target: WebSocket;
}

export interface WebSocketEventMap {
  open: Event;
  error: ErrorEvent;
  close: CloseEvent;
  message: MessageEvent;
}

export interface EventListenerOptions {
  once?: boolean | undefined;
}

/** `wss.address()` when listening on TCP. */
export interface AddressInfo {
  address: string;
  family: string;
  port: number;
}

/**
 * `verifyClient` with one parameter, as @types/ws declares it. `origin` is typed `string` there;
 * it is `undefined` at run time when the request has no Origin header (in ws and here).
 */
export type VerifyClientCallbackSync<Request extends IncomingMessage = IncomingMessage> = (info: {
  origin: string;
  secure: boolean;
  req: Request;
}) => boolean;

/** `verifyClient` with a callback: `callback(false, code, message, headers)` refuses the upgrade. */
export type VerifyClientCallbackAsync<Request extends IncomingMessage = IncomingMessage> = (
  info: { origin: string; secure: boolean; req: Request },
  callback: (res: boolean, code?: number, message?: string, headers?: OutgoingHttpHeaders) => void,
) => void;

/** The client's `finishRequest` option: set last headers on the upgrade request, then `request.end()`. */
export type FinishRequestCallback = (request: ClientRequest, websocket: WebSocket) => void;
