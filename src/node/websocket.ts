// The WebSocket: ws's API (events, send / ping / close, pause / resume), the browser's
// (addEventListener, onmessage: src/node/event-target.ts) and async iteration
// (src/node/iterator.ts). An open connection is a Connection (src/node/connection.ts): a Protocol
// over a Transport. A client WebSocket runs its opening handshake (src/node/client.ts) first.
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { ClientRequest, ClientRequestArgs, IncomingMessage } from 'node:http';
import { State } from '../protocol/protocol.js';
import { CloseCode, MAX_CLOSE_REASON, MAX_CONTROL_PAYLOAD, Opcode } from '../protocol/constants.js';
import { isValidCloseCode } from '../protocol/frame.js';
import { toBuffer, type Data } from '../protocol/data.js';
import type { FanOut } from '../protocol/fanout.js';
import { startClientHandshake, type ClientOptions } from './client.js';
import { Connection, type HandshakeResult } from './connection.js';
import { resolveConnectionOptions, type ResolvedConnectionOptions } from './options.js';
import { Pause } from './transport.js';
import { MessageIterator } from './iterator.js';
import { addEventListener, defineEventHandlers, removeEventListener } from './event-target.js';
import { topicsOf, type Topics, type PublishOptions } from '../pubsub/topics.js';
import type * as W from '../ws-types.js';
import { Buffer } from 'node:buffer';

export type { Data };
export type { ConnectionOptions } from './options.js';

export type BinaryType = 'nodebuffer' | 'arraybuffer' | 'fragments';
/** What a server-side connection knows of its server (src/node/server.ts). */
interface ServerSide {
  readonly _topics: Topics;
  _untrack(ws: WebSocket): void;
}
type Cb = (err?: Error | null) => void;
/** What send() takes: Data, a number (sent as text, as in ws) or a SharedArrayBuffer. */
type SendData = Data | number | SharedArrayBuffer;
/** send()'s callback, typed as @types/ws has it (called with an Error on failure). */
type SendCb = (err?: Error) => void;
type SendOptions = { binary?: boolean; compress?: boolean; fin?: boolean; mask?: boolean };
/** ping()/pong()'s callback, typed as @types/ws has it. */
type ControlCb = (err: Error) => void;

export const CONNECTING = 0;
export const OPEN = State.OPEN;
export const CLOSING = State.CLOSING;
export const CLOSED = State.CLOSED;
type ReadyState = 0 | 1 | 2 | 3;

const EMPTY = Buffer.alloc(0);
// WebSocket.bits
const ALIVE = 0x1;
const CLOSE_EMITTED = 0x2;
const FRAGMENTING = 0x4;
const HS_SHIFT = 3;
const HS_MASK = 0x3 << HS_SHIFT;
const BT_SHIFT = 5;
const BT_MASK = 0x3 << BT_SHIFT;
const BINARY_TYPES: readonly (BinaryType | 'blob')[] = ['nodebuffer', 'arraybuffer', 'fragments', 'blob'];
const BT_ARRAYBUFFER = 1 << BT_SHIFT;
const BT_FRAGMENTS = 2 << BT_SHIFT;
const BT_BLOB = 3 << BT_SHIFT;
const READY_STATE_NAMES = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'] as const;
/** What few connections use: a client's url and handshake, `for await`, addEventListener. */
interface Rare {
  url: string;
  /** Ends the handshake in progress (client). */
  abort: ((err: Error) => void) | undefined;
  /** The `for await` queue (created on first use). */
  iter: MessageIterator | null;
  handlers: Map<string, Map<unknown, (...args: any[]) => void>> | null;
}
const CLOSED_EARLY = 'WebSocket was closed before the connection was established';

/** A WebSocket connection, client or server side. */
export class WebSocket extends EventEmitter {
  static readonly CONNECTING = CONNECTING;
  static readonly OPEN = OPEN;
  static readonly CLOSING = CLOSING;
  static readonly CLOSED = CLOSED;
  // On the prototype (below), as in ws: not four fields per connection.
  declare readonly CONNECTING: typeof CONNECTING;
  declare readonly OPEN: typeof OPEN;
  declare readonly CLOSING: typeof CLOSING;
  declare readonly CLOSED: typeof CLOSED;

  /** The subprotocol the server selected ('' when none). */
  protocol = '';
  /** The names of the negotiated extensions, comma-separated as in ws ('permessage-deflate'; '' when none). */
  extensions = '';

  /** @internal The open connection (null while the handshake runs, and after it failed). */
  _conn: Connection | null = null;
  // Memory per idle connection is a figure of merit (8 bytes a field): the flags and small enums in
  // one number (ALIVE, CLOSE_EMITTED, FRAGMENTING, the handshake's readyState, binaryType), and
  // what few connections use (a client's url and handshake, `for await`, addEventListener) in one
  // object made on first use.
  private bits = ALIVE;
  private rare: Rare | null = null;

  /**
   * 'nodebuffer' (default), 'arraybuffer', 'fragments' or 'blob' (binary messages as a Blob, as ws
   * 8.18 has it; typed as @types/ws declares the property, which lacks 'blob'); other values are
   * ignored, as in ws.
   */
  get binaryType(): BinaryType {
    return BINARY_TYPES[(this.bits & BT_MASK) >>> BT_SHIFT] as BinaryType;
  }
  set binaryType(t: BinaryType | 'blob') {
    const i = BINARY_TYPES.indexOf(t);
    if (i >= 0) this.bits = (this.bits & ~BT_MASK) | (i << BT_SHIFT);
  }
  /** Heartbeat bookkeeping: set when anything arrives from the peer. */
  get isAlive(): boolean {
    return (this.bits & ALIVE) !== 0;
  }
  set isAlive(v: boolean) {
    this.bits = v ? this.bits | ALIVE : this.bits & ~ALIVE;
  }
  /** The URL a client connected to ('' on the server side). */
  get url(): string {
    return this.rare?.url ?? '';
  }
  /** readyState while there is no connection: CONNECTING, or CLOSING / CLOSED after a failed handshake. */
  private get hsState(): ReadyState {
    return ((this.bits & HS_MASK) >>> HS_SHIFT) as ReadyState;
  }
  private set hsState(v: ReadyState) {
    this.bits = (this.bits & ~HS_MASK) | (v << HS_SHIFT);
  }
  /** Manual fragmentation (send with fin: false) is in progress. */
  private get fragmenting(): boolean {
    return (this.bits & FRAGMENTING) !== 0;
  }
  private set fragmenting(v: boolean) {
    this.bits = v ? this.bits | FRAGMENTING : this.bits & ~FRAGMENTING;
  }
  private rareState(): Rare {
    return (this.rare ??= { url: '', abort: undefined, iter: null, handlers: null });
  }
  /** @internal addEventListener's wrappers (created on first use). */
  get _handlers(): Map<string, Map<unknown, (...args: any[]) => void>> | null {
    return this.rare?.handlers ?? null;
  }
  set _handlers(m: Map<string, Map<unknown, (...args: any[]) => void>> | null) {
    this.rareState().handlers = m;
  }

  constructor(
    address: string | URL | null,
    protocols?: string | string[] | ClientOptions | ClientRequestArgs,
    options?: ClientOptions | ClientRequestArgs,
  ) {
    super();
    if (address === null) return;
    if (protocols !== undefined && !Array.isArray(protocols) && typeof protocols === 'object') {
      options = protocols;
      protocols = undefined;
    }
    const list = protocols === undefined ? [] : Array.isArray(protocols) ? protocols : [protocols];
    const rare = this.rareState();
    rare.url = String(address);
    const o = (options ?? {}) as ClientOptions; // http.request's own options pass through (client.ts)
    startClientHandshake(address, list, o, {
      emitter: this,
      setUrl: (url) => {
        rare.url = url;
      },
      setAbort: (abort) => {
        rare.abort = abort;
      },
      opened: (result) => this._open(result, 'client', resolveConnectionOptions(o)),
      failed: (err) => this.handshakeFailed(err),
    });
  }

  /** CONNECTING, OPEN, CLOSING or CLOSED (0–3). */
  get readyState(): ReadyState {
    const c = this._conn;
    return c ? c.protocol.state : this.hsState;
  }

  /** What carries the connection: 'http/1.1' (the upgraded TCP/TLS socket) or 'h2' (an HTTP/2 stream, RFC 8441). */
  get transport(): 'http/1.1' | 'h2' {
    return this._conn?.kind ?? 'http/1.1';
  }

  /** Bytes queued but not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this._conn?.bufferedAmount ?? 0;
  }

  /** The upgraded socket or HTTP/2 stream (as ws's `_socket`, which applications read for addresses). */
  get _socket(): Duplex | null {
    return this._conn?.transport.socket ?? null;
  }

  /** @internal The handshake succeeded (server or client): the connection opens. */
  _open(hs: HandshakeResult, role: 'server' | 'client', opts: ResolvedConnectionOptions): void {
    this.protocol = hs.protocol;
    this.extensions = extensionNames(hs.extensions);
    this._conn = new Connection(this, hs, role, opts);
  }

  /** The client's handshake failed: 'error', then 'close' (1006) on the next tick. */
  private handshakeFailed(err: Error): void {
    this.hsState = CLOSING;
    // On the next tick, as in ws (close() or terminate() while CONNECTING does not emit inside the call).
    process.nextTick(() => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
      this._closed(CloseCode.ABNORMAL, EMPTY);
    });
  }

  /** @internal A message from the connection. */
  _message(data: Buffer, isBinary: boolean): void {
    const it = this.rare?.iter;
    if (it) it.push(isBinary ? data : data.toString());
    this.emit('message', isBinary ? this.asBinary(data) : data, isBinary);
  }

  /** @internal The connection (or the failed handshake) is closed: 'close', once. */
  _closed(code: number, reason: Buffer): void {
    if (this.bits & CLOSE_EMITTED) return;
    this.bits |= CLOSE_EMITTED;
    this.hsState = CLOSED;
    this.rare?.iter?.end();
    this._server?._untrack(this);
    this.emit('close', code, reason);
  }

  /** @internal The closing handshake completed (CloseEvent.wasClean). */
  get _wasClean(): boolean {
    return this._conn?.protocol.wasClean ?? false;
  }

  private asBinary(data: Buffer): Buffer | ArrayBuffer | Buffer[] | Blob {
    const t = this.bits & BT_MASK;
    if (t === BT_ARRAYBUFFER) {
      return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
    }
    if (t === BT_FRAGMENTS) return [data];
    if (t === BT_BLOB) return new Blob([data as Uint8Array<ArrayBuffer>]);
    return data;
  }

  // ── ws API ──────────────────────────────────────────────────────────────────────────────

  /** Send a message; strings go as text unless `binary: true`. */
  send(data: SendData, cb?: SendCb): void;
  send(data: SendData, options: SendOptions, cb?: SendCb): void;
  send(data: SendData, options?: SendOptions | SendCb, sendCb?: SendCb): void {
    let cb = sendCb as Cb | undefined;
    if (typeof options === 'function') {
      cb = options as Cb;
      options = {};
    }
    // As in ws: a number is sent as its decimal text, and as a text message.
    if (typeof data === 'number') data = String(data);
    const c = this._conn;
    if (c === null || c.protocol.state !== OPEN) {
      const state = this.readyState;
      const err = new Error(`WebSocket is not open: readyState ${state} (${READY_STATE_NAMES[state]})`);
      if (c === null && this.hsState === CONNECTING) throw err;
      if (cb) process.nextTick(cb, err);
      return;
    }
    const binary = options?.binary ?? typeof data !== 'string';
    const buf = toBuffer((data ?? undefined) as Data); // a SharedArrayBuffer is viewed, as in ws; null is empty
    const proto = c.protocol;
    if (options?.fin === false || this.fragmenting) {
      // Manual fragmentation (ws's `fin` option): first frame carries the opcode.
      const opcode = this.fragmenting ? Opcode.CONTINUATION : binary ? Opcode.BINARY : Opcode.TEXT;
      this.fragmenting = options?.fin === false;
      proto.sendFrame(opcode, buf, !this.fragmenting, false, cb);
      return;
    }
    proto.sendMessage(buf, binary, options?.compress !== false, cb);
  }

  /** @internal broadcast / publish: the message in the wire form this connection takes; false unless open. */
  _sendShared(m: FanOut): boolean {
    return this._conn !== null && this._conn.protocol.sendShared(m);
  }

  // ── topics (src/pubsub/topics.ts; server-side connections) ──────────────────────────────

  /** @internal The server that accepted this connection: its topics, and who forgets us on close. */
  _server: ServerSide | null = null;
  /** @internal This connection's topics (null until the first subscribe). */
  _subs: Set<string> | null = null;

  /** Subscribe to `topic` (1–256 characters); false when already subscribed or not open. */
  subscribe(topic: string): boolean {
    return topicsOf(this).subscribe(this, topic);
  }

  /** Unsubscribe from `topic`; false when not subscribed. */
  unsubscribe(topic: string): boolean {
    return topicsOf(this).unsubscribe(this, topic);
  }

  isSubscribed(topic: string): boolean {
    return this._subs?.has(topic) ?? false;
  }

  /** The topics this connection is subscribed to (they end when it closes). */
  get subscriptions(): string[] {
    return this._subs ? [...this._subs] : [];
  }

  /** Publish to every subscriber of `topic` but this connection; returns the local recipients. */
  publish(topic: string, data: Data, options?: PublishOptions): number {
    return topicsOf(this).publish(topic, data, options, this);
  }

  /**
   * Send a ping (≤ 125 bytes); the peer's pong arrives as a 'pong' event. As in ws, `data` or
   * `mask` may be the callback, and `mask` is ignored (a client masks every frame, a server none).
   */
  ping(data?: any, mask?: boolean | ControlCb, cb?: ControlCb): void {
    this.control(Opcode.PING, data, mask, cb);
  }

  /** Send an unsolicited pong (≤ 125 bytes; pings are answered automatically). Arguments as ping(). */
  pong(data?: any, mask?: boolean | ControlCb, cb?: ControlCb): void {
    this.control(Opcode.PONG, data, mask, cb);
  }

  private control(opcode: number, data: unknown, mask: unknown, controlCb: unknown): void {
    let cb = controlCb as Cb | undefined;
    if (typeof data === 'function') {
      cb = data as Cb;
      data = undefined;
    } else if (typeof mask === 'function') cb = mask as Cb;
    const c = this._conn;
    if (c === null || c.protocol.state !== OPEN) {
      if (c === null && this.hsState === CONNECTING) throw new Error('WebSocket is not open: readyState 0');
      if (cb) process.nextTick(cb, new Error('WebSocket is not open'));
      return;
    }
    const buf = toBuffer(data as Data | undefined);
    if (buf.length > MAX_CONTROL_PAYLOAD) throw new RangeError('The data size must not be greater than 125 bytes');
    c.protocol.sendFrame(opcode, buf, true, false, cb);
  }

  /** Start the closing handshake (RFC 6455 §7.1.2). */
  close(code?: number, reason?: string | Buffer): void {
    // As in ws: CONNECTING aborts the handshake, and CLOSING / CLOSED ignore the call (and its arguments).
    const c = this._conn;
    if (c === null) {
      if (this.hsState === CONNECTING) this.rare?.abort?.(new Error(CLOSED_EARLY));
      return;
    }
    if (c.protocol.state !== OPEN) return;
    if (code !== undefined && (!isValidCloseCode(code) || code === CloseCode.TLS_HANDSHAKE)) {
      throw new TypeError('First argument must be a valid error code number');
    }
    // As in ws, a reason without a code is ignored (a close payload cannot carry one alone).
    const r = reason === undefined || code === undefined ? EMPTY : typeof reason === 'string' ? Buffer.from(reason) : toBuffer(reason);
    if (r.length > MAX_CLOSE_REASON) throw new RangeError('The message must not be greater than 123 bytes');
    c.close(code, r);
  }

  /** Destroy the connection at once, without a closing handshake. */
  terminate(): void {
    const c = this._conn;
    if (c) c.terminate();
    else if (this.hsState === CONNECTING) this.rare?.abort?.(new Error(CLOSED_EARLY));
  }

  /** Stop reading from the peer (TCP backpressure) until resume(). */
  pause(): void {
    this._conn?.transport.setPause(Pause.APP, true);
  }

  resume(): void {
    this._conn?.transport.setPause(Pause.APP, false);
  }

  /** Reading is paused (by pause(), or while a `for await` consumer is behind). */
  get isPaused(): boolean {
    const t = this._conn?.transport;
    return t ? t.isPausedBy(Pause.APP | Pause.ITERATOR) : false;
  }

  // ── async iteration: for await (const message of ws) ────────────────────────────────────

  /** Messages in order: text as string, binary as Buffer. Reading pauses while the consumer lags. */
  [Symbol.asyncIterator](): AsyncIterableIterator<string | Buffer> {
    const rare = this.rareState();
    const it = (rare.iter ??= new MessageIterator(
      (on) => this._conn?.transport.setPause(Pause.ITERATOR, on),
      () => {
        rare.iter = null;
      },
    ));
    if (this.readyState === CLOSED) it.end();
    return it.iterator();
  }

  // ── browser-style API (src/node/event-target.ts) ─────────────────────────────────────────

  addEventListener(type: string, listener: ((ev: any) => void) | { handleEvent(ev: any): void }, opts?: { once?: boolean }): void {
    addEventListener(this, type, listener, opts);
  }

  removeEventListener(type: string, listener: unknown): void {
    removeEventListener(this, type, listener);
  }
}

for (const [name, value] of [['CONNECTING', CONNECTING], ['OPEN', OPEN], ['CLOSING', CLOSING], ['CLOSED', CLOSED]] as const) {
  Object.defineProperty(WebSocket.prototype, name, { enumerable: true, value });
}
// onopen / onmessage / onclose / onerror properties, as in the browser.
defineEventHandlers(WebSocket.prototype);

export interface WebSocket {
  // Typed events, as @types/ws has them (data is a Buffer unless binaryType says otherwise).
  on(event: 'message', listener: (this: WebSocket, data: W.RawData, isBinary: boolean) => void): this;
  on(event: 'close', listener: (this: WebSocket, code: number, reason: Buffer) => void): this;
  on(event: 'error', listener: (this: WebSocket, err: Error) => void): this;
  on(event: 'ping' | 'pong', listener: (this: WebSocket, data: Buffer) => void): this;
  on(event: 'open' | 'drain', listener: (this: WebSocket) => void): this;
  on(event: 'upgrade', listener: (this: WebSocket, res: IncomingMessage) => void): this;
  on(event: 'redirect', listener: (this: WebSocket, url: string, req: ClientRequest) => void): this;
  on(event: 'unexpected-response', listener: (this: WebSocket, req: ClientRequest, res: IncomingMessage) => void): this;
  on(event: string | symbol, listener: (this: WebSocket, ...args: any[]) => void): this;
  once(event: 'message', listener: (this: WebSocket, data: W.RawData, isBinary: boolean) => void): this;
  once(event: 'close', listener: (this: WebSocket, code: number, reason: Buffer) => void): this;
  once(event: 'error', listener: (this: WebSocket, err: Error) => void): this;
  once(event: 'ping' | 'pong', listener: (this: WebSocket, data: Buffer) => void): this;
  once(event: 'open' | 'drain', listener: (this: WebSocket) => void): this;
  once(event: 'upgrade', listener: (this: WebSocket, res: IncomingMessage) => void): this;
  once(event: 'redirect', listener: (this: WebSocket, url: string, req: ClientRequest) => void): this;
  once(event: 'unexpected-response', listener: (this: WebSocket, req: ClientRequest, res: IncomingMessage) => void): this;
  once(event: string | symbol, listener: (this: WebSocket, ...args: any[]) => void): this;
  off(event: 'message', listener: (this: WebSocket, data: W.RawData, isBinary: boolean) => void): this;
  off(event: 'close', listener: (this: WebSocket, code: number, reason: Buffer) => void): this;
  off(event: 'error', listener: (this: WebSocket, err: Error) => void): this;
  off(event: 'ping' | 'pong', listener: (this: WebSocket, data: Buffer) => void): this;
  off(event: 'open' | 'drain', listener: (this: WebSocket) => void): this;
  off(event: 'upgrade', listener: (this: WebSocket, res: IncomingMessage) => void): this;
  off(event: 'redirect', listener: (this: WebSocket, url: string, req: ClientRequest) => void): this;
  off(event: 'unexpected-response', listener: (this: WebSocket, req: ClientRequest, res: IncomingMessage) => void): this;
  off(event: string | symbol, listener: (this: WebSocket, ...args: any[]) => void): this;
  addListener(event: 'message', listener: (this: WebSocket, data: W.RawData, isBinary: boolean) => void): this;
  addListener(event: 'close', listener: (this: WebSocket, code: number, reason: Buffer) => void): this;
  addListener(event: 'error', listener: (this: WebSocket, err: Error) => void): this;
  addListener(event: 'ping' | 'pong', listener: (this: WebSocket, data: Buffer) => void): this;
  addListener(event: 'open' | 'drain', listener: (this: WebSocket) => void): this;
  addListener(event: 'upgrade', listener: (this: WebSocket, res: IncomingMessage) => void): this;
  addListener(event: 'redirect', listener: (this: WebSocket, url: string, req: ClientRequest) => void): this;
  addListener(event: 'unexpected-response', listener: (this: WebSocket, req: ClientRequest, res: IncomingMessage) => void): this;
  addListener(event: string | symbol, listener: (this: WebSocket, ...args: any[]) => void): this;
  removeListener(event: 'message', listener: (this: WebSocket, data: W.RawData, isBinary: boolean) => void): this;
  removeListener(event: 'close', listener: (this: WebSocket, code: number, reason: Buffer) => void): this;
  removeListener(event: 'error', listener: (this: WebSocket, err: Error) => void): this;
  removeListener(event: 'ping' | 'pong', listener: (this: WebSocket, data: Buffer) => void): this;
  removeListener(event: 'open' | 'drain', listener: (this: WebSocket) => void): this;
  removeListener(event: 'upgrade', listener: (this: WebSocket, res: IncomingMessage) => void): this;
  removeListener(event: 'redirect', listener: (this: WebSocket, url: string, req: ClientRequest) => void): this;
  removeListener(event: 'unexpected-response', listener: (this: WebSocket, req: ClientRequest, res: IncomingMessage) => void): this;
  removeListener(event: string | symbol, listener: (this: WebSocket, ...args: any[]) => void): this;
  prependListener(event: 'message', listener: (this: WebSocket, data: W.RawData, isBinary: boolean) => void): this;
  prependListener(event: 'close', listener: (this: WebSocket, code: number, reason: Buffer) => void): this;
  prependListener(event: 'error', listener: (this: WebSocket, err: Error) => void): this;
  prependListener(event: 'ping' | 'pong', listener: (this: WebSocket, data: Buffer) => void): this;
  prependListener(event: 'open' | 'drain', listener: (this: WebSocket) => void): this;
  prependListener(event: 'upgrade', listener: (this: WebSocket, res: IncomingMessage) => void): this;
  prependListener(event: 'redirect', listener: (this: WebSocket, url: string, req: ClientRequest) => void): this;
  prependListener(event: 'unexpected-response', listener: (this: WebSocket, req: ClientRequest, res: IncomingMessage) => void): this;
  prependListener(event: string | symbol, listener: (this: WebSocket, ...args: any[]) => void): this;
  prependOnceListener(event: 'message', listener: (this: WebSocket, data: W.RawData, isBinary: boolean) => void): this;
  prependOnceListener(event: 'close', listener: (this: WebSocket, code: number, reason: Buffer) => void): this;
  prependOnceListener(event: 'error', listener: (this: WebSocket, err: Error) => void): this;
  prependOnceListener(event: 'ping' | 'pong', listener: (this: WebSocket, data: Buffer) => void): this;
  prependOnceListener(event: 'open' | 'drain', listener: (this: WebSocket) => void): this;
  prependOnceListener(event: 'upgrade', listener: (this: WebSocket, res: IncomingMessage) => void): this;
  prependOnceListener(event: 'redirect', listener: (this: WebSocket, url: string, req: ClientRequest) => void): this;
  prependOnceListener(event: 'unexpected-response', listener: (this: WebSocket, req: ClientRequest, res: IncomingMessage) => void): this;
  prependOnceListener(event: string | symbol, listener: (this: WebSocket, ...args: any[]) => void): this;
  addEventListener<K extends keyof W.WebSocketEventMap>(
    type: K,
    listener: ((event: W.WebSocketEventMap[K]) => void) | { handleEvent(event: W.WebSocketEventMap[K]): void },
    options?: W.EventListenerOptions,
  ): void;
  removeEventListener<K extends keyof W.WebSocketEventMap>(
    type: K,
    listener: ((event: W.WebSocketEventMap[K]) => void) | { handleEvent(event: W.WebSocketEventMap[K]): void },
  ): void;
  onopen: ((event: W.Event) => void) | null;
  onmessage: ((event: W.MessageEvent) => void) | null;
  onclose: ((event: W.CloseEvent) => void) | null;
  onerror: ((event: W.ErrorEvent) => void) | null;
}

/** The extension names of a negotiated Sec-WebSocket-Extensions value, as ws's `extensions` gives them. */
function extensionNames(header: string): string {
  if (header === '') return '';
  return header.split(',').map((e) => e.split(';')[0].trim()).filter((n) => n !== '').join();
}
