// Sans-I/O WebSocket protocol (RFC 6455 §5–§7): frames in, messages and control events out, bytes
// to send handed to a sink. No sockets, no timers: the connection layer owns those.
//
//   receive(bytes) ─▶ FrameParser ─▶ handleFrame ─▶ sink.onMessage / onPing / onPong / onClose
//                                        │ auto pong, close echo
//   sendMessage / ping / close ──────────┴─▶ out (OutQueue) ─▶ sink.onOutput() ─▶ transport takes out.take()
import { Opcode } from './constants.js';
import { ProtocolError } from './errors.js';
import { FrameParser, type FrameSink } from './parser.js';
import { decodeClosePayload, encodeClosePayload, headerSize, randomMaskKey, writeHeader } from './frame.js';
import { Accumulator } from './accumulator.js';
import { OutQueue } from './outqueue.js';
import { isUtf8 } from 'node:buffer';
import type { Codec } from '../codec/index.js';

/**
 * Per-message compression hooks (permessage-deflate, RFC 7692); absent when not negotiated.
 * The Protocol keeps at most one decompress and one compress in flight at a time; callbacks are
 * always asynchronous; after release() pending callbacks are never called.
 */
export interface MessageCompressor {
  /** Inflate one whole message's payload; calls back with the data or a ProtocolError (1007 / 1009). */
  decompress(data: Buffer, cb: (err: Error | null, out?: Buffer) => void): void;
  /** Deflate a message's payload for sending (the frame payload, RFC 7692 §7.2.1). */
  compress(data: Buffer, cb: (err: Error | null, out?: Buffer) => void): void;
  /** Optional synchronous fast paths for small messages; undefined = use the async method. Throw ProtocolError. */
  decompressSync?(data: Buffer): Buffer | undefined;
  compressSync?(data: Buffer): Buffer | undefined;
  /** Messages at least this long are compressed. */
  readonly threshold: number;
  /** Free the compression contexts. */
  release(): void;
}

/** Where the protocol delivers what it decoded, and the bytes it wants sent. */
export interface ProtocolSink {
  onMessage(data: Buffer, isBinary: boolean): void;
  onPing(data: Buffer): void;
  onPong(data: Buffer): void;
  /** The peer's close frame arrived (our reply, if due, is already written). */
  onClose(code: number, reason: Buffer): void;
  /** The connection failed; the close frame with the error's code is already written. */
  onError(err: Error): void;
  /** `added` bytes were queued in `protocol.out`; `cb` wants to hear when they are written. */
  onOutput(cb: ((err?: Error | null) => void) | undefined, added: number): void;
  /**
   * Optional flow control: frames that arrive while a message is being inflated wait in a backlog;
   * past BACKLOG_HIGH_WATER bytes the protocol asks the transport to stop reading, and to start again
   * once the backlog is drained. Independent of the application's own pause()/resume().
   */
  pauseReading?(): void;
  resumeReading?(): void;
  /** Optional: an inflation finished and every frame that waited behind it was handled. */
  onBacklogDrained?(): void;
}

export interface ProtocolOptions {
  role: 'server' | 'client';
  maxPayload: number;
  codec: Codec;
  /** Answer pings with pongs automatically (default true). */
  autoPong?: boolean;
  /** Skip UTF-8 validation of text messages (as ws's skipUTF8Validation); default false. */
  skipUTF8Validation?: boolean;
  /** Client only: fills the 4-byte masking key of each frame (ws's generateMask); default: random from crypto. */
  generateMask?: (mask: Buffer) => void;
}

/** The one connection-level state machine shared by server and client connections. */
export class Protocol implements FrameSink {
  readonly parser: FrameParser;
  /** Bytes to send (what `dataToSend()` would return in a pull-style sans-I/O API). */
  readonly out = new OutQueue();
  readonly role: 'server' | 'client';
  private readonly sink: ProtocolSink;
  private readonly mask: boolean;
  private readonly codec: Codec;
  private readonly autoPong: boolean;
  private readonly skipUtf8: boolean;
  private readonly generateMask: ((mask: Buffer) => void) | undefined;
  private maskBuf: Buffer | null = null;
  private compressor: MessageCompressor | null = null;

  closeSent = false;
  closeReceived = false;
  failed = false;
  // The data message being reassembled (§5.4).
  private msgOpcode = 0;
  private msgCompressed = false;
  private fragments: Accumulator | null = null;
  // Inflation is asynchronous: frames that arrive meanwhile wait here, in order.
  private inflatingNow = false;
  private backlog: { b0: number; payload: Buffer }[] = [];
  private backlogBytes = 0;
  private readingPaused = false;
  // Sending: while a compressed message is being deflated, later frames (data, control, close)
  // wait here so that nothing overtakes it. `sendGen` identifies the compression in flight.
  private compressing = false;
  private sendGen = 0;
  private sendingCb: ((err?: Error | null) => void) | undefined = undefined;
  private sendQueue: { run: () => void; bytes: number; cb?: (err?: Error | null) => void }[] = [];
  private sendQueueBytes = 0;

  constructor(sink: ProtocolSink, opts: ProtocolOptions) {
    this.sink = sink;
    this.role = opts.role;
    this.mask = opts.role === 'client';
    this.codec = opts.codec;
    this.autoPong = opts.autoPong !== false;
    this.skipUtf8 = opts.skipUTF8Validation === true;
    this.generateMask = opts.generateMask;
    // Uncompressed text is validated by the parser as bytes arrive (fail fast, §8.1); inflated text here.
    this.parser = new FrameParser({ role: opts.role, maxPayload: opts.maxPayload, codec: opts.codec, validateUtf8: !this.skipUtf8 });
  }

  /** Enable permessage-deflate after negotiation. */
  setCompressor(c: MessageCompressor): void {
    this.compressor = c;
    this.parser.allowRsv1 = true;
  }

  /** Feed bytes from the transport. Input after a failure or after the peer's close is discarded. */
  receive(chunk: Uint8Array): void {
    if (this.failed || this.closeReceived) return;
    try {
      this.parser.parse(chunk, this);
    } catch (err) {
      // The frames before the violation were delivered already (FrameSink contract).
      if (!(err instanceof ProtocolError)) throw err;
      this.fail(err);
    }
  }

  /** @internal FrameSink: one frame from the parser. */
  onFrame(b0: number, payload: Buffer): void {
    if (this.failed || this.closeReceived) return;
    if (!this.inflatingNow) return this.handleFrame(b0, payload);
    this.backlog.push({ b0, payload });
    this.backlogBytes += payload.length + FRAME_OVERHEAD;
    if (!this.readingPaused && this.backlogBytes > BACKLOG_HIGH_WATER && this.sink.pauseReading) {
      this.readingPaused = true;
      this.sink.pauseReading();
    }
  }

  /** Bytes of frames waiting while a message is inflated. */
  get backlogSize(): number {
    return this.backlogBytes;
  }

  /** Bytes of messages waiting to be sent behind a compression in flight (count them in bufferedAmount). */
  get queuedBytes(): number {
    return this.sendQueueBytes;
  }

  /** The negotiated compressor, if any. */
  get compression(): MessageCompressor | null {
    return this.compressor;
  }

  private handleFrame(b0: number, payload: Buffer): void {
    const op = b0 & 0x0f;
    if (op === Opcode.TEXT || op === Opcode.BINARY) {
      if ((b0 & 0xc0) === 0x80) {
        // Fast path: a whole uncompressed message in one frame (UTF-8 already checked by the parser).
        this.sink.onMessage(payload, op === Opcode.BINARY);
        return;
      }
      this.msgOpcode = op;
      this.msgCompressed = (b0 & 0x40) !== 0;
      this.addFragment(payload, (b0 & 0x80) !== 0);
    } else if (op === Opcode.CONTINUATION) {
      this.addFragment(payload, (b0 & 0x80) !== 0);
    } else if (op === Opcode.PING) {
      if (this.autoPong && !this.closeSent) this.pong(payload);
      this.sink.onPing(payload);
    } else if (op === Opcode.PONG) {
      this.sink.onPong(payload);
    } else {
      this.receiveClose(payload);
    }
  }

  private addFragment(payload: Buffer, fin: boolean): void {
    if (payload.length > 0) {
      (this.fragments ??= new Accumulator()).push(payload, this.parser.maxPayload);
    }
    if (!fin) return;
    const data = this.fragments ? this.fragments.take() : EMPTY;
    const isBinary = this.msgOpcode === Opcode.BINARY;
    if (this.msgCompressed) return this.inflate(data, isBinary);
    this.sink.onMessage(data, isBinary);
  }

  private inflate(data: Buffer, isBinary: boolean): void {
    const c = this.compressor;
    if (!c) return this.failWith('reserved_bits', 'RSV1 set without a negotiated extension');
    if (c.decompressSync) {
      let out: Buffer | undefined;
      try {
        out = c.decompressSync(data);
      } catch (err) {
        return this.fail(err as Error);
      }
      if (out !== undefined) return this.deliverInflated(out, isBinary);
    }
    this.inflatingNow = true;
    c.decompress(data, (err, out) => {
      this.inflatingNow = false;
      if (err) this.fail(err);
      else if (!this.failed) {
        this.deliverInflated(out!, isBinary);
        const backlog = this.backlog;
        this.backlog = [];
        this.backlogBytes = 0;
        for (const f of backlog) this.onFrame(f.b0, f.payload);
        if (this.readingPaused && (!this.inflatingNow || this.backlogBytes < BACKLOG_LOW_WATER)) {
          this.readingPaused = false;
          this.sink.resumeReading?.();
        }
      }
      if (!this.inflatingNow) this.sink.onBacklogDrained?.();
    });
  }

  private deliverInflated(out: Buffer, isBinary: boolean): void {
    if (!isBinary && !this.skipUtf8 && !isUtf8(out)) return this.failWith('invalid_utf8', 'text message is not valid UTF-8');
    this.sink.onMessage(out, isBinary);
  }

  /** §5.5.1: the peer's close; answer with our own unless we sent one already. */
  private receiveClose(payload: Buffer): void {
    let info;
    try {
      info = decodeClosePayload(payload);
    } catch (err) {
      return this.fail(err as Error);
    }
    this.closeReceived = true;
    this.backlog = [];
    this.backlogBytes = 0;
    const reason = payload.length > 2 ? payload.subarray(2) : EMPTY;
    if (!this.closeSent) {
      // Echo the status code and reason (§5.5.1; as ws does); 1005 means the peer sent none, so
      // neither do we.
      this.sendClose(info.code === 1005 ? undefined : info.code, reason);
    }
    // §5.5.1 lets us finish the message being compressed before our close: tell the sink only once
    // our close frame is written, since it ends the transport.
    if (this.compressing) this.enqueueSend(() => this.sink.onClose(info.code, reason), 0);
    else this.sink.onClose(info.code, reason);
  }

  private failWith(kind: ConstructorParameters<typeof ProtocolError>[0], message: string): void {
    this.fail(new ProtocolError(kind, message));
  }

  /**
   * RFC 6455 §7.1.7 "Fail the WebSocket Connection": the one place that maps an error to a close
   * frame. Protocol errors carry their code; anything else is 1011 with no detail for the peer.
   */
  fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.fragments = null;
    this.backlog = [];
    this.backlogBytes = 0;
    // Failing: drop what waits to be sent (and the compression in flight) so the close frame goes now.
    this.abortSends(new Error('WebSocket connection failed'));
    if (!this.closeSent) {
      if (err instanceof ProtocolError) this.sendClose(err.code, err.message.slice(0, 123));
      else this.sendClose(1011, '');
    }
    this.sink.onError(err);
  }

  /** Frame `data` as one message (or one fragment with fin false) and write it, after any compression in flight. */
  sendFrame(opcode: number, data: Buffer, fin: boolean, rsv1: boolean, cb?: (err?: Error | null) => void): void {
    if (this.compressing) {
      this.enqueueSend(() => this.writeFrame(opcode, data, fin, rsv1, cb), data.length, cb);
      return;
    }
    this.writeFrame(opcode, data, fin, rsv1, cb);
  }

  /** Write pre-encoded frame bytes (broadcast), after any compression in flight. */
  sendRaw(frame: Buffer, cb?: (err?: Error | null) => void): void {
    if (this.compressing) {
      this.enqueueSend(() => this.writeRaw(frame, cb), frame.length, cb);
      return;
    }
    this.writeRaw(frame, cb);
  }

  private writeRaw(frame: Buffer, cb?: (err?: Error | null) => void): void {
    this.out.push(frame);
    this.sink.onOutput(cb, frame.length);
  }

  /** The application's masking key for the next frame, as the little-endian u32 the codecs take. */
  private userMaskKey(): number {
    const b = (this.maskBuf ??= Buffer.alloc(4));
    this.generateMask!(b);
    return b.readUInt32LE(0);
  }

  private writeFrame(opcode: number, data: Buffer, fin: boolean, rsv1: boolean, cb?: (err?: Error | null) => void): void {
    const len = data.length;
    const out = this.out;
    const masked = this.mask;
    const key = masked ? (this.generateMask ? this.userMaskKey() : randomMaskKey()) : 0;
    const hs = headerSize(len, masked);
    if (len <= SMALL_FRAME) {
      // Header and payload straight into the outgoing slab: no allocation, one segment per flush.
      const at = out.reserve(hs + len);
      const buf = out.buf;
      writeHeader(buf, at, opcode, len, fin, rsv1, masked, key);
      if (masked) this.codec.mask(data, key, buf, at + hs, len);
      else if (len <= INLINE_COPY) for (let i = 0, p = at + hs; i < len; i++) buf[p + i] = data[i];
      else buf.set(data, at + hs); // TypedArray#set: a plain memcpy (Buffer#copy builds a view per call)
    } else {
      const at = out.reserve(hs);
      writeHeader(out.buf, at, opcode, len, fin, rsv1, masked, key);
      if (masked) {
        // Masking must not change the caller's buffer.
        const body = Buffer.allocUnsafe(len);
        this.codec.mask(data, key, body, 0, len);
        out.push(body);
      } else out.push(data); // zero copy: the socket writes the caller's buffer
    }
    this.sink.onOutput(cb, hs + len);
  }


  /** Send a whole message, compressed when permessage-deflate is on and it is long enough. */
  sendMessage(data: Buffer, isBinary: boolean, compress: boolean, cb?: (err?: Error | null) => void): void {
    const opcode = isBinary ? Opcode.BINARY : Opcode.TEXT;
    const c = this.compressor;
    if (this.closeSent || this.failed) {
      if (cb) process.nextTick(cb, new Error('WebSocket is not open'));
      return;
    }
    if (!c || !compress || data.length < c.threshold) return this.sendFrame(opcode, data, true, false, cb);
    if (!this.compressing && c.compressSync) {
      const out = c.compressSync(data);
      if (out !== undefined) return this.writeFrame(opcode, out, true, true, cb);
    }
    this.sendCompressed(opcode, (done) => c.compress(data, done), data.length, cb);
  }

  /**
   * Send a message whose compressed payload `produce` delivers (broadcast shares one compression
   * among connections). Ordered like sendMessage: nothing sent later overtakes it.
   */
  sendPrecompressed(isBinary: boolean, produce: (done: (err: Error | null, payload?: Buffer) => void) => void, cb?: (err?: Error | null) => void): void {
    if (this.closeSent || this.failed || !this.compressor) {
      if (cb) process.nextTick(cb, new Error('WebSocket is not open'));
      return;
    }
    this.sendCompressed(isBinary ? Opcode.BINARY : Opcode.TEXT, produce, 0, cb);
  }

  private sendCompressed(
    opcode: number,
    produce: (done: (err: Error | null, payload?: Buffer) => void) => void,
    bytes: number,
    cb?: (err?: Error | null) => void,
  ): void {
    const start = () => {
      this.compressing = true;
      this.sendingCb = cb;
      const gen = ++this.sendGen;
      produce((err, out) => {
        if (gen !== this.sendGen || !this.compressing) return; // aborted (failure or release)
        this.compressing = false;
        this.sendingCb = undefined;
        if (err) {
          cb?.(err);
          this.fail(err);
          return;
        }
        this.writeFrame(opcode, out!, true, true, cb);
        this.drainSends();
      });
    };
    if (this.compressing) this.enqueueSend(start, bytes, cb);
    else start();
  }

  private enqueueSend(run: () => void, bytes: number, cb?: (err?: Error | null) => void): void {
    this.sendQueue.push({ run, bytes, cb });
    this.sendQueueBytes += bytes;
  }

  /** Run queued sends in order until one starts a new compression. */
  private drainSends(): void {
    const q = this.sendQueue;
    let i = 0;
    while (i < q.length && !this.compressing && this.sendQueue === q) {
      const item = q[i++];
      this.sendQueueBytes -= item.bytes;
      item.run();
    }
    // Sends queued meanwhile were appended to the same array; an abort replaced it.
    if (this.sendQueue === q) this.sendQueue = i === q.length ? [] : q.slice(i);
  }

  /** Drop queued sends and the compression in flight; their callbacks get `err`. */
  private abortSends(err: Error): void {
    if (!this.compressing && this.sendQueue.length === 0) return;
    const inflight = this.compressing ? this.sendingCb : undefined;
    this.compressing = false;
    this.sendingCb = undefined;
    this.sendGen++;
    const q = this.sendQueue;
    this.sendQueue = [];
    this.sendQueueBytes = 0;
    if (inflight) process.nextTick(inflight, err);
    for (const item of q) if (item.cb) process.nextTick(item.cb, err);
  }

  ping(data: Buffer = EMPTY, cb?: (err?: Error | null) => void): void {
    this.sendFrame(Opcode.PING, data, true, false, cb);
  }

  pong(data: Buffer = EMPTY, cb?: (err?: Error | null) => void): void {
    this.sendFrame(Opcode.PONG, data, true, false, cb);
  }

  /** Send our close frame (once). */
  sendClose(code?: number, reason: string | Buffer = '', cb?: (err?: Error | null) => void): void {
    if (this.closeSent) return;
    const payload = encodeClosePayload(code, reason); // may throw: before any state changes
    this.closeSent = true;
    this.sendFrame(Opcode.CLOSE, payload, true, false, cb);
  }

  /** A compression is in flight or sends wait behind one. */
  get sendsPending(): boolean {
    return this.compressing || this.sendQueue.length > 0;
  }

  /** A message is being inflated on the thread pool (frames behind it wait in the backlog). */
  get inflating(): boolean {
    return this.inflatingNow;
  }

  /** Drop per-connection state (compression contexts, fragments, queued sends). */
  release(): void {
    this.fragments = null;
    this.backlog = [];
    this.backlogBytes = 0;
    this.abortSends(new Error('WebSocket is not open'));
    this.compressor?.release();
    this.compressor = null;
  }
}

const EMPTY = Buffer.alloc(0);
/** Frames up to this size are copied into the outgoing slab with their header; larger ones go zero-copy. */
const SMALL_FRAME = 1024;
/** Payloads up to this size are copied by a JS loop (cheaper than a native copy call). */
const INLINE_COPY = 32;
/** Backlog (bytes of frames waiting behind an inflation) above which reading pauses, and below which it resumes. */
const BACKLOG_HIGH_WATER = 1024 * 1024;
const BACKLOG_LOW_WATER = 256 * 1024;
/** Bookkeeping cost counted per backlogged frame, so a flood of empty frames also pauses reading. */
const FRAME_OVERHEAD = 64;
