// Sans-I/O WebSocket protocol (RFC 6455 §5–§7): it owns the connection's state machine. Frames
// in, messages and control events out, bytes to send handed to a sink. No sockets, no timers: the
// connection layer owns those, tells the protocol what the transport did (receive, receiveEof,
// connectionLost) and what it decided (close, fail, abort), and asks it for the facts (state,
// closeCode, closeReason, wasClean).
//
//   receive(bytes) ─▶ FrameParser ─▶ handleFrame ─▶ sink.onMessage / onPing / onPong
//                                        │ auto pong, close echo
//   sendMessage / ping / close ──────────┴─▶ out (OutQueue) ─▶ sink.onOutput() ─▶ transport takes out.take()
//
//   state:  OPEN ──close() / peer's close / fail / abort / EOF──▶ CLOSING ──connectionLost()──▶ CLOSED
//           sink.onEnd(): write what is queued, then end our half (once; RFC 6455 §7.1.1)
//           sink.onAbort(): drop the transport now;  sink.onClosed(): the facts are final
import { CloseCode, MAX_CLOSE_REASON, Opcode } from './constants.js';
import { ERRORS, ProtocolError, type ErrorKind } from './errors.js';
import { FrameParser, type FrameSink } from './parser.js';
import { decodeClosePayload, encodeClosePayload, headerSize, randomMaskKey, writeHeader } from './frame.js';
import { Accumulator } from './accumulator.js';
import { OutQueue } from './outqueue.js';
import { isUtf8, Buffer } from 'node:buffer';
import type { Codec } from '../codec/index.js';
import type { FanOut } from './fanout.js';

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
  /**
   * Optional: compressors with the same non-null key produce the same bytes for a message (no
   * context takeover, same window): one compressShared() serves them all (src/protocol/fanout.ts).
   */
  readonly shareKey?: string | null;
  compressShared?(data: Buffer, cb: (err: Error | null, out?: Buffer) => void): void;
  /** Free the compression contexts. */
  release(): void;
}

/** The connection's states (RFC 6455 §4.1, §7); the numbers are the WebSocket readyState values. */
export const State = { OPEN: 1, CLOSING: 2, CLOSED: 3 } as const;
export type State = (typeof State)[keyof typeof State];

/** The local error of a connection failed because an application listener threw (the exception itself goes on up). */
const LISTENER_THREW = 'an application listener threw (1011 sent to the peer)';

/** Where the protocol delivers what it decoded, and the bytes it wants sent. */
export interface ProtocolSink {
  onMessage(data: Buffer, isBinary: boolean): void;
  onPing(data: Buffer): void;
  onPong(data: Buffer): void;
  /** The connection failed (§7.1.7); the close frame with the error's code is queued, and onEnd() was called. */
  onError(err: Error): void;
  /**
   * Write what is queued, then end our half of the transport (TCP FIN, HTTP/2 END_STREAM): the
   * closing handshake is done (or failed, or the peer ended its half). Called once.
   */
  onEnd(): void;
  /** Drop the transport now, without a closing handshake (abort()). */
  onAbort(): void;
  /** The state is CLOSED: closeCode, closeReason and wasClean are final. Called once. */
  onClosed(): void;
  /** `added` bytes were queued in `protocol.out`; `cb` wants to hear when they are written. */
  onOutput(cb: ((err?: Error | null) => void) | undefined, added: number): void;
  /**
   * Optional flow control: frames that arrive while a message is being inflated wait in a backlog;
   * past BACKLOG_HIGH_WATER bytes the protocol asks the transport to stop reading, and to start again
   * once the backlog is drained. Independent of the application's own pause()/resume().
   */
  pauseReading?(): void;
  resumeReading?(): void;
  /**
   * Optional: an automatic reply (a pong) was queued, which the peer did not ask the application
   * for: the transport may stop reading while such replies pile up unread (a ping flood).
   */
  onAutoReply?(): void;
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
  /**
   * End our half as soon as our own close frame is written, not after the peer's reply: over
   * HTTP/2 (RFC 8441 §5) END_STREAM is the stream's orderly close and the peer's close still arrives.
   */
  endWithCloseFrame?: boolean;
}

/** The one connection-level state machine shared by server and client connections. */
export class Protocol implements FrameSink {
  readonly parser: FrameParser;
  /** Bytes to send (what `dataToSend()` would return in a pull-style sans-I/O API). */
  readonly out = new OutQueue();
  private readonly sink: ProtocolSink;
  private readonly generateMask: ((mask: Buffer) => void) | undefined;
  /** permessage-deflate's state (null without it, and after release): one field per idle connection. */
  private z: Compression | null = null;

  get role(): 'server' | 'client' {
    return this.mask ? 'client' : 'server';
  }

  /** OPEN, CLOSING or CLOSED (State). */
  get state(): State {
    return this._state;
  }
  private _state: State = State.OPEN;
  /** Our close frame was queued (§5.5.1). */
  get closeSent(): boolean {
    return this._closeSent;
  }
  /** The peer's close frame arrived. */
  get closeReceived(): boolean {
    return this._closeReceived;
  }
  /** We failed the connection (§7.1.7) or aborted it: input is discarded, the close code is ours. */
  get failed(): boolean {
    return this._failed;
  }
  /**
   * The close code to report (§7.1.5): the peer's (1005 when its close frame had none), the one we
   * failed with, the abort's, or 1006 when the transport closed without a close frame.
   */
  get closeCode(): number {
    return this._closeCode;
  }
  private _closeCode: number = CloseCode.ABNORMAL;
  /** The close reason that goes with closeCode (§7.1.6). */
  get closeReason(): Buffer {
    return this._closeReason;
  }
  private _closeReason: Buffer = EMPTY;
  /** Both close frames were exchanged and nothing failed (the browser's CloseEvent.wasClean). */
  get wasClean(): boolean {
    return this._closeSent && this._closeReceived && !this._failed;
  }
  /** onEnd() was called. */
  /** connectionLost() was called: CLOSED once no inflation is in flight. */
  // The data message being reassembled (§5.4).
  private msgOpcode = 0;
  private fragments: Accumulator | null = null;

  // Fourteen booleans in one number: memory per idle connection is a figure of merit (each field
  // of an object costs 8 bytes on a 64-bit Node).
  private flags = 0;
  private get mask(): boolean { return (this.flags & 0x1) !== 0; }
  private set mask(v: boolean) { this.flags = v ? this.flags | 0x1 : this.flags & ~0x1; }
  private get autoPong(): boolean { return (this.flags & 0x2) !== 0; }
  private set autoPong(v: boolean) { this.flags = v ? this.flags | 0x2 : this.flags & ~0x2; }
  private get skipUtf8(): boolean { return (this.flags & 0x4) !== 0; }
  private set skipUtf8(v: boolean) { this.flags = v ? this.flags | 0x4 : this.flags & ~0x4; }
  private get endWithCloseFrame(): boolean { return (this.flags & 0x8) !== 0; }
  private set endWithCloseFrame(v: boolean) { this.flags = v ? this.flags | 0x8 : this.flags & ~0x8; }
  private get _closeSent(): boolean { return (this.flags & 0x10) !== 0; }
  private set _closeSent(v: boolean) { this.flags = v ? this.flags | 0x10 : this.flags & ~0x10; }
  private get _closeReceived(): boolean { return (this.flags & 0x20) !== 0; }
  private set _closeReceived(v: boolean) { this.flags = v ? this.flags | 0x20 : this.flags & ~0x20; }
  private get _failed(): boolean { return (this.flags & 0x40) !== 0; }
  private set _failed(v: boolean) { this.flags = v ? this.flags | 0x40 : this.flags & ~0x40; }
  private get ended(): boolean { return (this.flags & 0x80) !== 0; }
  private set ended(v: boolean) { this.flags = v ? this.flags | 0x80 : this.flags & ~0x80; }
  private get lost(): boolean { return (this.flags & 0x100) !== 0; }
  private set lost(v: boolean) { this.flags = v ? this.flags | 0x100 : this.flags & ~0x100; }
  private get eof(): boolean { return (this.flags & 0x200) !== 0; }
  private set eof(v: boolean) { this.flags = v ? this.flags | 0x200 : this.flags & ~0x200; }
  private get msgCompressed(): boolean { return (this.flags & 0x400) !== 0; }
  private set msgCompressed(v: boolean) { this.flags = v ? this.flags | 0x400 : this.flags & ~0x400; }
  private get inflatingNow(): boolean { return (this.flags & 0x800) !== 0; }
  private set inflatingNow(v: boolean) { this.flags = v ? this.flags | 0x800 : this.flags & ~0x800; }
  private get readingPaused(): boolean { return (this.flags & 0x1000) !== 0; }
  private set readingPaused(v: boolean) { this.flags = v ? this.flags | 0x1000 : this.flags & ~0x1000; }
  private get compressing(): boolean { return (this.flags & 0x2000) !== 0; }
  private set compressing(v: boolean) { this.flags = v ? this.flags | 0x2000 : this.flags & ~0x2000; }
  /** Frames wait in HELD (holdFrames) instead of being handled. */
  get holding(): boolean { return (this.flags & 0x4000) !== 0; }
  private set holding(v: boolean) { this.flags = v ? this.flags | 0x4000 : this.flags & ~0x4000; }

  constructor(sink: ProtocolSink, opts: ProtocolOptions) {
    this.sink = sink;
    this.mask = opts.role === 'client';
    this.autoPong = opts.autoPong !== false;
    this.skipUtf8 = opts.skipUTF8Validation === true;
    this.generateMask = opts.generateMask;
    this.endWithCloseFrame = opts.endWithCloseFrame === true;
    // Uncompressed text is validated by the parser as bytes arrive (fail fast, §8.1); inflated text here.
    this.parser = new FrameParser({ role: opts.role, maxPayload: opts.maxPayload, codec: opts.codec, validateUtf8: !this.skipUtf8 });
  }

  /** Enable permessage-deflate after negotiation. */
  setCompressor(c: MessageCompressor): void {
    this.z = new Compression(c);
    this.parser.allowRsv1 = true;
  }

  /**
   * Feed bytes from the transport. Input after a failure, the peer's close or EOF is discarded.
   * `transient`: the chunk is the caller's scratch, written over after this call (FrameParser.parse).
   */
  receive(chunk: Uint8Array, transient = false): void {
    if (this._failed || this._closeReceived || this.eof) return; // (a failed parser discards input itself)
    try {
      this.parser.parse(chunk, this, transient);
    } catch (err) {
      // The frames before the violation were delivered already (FrameSink contract). Behind an
      // inflation they wait in the backlog: the connection fails once they are delivered (as ws),
      // so whole messages that came before a violation are never lost to it; input stops now.
      if (err instanceof ProtocolError) return this.failAfterQueued(err);
      // A listener threw (application code runs inside the sink's callbacks): the parser stopped in
      // the middle of the chunk and cannot go on, so the connection fails with 1011 rather than
      // staying open and deaf, and the exception goes on up, as any listener's would.
      this.fail('internal', LISTENER_THREW);
      throw err;
    }
  }

  /**
   * The peer ended its half of the transport (TCP FIN, END_STREAM): no more input. We end ours too
   * (§7.1.1); a message still inflating and the frames behind it are delivered first.
   */
  receiveEof(): void {
    if (this.eof) return;
    this.eof = true;
    this.releaseFrames(); // what came before the end first (nothing holds it again now)
    if (this._state === State.OPEN) this._state = State.CLOSING;
    this.endAfterQueued();
  }

  /**
   * The transport is closed. The state becomes CLOSED (and onClosed() is called) now, or once the
   * message being inflated and the frames behind it are delivered; abort() cuts that short.
   */
  connectionLost(): void {
    if (this.lost) return;
    this.lost = true;
    if (this._state === State.OPEN) this._state = State.CLOSING;
    this.releaseFrames(); // what was read is delivered (nothing holds it again now)
    if (!this.inflatingNow) this.finishClosed();
  }

  /**
   * @internal From now on, frames wait in order instead of being handled (a broker behind: the
   * connection publishes faster than it carries, src/node/connection.ts), also the rest of the
   * read being parsed; the transport stops reading meanwhile, so they are at most about one read.
   * False when holding already, or when the input ended.
   */
  holdFrames(): boolean {
    // (Also while CLOSING: what the peer sends before its close frame is still delivered, and a
    // closing flood must stay as bounded as an open one; closeTimeout bounds the wait.)
    if (this.holding || this._state === State.CLOSED || this.eof || this.lost || this._failed || this._closeReceived) return false;
    this.holding = true;
    HELD.set(this, { frames: [], fail: null });
    return true;
  }

  /**
   * @internal Handle the held frames, in order. One of them may make the connection hold again
   * (holdFrames): the rest then waits again. Returns whether it holds. A listener that throws fails
   * the connection (1011, as in receive) and the exception goes on up on the next tick.
   */
  releaseFrames(): boolean {
    if (!this.holding) return false;
    const held = HELD.get(this)!;
    HELD.delete(this);
    this.holding = false;
    const q = held.frames;
    try {
      for (let i = 0; i < q.length; i += 2) {
        this.onFrame(q[i] as number, q[i + 1] as Buffer);
        if (this.holding) {
          const again = HELD.get(this)!;
          for (let j = i + 2; j < q.length; j++) again.frames.push(q[j]);
          again.fail = held.fail;
          return true;
        }
      }
    } catch (err) {
      if (!this.lost) this.fail('internal', LISTENER_THREW);
      process.nextTick(() => {
        throw err;
      });
      return false;
    }
    if (held.fail !== null) this.failAfterQueued(held.fail); // a violation read after them
    return false;
  }

  /**
   * A violation the parser found: the connection fails once the whole messages read before it are
   * delivered (held frames, a backlog behind an inflation: as ws, none is lost to it), else now.
   */
  private failAfterQueued(err: ProtocolError): void {
    // Read after the peer's close frame (in the same read, behind it): discarded, as all input
    // after the close is (§5.5.1: the peer sends nothing more; what it sends anyway is not ours to judge).
    if (this._closeReceived) return;
    if (this.holding) HELD.get(this)!.fail = err;
    else if (this.inflatingNow) this.z!.failAfter = err;
    else this.fail(err);
  }

  /** @internal FrameSink: one frame from the parser. */
  onFrame(b0: number, payload: Buffer): void {
    if (this._failed || this._closeReceived) return;
    if (this.holding) {
      HELD.get(this)!.frames.push(b0, payload);
      return;
    }
    if (!this.inflatingNow) return this.handleFrame(b0, payload);
    const z = this.z!; // inflating: compression is on
    (z.backlog ??= []).push({ b0, payload });
    z.backlogBytes += payload.length + FRAME_OVERHEAD;
    if (!this.readingPaused && z.backlogBytes > BACKLOG_HIGH_WATER && this.sink.pauseReading) {
      this.readingPaused = true;
      this.sink.pauseReading();
    }
  }

  /** Bytes of frames waiting while a message is inflated. */
  get backlogSize(): number {
    return this.z?.backlogBytes ?? 0;
  }

  /** Bytes of messages waiting to be sent behind a compression in flight (count them in bufferedAmount). */
  get queuedBytes(): number {
    return this.z?.sendQueueBytes ?? 0;
  }

  /** The negotiated compressor, if any. */
  get compression(): MessageCompressor | null {
    return this.z?.compressor ?? null;
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
      if (this.autoPong && !this.closeSent) {
        this.pong(payload);
        this.sink.onAutoReply?.();
      }
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
    const z = this.z;
    if (!z) return this.failWith('reserved_bits', 'RSV1 set without a negotiated extension');
    const c = z.compressor;
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
      else if (!this._failed) {
        this.deliverInflated(out!, isBinary);
        const backlog = z.backlog;
        z.backlog = null;
        z.backlogBytes = 0;
        if (backlog) for (const f of backlog) this.onFrame(f.b0, f.payload);
        if (this.readingPaused && (!this.inflatingNow || z.backlogBytes < BACKLOG_LOW_WATER)) {
          this.readingPaused = false;
          this.sink.resumeReading?.();
        }
      }
      const after = z.failAfter;
      if (after !== null && !this.inflatingNow) {
        z.failAfter = null;
        this.failAfterQueued(after); // (nothing when err failed the connection already)
      }
      if (!this.inflatingNow && this.lost) this.finishClosed();
    });
  }

  private deliverInflated(out: Buffer, isBinary: boolean): void {
    if (!isBinary && !this.skipUtf8 && !isUtf8(out)) return this.failWith('invalid_utf8', 'text message is not valid UTF-8');
    this.sink.onMessage(out, isBinary);
  }

  /** §5.5.1: the peer's close; answer with our own unless we sent one already, then end our half. */
  private receiveClose(payload: Buffer): void {
    let info;
    try {
      info = decodeClosePayload(payload);
    } catch (err) {
      return this.fail(err as Error);
    }
    this._closeReceived = true;
    this._state = State.CLOSING;
    this.z?.dropBacklog();
    const reason = payload.length > 2 ? payload.subarray(2) : EMPTY;
    this._closeCode = info.code;
    this._closeReason = reason;
    if (!this._closeSent) {
      // Echo the status code and reason (§5.5.1; as ws does); 1005 means the peer sent none, so
      // neither do we.
      this.sendClose(info.code === CloseCode.NO_STATUS ? undefined : info.code, reason);
    }
    this.endAfterQueued();
  }

  /**
   * Ask the sink to end our half once what is queued is written. §5.5.1 lets us finish the message
   * being compressed before our close frame, so while one is in flight this waits behind it.
   */
  private endAfterQueued(): void {
    if (this.ended) return;
    if (this.compressing) {
      this.enqueueSend(() => this.endAfterQueued(), 0);
      return;
    }
    this.ended = true;
    this.sink.onEnd();
  }

  /**
   * The application's close (§7.1.2 "Start the WebSocket Closing Handshake"): send our close frame
   * once; the transport ends when the peer's close arrives (or at once over HTTP/2). Throws, before
   * any state changes, for a code or reason a close frame cannot carry.
   */
  close(code?: number, reason: string | Buffer = '', cb?: (err?: Error | null) => void): void {
    if (this._state !== State.OPEN) return;
    this.sendClose(code, reason, cb);
    this._state = State.CLOSING;
    if (this.endWithCloseFrame) this.endAfterQueued();
  }

  private failWith(kind: ConstructorParameters<typeof ProtocolError>[0], message: string): void {
    this.fail(new ProtocolError(kind, message));
  }

  /**
   * RFC 6455 §7.1.7 "Fail the WebSocket Connection": the one place that maps an error to a close
   * frame. Protocol errors carry their code (ERRORS); anything else is 1011 with no detail for the
   * peer. A kind and message make the ProtocolError here (local decisions such as a timeout).
   */
  fail(err: Error | ErrorKind, message = ''): void {
    if (this._failed || this._state === State.CLOSED) return;
    if (typeof err === 'string') err = new ProtocolError(err, message);
    this._failed = true;
    this._state = State.CLOSING;
    this.dropInput();
    // Failing: drop what waits to be sent (and the compression in flight) so the close frame goes now.
    this.abortSends(new Error('WebSocket connection failed'));
    const code = err instanceof ProtocolError ? err.code : ERRORS.internal;
    // The peer learns what it did wrong, never what went wrong on our side (1011 with no detail).
    const detail = err instanceof ProtocolError && err.kind !== 'internal' ? err.message.slice(0, MAX_CLOSE_REASON) : '';
    if (!this._closeSent) this.sendClose(code, detail);
    this._closeCode = code;
    this._closeReason = EMPTY;
    this.endAfterQueued();
    this.sink.onError(err);
  }

  /**
   * A local decision to drop the connection without (waiting for) a closing handshake: a slow
   * peer (backpressure), a close timeout, terminate(). The close code comes from ERRORS unless the
   * peer's or our failure's is already known; `reason` is reported locally, never sent.
   */
  abort(kind: ErrorKind, reason = ''): void {
    if (this._state === State.CLOSED) return;
    if (!this._closeReceived && !this._failed) {
      this._closeCode = ERRORS[kind];
      this._closeReason = reason ? Buffer.from(reason) : EMPTY;
    }
    this._failed = true;
    this._state = State.CLOSING;
    this.dropInput();
    this.abortSends(new Error('WebSocket is not open'));
    this.out.clear();
    if (this.lost) this.finishClosed(); // a close timeout after the transport closed mid-inflation
    else this.sink.onAbort();
  }

  private dropInput(): void {
    this.fragments = null;
    if (this.holding) {
      this.holding = false;
      HELD.delete(this);
    }
    this.z?.dropBacklog();
  }

  /** §7.1.4 "The WebSocket Connection is Closed". */
  private finishClosed(): void {
    if (this._state === State.CLOSED) return;
    this._state = State.CLOSED;
    // No close frame from the peer and no failure of ours: abnormal closure (§7.1.5).
    if (!this._closeReceived && !this._failed) {
      this._closeCode = CloseCode.ABNORMAL;
      this._closeReason = EMPTY;
    }
    this.release();
    this.out.clear();
    this.sink.onClosed();
  }

  /** Frame `data` as one message (or one fragment with fin false) and write it, after any compression in flight. */
  sendFrame(opcode: number, data: Buffer, fin: boolean, rsv1: boolean, cb?: (err?: Error | null) => void): void {
    if (this.compressing) {
      this.enqueueSend(() => this.writeFrame(opcode, data, fin, rsv1, cb), data.length, cb);
      return;
    }
    this.writeFrame(opcode, data, fin, rsv1, cb);
  }

  /**
   * Send a message that goes to many connections (broadcast, publish) in the wire form this one
   * takes: the shared plain frame, a compression shared with peers of the same shareKey, or our
   * own compression. False when the connection is not open.
   */
  sendShared(m: FanOut): boolean {
    if (this._state !== State.OPEN) return false;
    const c = this.z?.compressor;
    if (!c || !m.compress || m.payload.length < c.threshold) this.sendRaw(m.frame());
    else if (c.shareKey != null && c.compressShared) {
      this.sendPrecompressed(m.binary, m.sharedBy(c as MessageCompressor & { compressShared: NonNullable<MessageCompressor['compressShared']> }, c.shareKey).wait);
    } else this.sendMessage(m.payload, m.binary, true);
    return true;
  }

  /** Write pre-encoded frame bytes, after any compression in flight. */
  private sendRaw(frame: Buffer, cb?: (err?: Error | null) => void): void {
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
    MASK_BUF.fill(0);
    this.generateMask!(MASK_BUF); // synchronous: one buffer serves every connection
    return MASK_BUF.readUInt32LE(0);
  }

  private writeFrame(opcode: number, data: Buffer, fin: boolean, rsv1: boolean, cb?: (err?: Error | null) => void): void {
    const len = data.length;
    const out = this.out;
    const masked = this.mask;
    const key = masked ? (this.generateMask ? this.userMaskKey() : randomMaskKey()) : 0;
    const codec = this.parser.codec;
    const hs = headerSize(len, masked);
    if (len <= SMALL_FRAME) {
      // Header and payload straight into the outgoing slab: no allocation, one segment per flush.
      const at = out.reserve(hs + len);
      const buf = out.buf;
      writeHeader(buf, at, opcode, len, fin, rsv1, masked, key);
      if (masked) codec.mask(data, key, buf, at + hs, len);
      else if (len <= INLINE_COPY) for (let i = 0, p = at + hs; i < len; i++) buf[p + i] = data[i];
      else buf.set(data, at + hs); // TypedArray#set: a plain memcpy (Buffer#copy builds a view per call)
    } else {
      const at = out.reserve(hs);
      writeHeader(out.buf, at, opcode, len, fin, rsv1, masked, key);
      if (masked) {
        // Masking must not change the caller's buffer.
        const body = Buffer.allocUnsafe(len);
        codec.mask(data, key, body, 0, len);
        out.push(body);
      } else out.push(data); // zero copy: the socket writes the caller's buffer
    }
    this.sink.onOutput(cb, hs + len);
  }


  /** Send a whole message, compressed when permessage-deflate is on and it is long enough. */
  sendMessage(data: Buffer, isBinary: boolean, compress: boolean, cb?: (err?: Error | null) => void): void {
    const opcode = isBinary ? Opcode.BINARY : Opcode.TEXT;
    const c = this.z?.compressor;
    if (this._state !== State.OPEN) {
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
    if (this._state !== State.OPEN || !this.z) {
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
    const z = this.z!; // compressing: compression is on
    const start = () => {
      this.compressing = true;
      z.sendingCb = cb;
      const gen = ++z.sendGen;
      produce((err, out) => {
        if (gen !== z.sendGen || !this.compressing) return; // aborted (failure or release: abortSends moved sendGen on)
        this.compressing = false;
        z.sendingCb = undefined;
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
    const z = this.z!; // only while compressing
    (z.sendQueue ??= []).push({ run, bytes, cb });
    z.sendQueueBytes += bytes;
  }

  /** Run queued sends in order until one starts a new compression. */
  private drainSends(): void {
    const z = this.z;
    const q = z?.sendQueue;
    if (!z || !q) return;
    let i = 0;
    while (i < q.length && !this.compressing && z.sendQueue === q) {
      const item = q[i++];
      z.sendQueueBytes -= item.bytes;
      item.run();
    }
    // Sends queued meanwhile were appended to the same array; an abort replaced it.
    if (z.sendQueue === q) z.sendQueue = i === q.length ? null : q.slice(i);
  }

  /** Drop queued sends and the compression in flight; their callbacks get `err`. */
  private abortSends(err: Error): void {
    const z = this.z;
    if (!z || (!this.compressing && !z.sendQueue)) return;
    const inflight = this.compressing ? z.sendingCb : undefined;
    this.compressing = false;
    z.sendingCb = undefined;
    z.sendGen++;
    const q = z.sendQueue ?? [];
    z.sendQueue = null;
    z.sendQueueBytes = 0;
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
  private sendClose(code?: number, reason: string | Buffer = '', cb?: (err?: Error | null) => void): void {
    if (this._closeSent) return;
    const payload = encodeClosePayload(code, reason); // may throw: before any state changes
    this._closeSent = true;
    this.sendFrame(Opcode.CLOSE, payload, true, false, cb);
  }

  /** Drop per-connection state (compression contexts, fragments, queued sends). */
  private release(): void {
    this.dropInput();
    this.abortSends(new Error('WebSocket is not open'));
    this.z?.compressor.release();
    this.z = null;
  }
}

/** What only a permessage-deflate connection keeps (created by setCompressor). */
class Compression {
  // Inflation is asynchronous: frames that arrive meanwhile wait here, in order.
  backlog: { b0: number; payload: Buffer }[] | null = null;
  backlogBytes = 0;
  /** A violation the parser found behind the backlog: the connection fails once the backlog is delivered. */
  failAfter: ProtocolError | null = null;
  // Sending: while a compressed message is being deflated, later frames (data, control, close)
  // wait here so that nothing overtakes it. `sendGen` identifies the compression in flight.
  sendGen = 0;
  sendingCb: ((err?: Error | null) => void) | undefined = undefined;
  sendQueue: { run: () => void; bytes: number; cb?: (err?: Error | null) => void }[] | null = null;
  sendQueueBytes = 0;

  constructor(readonly compressor: MessageCompressor) {}

  dropBacklog(): void {
    this.backlog = null;
    this.backlogBytes = 0;
  }
}

/** The application's generateMask fills this (synchronously) for every connection. */
const MASK_BUF = Buffer.alloc(4);

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
/**
 * What holding protocols keep (holdFrames): their frames as [b0, payload, b0, payload, …], and a
 * violation read after them. A map, not a field per connection, for a rare state.
 */
const HELD = new WeakMap<Protocol, { frames: (number | Buffer)[]; fail: ProtocolError | null }>();
