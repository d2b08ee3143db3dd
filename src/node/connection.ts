// The connection: one Protocol over one Transport, for one WebSocket. It tells the protocol what
// the transport did (bytes, EOF, close) and what was decided locally (close, terminate, a slow
// peer, a timeout), asks it for the facts, and turns what it decodes into the WebSocket's events.
// It owns the timers (close timeout) and the backpressure policy.
//
//   Transport ──onData/onEof/onClose──▶ Connection ──receive/receiveEof/connectionLost──▶ Protocol
//       ▲                                   │ ◀── onMessage/onPing/onPong/onError/onClosed ──┘
//       └──── schedule/end/destroy ◀── onOutput/onEnd/onAbort ─────────────────────────────────┘
import type { Duplex } from 'node:stream';
import { Protocol, State, type MessageCompressor, type ProtocolSink } from '../protocol/protocol.js';
import { ProtocolError } from '../protocol/errors.js';
import { CloseCode } from '../protocol/constants.js';
import { ANY_PAUSE, Pause, Transport, type TransportEvents } from './transport.js';
import type { ResolvedConnectionOptions } from './options.js';
import type { WheelEntry } from './timer-wheel.js';
import type { WebSocket } from './websocket.js';
import { Buffer } from 'node:buffer';

type Cb = (err?: Error | null) => void;

/** What an opening handshake (server or client, HTTP/1.1 or HTTP/2) hands to the connection. */
export interface HandshakeResult {
  /** The upgraded socket, or the HTTP/2 stream (RFC 8441). */
  socket: Duplex;
  /** Bytes read past the handshake (the first frames). */
  head: Buffer;
  /** The selected subprotocol ('' when none). */
  protocol: string;
  /** The negotiated Sec-WebSocket-Extensions value ('' when none). */
  extensions: string;
  /** permessage-deflate, when negotiated. */
  compressor: MessageCompressor | null;
  transport: 'http/1.1' | 'h2';
}

function start(c: Connection, head: Buffer): void {
  c.start(head);
}

/** The connection whose received bytes are being processed (its 'message' handlers run inside), else null. */
let receiving: Connection | null = null;

/**
 * @internal Stop reading from the connection whose message is being handled right now (the one
 * that made the application publish), until releaseHold: a broker that cannot keep up holds its
 * publishers back as TCP would (their bytes wait in the kernel). Null outside a message handler.
 */
function holdReceiving(publisher: Connection | null): Connection | null {
  const c = receiving ?? publisher;
  // The rest of the read being parsed waits too (the protocol holds its frames), not only later reads.
  if (c === null || !c.protocol.holdFrames()) return null;
  c.transport.setPause(Pause.BROKER, true);
  return c;
}

/**
 * @internal The connection being read (if any, and not held already; else `publisher`, the socket
 * of a ws.publish from outside a handler, a `for await` loop's) is held until `onceDrained` calls
 * back: for a broker or a channel that is behind.
 */
export function holdWhileBehind(onceDrained: (fn: () => void) => void, publisher: Connection | null = null): void {
  const c = holdReceiving(publisher);
  if (c === null) return;
  try {
    onceDrained(() => releaseHold(c));
  } catch (err) {
    releaseHold(c); // nobody would ever let it go
    throw err;
  }
}

/** @internal Undo holdReceiving: the held frames are handled (one may hold it again), then reading goes on. */
function releaseHold(c: Connection): void {
  const outer = receiving;
  receiving = c; // a publish from a held frame can hold it again
  const again = c.protocol.releaseFrames();
  receiving = outer;
  if (!again) c.transport.setPause(Pause.BROKER, false);
}

/** @internal One open WebSocket connection (created by WebSocket when its handshake completes). */
export class Connection implements ProtocolSink, TransportEvents, WheelEntry {
  readonly protocol: Protocol;
  readonly transport: Transport;
  private readonly ws: WebSocket;
  private readonly opts: ResolvedConnectionOptions;
  private closeTimer: NodeJS.Timeout | null = null;
  // The idle timeout's bookkeeping (WheelEntry) on opts.idleWheel.
  /** @internal */ activeTick = 0;
  /** @internal */ wheelTicks = 0;
  /** @internal */ wheelSlot = -1;

  /** What carries the connection: 'http/1.1' (an upgraded socket) or 'h2' (an HTTP/2 stream). */
  get kind(): 'http/1.1' | 'h2' {
    return this.transport.isH2 ? 'h2' : 'http/1.1';
  }

  constructor(ws: WebSocket, hs: HandshakeResult, role: 'server' | 'client', opts: ResolvedConnectionOptions) {
    this.ws = ws;
    this.opts = opts;
    const h2 = hs.transport === 'h2';
    const proto = new Protocol(this, {
      role,
      maxPayload: opts.maxPayload,
      codec: opts.codec,
      autoPong: opts.autoPong,
      skipUTF8Validation: opts.skipUTF8Validation,
      generateMask: opts.generateMask,
      endWithCloseFrame: h2,
    });
    if (hs.compressor) proto.setCompressor(hs.compressor);
    this.protocol = proto;
    this.transport = new Transport(hs.socket, proto.out, this, h2);
    opts.idleWheel?.add(this, opts.idleTimeout);
    // Emit 'open' and start reading on the next tick, so that the application (the 'connection'
    // handler, or listeners attached after `new WebSocket`) sees every message, including any that
    // came with the handshake (`head`).
    process.nextTick(start, this, hs.head);
  }

  /** @internal */
  start(head: Buffer): void {
    // An 'open' or 'message' listener that throws: the exception goes on up, and the connection
    // still reads (what came with the handshake, then the socket), or it would never see the peer's
    // close nor its end, and stay open and deaf.
    try {
      if (this.protocol.state !== State.CLOSED) this.ws.emit('open');
    } finally {
      try {
        if (head.length > 0) this.onData(head);
      } finally {
        this.transport.startReading();
      }
    }
  }

  /** Bytes queued and not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.protocol.out.bytes + this.protocol.queuedBytes + this.transport.writableLength;
  }

  // ── decisions of the application ──────────────────────────────────────────────────────

  /** §7.1.2: start the closing handshake (the protocol ignores it unless OPEN). */
  close(code: number | undefined, reason: Buffer): void {
    if (this.protocol.state !== State.OPEN) return;
    this.protocol.close(code, reason);
    this.armCloseTimer();
  }

  /** Drop the connection now, without a closing handshake. */
  terminate(): void {
    // What was sent before, in this tick, leaves first (as ws's writes have reached the socket by
    // then): the frames queued for the end of the tick are written now, then the socket goes.
    if (this.protocol.state === State.OPEN || this.protocol.state === State.CLOSING) this.transport.flush();
    this.protocol.abort('terminated');
  }

  // ── TransportEvents ────────────────────────────────────────────────────────────────────

  /** @internal */
  onData(chunk: Buffer, transient = false): void {
    this.ws.isAlive = true;
    const w = this.opts.idleWheel;
    if (w) this.activeTick = w.tick;
    const outer = receiving; // (a handler may feed another connection: an in-memory pair)
    receiving = this;
    try {
      this.protocol.receive(chunk, transient);
    } finally {
      receiving = outer;
    }
  }

  /**
   * Reading is paused (ws.pause(), a `for await` consumer behind, a backlog behind an inflation,
   * a broker behind): whatever the peer sent since waits unread, so silence proves nothing.
   */
  get readingPaused(): boolean {
    return this.transport.isPausedBy(ANY_PAUSE);
  }

  /** @internal */
  onEof(): void {
    this.protocol.receiveEof();
  }

  /** @internal */
  onClose(): void {
    this.protocol.connectionLost();
    if (this.protocol.state === State.CLOSED) return;
    // The peer's last bytes were read but a message is still inflating, and frames behind it (its
    // close frame, often) wait in the backlog: they are delivered first, as ws does on EOF, for at
    // most closeTimeout.
    this.clearCloseTimer();
    this.armCloseTimer();
  }

  /** @internal Nothing was received or sent for idleTimeout. */
  onWheelTimeout(): void {
    const w = this.opts.idleWheel!;
    // Not idle while we do not read: watched again from now (what it sent waits unread).
    if (this.protocol.state === State.OPEN && this.readingPaused) w.add(this, this.opts.idleTimeout);
    else if (this.protocol.state === State.OPEN) this.close(CloseCode.GOING_AWAY, IDLE_REASON);
    else this.protocol.abort('close_timeout');
  }

  /** @internal */
  onDrain(): void {
    this.ws.emit('drain');
  }

  // ── ProtocolSink ───────────────────────────────────────────────────────────────────────

  /** @internal */
  onMessage(data: Buffer, isBinary: boolean): void {
    if (receiving === this) return this.ws._message(data, isBinary);
    // Outside a read: a message inflated on the thread pool (its handler may publish, and be held).
    const outer = receiving;
    receiving = this;
    try {
      this.ws._message(data, isBinary);
    } finally {
      receiving = outer;
    }
  }

  /** @internal */
  onPing(data: Buffer): void {
    this.ws.emit('ping', data);
  }

  /** @internal */
  onPong(data: Buffer): void {
    this.ws.emit('pong', data);
  }

  /** @internal */
  onError(err: Error): void {
    // Never throw out of the event loop for a peer's fault: emit only to listeners.
    if (this.ws.listenerCount('error') > 0) this.ws.emit('error', err);
  }

  /** @internal */
  onEnd(): void {
    this.transport.end();
    this.armCloseTimer();
  }

  /** @internal */
  onAbort(): void {
    this.transport.destroy();
  }

  /** @internal */
  onClosed(): void {
    this.clearCloseTimer();
    this.opts.idleWheel?.remove(this);
    this.transport.failPending();
    this.ws._closed(this.protocol.closeCode, this.protocol.closeReason);
  }

  /** @internal The protocol queued `added` bytes: they leave in one write at the end of this tick. */
  onOutput(cb: Cb | undefined, added: number): void {
    const t = this.transport;
    if (!t.schedule(cb)) return;
    const w = this.opts.idleWheel;
    if (w) this.activeTick = w.tick;
    // Policy: a peer is too slow when more than maxBackpressure bytes were already waiting for it
    // when more is queued. While the socket has nothing left over from the last flush, the peer
    // keeps up, and what this tick queues does not count: a burst of sends in one tick (or one large
    // message) always goes, as with ws, and is judged once it waits. Once a backlog is left over,
    // what this tick queued before counts too (so pong replies to a flood of pings in one read are
    // bounded by the limit, not the limit plus a read). The socket's queue only shrinks between
    // flushes, so its length at the last flush bounds it: the exact (slower) length is read only
    // when that bound crosses the limit.
    const bound = t.queuedBound;
    if (bound === 0) return;
    const p = this.protocol;
    const before = p.out.bytes + p.queuedBytes - added;
    const max = this.opts.maxBackpressure;
    if (before + bound > max) {
      const waiting = t.writableLength;
      if (waiting > 0 && before + waiting > max) this.onBackpressure();
    }
  }

  /**
   * @internal A pong was queued for a ping. A peer that pings without reading (a ping flood) would
   * have us hold every pong for it, up to maxBackpressure, and then be dropped; past
   * REPLY_HIGH_WATER bytes waiting for it, its socket stops being read instead, until what is
   * queued now has been written (TCP backpressure, as the peer's own kernel buffers then fill).
   * Every ping is still answered, in order. The heartbeat still sees the silence: a peer that
   * reads nothing for a whole interval is dropped as dead.
   */
  onAutoReply(): void {
    const t = this.transport;
    if (t.isPausedBy(Pause.REPLIES) || this.bufferedAmount <= REPLY_HIGH_WATER) return;
    t.setPause(Pause.REPLIES, true);
    t.schedule(() => t.setPause(Pause.REPLIES, false));
  }

  /** @internal Flow control from the protocol (a backlog behind an inflation); independent of pause(). */
  pauseReading(): void {
    this.transport.setPause(Pause.PROTOCOL, true);
  }

  /** @internal */
  resumeReading(): void {
    this.transport.setPause(Pause.PROTOCOL, false);
  }

  // ── policy and timers ──────────────────────────────────────────────────────────────────

  /** A slow reader let more than maxBackpressure bytes pile up: policy is to drop it (1008). */
  private onBackpressure(): void {
    const p = this.protocol;
    if (p.state === State.CLOSED || p.failed) return;
    const err = new ProtocolError('backpressure', `more than ${this.opts.maxBackpressure} bytes waiting for a slow peer`);
    p.abort('backpressure', BACKPRESSURE_REASON);
    if (this.ws.listenerCount('error') > 0) this.ws.emit('error', err);
  }

  private armCloseTimer(): void {
    if (this.closeTimer) return;
    this.closeTimer = setTimeout(closeTimeout, this.opts.closeTimeout, this);
    this.closeTimer.unref?.();
  }

  private clearCloseTimer(): void {
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.closeTimer = null;
  }
}

function closeTimeout(c: Connection): void {
  c.protocol.abort('close_timeout');
}

const IDLE_REASON = Buffer.from('idle timeout');
/** Bytes waiting for a peer past which its pings are not read until their pongs are written (onAutoReply). */
const REPLY_HIGH_WATER = 64 * 1024;
const BACKPRESSURE_REASON = 'backpressure limit exceeded';
