// The transport boundary: what moves a connection's bytes. Any Duplex works: a TCP or TLS socket
// (net.Socket / tls.TLSSocket, with Nagle off), an HTTP/2 stream (RFC 8441), an in-memory pair.
// The Protocol never sees it; the Connection drives it (and keeps the timers: src/node/timer-wheel.ts).
//
//   Protocol.out ──schedule()──▶ one flush per tick ──▶ socket.write (one buffer, or one corked writev)
//   socket 'data' / 'end' / 'close' / 'drain' ──▶ TransportEvents (the Connection)
import type { Duplex } from 'node:stream';
import type { OutQueue } from '../protocol/outqueue.js';

type Cb = (err?: Error | null) => void;

/** What the transport reports to its connection. */
export interface TransportEvents {
  onData(chunk: Buffer): void;
  /** The peer ended its half (TCP FIN, END_STREAM). */
  onEof(): void;
  /** The transport is closed (after an end both ways, an error or destroy()). */
  onClose(): void;
  /** The socket's write buffer drained. */
  onDrain(): void;
}

/** Who asks reading to pause; reading runs only while nobody does. */
export const Pause = {
  /** ws.pause() */
  APP: 1,
  /** The protocol's backlog behind an inflation is too long. */
  PROTOCOL: 2,
  /** A `for await` consumer is behind. */
  ITERATOR: 4,
} as const;

/**
 * Pieces queued in one tick are joined into one buffer when they total at most COALESCE_MAX bytes
 * and average under COALESCE_AVG bytes; otherwise they go out as one writev (no copy).
 */
const COALESCE_MAX = 64 * 1024;
const COALESCE_AVG = 512;
/** RST_STREAM error code CANCEL (RFC 9113 §7), for a WebSocket over HTTP/2 dropped without a closing handshake. */
const H2_CANCEL = 0x8;
const NOT_OPEN = 'WebSocket is not open';

/** Back-reference from a socket to its transport, for the module-level listeners below. */
const kTransport = Symbol('wasmws.transport');
type BoundSocket = Duplex & { [kTransport]: Transport };
type SocketLike = Duplex & {
  [kTransport]?: Transport;
  setNoDelay?: (noDelay: boolean) => void;
};

// Module-level listeners with a back-reference: no closures per connection (memory per idle
// connection is a figure of merit for servers holding many).
function onData(this: BoundSocket, chunk: Buffer): void {
  this[kTransport].events.onData(chunk);
}
function onEnd(this: BoundSocket): void {
  this[kTransport].events.onEof();
}
function onClose(this: BoundSocket): void {
  const t = this[kTransport];
  t.failPending();
  t.events.onClose();
}
function onError(this: BoundSocket): void {
  // A reset socket: 'close' follows (no listener needed, no crash).
  this.destroy();
}
function onDrain(this: BoundSocket): void {
  this[kTransport].events.onDrain();
}
function flushTick(t: Transport): void {
  t.flush();
}

/** A Duplex carrying one WebSocket connection. */
export class Transport {
  readonly socket: Duplex;
  /** @internal */ readonly events: TransportEvents;
  private readonly out: OutQueue;
  private readonly h2: boolean;
  private cbs: Cb[] | null = null;
  private flushScheduled = false;
  /** The socket's writableLength as of the last flush. */
  private queuedAtFlush = 0;
  private pauses = 0;
  private socketPaused = false;
  private reading = false;

  /** `h2`: the Duplex is an HTTP/2 stream (destroy() resets it with CANCEL). */
  constructor(socket: Duplex, out: OutQueue, events: TransportEvents, h2: boolean) {
    this.socket = socket;
    this.out = out;
    this.events = events;
    this.h2 = h2;
    const s = socket as SocketLike;
    s.setNoDelay?.(true);
    s[kTransport] = this;
    socket.on('end', onEnd);
    socket.on('close', onClose);
    socket.on('error', onError);
    socket.on('drain', onDrain);
  }

  /** Start delivering data (Node holds socket data until a 'data' listener exists). */
  startReading(): void {
    this.reading = true;
    this.socket.on('data', onData);
    if (this.pauses !== 0) {
      this.socketPaused = true;
      this.socket.pause();
    }
  }

  /** Bytes the socket holds that the kernel has not taken yet. */
  get writableLength(): number {
    return this.socket.writableLength;
  }

  /** An upper bound of writableLength that costs nothing: its value at the last flush. */
  get queuedBound(): number {
    return this.queuedAtFlush;
  }

  /** Bytes were queued in `out`: they leave in one write at the end of this tick. False when the transport is gone. */
  schedule(cb: Cb | undefined): boolean {
    if (this.socket.destroyed) {
      this.out.clear();
      if (cb) process.nextTick(cb, new Error(NOT_OPEN));
      return false;
    }
    if (cb) (this.cbs ??= []).push(cb);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(flushTick, this);
    }
    return true;
  }

  /** Hand the queued frames to the socket: one write (or one corked writev). */
  flush(): void {
    this.flushScheduled = false;
    const out = this.out;
    if (out.bytes === 0) return;
    const socket = this.socket;
    const bytes = out.bytes;
    // A socket still holding earlier bytes is not draining: give it copies, not slab views, so that
    // a slow peer pins only its own bytes (which maxBackpressure counts), not shared slabs.
    const bufs = out.take(socket.writableLength > 0);
    const cbs = this.cbs;
    this.cbs = null;
    const done = cbs ? (err?: Error | null) => { for (const cb of cbs) cb(err ?? null); } : undefined;
    if (socket.destroyed || !socket.writable) {
      if (done) done(new Error(NOT_OPEN));
      return;
    }
    const n = bufs.length;
    if (n === 1) socket.write(bufs[0], done);
    else if (bytes <= COALESCE_MAX && bytes < n * COALESCE_AVG) {
      // Many small pieces (broadcast frames, pongs): one copy is cheaper than a long writev.
      socket.write(Buffer.concat(bufs, bytes), done);
    } else {
      socket.cork();
      for (let i = 0; i < n - 1; i++) socket.write(bufs[i]);
      socket.write(bufs[n - 1], done);
      socket.uncork();
    }
    this.queuedAtFlush = socket.writableLength;
  }

  /** Callbacks of writes that never reached the socket get an error (the transport closed). */
  failPending(): void {
    const cbs = this.cbs;
    if (!cbs) return;
    this.cbs = null;
    for (const cb of cbs) cb(new Error(NOT_OPEN));
  }

  /** `who` (a Pause bit) asks reading to pause, or stops asking. */
  setPause(who: number, on: boolean): void {
    this.pauses = on ? this.pauses | who : this.pauses & ~who;
    const want = this.pauses !== 0;
    // Touch the socket only on a change, and not before reading started: a stray resume() before
    // the 'data' listener is attached would switch it to flowing mode and drop data.
    if (want === this.socketPaused || !this.reading) return;
    this.socketPaused = want;
    if (want) this.socket.pause();
    else this.socket.resume();
  }

  /** Is `who` asking reading to pause? */
  isPausedBy(who: number): boolean {
    return (this.pauses & who) !== 0;
  }

  /** Write what is queued, then end our half (FIN / END_STREAM). */
  end(): void {
    this.flush();
    this.socket.end();
  }

  /**
   * Drop the transport now. An HTTP/2 stream is reset with CANCEL (RFC 9113 §8.7: "the stream is
   * no longer needed"); Node's destroy() would send NO_ERROR, which reads as a normal end.
   */
  destroy(): void {
    const s = this.socket as Duplex & { close?: (code: number) => void };
    if (this.h2 && !s.destroyed && s.close) s.close(H2_CANCEL);
    else s.destroy();
  }
}
