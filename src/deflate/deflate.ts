// permessage-deflate (RFC 7692) on Node's zlib: the MessageCompressor the Protocol uses once the
// extension is negotiated (negotiation itself lives in extensions.ts).
//
//   send:    payload ─▶ DeflateRaw.write + flush(Z_SYNC_FLUSH) ─▶ strip 00 00 ff ff ─▶ RSV1 frame
//   receive: payload ─▶ InflateRaw.write(payload + 00 00 ff ff) + flush ─▶ message
//                        └─ inflated bytes counted per 'data' chunk: > maxPayload ⇒ 1009 at once
//
// Every zlib job of the process goes through one Limiter per concurrency value (as ws), so many
// connections cannot queue unbounded work on the libuv thread pool. Per connection, the Protocol
// runs at most one compression and one decompression at a time (it queues the rest in order).
import * as zlib from 'node:zlib';
import { ProtocolError } from '../protocol/errors.js';
import { INTERNALS_ALLOWED, registerZlibSyncProbe } from '../internals.js';
import type { MessageCompressor } from '../protocol/protocol.js';
import {
  acceptDeflateResponseClient, buildDeflateOffer, negotiateDeflateServer, zlibWindowBits,
  type DeflateParams, type PerMessageDeflateOptions,
} from '../handshake/extensions.js';
import { Buffer } from 'node:buffer';

/** RFC 7692 §7.2.1: the tail every Z_SYNC_FLUSH leaves, removed on send and restored on receive. */
const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const EMPTY_BLOCK = Buffer.from([0x00]);
const EMPTY = Buffer.alloc(0);
/** Messages shorter than this are sent uncompressed (ws's default). */
export const DEFAULT_THRESHOLD = 1024;
/** Concurrent zlib jobs per process (ws's default). */
export const DEFAULT_CONCURRENCY = 10;
/** zlib's default memLevel: 2^(memLevel+9) bytes of deflate hash state. */
const DEFAULT_MEM_LEVEL = 8;
/**
 * Small messages are (de)compressed synchronously on the main thread: a thread-pool round trip
 * costs far more than deflating a few KiB. Compressed input ≤ 4 KiB inflates to at most ~4 MiB
 * (deflate's ratio is bounded near 1032:1), so the event loop is never held for long; larger
 * messages go to the thread pool, counted and limited as before.
 */
const SYNC_INFLATE_MAX = 4 * 1024;
const SYNC_DEFLATE_MAX = 32 * 1024;

/**
 * The zlib stream internals that zlib's own *Sync functions drive (lib/zlib.js processChunkSync):
 * the native handle's writeSync, its [availOut, availIn] state, and the stream's output buffer.
 * processChunkSync itself closes the stream when done, which would lose the LZ77 window that
 * context takeover keeps, so syncWrite below runs the same loop and leaves the stream open.
 */
interface ZlibInternals {
  _handle: { writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void } | null;
  _writeState: Uint32Array;
  _outBuffer: Buffer;
  _outOffset: number;
  _chunkSize: number;
  destroyed: boolean;
}

function hasSyncInternals(z: unknown): boolean {
  const s = z as Partial<ZlibInternals>;
  return typeof s._handle?.writeSync === 'function' && s._writeState instanceof Uint32Array &&
    Buffer.isBuffer(s._outBuffer) && typeof s._outOffset === 'number' && typeof s._chunkSize === 'number';
}

/** The last syncWrite's stream ended (its input held a final block). */
let syncEnded = false;

/**
 * Detected once: the internals exist AND a round trip through syncWrite matches the public zlib
 * API byte for byte (a runtime that emulates the internals differently falls back, not breaks).
 */
const HAS_SYNC = INTERNALS_ALLOWED && (() => {
  let def: zlib.DeflateRaw | null = null;
  let inf: zlib.InflateRaw | null = null;
  try {
    def = zlib.createDeflateRaw();
    inf = zlib.createInflateRaw();
    if (!hasSyncInternals(def) || !hasSyncInternals(inf)) return false;
    const text = Buffer.from('wasmws probe: permessage-deflate permessage-deflate permessage-deflate');
    for (let round = 0; round < 2; round++) { // the second round exercises the kept window
      const packed = syncWrite(def, text, Infinity);
      if (packed === null || !packed.subarray(packed.length - 4).equals(TRAILER)) return false;
      // The first message stands alone: the public one-shot API must read it the same.
      if (round === 0 && !zlib.inflateRawSync(packed, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).equals(text)) return false;
      const ours = syncWrite(inf, packed, 1 << 20);
      if (ours === null || !ours.equals(text)) return false;
    }
    return true;
  } catch {
    return false;
  } finally {
    def?.close();
    inf?.close();
  }
})();
registerZlibSyncProbe(() => HAS_SYNC);

class TooLarge extends Error {}

/**
 * Feed `input` with Z_SYNC_FLUSH and return all output, synchronously, keeping the stream (and its
 * window) for the next message. Throws TooLarge past `maxOut` bytes; returns null if zlib failed
 * (the stream destroys itself and emits 'error' on the next tick).
 */
function syncWrite(stream: zlib.Inflate | zlib.Deflate | zlib.InflateRaw | zlib.DeflateRaw, input: Buffer, maxOut: number): Buffer | null {
  const z = stream as unknown as ZlibInternals;
  const handle = z._handle!;
  const state = z._writeState;
  const chunkSize = z._chunkSize;
  let out = z._outBuffer;
  let outOff = z._outOffset;
  let availOut = chunkSize - outOff;
  let inOff = 0;
  let availIn = input.length;
  let parts: Buffer[] | null = null;
  let first: Buffer | null = null;
  let total = 0;
  for (;;) {
    handle.writeSync(zlib.constants.Z_SYNC_FLUSH, input, inOff, availIn, out, outOff, availOut);
    if (z.destroyed) return null;
    const outLeft = state[0];
    const inLeft = state[1];
    const have = availOut - outLeft;
    if (have > 0) {
      const piece = out.subarray(outOff, outOff + have);
      outOff += have;
      total += have;
      if (total > maxOut) throw new TooLarge();
      if (first === null) first = piece;
      else (parts ??= [first]).push(piece);
    }
    if (outLeft === 0 || outOff >= chunkSize) {
      // Output buffer full: the bytes handed out stay with their slices, a fresh buffer continues.
      out = Buffer.allocUnsafe(chunkSize);
      outOff = 0;
      availOut = chunkSize;
    } else {
      availOut = outLeft;
    }
    if (outLeft !== 0) {
      // Room for output left and input not taken: the DEFLATE stream ended (a block with BFINAL
      // set, RFC 7692 §7.2.3.4); zlib reads nothing past it.
      syncEnded = inLeft > 0;
      break;
    }
    inOff += availIn - inLeft;
    availIn = inLeft;
  }
  z._outBuffer = out;
  z._outOffset = outOff;
  if (first === null) return EMPTY;
  return parts ? Buffer.concat(parts, total) : first;
}

type Done = () => void;

/** A FIFO of jobs of which at most `concurrency` run at once. */
export class Limiter {
  readonly concurrency: number;
  private running = 0;
  private queue: ((done: Done) => void)[] = [];
  private head = 0;
  private draining = false;

  constructor(concurrency: number) {
    this.concurrency = concurrency > 0 && Number.isFinite(concurrency) ? Math.floor(concurrency) : Infinity;
  }

  /** Jobs started and not yet done. */
  get active(): number {
    return this.running;
  }

  /** Jobs waiting for a slot. */
  get pending(): number {
    return this.queue.length - this.head;
  }

  /** Run `job` when a slot is free; it must call `done` exactly once (later calls are ignored). */
  add(job: (done: Done) => void): void {
    this.queue.push(job);
    this.drain();
  }

  private drain(): void {
    if (this.draining) return; // a job finished synchronously inside the loop below
    this.draining = true;
    while (this.running < this.concurrency && this.head < this.queue.length) {
      const job = this.queue[this.head]!;
      this.queue[this.head++] = undefined as never;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      this.running++;
      let called = false;
      job(() => {
        if (called) return;
        called = true;
        this.running--;
        this.drain();
      });
    }
    this.draining = false;
  }
}

const limiters = new Map<number, Limiter>();

/** The process-wide limiter for a concurrency value. */
export function sharedLimiter(concurrency = DEFAULT_CONCURRENCY): Limiter {
  let l = limiters.get(concurrency);
  if (!l) limiters.set(concurrency, (l = new Limiter(concurrency)));
  return l;
}

type Cb = (err: Error | null, out?: Buffer) => void;

/** One job in flight on a zlib stream: its output chunks, and a once-only finish. */
interface Job {
  chunks: Buffer[];
  bytes: number;
  cb: Cb | null;
  done: Done;
}

/** The permessage-deflate MessageCompressor of one connection. */
export class PerMessageDeflate implements MessageCompressor {
  readonly params: DeflateParams;
  readonly role: 'server' | 'client';
  readonly threshold: number;
  readonly maxPayload: number;
  private readonly opts: PerMessageDeflateOptions;
  private readonly limiter: Limiter;
  // Our direction: server_* params on the server, client_* on the client (RFC 7692 §7.1).
  private readonly deflateBits: number;
  private readonly deflateReset: boolean;
  // The peer's direction.
  private readonly inflateBits: number;
  private readonly inflateReset: boolean;
  // Created lazily on first use, so an idle connection holds no zlib state.
  private deflater: zlib.DeflateRaw | null = null;
  private inflater: zlib.InflateRaw | null = null;
  private deflateJob: Job | null = null;
  private inflateJob: Job | null = null;
  private released = false;

  constructor(params: DeflateParams, role: 'server' | 'client', opts: PerMessageDeflateOptions = {}, maxPayload = Infinity) {
    this.params = params;
    this.role = role;
    this.opts = opts;
    this.threshold = opts.threshold ?? DEFAULT_THRESHOLD;
    this.maxPayload = maxPayload;
    this.limiter = sharedLimiter(opts.concurrencyLimit ?? DEFAULT_CONCURRENCY);
    const server = role === 'server';
    this.deflateBits = server ? params.serverMaxWindowBits : params.clientMaxWindowBits;
    this.deflateReset = server ? params.serverNoContextTakeover : params.clientNoContextTakeover;
    this.inflateBits = server ? params.clientMaxWindowBits : params.serverMaxWindowBits;
    this.inflateReset = server ? params.clientNoContextTakeover : params.serverNoContextTakeover;
  }

  /**
   * Frames of this connection can be shared with others of the same key: our direction keeps no
   * context between messages, so a message compressed once is valid for every such peer. null when
   * context takeover is on (our window would no longer match the peer's).
   */
  get shareKey(): string | null {
    return this.deflateReset ? `${this.role}:${this.deflateBits}` : null;
  }

  /** Inflate one message's payload (RFC 7692 §7.2.2); 1009 as soon as it exceeds maxPayload, 1007 if corrupt. */
  decompress(data: Buffer, cb: Cb): void {
    if (this.released) return;
    // A zero-length payload is no deflate data at all; take it as an empty message (as ws does)
    // without feeding the inflater a half block.
    if (data.length === 0) return process.nextTick(() => !this.released && cb(null, EMPTY));
    this.limiter.add((done) => {
      if (this.released) return done();
      const inf = (this.inflater ??= this.createInflater());
      const job: Job = { chunks: [], bytes: 0, cb, done };
      this.inflateJob = job;
      // One write (one thread-pool trip): the streams are created with flush = Z_SYNC_FLUSH.
      inf.write(Buffer.concat([data, TRAILER], data.length + 4), () => {
        if (this.inflateJob !== job) return; // failed or released meanwhile
        this.inflateJob = null;
        const out = job.chunks.length === 1 ? job.chunks[0]! : Buffer.concat(job.chunks, job.bytes);
        this.afterMessage(inf, inf.readableEnded);
        finish(job, null, out);
      });
    });
  }

  /**
   * Inflate a small message on the spot; undefined when it must go through decompress() (large, a
   * job in flight, no sync zlib). Throws ProtocolError: 1009 past maxPayload, 1007 if corrupt.
   */
  decompressSync(data: Buffer): Buffer | undefined {
    if (!HAS_SYNC || this.released || this.inflateJob || data.length > SYNC_INFLATE_MAX) return undefined;
    if (data.length === 0) return EMPTY;
    const inf = (this.inflater ??= this.createInflater());
    let out: Buffer | null;
    try {
      out = syncWrite(inf, Buffer.concat([data, TRAILER], data.length + 4), this.maxPayload);
    } catch (err) {
      if (!(err instanceof TooLarge)) throw err;
      this.dropInflater(inf);
      throw new ProtocolError('too_big', `inflated message exceeds maxPayload (${this.maxPayload} bytes)`);
    }
    if (out === null) {
      this.dropInflater(inf);
      throw new ProtocolError('bad_deflate', 'invalid compressed data');
    }
    this.afterMessage(inf, syncEnded);
    return out;
  }

  /**
   * A message was inflated. §7.2.2: with the peer's no_context_takeover the next one starts from an
   * empty window. A message that ended its DEFLATE stream (a block with BFINAL set, which §7.2.3.4
   * lets a sender flush with) leaves zlib deaf to further input: the next message gets a fresh
   * inflater, as in ws (a sender that ends its stream starts the next from an empty window).
   */
  private afterMessage(inf: zlib.InflateRaw, streamEnded: boolean): void {
    if (streamEnded) this.dropInflater(inf);
    else if (this.inflateReset) inf.reset();
  }

  /** Deflate a small message on the spot; undefined when it must go through compress(). */
  compressSync(data: Buffer): Buffer | undefined {
    if (!HAS_SYNC || this.released || this.deflateJob || data.length > SYNC_DEFLATE_MAX) return undefined;
    if (data.length === 0) return EMPTY_BLOCK;
    const def = (this.deflater ??= this.createDeflater());
    const out = syncWrite(def, data, Infinity);
    if (out === null) return undefined; // zlib fault: the async path reports it (1011)
    if (this.deflateReset) def.reset();
    return out.length >= 4 ? out.subarray(0, out.length - 4) : out;
  }

  /** Deflate one message's payload (RFC 7692 §7.2.1): Z_SYNC_FLUSH, then drop the 00 00 ff ff tail. */
  compress(data: Buffer, cb: Cb): void {
    if (this.released) return;
    // §7.2.3.6: an empty message is one empty stored block, 0x00 once the tail is removed. (zlib
    // would emit nothing for a second sync flush in a row.) It leaves the window unchanged.
    if (data.length === 0) return process.nextTick(() => !this.released && cb(null, EMPTY_BLOCK));
    this.limiter.add((done) => {
      if (this.released) return done();
      const def = (this.deflater ??= this.createDeflater());
      const job: Job = { chunks: [], bytes: 0, cb, done };
      this.deflateJob = job;
      def.write(data, () => {
        if (this.deflateJob !== job) return;
        this.deflateJob = null;
        let out = job.chunks.length === 1 ? job.chunks[0]! : Buffer.concat(job.chunks, job.bytes);
        if (out.length >= 4) out = out.subarray(0, out.length - 4);
        // §7.1.1: with our no_context_takeover every message starts from an empty window.
        if (this.deflateReset) def.reset();
        finish(job, null, out);
      });
    });
  }

  /**
   * Compress without touching this connection's stream (one-shot zlib): the payload of a frame to
   * share among connections with the same shareKey. Only valid when shareKey is not null.
   */
  compressShared(data: Buffer, cb: Cb): void {
    const limiter = this.limiter;
    const opts = { ...this.deflateOptions(), flush: zlib.constants.Z_NO_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH };
    limiter.add((done) => {
      zlib.deflateRaw(data, opts, (err, out) => {
        done();
        if (err) return cb(err);
        cb(null, out.length >= 4 ? out.subarray(0, out.length - 4) : out);
      });
    });
  }

  /** Free both zlib contexts (on close); callbacks still pending are dropped, their limiter slots freed. */
  release(): void {
    if (this.released) return;
    this.released = true;
    const d = this.deflateJob;
    const i = this.inflateJob;
    this.deflateJob = this.inflateJob = null;
    if (d) finish(d, null, undefined, true);
    if (i) finish(i, null, undefined, true);
    this.deflater?.close();
    this.inflater?.close();
    this.deflater = this.inflater = null;
  }

  private deflateOptions(): zlib.ZlibOptions {
    return {
      memLevel: DEFAULT_MEM_LEVEL,
      ...(this.opts.zlibDeflateOptions as zlib.ZlibOptions | undefined),
      windowBits: zlibWindowBits(this.deflateBits),
      // Every write ends with a sync flush (§7.2.1), so a message costs one thread-pool trip.
      flush: zlib.constants.Z_SYNC_FLUSH,
    };
  }

  private createDeflater(): zlib.DeflateRaw {
    const def = zlib.createDeflateRaw(this.deflateOptions());
    def.on('data', (chunk: Buffer) => {
      const job = this.deflateJob;
      if (!job) return;
      job.chunks.push(chunk);
      job.bytes += chunk.length;
    });
    def.on('error', (err: Error) => {
      // Deflate does not fail on input; this is an internal zlib fault (1011).
      const job = this.deflateJob;
      this.deflateJob = null;
      if (this.deflater === def) this.deflater = null;
      def.close();
      if (job) finish(job, err);
    });
    return def;
  }

  private createInflater(): zlib.InflateRaw {
    const inf = zlib.createInflateRaw({
      ...(this.opts.zlibInflateOptions as zlib.ZlibOptions | undefined),
      windowBits: zlibWindowBits(this.inflateBits),
      flush: zlib.constants.Z_SYNC_FLUSH,
    });
    inf.on('data', (chunk: Buffer) => {
      const job = this.inflateJob;
      if (!job) return;
      job.bytes += chunk.length;
      if (job.bytes > this.maxPayload) {
        // Decompression bomb: stop now, not after inflating it all (CVE-2016-10544 checked only the
        // compressed size). Closing the stream frees its state; the partial output is dropped.
        job.chunks = [];
        this.dropInflater(inf);
        finish(job, new ProtocolError('too_big', `inflated message exceeds maxPayload (${this.maxPayload} bytes)`));
        return;
      }
      job.chunks.push(chunk);
    });
    inf.on('error', (err: Error) => {
      const job = this.inflateJob;
      this.dropInflater(inf);
      if (job) finish(job, new ProtocolError('bad_deflate', `invalid compressed data: ${err.message}`));
    });
    return inf;
  }

  private dropInflater(inf: zlib.InflateRaw): void {
    this.inflateJob = null;
    if (this.inflater === inf) this.inflater = null;
    inf.removeAllListeners('data');
    inf.on('error', noop); // a late error from the closed stream must not crash the process
    inf.close();
  }
}

function noop(): void {}

/** Free the job's limiter slot and call its callback once (unless `silent`). */
function finish(job: Job, err: Error | null, out?: Buffer, silent = false): void {
  const cb = job.cb;
  job.cb = null;
  job.done();
  if (cb && !silent) cb(err, out);
}

function deflateOpts(o: true | PerMessageDeflateOptions | undefined): PerMessageDeflateOptions {
  return o === true || o === undefined ? {} : o;
}

/**
 * Server side: accept the first acceptable offer of a Sec-WebSocket-Extensions header. null means
 * continue without compression; throws SyntaxError on a malformed header (answer 400).
 */
export function negotiateServer(
  header: string | undefined,
  options: true | PerMessageDeflateOptions,
  maxPayload: number,
): { response: string; params: DeflateParams; create: () => PerMessageDeflate } | null {
  const opts = deflateOpts(options);
  const r = negotiateDeflateServer(header, opts);
  if (!r) return null;
  return { response: r.response, params: r.params, create: () => new PerMessageDeflate(r.params, 'server', opts, maxPayload) };
}

/** Client side: the offer to send (RFC 7692 §7.1). */
export function clientOffer(options: true | PerMessageDeflateOptions | undefined): string {
  return buildDeflateOffer(deflateOpts(options));
}

/**
 * Client side: the compressor for the server's Sec-WebSocket-Extensions answer (`header`, undefined
 * when absent) to our offer (`offered`, undefined when we made none); throws if unacceptable.
 * RFC 7692 §7.1: no header means the server declined, and we go on without compression.
 */
export function acceptClient(
  header: string | undefined, offered: string | undefined, options: true | PerMessageDeflateOptions | undefined, maxPayload: number,
): PerMessageDeflate | null {
  if (header === undefined) return null;
  if (offered === undefined) throw new Error('Server sent a Sec-WebSocket-Extensions header but no extension was requested');
  const opts = deflateOpts(options);
  return new PerMessageDeflate(acceptDeflateResponseClient(header, opts), 'client', opts, maxPayload);
}
