// The connection: a Protocol bound to a TCP socket, with ws's API (events, send/ping/close),
// the browser's (addEventListener, onmessage) and async iteration with backpressure.
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { Protocol, type ProtocolSink, type MessageCompressor } from '../protocol/protocol.js';
import { resolveCodec, type Codec, type CodecBackend } from '../codec/index.js';
import { DEFAULT_MAX_PAYLOAD, MAX_CLOSE_REASON, MAX_CONTROL_PAYLOAD, Opcode } from '../protocol/constants.js';
import { isValidCloseCode } from '../protocol/frame.js';
import { ProtocolError } from '../protocol/errors.js';
import { initAsClient, type ClientOptions } from './client.js';
import type { ClientRequest, ClientRequestArgs, IncomingMessage } from 'node:http';
import type * as W from '../ws-types.js';
import { toBuffer, type Data } from '../protocol/data.js';
import { topicsOf, type Topics, type PublishOptions } from '../pubsub/topics.js';

export type { Data };

export type BinaryType = 'nodebuffer' | 'arraybuffer' | 'fragments';
type Cb = (err?: Error | null) => void;
/** What send() takes: Data, a number (sent as text, as in ws) or a SharedArrayBuffer. */
type SendData = Data | number | SharedArrayBuffer;
/** send()'s callback, typed as @types/ws has it (called with an Error on failure). */
type SendCb = (err?: Error) => void;
type SendOptions = { binary?: boolean; compress?: boolean; fin?: boolean; mask?: boolean };
/** ping()/pong()'s callback, typed as @types/ws has it. */
type ControlCb = (err: Error) => void;

/** Options for a connection (set by the server or the client). */
export interface ConnectionOptions {
  maxPayload?: number;
  codec?: Codec | CodecBackend;
  /** Wait this long for the peer's close frame / TCP close after ours, then destroy (ms). */
  closeTimeout?: number;
  /** Close (1001) when nothing was received or sent for this long (ms); 0 = off. */
  idleTimeout?: number;
  /** Fail the connection (1008) when more than this many bytes wait to be sent to a slow peer. */
  maxBackpressure?: number;
  autoPong?: boolean;
  skipUTF8Validation?: boolean;
  /** Client only: fills the 4-byte masking key of each frame we send (ws's option; default random from crypto). */
  generateMask?(mask: Buffer): void;
}

export const CONNECTING = 0;
export const OPEN = 1;
export const CLOSING = 2;
export const CLOSED = 3;

const DEFAULT_CLOSE_TIMEOUT = 30_000;
const DEFAULT_MAX_BACKPRESSURE = 64 * 1024 * 1024;
/**
 * Pieces queued in one tick are joined into one buffer when they total at most COALESCE_MAX bytes
 * and average under COALESCE_AVG bytes; otherwise they go out as one writev (no copy).
 */
const COALESCE_MAX = 64 * 1024;
const COALESCE_AVG = 512;
/** Messages buffered for `for await` before the socket is paused. */
const ITER_HIGH_WATER = 64;
const EMPTY = Buffer.alloc(0);
/** RST_STREAM error code CANCEL (RFC 9113 §7), for a WebSocket over HTTP/2 dropped without a closing handshake. */
const H2_CANCEL = 0x8;

function flushTick(ws: WebSocket): void {
  ws._flush();
}

/** Back-reference from a socket to its WebSocket, for the module-level socket listeners below. */
const kWebSocket = Symbol('wasmws.websocket');
type BoundSocket = Duplex & { [kWebSocket]: WebSocket };

function socketOnData(this: BoundSocket, chunk: Buffer): void {
  const ws = this[kWebSocket];
  ws.isAlive = true;
  ws._protocol!.receive(chunk);
}
function socketOnEnd(this: BoundSocket): void {
  this[kWebSocket].onSocketEnd();
}
function socketOnClose(this: BoundSocket): void {
  this[kWebSocket].onSocketClose();
}
function socketOnError(this: BoundSocket, err: Error): void {
  this[kWebSocket].onSocketError(err);
}
function socketOnTimeout(this: BoundSocket): void {
  this[kWebSocket].onIdle();
}
function socketOnDrain(this: BoundSocket): void {
  this[kWebSocket].emit('drain');
}

/** A WebSocket connection, client or server side. */
export class WebSocket extends EventEmitter implements ProtocolSink {
  static readonly CONNECTING = CONNECTING;
  static readonly OPEN = OPEN;
  static readonly CLOSING = CLOSING;
  static readonly CLOSED = CLOSED;
  readonly CONNECTING = CONNECTING;
  readonly OPEN = OPEN;
  readonly CLOSING = CLOSING;
  readonly CLOSED = CLOSED;

  /** CONNECTING, OPEN, CLOSING or CLOSED (0–3). */
  readyState: 0 | 1 | 2 | 3 = CONNECTING;
  /** The subprotocol the server selected ('' when none). */
  protocol = '';
  /** The negotiated extensions header value ('' when none). */
  extensions = '';
  binaryType: BinaryType = 'nodebuffer';
  readonly url: string;
  /** Heartbeat bookkeeping: set when anything arrives from the peer. */
  isAlive = true;
  /** What carries the connection: 'http/1.1' (the upgraded TCP/TLS socket) or 'h2' (an HTTP/2 stream, RFC 8441). */
  transport: 'http/1.1' | 'h2' = 'http/1.1';

  /** @internal */ _socket: Duplex | null = null;
  /** @internal */ _protocol: Protocol | null = null;
  private opts: Required<Pick<ConnectionOptions, 'maxPayload' | 'closeTimeout' | 'idleTimeout' | 'maxBackpressure'>> & ConnectionOptions;
  private codec!: Codec;
  private outCbs: Cb[] | null = null;
  private flushScheduled = false;
  private closeTimer: NodeJS.Timeout | null = null;
  private closeCode = 1006;
  private closeReason: Buffer = EMPTY;
  private closeEmitted = false;
  private iterQueue: ({ data: string | Buffer } | null)[] | null = null;
  private iterWaiter: ((v: IteratorResult<string | Buffer>) => void) | null = null;
  private paused = false;

  constructor(
    address: string | URL | null,
    protocols?: string | string[] | ClientOptions | ClientRequestArgs,
    options?: ClientOptions | ClientRequestArgs,
  ) {
    super();
    if (address === null) {
      this.url = '';
      this.opts = normalize({});
      return;
    }
    if (protocols !== undefined && !Array.isArray(protocols) && typeof protocols === 'object') {
      options = protocols;
      protocols = undefined;
    }
    const list = protocols === undefined ? [] : Array.isArray(protocols) ? protocols : [protocols];
    this.url = String(address);
    const o = (options ?? {}) as ClientOptions; // http.request's own options pass through (client.ts)
    this.opts = normalize(o);
    initAsClient(this, address, list, o);
  }

  /** Bytes queued but not yet handed to the kernel. */
  get bufferedAmount(): number {
    const p = this._protocol;
    return (p ? p.out.bytes + p.queuedBytes : 0) + (this._socket ? this._socket.writableLength : 0);
  }

  /**
   * @internal Bind an upgraded socket. `head` holds bytes read past the handshake.
   */
  _setSocket(socket: Duplex, head: Buffer, role: 'server' | 'client', opts: ConnectionOptions, compressor?: MessageCompressor | null): void {
    this.opts = normalize(opts);
    this.codec = resolveCodec(opts.codec);
    const proto = new Protocol(this, {
      role,
      maxPayload: this.opts.maxPayload,
      codec: this.codec,
      autoPong: opts.autoPong,
      skipUTF8Validation: opts.skipUTF8Validation,
      generateMask: opts.generateMask,
    });
    if (compressor) proto.setCompressor(compressor);
    this._protocol = proto;
    this._socket = socket;
    const s = socket as Duplex & { setNoDelay?: (b: boolean) => void; setTimeout?: (ms: number) => void; [kWebSocket]?: WebSocket };
    s.setNoDelay?.(true);
    if (this.opts.idleTimeout > 0) s.setTimeout?.(this.opts.idleTimeout);
    // Module-level listeners with a back-reference: no closures per connection (memory per idle
    // connection is a figure of merit for servers holding many).
    s[kWebSocket] = this;
    socket.on('end', socketOnEnd);
    socket.on('close', socketOnClose);
    socket.on('error', socketOnError);
    socket.on('timeout', socketOnTimeout);
    socket.on('drain', socketOnDrain);
    this.readyState = OPEN;
    // Emit 'open' and start reading on the next tick, so that the application (the 'connection'
    // handler, or listeners attached after `new WebSocket`) sees every message, including any that
    // came with the handshake (`head`). Node holds socket data until a 'data' listener exists.
    process.nextTick(() => {
      if (this.readyState === OPEN || this.readyState === CLOSING) this.emit('open');
      if (head && head.length > 0) {
        this.isAlive = true;
        proto.receive(head);
      }
      socket.on('data', socketOnData);
    });
  }

  // ── ProtocolSink ────────────────────────────────────────────────────────────────────────

  /** @internal */
  onMessage(data: Buffer, isBinary: boolean): void {
    if (this.iterQueue) this.pushIter(isBinary ? data : data.toString());
    this.emit('message', isBinary ? this.asBinary(data) : data, isBinary);
  }

  /** @internal */
  onPing(data: Buffer): void {
    this.emit('ping', data);
  }

  /** @internal */
  onPong(data: Buffer): void {
    this.emit('pong', data);
  }

  /** @internal */
  onClose(code: number, reason: Buffer): void {
    this.closeCode = code;
    this.closeReason = reason;
    this.readyState = CLOSING;
    // Both close frames exchanged (ours was written by Protocol): end TCP once the queue flushes.
    this._flush();
    this._socket?.end();
    this.armCloseTimer();
  }

  /** @internal */
  onError(err: Error): void {
    this.closeCode = err instanceof ProtocolError ? err.code : 1011;
    if (this.readyState === OPEN) this.readyState = CLOSING;
    this._flush();
    this._socket?.end();
    this.armCloseTimer();
    // Never throw out of the event loop for a peer's fault: emit only to listeners.
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /** @internal Flow control from the protocol (a backlog behind an inflation); independent of pause(). */
  pauseReading(): void {
    this.protoPaused = true;
    this.updateReading();
  }

  /** @internal */
  resumeReading(): void {
    this.protoPaused = false;
    this.updateReading();
  }
  private protoPaused = false;
  /** The `for await` consumer is behind (ITER_HIGH_WATER messages buffered). */
  private iterPaused = false;

  /** Reading pauses while the application, the protocol or the async iterator asks it to. */
  private updateReading(): void {
    const s = this._socket;
    const want = this.paused || this.protoPaused || this.iterPaused;
    // Touch the socket only on a change: a stray resume() before the 'data' listener is attached
    // would switch it to flowing mode and drop data.
    if (!s || want === this.socketPaused) return;
    this.socketPaused = want;
    if (want) s.pause();
    else s.resume();
  }
  private socketPaused = false;

  /** @internal The protocol queued bytes: they leave in one write at the end of this tick. */
  onOutput(cb: Cb | undefined, added: number): void {
    if (!this._socket || this._socket.destroyed) {
      this._protocol?.out.clear();
      if (cb) process.nextTick(cb, new Error('WebSocket is not open'));
      return;
    }
    if (cb) (this.outCbs ??= []).push(cb);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(flushTick, this);
    }
    // Policy: a peer is too slow when more than maxBackpressure bytes were already waiting for it
    // when more is queued (so one large message on an idle connection always goes). The socket's
    // queue only shrinks between flushes, so its length at the last flush bounds it: the exact
    // (slower) sum is taken only when that bound crosses the limit.
    const p = this._protocol!;
    const max = this.opts.maxBackpressure;
    if (p.out.bytes + p.queuedBytes + this.socketQueued - added > max && this.bufferedAmount - added > max) {
      this.onBackpressure();
    }
  }
  /** The socket's writableLength as of the last flush. */
  private socketQueued = 0;

  /** @internal Hand the queued frames to the socket: one write (or one corked writev). */
  _flush(): void {
    this.flushScheduled = false;
    const proto = this._protocol;
    if (!proto || proto.out.bytes === 0) return;
    const socket = this._socket!;
    const bytes = proto.out.bytes;
    // A socket still holding earlier bytes is not draining: give it copies, not slab views, so that
    // a slow peer pins only its own bytes (which maxBackpressure counts), not shared slabs.
    const bufs = proto.out.take(socket.writableLength > 0);
    const cbs = this.outCbs;
    this.outCbs = null;
    const done = cbs ? (err?: Error | null) => { for (const cb of cbs) cb(err ?? null); } : undefined;
    if (socket.destroyed || !socket.writable) {
      if (done) done(new Error('WebSocket is not open'));
      return;
    }
    const n = bufs.length;
    if (n === 1) socket.write(bufs[0], done);
    else if (bytes <= COALESCE_MAX && bytes < n * COALESCE_AVG) {
      // Many small pieces (broadcast frames, pongs): one copy is cheaper than a long writev.
      socket.write(Buffer.concat(bufs, bytes), done);
    } else {
      (socket as Duplex & { cork(): void }).cork();
      for (let i = 0; i < n - 1; i++) socket.write(bufs[i]);
      socket.write(bufs[n - 1], done);
      (socket as Duplex & { uncork(): void }).uncork();
    }
    this.socketQueued = socket.writableLength;
  }

  /** A slow reader let more than maxBackpressure bytes pile up: policy is to drop it (1008). */
  private onBackpressure(): void {
    if (this.readyState === CLOSED || this.closeCode === 1008) return;
    this.closeCode = 1008;
    this.closeReason = Buffer.from('backpressure limit exceeded');
    const err = new ProtocolError('backpressure', `more than ${this.opts.maxBackpressure} bytes waiting for a slow peer`);
    if (this._protocol) {
      this._protocol.failed = true;
      this._protocol.out.clear();
    }
    if (this.listenerCount('error') > 0) this.emit('error', err);
    this.terminate();
  }

  private armCloseTimer(): void {
    if (this.closeTimer) return;
    this.closeTimer = setTimeout(() => this._destroySocket(), this.opts.closeTimeout);
    this.closeTimer.unref?.();
  }

  /** @internal */
  onSocketEnd(): void {
    // The peer half-closed: finish our side too.
    this.readyState = CLOSING;
    this._flush();
    this._socket?.end();
    this.armCloseTimer();
  }

  /** @internal */
  onSocketError(err: Error): void {
    // A reset socket: 'close' follows with 1006 (no listener needed, no crash).
    this._socket?.destroy();
    void err;
  }

  /** @internal */
  onIdle(): void {
    if (this.readyState === OPEN) this.close(1001, 'idle timeout');
    else this._destroySocket();
  }

  /**
   * @internal Drop the transport now. An HTTP/2 stream is reset with CANCEL (RFC 9113 §8.7: "the
   * stream is no longer needed"); Node's destroy() would send NO_ERROR, which reads as a normal end.
   */
  _destroySocket(): void {
    const s = this._socket as (Duplex & { close?: (code: number) => void }) | null;
    if (s && this.transport === 'h2' && !s.destroyed && s.close) s.close(H2_CANCEL);
    else s?.destroy();
  }

  /** @internal */
  onSocketClose(): void {
    const proto = this._protocol;
    if (proto && proto.inflating && !this.closingAfterInflate) {
      // The peer's last bytes were read but a message is still inflating, and frames behind it (its
      // close frame, often) wait in the backlog: deliver them first, as ws does on EOF. Bounded by
      // closeTimeout.
      this.closingAfterInflate = true;
      this.readyState = CLOSING;
      if (this.closeTimer) clearTimeout(this.closeTimer);
      this.closeTimer = setTimeout(() => this.finishClose(), this.opts.closeTimeout);
      this.closeTimer.unref?.();
      return;
    }
    this.finishClose();
  }
  private closingAfterInflate = false;

  /** @internal The protocol delivered everything that waited behind an inflation. */
  onBacklogDrained(): void {
    if (this.closingAfterInflate) this.finishClose();
  }

  private finishClose(): void {
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.closeTimer = null;
    this.readyState = CLOSED;
    const proto = this._protocol;
    if (proto) {
      // No close frame from the peer: abnormal closure (1006), unless we failed it ourselves.
      if (!proto.closeReceived && !proto.failed && this.closeCode !== 1008) this.closeCode = 1006;
      proto.release();
      proto.out.clear();
    }
    if (this.outCbs) {
      const cbs = this.outCbs;
      this.outCbs = null;
      for (const cb of cbs) cb(new Error('WebSocket is not open'));
    }
    this.endIter();
    this.emitClose();
  }

  /** @internal */
  emitClose(): void {
    if (this.closeEmitted) return;
    this.closeEmitted = true;
    this.readyState = CLOSED;
    this.emit('close', this.closeCode, this.closeReason);
  }

  private asBinary(data: Buffer): Buffer | ArrayBuffer | Buffer[] {
    if (this.binaryType === 'arraybuffer') {
      return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
    }
    if (this.binaryType === 'fragments') return [data];
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
    if (this.readyState !== OPEN) {
      const err = new Error(`WebSocket is not open: readyState ${this.readyState}`);
      if (this.readyState === CONNECTING) throw err;
      if (cb) process.nextTick(cb, err);
      return;
    }
    const binary = options?.binary ?? typeof data !== 'string';
    const buf = toBuffer(data as Data); // a SharedArrayBuffer is viewed, as in ws
    const proto = this._protocol!;
    if (options?.fin === false || this.fragmenting) {
      // Manual fragmentation (ws's `fin` option): first frame carries the opcode.
      const opcode = this.fragmenting ? Opcode.CONTINUATION : binary ? Opcode.BINARY : Opcode.TEXT;
      this.fragmenting = options?.fin === false;
      proto.sendFrame(opcode, buf, !this.fragmenting, false, cb);
      return;
    }
    proto.sendMessage(buf, binary, options?.compress !== false, cb);
  }
  private fragmenting = false;

  /** @internal Send pre-encoded frame bytes (broadcast frames once, sends many). */
  _sendRaw(frame: Buffer, cb?: Cb): boolean {
    if (this.readyState !== OPEN) return false;
    this._protocol!.sendRaw(frame, cb);
    return true;
  }

  // ── topics (src/topics.ts; server-side connections) ────────────────────────────────────

  /** @internal The topics of the server that accepted this connection. */
  _topics: Topics | null = null;
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
    if (this.readyState !== OPEN) {
      if (this.readyState === CONNECTING) throw new Error('WebSocket is not open: readyState 0');
      if (cb) process.nextTick(cb, new Error('WebSocket is not open'));
      return;
    }
    const buf = toBuffer(data as Data | undefined);
    if (buf.length > MAX_CONTROL_PAYLOAD) throw new RangeError('The data size must not be greater than 125 bytes');
    this._protocol!.sendFrame(opcode, buf, true, false, cb);
  }

  /** Start the closing handshake (RFC 6455 §7.1.2). */
  close(code?: number, reason?: string | Buffer): void {
    if (code !== undefined && (!isValidCloseCode(code) || code === 1015)) {
      throw new TypeError('First argument must be a valid error code number');
    }
    // As in ws, a reason without a code is ignored (a close payload cannot carry one alone).
    const r = reason === undefined || code === undefined ? EMPTY : typeof reason === 'string' ? Buffer.from(reason) : reason;
    if (r.length > MAX_CLOSE_REASON) throw new RangeError('The message must not be greater than 123 bytes');
    if (this.readyState === CLOSED) return;
    if (this.readyState === CONNECTING) {
      this.abortHandshake?.(new Error('WebSocket was closed before the connection was established'));
      return;
    }
    const proto = this._protocol!;
    if (proto.closeSent) {
      // Both close frames are exchanged: end TCP, unless our close still waits behind a compression
      // (the protocol reports onClose, which ends it, once that is written).
      if (proto.closeReceived && !proto.sendsPending) this._socket?.end();
      return;
    }
    this.readyState = CLOSING;
    if (proto.closeReceived || this.transport === 'h2') {
      // End our half once our close frame is written (which may be after a compression still in
      // flight): the peer's close came first (we answered it only now), or, over HTTP/2 (RFC 8441
      // §5), END_STREAM is the stream's orderly close and the peer's close frame still arrives.
      proto.sendClose(code, r, () => this._socket?.end());
    } else proto.sendClose(code, r);
    this.armCloseTimer();
  }

  /** @internal Set by the client while the handshake runs. */
  abortHandshake?: (err: Error) => void;

  /** Destroy the connection at once, without a closing handshake. */
  terminate(): void {
    if (this.readyState === CLOSED) return;
    if (this.readyState === CONNECTING) {
      this.abortHandshake?.(new Error('WebSocket was closed before the connection was established'));
      return;
    }
    this.readyState = CLOSING;
    this._destroySocket();
  }

  pause(): void {
    if (this.readyState === CONNECTING || this.readyState === CLOSED) return;
    this.paused = true;
    this.updateReading();
  }

  resume(): void {
    if (this.readyState === CONNECTING || this.readyState === CLOSED) return;
    this.paused = false;
    this.updateReading();
  }

  /** Reading is paused (by pause(), or while a `for await` consumer is behind). */
  get isPaused(): boolean {
    return this.paused || this.iterPaused;
  }

  // ── async iteration: for await (const message of ws) ────────────────────────────────────

  /** Messages in order: text as string, binary as Buffer. The socket pauses while the consumer lags. */
  [Symbol.asyncIterator](): AsyncIterableIterator<string | Buffer> {
    this.iterQueue ??= [];
    if (this.readyState === CLOSED) this.iterQueue.push(null);
    const next = (): Promise<IteratorResult<string | Buffer>> => {
      const q = this.iterQueue!;
      if (q.length > 0) {
        const item = q.shift()!;
        if (item === null) {
          q.unshift(null);
          return Promise.resolve({ value: undefined, done: true });
        }
        if (this.iterPaused && q.length < ITER_HIGH_WATER / 2) {
          this.iterPaused = false;
          this.updateReading();
        }
        return Promise.resolve({ value: item.data, done: false });
      }
      return new Promise((resolve) => { this.iterWaiter = resolve; });
    };
    const it: AsyncIterableIterator<string | Buffer> = {
      next,
      return: async () => {
        this.iterQueue = null;
        if (this.iterPaused) {
          this.iterPaused = false;
          this.updateReading();
        }
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  private pushIter(data: string | Buffer): void {
    if (this.iterWaiter) {
      const w = this.iterWaiter;
      this.iterWaiter = null;
      w({ value: data, done: false });
      return;
    }
    this.iterQueue!.push({ data });
    if (this.iterQueue!.length >= ITER_HIGH_WATER && !this.iterPaused) {
      this.iterPaused = true;
      this.updateReading();
    }
  }

  private endIter(): void {
    if (!this.iterQueue) return;
    if (this.iterWaiter) {
      const w = this.iterWaiter;
      this.iterWaiter = null;
      w({ value: undefined, done: true });
    }
    this.iterQueue.push(null);
  }

  // ── browser-style API ───────────────────────────────────────────────────────────────────

  private handlers: Map<string, Map<unknown, (...args: any[]) => void>> | null = null;

  addEventListener(type: string, listener: ((ev: any) => void) | { handleEvent(ev: any): void }, opts?: { once?: boolean }): void {
    const call = typeof listener === 'function' ? listener : (ev: any) => listener.handleEvent(ev);
    let wrapped: (...args: any[]) => void;
    if (type === 'message') {
      wrapped = (data: Buffer, isBinary: boolean) => call({ type, target: this, data: isBinary ? data : data.toString() });
    } else if (type === 'close') {
      wrapped = (code: number, reason: Buffer) => call({ type, target: this, code, reason: reason.toString(), wasClean: code !== 1006 });
    } else if (type === 'error') {
      wrapped = (error: Error) => call({ type, target: this, error, message: error.message });
    } else if (type === 'open') {
      wrapped = () => call({ type, target: this });
    } else return;
    this.handlers ??= new Map();
    let m = this.handlers.get(type);
    if (!m) this.handlers.set(type, (m = new Map()));
    if (m.has(listener)) return;
    m.set(listener, wrapped);
    if (opts?.once) {
      const once = (...args: any[]) => {
        m!.delete(listener);
        wrapped(...args);
      };
      m.set(listener, once);
      this.once(type, once);
    } else this.on(type, wrapped);
  }

  removeEventListener(type: string, listener: unknown): void {
    const m = this.handlers?.get(type);
    const w = m?.get(listener);
    if (!w) return;
    m!.delete(listener);
    this.off(type, w);
  }
}

// onopen / onmessage / onclose / onerror properties, as in the browser.
for (const type of ['open', 'message', 'close', 'error'] as const) {
  const key = Symbol(type);
  Object.defineProperty(WebSocket.prototype, `on${type}`, {
    configurable: true,
    enumerable: true,
    get(this: any) {
      return this[key] ?? null;
    },
    set(this: any, fn: ((ev: any) => void) | null) {
      if (this[key]) this.removeEventListener(type, this[key]);
      this[key] = typeof fn === 'function' ? fn : null;
      if (this[key]) this.addEventListener(type, this[key]);
    },
  });
}
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

const normalized = new WeakMap<ConnectionOptions, WebSocket['opts']>();

/** Defaults applied once per options object (a server's options serve all its connections). */
function normalize(o: ConnectionOptions): WebSocket['opts'] {
  let n = normalized.get(o);
  if (!n) normalized.set(o, (n = fill(o)));
  return n;
}

function fill(o: ConnectionOptions): WebSocket['opts'] {
  return {
    ...o,
    maxPayload: o.maxPayload ?? DEFAULT_MAX_PAYLOAD,
    closeTimeout: o.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT,
    idleTimeout: o.idleTimeout ?? 0,
    maxBackpressure: o.maxBackpressure ?? DEFAULT_MAX_BACKPRESSURE,
  };
}
