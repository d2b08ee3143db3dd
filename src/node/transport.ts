// The transport boundary: what moves a connection's bytes. Any Duplex works: a TCP or TLS socket
// (net.Socket / tls.TLSSocket, with Nagle off), an HTTP/2 stream (RFC 8441), an in-memory pair.
// The Protocol never sees it; the Connection drives it (and keeps the timers: src/node/timer-wheel.ts).
//
//   Protocol.out ──schedule()──▶ one flush per tick ──▶ socket.write (one buffer, or one corked writev)
//   socket 'data' / 'end' / 'close' / 'drain' ──▶ TransportEvents (the Connection)
import type { Duplex } from 'node:stream';
import { Socket as NetSocket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { releaseSlabs, type OutQueue, type Slab } from '../protocol/outqueue.js';
import { copyIncoming, PIN_MAX } from '../protocol/inpool.js';
import { getSystemErrorName } from 'node:util';
import { INTERNALS_ALLOWED, BufferView, readBufferPlain, sharedReadBuffer, streamWrap } from '../internals.js';
import { wasmReadBuffer } from '../codec/wasm.js';
import { READ_SIZE } from '../codec/layout.js';
import { Buffer } from 'node:buffer';

type Cb = (err?: Error | null) => void;

/** What the transport reports to its connection. */
export interface TransportEvents {
  /**
   * Bytes read. `transient`: `chunk` is a view of the shared read buffer, written over once this
   * call returns (keep nothing that views it: the parser copies what it keeps).
   */
  onData(chunk: Buffer, transient: boolean): void;
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
  /** The connection publishes faster than its server's broker carries messages away (src/node/connection.ts, holdReceiving). */
  BROKER: 8,
  /**
   * Our automatic replies (pongs) wait for a peer that does not read them: it stops being read
   * until they are written (src/node/connection.ts, onAutoReply).
   */
  REPLIES: 16,
} as const;
/**
 * The pauses that are our side's (or the application's) choice: while one holds, the peer's
 * silence proves nothing (heartbeat, idle timeout). REPLIES is not one of them: it holds only while
 * the peer reads nothing of what we send it.
 */
export const ANY_PAUSE = Pause.APP | Pause.PROTOCOL | Pause.ITERATOR | Pause.BROKER;

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

// ── fair reading: a bounded amount of socket data per event-loop turn ─────────────────────────
//
// libuv (≥ 1.45, so every Node ≥ 20) accepts ONE connection per event-loop turn ("unix: don't
// accept() connections in a loop", libuv#3696), however many wait in the listen queue. A turn
// that reads and answers every busy socket (each with a full window of messages) lasts tens of
// milliseconds under load, and so new connections are accepted at tens per second.
//
// So a turn processes about one budget (below) of socket data (while connections arrive; in steady
// turns only connections whose peer is behind, or once a turn is long: mayHold). Data is always processed as it is read
// (while it is in the CPU's cache); what is bounded is which sockets are read. When a turn's data
// has taken longer than the budget, or while other connections wait their turn, a connection
// whose chunk was just processed joins a queue (is held): a chunk it reads meanwhile is kept, and
// at a second one its socket stops reading (its bytes stay in the kernel); the check phase of each
// turn (setImmediate) lets the oldest ones go on, as many as keep a turn about one budget long
// (releasePerTurn, adapted to measured turns; at least one). Under load every busy connection thus
// gets one chunk per round, in order.
//
// Stopping a socket's reads needs Node's stream handle (socket._handle.readStop(), the `reading`
// flag that net.Socket keeps, and a _read that does not start reading again behind our back): a
// private API, used behind INTERNALS_ALLOWED and a feature check (canHold); where it is not there
// (HTTP/2 streams, any other Duplex, other runtimes, WASMWS_INTERNALS=off) nothing is held back.

/**
 * Time (ms) a turn may spend on socket data before connections are held back: ACCEPT_BUDGET_MS
 * while connections are arriving (an upgrade in the last ACCEPTING_MS: a reconnect storm, where
 * each turn accepts one), STEADY_BUDGET_MS otherwise. Short turns cost throughput (each turn has
 * its own epoll round and holding round-robin; 1 ms turns all the time cost 11–13% at 1 KiB × 64,
 * side by side with holding off), so they are paid only while they buy accepts; the steady budget
 * still bounds how long busy connections can keep the first new one waiting. In a storm an upgrade
 * completes every turn or two, so 100 ms without one means it is over (with a whole second of
 * short turns after the last one, an echo measured right after its connections opened was
 * 0.92–0.95× of this, on a noisy VM; bench/accept.mjs is unchanged).
 */
const ACCEPT_BUDGET_MS = 1;
const STEADY_BUDGET_MS = 8;
const ACCEPTING_MS = 100;
/** However well its peers keep up, a steady turn holds busy connections back once it has lasted this long. */
const STEADY_TURN_MAX_MS = 50;
/**
 * May `t` be held back at `now`? Always while connections arrive. In steady turns (no upgrade for
 * ACCEPTING_MS) only while its peer is behind (the last flush left bytes in its socket:
 * queuedBound), or once the turn has lasted STEADY_TURN_MAX_MS: otherwise its reads are processed
 * as they come and it reads on. Holding costs per read (the kept copy, the wasm scan's copy in and
 * back when it is processed later, the queue, a readStop/readStart), which pays only where reading
 * on would pile up answers the peer is not taking (at 64 KiB × 64, never holding in steady turns was
 * 0.67–0.95× of this in five runs of bench/ab.mjs). The cap bounds a steady turn by it plus one
 * read per busy connection: libuv reads a socket up to 32 times a turn while the reads fill the
 * buffer, and uploaders that keep up would otherwise stretch turns without limit
 * (bench/upload-lag.mjs). README, "Where we lose", has the figures.
 */
function mayHold(t: Transport, now: number): boolean {
  return budgetMs === ACCEPT_BUDGET_MS || t.queuedBound > 0 || now - windowStart > STEADY_TURN_MAX_MS;
}
let budgetMs = STEADY_BUDGET_MS;
let lastIncoming = -Infinity;

/**
 * An upgrade request arrived: turns stay short for a while, so that the connections queued behind
 * it are accepted at one per turn without waiting behind busy sockets. (Upgrades, not every TCP
 * accept: plain HTTP traffic on a shared server would otherwise keep turns short for good.)
 */
export function noteIncoming(): void {
  lastIncoming = performance.now();
  budgetMs = ACCEPT_BUDGET_MS;
}

/** Back to the steady budget once no upgrade came for ACCEPTING_MS (checked as a window opens and at its end). */
function relaxBudget(now: number): void {
  if (budgetMs !== STEADY_BUDGET_MS && now - lastIncoming > ACCEPTING_MS) budgetMs = STEADY_BUDGET_MS;
}
/** Transports held back (their socket does not read), oldest first; `heldHead` is the live start. */
let held: (Transport | undefined)[] = [];
let heldHead = 0;
/** This turn's window: from its first chunk to its check phase. */
let windowOpen = false;
let windowStart = 0;
/**
 * How many held connections one turn lets read again: adapted to the measured length of turns
 * while connections are held (one more while turns are shorter than the budget, a quarter fewer
 * when one is longer than 1.25 budgets), so that a turn under load lasts about one budget.
 */
let releasePerTurn = 8;
let lastTurnEnd = 0;
let turnScheduled = false;

function scheduleTurnEnd(): void {
  if (turnScheduled) return;
  turnScheduled = true;
  setImmediate(turnEnd);
}

/** Check phase: close this turn's window, measure it, and let the oldest held connections read. */
function turnEnd(): void {
  turnScheduled = false;
  windowOpen = false;
  const t0 = performance.now();
  const turn = t0 - lastTurnEnd;
  lastTurnEnd = t0;
  relaxBudget(t0);
  // Adapt only on consecutive turns under load (a turn of more than 100 ms follows an idle wait).
  if (heldHead < held.length && turn < 100) {
    if (turn > budgetMs * 1.25) releasePerTurn = Math.max(1, Math.floor(releasePerTurn * 0.75));
    else if (turn < budgetMs) releasePerTurn++;
  }
  let n = releasePerTurn;
  try {
    while (n > 0 && heldHead < held.length) {
      const t = held[heldHead]!;
      held[heldHead++] = undefined;
      if (t.release()) n--;
      if (performance.now() - t0 > budgetMs) break;
    }
  } finally {
    // (also when a 'message' listener threw: the rest of the queue keeps its turns)
    if (heldHead === held.length) {
      held = [];
      heldHead = 0;
    } else {
      if (heldHead > 1024 && heldHead * 2 > held.length) {
        held = held.slice(heldHead);
        heldHead = 0;
      }
      scheduleTurnEnd(); // the next turn lets the next ones read
    }
  }
}

const netRead = NetSocket.prototype._read as (this: NetSocket, n: number) => void;
/**
 * net.Socket#_read for a bound socket: Node's Readable calls _read after each chunk (to read
 * more), and net.Socket's would start the handle reading again while the connection is held.
 * While held it does nothing (the Readable then waits, `reading` set, for the next push).
 */
function heldAwareRead(this: BoundSocket, n: number): void {
  const t = this[kTransport];
  if (t?.held || t?.rawStopped) return;
  netRead.call(this as unknown as NetSocket, n);
}

interface StreamHandle {
  reading: boolean;
  readStop(): number;
  readStart(): number;
}

/** A socket whose reads can be held back: a net.Socket (or tls) with Node's stream handle. */
function canHold(socket: Duplex): boolean {
  if (!INTERNALS_ALLOWED || !(socket instanceof NetSocket)) return false;
  const h = (socket as unknown as { _handle?: Partial<StreamHandle> })._handle;
  return !!h && typeof h.readStop === 'function' && typeof h.readStart === 'function' && typeof h.reading === 'boolean' &&
    (socket as unknown as { _read: unknown })._read === netRead;
}

// Module-level listeners with a back-reference: no closures per connection (memory per idle
// connection is a figure of merit for servers holding many).
function onData(this: BoundSocket, chunk: Buffer): void {
  deliver(this[kTransport], chunk, false);
}
/**
 * A chunk the socket read (its 'data' event, or the raw read path below). `transient`: a view of
 * the shared read buffer, processed now or copied to be kept.
 */
function deliver(t: Transport, chunk: Buffer, transient: boolean): void {
  if (t.rawStopped) {
    // Raw and paused: the handle read on (so that a FIN or a reset is still seen, as a paused
    // net.Socket reads up to its highWaterMark); this chunk waits for the resume, and now it stops.
    keep(t, chunk, transient);
    t.stopHandle();
    return;
  }
  if (t.kept !== null) {
    // Behind a kept chunk (a paused stream emits what it buffered when resumed): keep the order,
    // and now the socket stops reading (what a held connection keeps is bounded by one read and
    // its Readable's highWaterMark).
    keep(t, chunk, transient);
    t.hold();
    t.stopReads();
    return;
  }
  if (t.held) {
    // Its turn has not come: the chunk waits. The socket keeps reading until a second one comes
    // (most held connections get no more before their turn: no readStop/readStart round trip).
    keep(t, chunk, transient);
    return;
  }
  if (!t.canHold) {
    t.events.onData(chunk, transient);
    return;
  }
  const t0 = performance.now();
  if (!windowOpen) {
    windowOpen = true;
    windowStart = t0;
    relaxBudget(t0);
    scheduleTurnEnd();
  } else if (t0 - windowStart > budgetMs && mayHold(t, t0)) {
    // Read after this turn's budget was spent: kept (processed when its turn comes), and held.
    keep(t, chunk, transient);
    t.hold();
    return;
  }
  // The answers leave in the flush right after, inside this chunk's share of the turn: marking the
  // flush as scheduled keeps schedule() from queueing a tick of its own for them.
  t.flushScheduled = true;
  try {
    t.events.onData(chunk, transient);
  } finally {
    t.flush(); // also when a 'message' listener threw: nothing may wait for a tick never queued
  }
  // Others wait for their turn, or this turn has had its budget: this one waits now.
  const now = performance.now();
  if ((heldHead < held.length || now - windowStart > budgetMs) && mayHold(t, now)) t.hold();
}
function onEnd(this: BoundSocket): void {
  const t = this[kTransport];
  if (t.deferEof()) return;
  t.processKept(); // what came before the FIN first
  t.events.onEof();
}
function onClose(this: BoundSocket): void {
  const t = this[kTransport];
  t.processKept();
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

// ── raw reads and writes: the TCP handle without the Readable/Writable layers ──────────────
//
// A profile at 1,000 connections spent 1–3% each in Node's stream layers around every read and
// write (onStreamRead, Readable push and 'data', Writable write, the WriteWrap and its after-write
// tick; 1.06–1.10× without them, README). An upgraded plain-TCP net.Socket is therefore read and
// written the way net.Socket does it underneath, through its handle: the handle's onread is ours
// (a read becomes a Buffer view handed to the connection; EOF and errors go to Node's own onread,
// so 'end', 'error' and 'close' are net.Socket's as ever), and writes are handle.writeBuffer /
// writev with a WriteWrap (libuv keeps their order, and orders a shutdown after them).
// A pause stops the handle at its next read; bytes the Readable had buffered before still come as 'data'.
// A private API (src/internals.ts): TLS sockets, other runtimes and
// WASMWS_INTERNALS=off / WASMWS_RAW_IO=off use the socket's events and write().
//
// Reads land in one buffer (handle.useUserBuffer, what net.connect's public `onread` option sets
// up): Node otherwise allocates 64 KiB for every read, shrinks it to what was read and wraps it in
// an ArrayBuffer the GC must later free. Our onread hands the read to the connection as a
// transient chunk: the parser copies out what it keeps (the completed frames' bytes, once; a frame
// still arriving, into its reassembly buffer) and a read that must wait is copied when it is kept
// (deliver), so nothing views the shared buffer once onread returns. 1.30× at 64 KiB × 1,000
// connections, 1.08× at 16 B × 1,000 against copying every read out (README). The buffer lies in
// wasm linear memory where wasm loads (readBufferMemory), so the wasm scan needs no copy in. It
// holds 512 KiB (layout.ts READ_SIZE), as Bun's: a 64 KiB message then comes in one read, not two
// with its reassembly (1.45× at 64 KiB × 1,000 against 64 KiB reads, README), and what is copied
// out of a read is copied in pieces of at most 64 KiB (PIN_MAX), so a payload pins no more.
// Where a handle lacks useUserBuffer, or with WASMWS_READ_BUFFER=off, Node's per-read buffers are
// viewed. Raw writes also say when libuv is done with the slab views they carry
// (rawWrite), so OutQueue reuses its slabs.

interface RawHandle extends StreamHandle {
  onread: (this: RawHandle, ab?: ArrayBuffer) => unknown;
  useUserBuffer?: (buf: Uint8Array) => void;
  writeBuffer(req: RawWriteReq, buf: Buffer): number;
  writev(req: RawWriteReq, chunks: Buffer[], allBuffers: boolean): number;
  writeQueueSize: number;
  [kTransport]?: Transport;
}
/** What a WriteWrap carries: the C++ side calls `oncomplete`; the rest is ours. */
interface RawWriteReq {
  handle: RawHandle;
  oncomplete: (this: RawWriteReq, status: number) => void;
  buffer: unknown;
  transport: Transport;
  done: Cb | undefined;
  /** Slabs of the views it carries (OutQueue), released when it completes. */
  slabs: Slab[] | null;
}

/**
 * Slabs of the views a flush takes from its OutQueue (scratch, empty between flushes: a flush
 * runs no other code between taking and writing).
 */
const takenSlabs: Slab[] = [];

/** Node's onread of stream handles (onStreamRead), taken from the first socket that has it. */
let nodeOnRead: RawHandle['onread'] | null = null;

/** An upgraded plain-TCP net.Socket with the handle net.Socket itself drives. */
function rawHandleOf(socket: Duplex): RawHandle | null {
  if (!streamWrap) return null;
  const s = socket as unknown as { _handle?: Partial<RawHandle>; encrypted?: boolean; connecting?: boolean; _unrefTimer?: unknown };
  const h = s._handle;
  if (!h || s.encrypted || s.connecting || typeof s._unrefTimer !== 'function') return null;
  if (typeof h.writeBuffer !== 'function' || typeof h.writev !== 'function' || typeof h.writeQueueSize !== 'number') return null;
  if (typeof h.onread !== 'function' || (h.constructor as { name?: string } | undefined)?.name !== 'TCP') return null;
  if (nodeOnRead === null) {
    if (h.onread.name !== 'onStreamRead') return null;
    nodeOnRead = h.onread;
  }
  return h.onread === nodeOnRead ? (h as RawHandle) : null;
}

/** The buffer every raw handle of this thread reads into (created with the first; never viewed). */
let readBuffer: Buffer | null = null;

/** Make the handle read into the shared buffer, where it can. */
function shareReadBuffer(h: RawHandle): void {
  if (!sharedReadBuffer || typeof h.useUserBuffer !== 'function') return;
  h.useUserBuffer((readBuffer ??= readBufferMemory()));
}

/**
 * The one read buffer: in wasm linear memory where wasm loads (the wasm scan then parses reads
 * where they land, with no copy in; that memory never grows or moves, src/codec/layout.ts), else
 * memory of its own. WASMWS_READ_BUFFER=plain keeps it out of linear memory.
 */
function readBufferMemory(): Buffer {
  return (readBufferPlain ? null : wasmReadBuffer()) ?? Buffer.allocUnsafeSlow(READ_SIZE);
}

/**
 * Keep a chunk for later, after those kept already. A view of the shared read buffer is copied out
 * (src/protocol/inpool.ts), in pieces of at most PIN_MAX: the payloads parsed from a kept piece are
 * views of it, and a read may be up to READ_SIZE.
 */
function keep(t: Transport, chunk: Buffer, transient: boolean): void {
  const k = (t.kept ??= []);
  if (!transient) {
    k.push(chunk);
    return;
  }
  for (let at = 0; at < chunk.length; at += PIN_MAX) k.push(copyIncoming(chunk, at, Math.min(chunk.length, at + PIN_MAX)));
}

/**
 * The handle's onread. With the shared buffer `ab` is undefined and the bytes are at its start;
 * a value returned would become the handle's next read buffer, so nothing is ever returned.
 */
function rawOnRead(this: RawHandle, ab?: ArrayBuffer): void {
  const st = streamWrap!.streamBaseState;
  const n = st[streamWrap!.kReadBytesOrError];
  if (n > 0) {
    const t = this[kTransport]!;
    if (t.socket.destroyed) return; // as net.Socket: what a destroyed socket reads is dropped
    refreshTimeout(t.socket);
    if (ab === undefined) deliver(t, readBuffer!.subarray(0, n), true);
    else deliver(t, new BufferView(ab, st[streamWrap!.kArrayBufferOffset], n), false);
    return;
  }
  nodeOnRead!.call(this, ab); // EOF, an error: net.Socket's own handling
}

/** socket.setTimeout() counts activity: reads and writes refresh it, as net.Socket's own do. */
function refreshTimeout(socket: Duplex): void {
  const s = socket as unknown as { timeout?: number; _unrefTimer(): void };
  if (s.timeout) s._unrefTimer();
}

function rawWriteDone(this: RawWriteReq, status: number): void {
  const t = this.transport;
  this.buffer = null;
  const slabs = this.slabs;
  if (slabs !== null) {
    this.slabs = null;
    releaseSlabs(slabs); // written, failed or cancelled: libuv reads none of it any more
  }
  t.rawWriteSettled(status, this.done);
}

/** libuv's error name for a status, as net.Socket's errors carry it. */
function rawError(status: number, what: string): Error {
  let name = String(status);
  try {
    name = getSystemErrorName(status);
  } catch {
    // not a libuv error number
  }
  return Object.assign(new Error(`${what} ${name}`), { code: name, errno: status, syscall: what });
}

// Transport.bits
const H2 = 1, FLUSH_SCHEDULED = 2, SOCKET_PAUSED = 4, READING = 8, CAN_HOLD = 16, HELD = 32, RAW = 64, SOCKET_WRITES_DONE = 128, EOF_PENDING = 256;

/** A Duplex carrying one WebSocket connection. */
export class Transport {
  readonly socket: Duplex;
  /** @internal */ readonly events: TransportEvents;
  private readonly out: OutQueue;
  private cbs: Cb[] | null = null;
  /** The socket's writableLength as of the last flush. */
  private queuedAtFlush = 0;
  private pauses = 0;
  /** The booleans below, one word (memory per idle connection: 8 bytes a field). */
  private bits = 0;
  /** The Duplex is an HTTP/2 stream. */
  get isH2(): boolean { return (this.bits & H2) !== 0; }
  /** @internal A flush is due (a tick is queued, or the fair-reading path flushes right after a chunk). */
  get flushScheduled(): boolean { return (this.bits & FLUSH_SCHEDULED) !== 0; }
  set flushScheduled(v: boolean) { this.bits = v ? this.bits | FLUSH_SCHEDULED : this.bits & ~FLUSH_SCHEDULED; }
  private get socketPaused(): boolean { return (this.bits & SOCKET_PAUSED) !== 0; }
  private set socketPaused(v: boolean) { this.bits = v ? this.bits | SOCKET_PAUSED : this.bits & ~SOCKET_PAUSED; }
  private get reading(): boolean { return (this.bits & READING) !== 0; }
  /** @internal Reads can be held back (fair reading, above). */
  get canHold(): boolean { return (this.bits & CAN_HOLD) !== 0; }
  /** @internal Held back: waiting in the queue for its turn. */
  get held(): boolean { return (this.bits & HELD) !== 0; }
  set held(v: boolean) { this.bits = v ? this.bits | HELD : this.bits & ~HELD; }
  /** @internal Chunks read after a turn's budget was spent, processed on release (or at end/close). */
  kept: Buffer[] | null = null;
  /** Raw writes libuv has not completed yet. */
  private rawPending = 0;
  /** outputMoved()'s marks, while it watches (null otherwise: an idle connection holds no object). */
  private probe: { queued: number; dispatched: number } | null = null;
  /** @internal Reads and writes go through the socket's handle (raw I/O, above). */
  get raw(): boolean { return (this.bits & RAW) !== 0; }
  /** @internal Raw, and someone asks reading to pause: the handle does not read. */
  get rawStopped(): boolean { return (this.bits & RAW) !== 0 && this.pauses !== 0; }

  /** `h2`: the Duplex is an HTTP/2 stream (destroy() resets it with CANCEL). */
  constructor(socket: Duplex, out: OutQueue, events: TransportEvents, h2: boolean) {
    this.socket = socket;
    this.out = out;
    this.events = events;
    if (h2) this.bits |= H2;
    const s = socket as SocketLike;
    s.setNoDelay?.(true);
    s[kTransport] = this;
    if (canHold(socket)) this.bits |= CAN_HOLD;
    if (this.canHold) (socket as unknown as { _read: unknown })._read = heldAwareRead;
    socket.on('end', onEnd);
    socket.on('close', onClose);
    socket.on('error', onError);
    socket.on('drain', onDrain);
  }

  /** Start delivering data (Node holds socket data until a 'data' listener exists). */
  startReading(): void {
    this.bits |= READING;
    // Chunks the Readable buffered before now come as 'data' (in a tick, before any new read).
    this.socket.on('data', onData);
    const h = this.canHold ? rawHandleOf(this.socket) : null;
    if (h) {
      this.bits |= RAW;
      h[kTransport] = this;
      h.onread = rawOnRead;
      shareReadBuffer(h);
    }
    if (this.pauses !== 0) {
      this.socketPaused = true;
      this.socket.pause();
    }
  }

  /** @internal The socket's handle stops reading (until restartReads()). */
  stopHandle(): void {
    const h = (this.socket as unknown as { _handle?: StreamHandle })._handle;
    if (h && h.reading) {
      h.reading = false;
      h.readStop();
    }
  }

  /**
   * @internal Wait in the queue: what the socket reads meanwhile is kept, and it stops reading
   * once a second chunk comes (stopReads). Stopping costs two epoll_ctl calls (stop, and start
   * again on release), so it is done only when the peer sends on while the connection waits.
   */
  hold(): void {
    if (this.held) return;
    const h = (this.socket as unknown as { _handle?: StreamHandle })._handle;
    if (!h || this.socket.destroyed) return;
    this.held = true;
    held.push(this);
    scheduleTurnEnd();
  }

  /** @internal Held, and the peer sends on: the socket stops reading until release(). */
  stopReads(): void {
    if (this.held) this.stopHandle();
  }

  /**
   * @internal The peer's FIN came while raw and paused with bytes kept (a paused net.Socket would
   * not end before they are read): it is reported after them, once reading resumes.
   */
  deferEof(): boolean {
    if (!this.rawStopped || this.kept === null) return false;
    this.bits |= EOF_PENDING;
    return true;
  }

  /** @internal Process the kept chunks now (then a FIN that waited behind them). */
  processKept(): void {
    this.processKeptChunks();
    if ((this.bits & EOF_PENDING) !== 0 && this.kept === null) {
      this.bits &= ~EOF_PENDING;
      this.events.onEof();
    }
  }

  private processKeptChunks(): void {
    const k = this.kept;
    if (k === null) return;
    this.kept = null;
    let i = 0;
    try {
      for (; i < k.length; i++) this.events.onData(k[i], false);
    } finally {
      // A listener threw: the chunks after it are not lost, they wait for the next turn.
      if (i + 1 < k.length) {
        this.kept = k.slice(i + 1);
        this.hold();
      }
    }
  }

  /** @internal The queue lets it read again; false when there was nothing to let go (closed). */
  release(): boolean {
    if (!this.held) return false;
    this.held = false;
    // Raw and paused: what was kept waits for the resume (setPause), and so does reading.
    if (this.rawStopped) return false;
    try {
      if (this.kept !== null) {
        this.processKept();
        this.flush(); // its answers leave now, inside the budget
      }
    } finally {
      // Reading restarts also when a 'message' listener threw (unless the rest waits its turn).
      if (!this.held) this.restartReads();
    }
    const s = this.socket as unknown as { destroyed: boolean; _handle?: StreamHandle };
    return !s.destroyed && !!s._handle;
  }

  /**
   * Read again even when the application, the protocol or the iterator paused the stream: a
   * paused net.Socket reads up to its highWaterMark and stops by itself (and its Readable, whose
   * _read was refused while held, waits for a push before it asks again).
   */
  private restartReads(): void {
    const s = this.socket as unknown as { destroyed: boolean; destroy(): void; _handle?: StreamHandle };
    if (s.destroyed || !s._handle || this.rawStopped) return;
    const h = s._handle;
    if (!h.reading) {
      h.reading = true;
      if (h.readStart()) s.destroy();
    }
  }

  /** Bytes the socket holds that the kernel has not taken yet. */
  get writableLength(): number {
    // Raw writes start once the socket's own are done (the latch): before, it alone counts.
    if (!this.raw || !this.socketWritesDone()) return this.socket.writableLength;
    const h = (this.socket as unknown as { _handle?: RawHandle | null })._handle;
    return h ? h.writeQueueSize : 0;
  }

  /** Raw, and the socket's own write buffer is empty for good (every write since is ours). */
  private socketWritesDone(): boolean {
    if ((this.bits & SOCKET_WRITES_DONE) !== 0) return true;
    if (this.socket.writableLength !== 0) return false;
    this.bits |= SOCKET_WRITES_DONE;
    return true;
  }

  /**
   * @internal Did the peer take any of our bytes since the last call? False only when bytes wait
   * for it now and none of those that waited then, nor of those handed to the socket since, has
   * left: the socket's queue shrinks only as the kernel takes bytes (as the peer reads). True when
   * nothing waits, and on the first call (it starts watching then).
   */
  outputMoved(): boolean {
    const q = this.writableLength;
    const p = this.probe;
    if (q === 0) {
      this.probe = null;
      return true;
    }
    if (p === null) {
      this.probe = { queued: q, dispatched: 0 };
      return true;
    }
    const moved = p.queued + p.dispatched > q;
    p.queued = q;
    p.dispatched = 0;
    return moved;
  }

  /** An upper bound of writableLength that costs nothing: its value at the last flush. */
  get queuedBound(): number {
    return this.queuedAtFlush;
  }

  /** Bytes were queued in `out`: they leave in one write at the end of this tick. False when the transport is gone. */
  schedule(cb: Cb | undefined): boolean {
    // Checked once per flush, not per frame (the Duplex's destroyed getter is two property
    // chains): a socket destroyed after that drops what was queued, and fails its callbacks, when
    // the flush finds it destroyed.
    if (!this.flushScheduled) {
      if (this.socket.destroyed) {
        this.out.clear();
        if (cb) process.nextTick(cb, new Error(NOT_OPEN));
        return false;
      }
      this.flushScheduled = true;
      process.nextTick(flushTick, this);
    }
    if (cb) (this.cbs ??= []).push(cb);
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
    const slabs = takenSlabs;
    const bufs = out.take(this.writableLength > 0, slabs);
    const cbs = this.cbs;
    this.cbs = null;
    const done = cbs ? (err?: Error | null) => { for (const cb of cbs) cb(err ?? null); } : undefined;
    if (socket.destroyed || !socket.writable) {
      releaseSlabs(slabs); // dropped
      if (done) done(new Error(NOT_OPEN));
      return;
    }
    if (this.probe !== null) this.probe.dispatched += bytes;
    const n = bufs.length;
    let data: Buffer | Buffer[] = n === 1 ? bufs[0] : bufs;
    // Many small pieces (broadcast frames, pongs): one copy is cheaper than a long writev.
    if (n > 1 && bytes <= COALESCE_MAX && bytes < n * COALESCE_AVG) {
      data = Buffer.concat(bufs, bytes);
      releaseSlabs(slabs); // copied
    }
    // Raw: unless the socket's own write buffer still holds bytes (they would be overtaken).
    if (this.raw && this.socketWritesDone()) this.rawWrite(data, done, slabs);
    else {
      // The socket's own write() does not say when it is done with the views: they stay live for
      // good (their slabs are left to the GC).
      slabs.length = 0;
      this.socketWrite(data, done);
    }
    this.queuedAtFlush = this.writableLength;
  }

  /** The socket's own write: one buffer, or one corked writev. */
  private socketWrite(data: Buffer | Buffer[], done: Cb | undefined): void {
    const socket = this.socket;
    if (!Array.isArray(data)) {
      socket.write(data, done);
      return;
    }
    socket.cork();
    for (let i = 0; i < data.length - 1; i++) socket.write(data[i]);
    socket.write(data[data.length - 1], done);
    socket.uncork();
  }

  /**
   * One write request to the handle; `done` runs once libuv has written it (or failed). `slabs`
   * (takenSlabs: those of the slab views in `data`) are released, and the list emptied, once libuv
   * no longer reads them: at once when the write completed synchronously (the kernel has the
   * bytes), else when the request completes.
   */
  private rawWrite(data: Buffer | Buffer[], done: Cb | undefined, slabs: Slab[]): void {
    const socket = this.socket as NetSocket & { _handle: RawHandle | null };
    const h = socket._handle!;
    const req = new streamWrap!.WriteWrap() as RawWriteReq;
    req.handle = h; // (as net.Socket: the request keeps its handle alive)
    req.oncomplete = rawWriteDone;
    req.buffer = null;
    req.transport = this;
    req.done = done;
    req.slabs = null;
    const status = Array.isArray(data) ? h.writev(req, data, true) : h.writeBuffer(req, data);
    if (status !== 0) {
      releaseSlabs(slabs); // nothing queued: libuv holds none of it
      const err = rawError(status, 'write');
      if (done) process.nextTick(done, err);
      socket.destroy(err);
      return;
    }
    refreshTimeout(socket);
    if (streamWrap!.streamBaseState[streamWrap!.kLastWriteWasAsync]) {
      req.buffer = data; // alive until libuv is done with it
      if (slabs.length > 0) {
        req.slabs = slabs.slice();
        slabs.length = 0;
      }
      this.rawPending++;
    } else {
      releaseSlabs(slabs);
      if (done) process.nextTick(done, null);
    }
  }

  /** @internal An asynchronous raw write completed (status < 0: failed, or cancelled by a close). */
  rawWriteSettled(status: number, done: Cb | undefined): void {
    this.rawPending--;
    // Destroyed meanwhile (terminate(), a reset): as net.Socket, no error for what was cancelled.
    if (this.socket.destroyed) {
      if (done) done(null);
      return;
    }
    if (status < 0) {
      const err = rawError(status, 'write');
      this.socket.destroy(err); // first: a callback that throws must not keep the socket open
      if (done) done(err);
      return;
    }
    if (done) done(null);
    if (this.rawPending === 0) this.events.onDrain();
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
    // Raw: pausing stops the handle at its next chunk (deliver); resuming processes what it kept
    // in its turn, then reads.
    if (!this.raw || want) return;
    if (this.kept !== null) this.hold();
    else if (!this.held) this.restartReads();
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
   * no longer needed"); Node's destroy() alone would send NO_ERROR, which reads as a normal end.
   */
  destroy(): void {
    if (this.isH2) resetStream(this.socket as H2Stream, H2_CANCEL);
    else this.socket.destroy();
  }
}

/** What resetStream needs of an HTTP/2 stream (Node's Http2Stream). */
export type H2Stream = Duplex & { close(code: number): void; readonly closed: boolean };

/**
 * Reset an HTTP/2 stream now: RST_STREAM with `code` (CANCEL instead of NO_ERROR while our side of
 * the response has not all left: it is not complete), and the stream destroyed at once. close()
 * alone waits: its RST_STREAM NO_ERROR goes after the DATA still queued, and the stream closes only
 * once nghttp2 has sent the reset, which never happens while the peer reads nothing (a zero flow
 * control window, or a TCP window that stays shut): the stream, its buffered bytes and the
 * WebSocket on it would be held for good.
 */
export function resetStream(s: H2Stream, code: number): void {
  if (s.destroyed) return;
  if (!s.closed) s.close(code === 0 && !s.writableFinished ? H2_CANCEL : code);
  s.destroy();
}
