// Sans-I/O streaming frame parser (RFC 6455 §5). Bytes in, complete frames out; never touches a
// socket. The codec (wasm or TS) scans headers and unmasks; the rule checks of §5.2–§5.5 live here,
// once, for both backends.
//
//   push(chunk) ──▶ [PAYLOAD tail of a frame begun earlier] ──▶ codec.scan: every whole frame ──▶ Frame[]
//                   [HEADER_PARTIAL: ≤ 14 bytes kept]           └─ last frame incomplete: keep its state
import { BufferView } from '../internals.js';
import { DEFAULT_MAX_PAYLOAD, MAX_CONTROL_PAYLOAD, MAX_HEADER, Opcode } from './constants.js';
import { fail, ProtocolError } from './errors.js';
import { Accumulator } from './accumulator.js';
import { copyIncoming, PIN_MAX } from './inpool.js';
import { Utf8Validator } from './utf8.js';
import { isUtf8, Buffer } from 'node:buffer';
import { resolveCodec, type Codec, type CodecBackend, type ScanResult } from '../codec/index.js';
import { scanFrames } from '../codec/ts.js';
import {
  MAX_SCAN, ROW_BITS, ROW_KEY, ROW_LENGTH, ROW_OFFSET, ROW_WORDS, SCAN_ERR_LENGTH_MSB, SCAN_ERR_TOO_BIG, SCAN_OK,
  SCAN_PARTIAL_HEADER, SCAN_PARTIAL_PAYLOAD,
} from '../codec/layout.js';

/** One complete frame with its payload unmasked. */
export interface Frame {
  fin: boolean;
  rsv1: boolean;
  rsv2: boolean;
  rsv3: boolean;
  opcode: number;
  payload: Buffer;
}

/**
 * Receives frames as the parser completes them, as (first header byte, unmasked payload): the
 * allocation-free path the Protocol uses. Frames of one scan are delivered after the scan, in order.
 */
export interface FrameSink {
  onFrame(b0: number, payload: Buffer): void;
}

export interface ParserOptions {
  /** `server` expects masked frames from clients; `client` expects unmasked frames (§5.1). */
  role: 'server' | 'client';
  /** Largest message (sum of its fragments) in bytes; default 100 MiB. Larger → 1009. */
  maxPayload?: number;
  codec?: Codec | CodecBackend;
  /** RSV1 is allowed on the first frame of a data message (permessage-deflate negotiated). */
  allowRsv1?: boolean;
  /**
   * Validate uncompressed text messages as UTF-8 as their bytes arrive, failing with 1007 at the
   * first byte known to be invalid, even inside a frame still arriving (RFC 6455 §8.1); default false.
   */
  validateUtf8?: boolean;
}

// Parser states.
const HEADER = 0;
const HEADER_PARTIAL = 1;
const PAYLOAD = 2;
const FAILED = 3;
// FrameParser.bits
const SERVER = 0x1;
const RSV1 = 0x2;
const IN_MESSAGE = 0x4;
const UTF8 = 0x8;
const TEXT = 0x10;

const EMPTY = Buffer.alloc(0);
/**
 * Frames completed by a scan, delivered once the scan's table is no longer read (a sink's callback
 * may run user code that scans with the same shared codec). One stack for every parser, not two
 * arrays each (memory per idle connection): a callback may also parse (another connection, in
 * memory), so each delivery takes only what its own consume pushed, above its own base.
 */
const doneB0: number[] = [];
const donePayload: Buffer[] = [];
const NO_SINK: FrameSink = { onFrame() {} };
/**
 * The one-row table fillHeader decodes a completed header into (scratch shared by every parser:
 * it is read before any user code runs). Same shape as the codecs' results, so scanFrames stays
 * monomorphic.
 */
const HEADER_SCAN: ScanResult = {
  count: 0, consumed: 0, status: SCAN_OK, partialLength: 0,
  table: new Uint32Array(ROW_WORDS), data: EMPTY, dataOffset: 0, prefixOffset: 0,
};

/** Streaming parser: `push` any split of the byte stream, get the same frames. */
export class FrameParser {
  readonly maxPayload: number;
  readonly codec: Codec;
  // Five booleans in one number (memory per idle connection: 8 bytes a field): SERVER, RSV1,
  // IN_MESSAGE (inside an unfinished data message, §5.4), UTF8 (validate text), TEXT (the current
  // message is uncompressed text, validated when UTF8).
  private bits = 0;

  get role(): 'server' | 'client' {
    return this.bits & SERVER ? 'server' : 'client';
  }
  /** Set when permessage-deflate is negotiated (may be set after construction). */
  get allowRsv1(): boolean {
    return (this.bits & RSV1) !== 0;
  }
  set allowRsv1(v: boolean) {
    this.bits = v ? this.bits | RSV1 : this.bits & ~RSV1;
  }

  private state = HEADER;
  /** Bytes of an incomplete header (HEADER_PARTIAL). */
  private hdr: Buffer | null = null;
  private hdrLen = 0;
  // The frame whose payload is arriving (PAYLOAD).
  private b0 = 0;
  private key = 0;
  private phase = 0;
  private remaining = 0;
  /** Payload of a frame arriving over several reads (created on first use: idle parsers stay small). */
  private payload: Accumulator | null = null;
  // Fragmentation state (§5.4): the unfinished message's size so far (IN_MESSAGE in bits).
  /** UTF-8 state of a text message that spans frames or reads (null while none does). */
  private utf8: Utf8Validator | null = null;
  private messageBytes = 0;

  constructor(opts: ParserOptions) {
    if (opts.role !== 'server' && opts.role !== 'client') throw new TypeError('role must be "server" or "client"');
    this.maxPayload = opts.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    this.codec = resolveCodec(opts.codec);
    this.bits = (opts.role === 'server' ? SERVER : 0) | (opts.allowRsv1 === true ? RSV1 : 0) | (opts.validateUtf8 === true ? UTF8 : 0);
  }

  /** True once a ProtocolError was thrown: further input is discarded (§7.1.7). */
  get failed(): boolean {
    return this.state === FAILED;
  }

  /** Bytes held for an incomplete frame (header bytes and payload received so far). */
  get bufferedBytes(): number {
    return this.hdrLen + (this.payload ? this.payload.length : 0);
  }

  /**
   * Feed bytes; returns the frames completed by them, in order. The parser may unmask `chunk` in
   * place. Throws ProtocolError (with `frames` completed before the error) and discards all later
   * input once the stream breaks a rule.
   */
  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    this.collect = frames; // our own collector runs no user code: frames go straight in
    try {
      this.parse(chunk, NO_SINK);
    } catch (err) {
      if (err instanceof ProtocolError) err.frames = frames;
      throw err;
    } finally {
      this.collect = null;
    }
    return frames;
  }
  private collect: Frame[] | null = null;

  /**
   * Feed bytes; `sink.onFrame` gets each completed frame, in order. On a rule violation the frames
   * before it are delivered first, then ProtocolError is thrown and later input is discarded.
   *
   * `transient`: `chunk` is the caller's scratch (a shared read buffer), written over once this call
   * returns. The parser then keeps no view of it: payloads handed to the sink, and the part of a
   * frame still arriving, are copied out (one copy, the one the caller would otherwise make of the
   * whole chunk; a frame spread over reads goes straight into its reassembly buffer).
   */
  parse(chunk: Uint8Array, sink: FrameSink, transient = false): void {
    if (this.state === FAILED) return;
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const base = doneB0.length;
    try {
      this.consume(buf, sink, base, transient);
    } catch (err) {
      this.state = FAILED;
      this.hdr = null;
      this.payload = null;
      deliver(sink, base);
      throw err;
    }
  }

  private done(b0: number, payload: Buffer): void {
    const c = this.collect;
    if (c !== null) {
      c.push(makeFrame(b0, payload));
      return;
    }
    doneB0.push(b0);
    donePayload.push(payload);
  }

  private consume(chunk: Buffer, sink: FrameSink, doneBase: number, transient: boolean): void {
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      if (this.state === HEADER_PARTIAL) {
        pos = this.fillHeader(chunk, pos);
        deliver(sink, doneBase);
        continue;
      }
      const sliceEnd = Math.min(end, pos + MAX_SCAN);
      const prefix = this.state === PAYLOAD ? Math.min(this.remaining, sliceEnd - pos) : 0;
      // Transient: everything kept is copied below, before the next scan, so the codec may leave
      // payloads in its scratch memory (wasm: no copy back into the chunk).
      const r = this.codec.scan(chunk, pos, sliceEnd, this.maxPayload, prefix, this.key, this.phase, transient);
      const data = r.data;
      if (prefix > 0) {
        this.addPayload(data.subarray(r.prefixOffset, r.prefixOffset + prefix), transient);
      }
      const table = r.table;
      let ab = data.buffer;
      let base = data.byteOffset + r.dataOffset;
      // Transient: the whole frames' bytes, from the first payload to the end of the last, go into
      // memory of their own (src/protocol/inpool.ts) and their payloads are views of it. A region
      // longer than PIN_MAX (a read of up to 512 KiB) is copied in consecutive pieces of at most
      // PIN_MAX (a frame longer than that alone), so that one small payload the application keeps
      // pins no more than a `ws` payload pins its read. segEnd: the region offset the current
      // piece covers up to (Infinity when nothing is copied).
      let segEnd = transient && r.count > 0 ? -1 : Infinity;
      const lastEnd = r.count > 0 ? table[(r.count - 1) * ROW_WORDS + ROW_OFFSET] + table[(r.count - 1) * ROW_WORDS + ROW_LENGTH] : 0;
      // A whole FIN text/binary frame outside a fragmented message, masked as our role expects,
      // passes every §5 rule at once; anything else takes the full check.
      const maskBit = this.bits & SERVER ? 0x8000 : 0;
      for (let i = 0, row = 0, n = r.count; i < n; i++, row += ROW_WORDS) {
        // Row fields as literals named in comments, as in scanFrames (the per-frame loop).
        const bits = table[row /* ROW_BITS */];
        const len = table[row + 2 /* ROW_LENGTH */];
        const b0 = bits & 0xff;
        const off = table[row + 1 /* ROW_OFFSET */];
        if (off + len > segEnd && len > 0) {
          const to = lastEnd - off <= PIN_MAX ? lastEnd : pieceEnd(table, row, n, off);
          const own = copyIncoming(data, r.dataOffset + off, r.dataOffset + to);
          ab = own.buffer;
          base = own.byteOffset - off;
          segEnd = to;
        }
        const payload = len === 0 ? EMPTY : new BufferView(ab, base + off, len);
        if ((b0 === 0x81 || b0 === 0x82) && (bits & 0x8000) === maskBit && (this.bits & IN_MESSAGE) === 0 && len <= this.maxPayload) {
          this.messageBytes = 0;
          if (b0 === 0x81 && this.bits & UTF8 && !isUtf8(payload)) fail('invalid_utf8', 'text message is not valid UTF-8');
        } else {
          this.checkHeader(b0, bits >>> 8, len);
          if (this.bits & TEXT && (b0 & 0x0f) < Opcode.CLOSE) this.checkText(payload, (b0 & 0x80) !== 0, true);
        }
        this.done(b0, payload);
      }
      switch (r.status) {
        case SCAN_PARTIAL_PAYLOAD: {
          const row = r.count * ROW_WORDS;
          const bits = table[row + ROW_BITS];
          const have = table[row + ROW_LENGTH];
          this.checkHeader(bits & 0xff, bits >>> 8, r.partialLength);
          this.b0 = bits & 0xff;
          this.key = table[row + ROW_KEY];
          this.phase = 0;
          this.remaining = r.partialLength;
          this.state = PAYLOAD;
          if (have > 0) {
            const off = r.dataOffset + table[row + ROW_OFFSET];
            this.addPayload(data.subarray(off, off + have), transient);
          }
          break;
        }
        case SCAN_PARTIAL_HEADER:
          this.hdr ??= Buffer.allocUnsafe(MAX_HEADER);
          this.hdrLen = chunk.copy(this.hdr, 0, pos + r.consumed, sliceEnd);
          this.state = HEADER_PARTIAL;
          break;
        case SCAN_ERR_LENGTH_MSB:
        case SCAN_ERR_TOO_BIG:
          failLength(r.status);
      }
      pos = r.status === SCAN_PARTIAL_HEADER ? sliceEnd : pos + r.consumed;
      deliver(sink, doneBase);
    }
  }

  /**
   * Take payload bytes of the frame in progress; completes it when the last byte arrives. `copy`:
   * `part` is transient, the accumulator copies it even when it is the first piece.
   */
  private addPayload(part: Buffer, copy = false): void {
    this.remaining -= part.length;
    if (this.bits & TEXT && (this.b0 & 0x0f) < Opcode.CLOSE) this.checkText(part, (this.b0 & 0x80) !== 0, this.remaining === 0);
    // Capacity never exceeds the frame's length, which checkHeader already held to maxPayload.
    const acc = (this.payload ??= new Accumulator());
    acc.push(part, acc.length + part.length + this.remaining, copy);
    this.phase = (this.phase + part.length) & 3;
    if (this.remaining > 0) return;
    this.state = HEADER;
    this.done(this.b0, acc.take());
  }

  /**
   * HEADER_PARTIAL: complete the header kept from earlier reads with the chunk's first bytes and
   * decode it with the TS twin's scanFrames, the one header decoder in TypeScript (lengths, the
   * §5.2 MSB rule, 2^53 − 1 and maxPayload, all from the header). Returns the new position: just
   * past the header, so payload bytes copied into `hdr` are taken from the chunk as usual.
   */
  private fillHeader(chunk: Buffer, pos: number): number {
    const hdr = this.hdr!;
    const kept = this.hdrLen;
    const n = kept + chunk.copy(hdr, kept, pos, Math.min(chunk.length, pos + MAX_HEADER - kept));
    const r = HEADER_SCAN;
    scanFrames(hdr, 0, n, 1, this.maxPayload, r);
    if (r.status === SCAN_PARTIAL_HEADER) {
      this.hdrLen = n;
      return pos + n - kept;
    }
    if (r.status === SCAN_ERR_LENGTH_MSB || r.status === SCAN_ERR_TOO_BIG) failLength(r.status);
    const t = r.table;
    const bits = t[ROW_BITS];
    const length = r.status === SCAN_PARTIAL_PAYLOAD ? r.partialLength : t[ROW_LENGTH];
    this.checkHeader(bits & 0xff, bits >>> 8, length);
    this.b0 = bits & 0xff;
    this.key = t[ROW_KEY];
    this.phase = 0;
    this.remaining = length;
    this.hdrLen = 0;
    this.state = PAYLOAD;
    if (length === 0) this.addPayload(EMPTY);
    return pos + t[ROW_OFFSET] - kept;
  }

  /**
   * RFC 6455 §8.1: validate the next bytes of the current text message. `lastOfFrame` marks the end
   * of a frame, and with `fin` the end of the message. A message that is one whole frame is checked
   * in one call; anything longer keeps an incremental validator.
   */
  private checkText(bytes: Buffer, fin: boolean, lastOfFrame: boolean): void {
    if (fin && lastOfFrame && this.utf8 === null) {
      if (!isUtf8(bytes)) fail('invalid_utf8', 'text message is not valid UTF-8');
      return;
    }
    const v = (this.utf8 ??= new Utf8Validator());
    if (!v.push(bytes)) fail('invalid_utf8', 'text message is not valid UTF-8');
    if (fin && lastOfFrame) {
      this.utf8 = null;
      if (!v.end()) fail('invalid_utf8', 'text message is not valid UTF-8');
    }
  }

  /** RFC 6455 §5.2–§5.5 rules for one frame header, checked before its payload is buffered. */
  private checkHeader(b0: number, b1: number, length: number): void {
    const opcode = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    if (b0 & 0x30) fail('reserved_bits', 'RSV2 and RSV3 must be clear');
    const rsv1 = (b0 & 0x40) !== 0;
    if (opcode >= Opcode.CLOSE) {
      // §5.5: control frames
      if (opcode > Opcode.PONG) fail('bad_opcode', `reserved opcode ${opcode}`);
      if (!fin) fail('control_fragmented', 'fragmented control frame');
      if (length > MAX_CONTROL_PAYLOAD) fail('control_too_long', 'control frame payload longer than 125 bytes');
      if (rsv1) fail('reserved_bits', 'RSV1 set on a control frame');
    } else if (opcode === Opcode.CONTINUATION) {
      // §5.4: fragmentation
      if ((this.bits & IN_MESSAGE) === 0) fail('unexpected_continuation', 'continuation frame without a message to continue');
      if (rsv1) fail('reserved_bits', 'RSV1 set on a continuation frame');
      this.addMessageBytes(length, fin);
    } else if (opcode <= Opcode.BINARY) {
      if (this.bits & IN_MESSAGE) fail('unfinished_message', 'new data frame before the fragmented message ended');
      if (rsv1 && (this.bits & RSV1) === 0) fail('reserved_bits', 'RSV1 set without a negotiated extension');
      this.messageBytes = 0;
      // Compressed text is validated by the protocol once inflated.
      this.bits = this.bits & UTF8 && opcode === Opcode.TEXT && !rsv1 ? this.bits | TEXT : this.bits & ~TEXT;
      this.utf8 = null;
      this.addMessageBytes(length, fin);
    } else {
      fail('bad_opcode', `reserved opcode ${opcode}`);
    }
    // §5.1: a server must close on an unmasked frame; a client on a masked one.
    const masked = (b1 & 0x80) !== 0;
    const server = (this.bits & SERVER) !== 0;
    if (server && !masked) fail('unmasked_client_frame', 'client frame is not masked');
    if (!server && masked) fail('masked_server_frame', 'server frame is masked');
  }

  private addMessageBytes(length: number, fin: boolean): void {
    this.messageBytes += length;
    if (this.messageBytes > this.maxPayload) fail('too_big', 'message exceeds maxPayload');
    this.bits = fin ? this.bits & ~IN_MESSAGE : this.bits | IN_MESSAGE;
  }
}

/** A length the header refused (SCAN_ERR_*, from a scan or readPayloadLength): 1002 (§5.2 MSB) or 1009 (over 2^53 − 1 or maxPayload). */
function failLength(status: number): never {
  if (status === SCAN_ERR_LENGTH_MSB) fail('length_msb', 'payload length with the most significant bit set');
  fail('too_big', 'frame payload exceeds maxPayload');
}

/**
 * End of the piece of a transient region that starts at the payload of the frame in `row`: it takes
 * the following frames while the piece stays within PIN_MAX (at least that frame).
 */
function pieceEnd(table: Uint32Array, row: number, n: number, from: number): number {
  let to = from + table[row + ROW_LENGTH];
  for (let j = row + ROW_WORDS, end = n * ROW_WORDS; j < end; j += ROW_WORDS) {
    const e = table[j + ROW_OFFSET] + table[j + ROW_LENGTH];
    if (e - from > PIN_MAX) break;
    to = e;
  }
  return to;
}

/** Hand the frames pushed above `base` to the sink, and drop them from the stack (also when a callback throws). */
function deliver(sink: FrameSink, base: number): void {
  const n = doneB0.length;
  if (n === base) return;
  try {
    for (let i = base; i < n; i++) sink.onFrame(doneB0[i], donePayload[i]);
  } finally {
    doneB0.length = base;
    donePayload.length = base;
  }
}

/** The Frame object for a first header byte and payload. */
export function makeFrame(b0: number, payload: Buffer): Frame {
  return {
    fin: (b0 & 0x80) !== 0,
    rsv1: (b0 & 0x40) !== 0,
    rsv2: (b0 & 0x20) !== 0,
    rsv3: (b0 & 0x10) !== 0,
    opcode: b0 & 0x0f,
    payload,
  };
}
