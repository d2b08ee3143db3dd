// RedisBroker: topics across machines through Redis pub/sub, with the `redis` package (v5+) that
// the application already configured. wasmws does not depend on `redis`: it only calls the client.
//
//   node A: wss.publish(t) ─▶ PUBLISH prefix+t [header|payload] ─▶ Redis ─▶ every subscribed node,
//                                                                           A included ─▶ sink.deliver
//
// - Order: a node delivers its own publish when it comes back from Redis (which orders each
//   channel), so every node delivers a topic's messages in the same order. `localFirst: true`
//   delivers at once instead (lower latency, no common order across nodes).
// - Header (16 bytes, then the raw payload): version u8 · flags u8 (1 binary, 2 no compression) ·
//   origin node id (8 random bytes per broker) · sequence number per origin and topic (u48 BE).
//   A receiver that sees an origin's sequence jump emits 'gap' (topic, origin, missed);
//   one that sees an old or repeated number drops it, so a message is delivered at most once.
// - Redis away: local delivery goes on (at once), remote publishes wait in a bounded queue and
//   are dropped past it (counted in `dropped`); the broker emits one 'error' per outage and
//   'ready' when both connections are back; the subscriber re-subscribes after its reconnect.
//   The same bounds hold publishes awaiting Redis's reply, so a publisher faster than a healthy
//   Redis drops too: those drops are an 'error' of their own (at most one per 5 s, with a count).
//   One message larger than maxQueueBytes goes when nothing else is held.
// - A node subscribes to a channel only while its topic has local subscribers.
// - History (option): every publish is also appended to a per-topic Redis stream (bounded length
//   and age) by one Lua script, atomically with the PUBLISH, which then carries the stream id. A
//   node whose subscriber reconnects, or that sees a sequence jump, first replays what it missed
//   from the stream (holding live messages, our own echoes too, meanwhile); what it cannot find
//   (dropped by a full queue, trimmed, or past one replay's 2 × maxLen) is reported as a gap, and
//   like any gap only once a later message from that origin arrives.
import { EventEmitter } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import type { WebSocket } from '../node/websocket.js';
import { attachOnce, callEach, FLAG_BINARY, FLAG_NO_COMPRESS, type Broker, type BrokerSink } from './broker.js';
import { Buffer } from 'node:buffer';

/** What we call on a `redis` (node-redis v5+) client; structural, so `redis` stays optional. */
export interface RedisClientLike {
  readonly isReady: boolean;
  readonly isOpen: boolean;
  duplicate(options?: Record<string, unknown>): RedisClientLike;
  connect(): Promise<unknown>;
  publish(channel: string, message: Buffer): Promise<unknown>;
  sPublish?(channel: string, message: Buffer): Promise<unknown>;
  subscribe(channels: string, listener: (message: Buffer, channel: Buffer) => void, bufferMode: true): Promise<void>;
  unsubscribe(channels: string, listener?: (message: Buffer, channel: Buffer) => void, bufferMode?: true): Promise<void>;
  sSubscribe?(channels: string, listener: (message: Buffer, channel: Buffer) => void, bufferMode: true): Promise<void>;
  sUnsubscribe?(channels: string, listener?: (message: Buffer, channel: Buffer) => void, bufferMode?: true): Promise<void>;
  sendCommand(args: (string | Buffer)[], options?: Record<string, unknown>): Promise<unknown>;
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
  close?(): Promise<unknown>;
  quit?(): Promise<unknown>;
  destroy?(): unknown;
}

export interface RedisBrokerOptions {
  /** A connected `redis` client (createClient({ url }) then await client.connect()). */
  client: RedisClientLike;
  /** Channel (and key) prefix (default 'wasmws:'). */
  prefix?: string;
  /** Deliver local subscribers at once instead of on the echo from Redis (no common order). */
  localFirst?: boolean;
  /** Sharded pub/sub (SSUBSCRIBE / SPUBLISH, Redis ≥ 7) for Redis Cluster. */
  sharded?: boolean;
  /**
   * Publishes kept while Redis is away or behind (default 10,000 messages; the same bound again for
   * those sent and awaiting a reply)…
   */
  maxQueue?: number;
  /**
   * …and at most this many bytes (default 16 MiB); beyond either they are dropped (counted in
   * `dropped`; reported by the outage's 'error', or by an 'error' of their own while Redis is up).
   * One message larger than this goes when nothing else is held.
   */
  maxQueueBytes?: number;
  /** Deliver our own publish locally when its echo has not come back in this many ms (default 2000). */
  echoTimeout?: number;
  /**
   * Keep each topic's recent messages in a Redis stream and replay what a node missed (after its
   * subscriber reconnects, or on a sequence jump) before going on. `maxLen` entries (about, default
   * 1000), at most `maxAge` ms old (default 0: no age limit and the stream never expires; with
   * maxAge, an idle stream expires after maxAge).
   * Not with `sharded`.
   */
  history?: boolean | { maxLen?: number; maxAge?: number };
}

export const FORMAT_VERSION = 1;
export const HEADER_SIZE = 16;
/** Flag set by the history script: a stream id follows the header (1 length byte, then ASCII). */
export const FLAG_STREAM_ID = 4;

// KEYS[1] stream · ARGV: message, channel, maxLen, maxAge (ms, 0 = none). XADD + PUBLISH in one
// atomic step, so stream order is publish order; the published copy carries the entry's id.
export const HISTORY_SCRIPT = `
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'm', ARGV[1])
local age = tonumber(ARGV[4])
if age > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%d', now - age))
  redis.call('PEXPIRE', KEYS[1], age)
end
local m = ARGV[1]
redis.call('PUBLISH', ARGV[2], string.sub(m, 1, 1) .. string.char(bit.bor(string.byte(m, 2), ${4})) .. string.sub(m, 3, ${16}) .. string.char(#id) .. id .. string.sub(m, ${17}))
return id
`;
const HISTORY_SHA = createHash('sha1').update(HISTORY_SCRIPT).digest('hex');
/** node-redis: RESP blob strings as Buffers (binary payloads). */
const AS_BUFFERS = { typeMapping: { 36: Buffer } };

/** Stream ids "ms-seq": a < b? */
function idBefore(a: string, b: string): boolean {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am < bm || (am === bm && as < bs);
}
const SEQ_MAX = 2 ** 48;
/** The sequence number after `prev`: 1, 2, … 2^48 − 1, then 0 (u48; receivers count modulo 2^48). */
export function nextSeq(prev: number): number {
  return prev >= SEQ_MAX - 1 ? 0 : prev + 1;
}
/** Flag bits this version knows (binary, no compression, stream id). */
const KNOWN_FLAGS = 1 | 2 | 4;
/** No reply for this long while publishes wait for one: Redis is stalled (reported once). */
const STALL_MS = 1000;
/** Command errors, and drops while Redis is up, are reported at most this often (with their count). */
const REPORT_EVERY_MS = 5000;

/**
 * Whether `bytes` more fit under a byte bound beside `used`. A single message larger than the bound
 * passes when nothing else is held: the bound limits a backlog, and such a message could otherwise
 * never reach another node.
 */
function fits(used: number, bytes: number, max: number): boolean {
  return used === 0 || used + bytes <= max;
}

type Listener = (message: Buffer, channel: Buffer) => void;

/** One local topic's subscription to its channel. */
interface Channel {
  /** Redis confirmed the subscription (a publish now comes back to us). */
  active: boolean;
  listener: Listener;
  /** Last sequence number seen per origin (latin1 of its 8 id bytes). */
  seen: Map<string, number>;
  /** Our own publishes waiting for their echo, by sequence number (ascending). */
  awaiting: Map<number, Pending> | null;
  /** History: the last stream id delivered (overall, and per origin), the one when our
   *  subscriber went down, and live messages held while a replay runs. */
  lastId: string | null;
  originIds: Map<string, string> | null;
  downId: string | null;
  held: Decoded[] | null;
}

interface Pending {
  payload: Buffer;
  flags: number;
  except: WebSocket | null;
  at: number;
}

/** Encode the 16-byte header followed by the payload (one copy of the payload). */
export function encodeMessage(origin: Buffer, seq: number, flags: number, payload: Buffer): Buffer {
  const msg = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  msg[0] = FORMAT_VERSION;
  msg[1] = flags;
  origin.copy(msg, 2, 0, 8);
  msg.writeUIntBE(seq, 10, 6);
  payload.copy(msg, HEADER_SIZE);
  return msg;
}

/** Decode a message; null when it is not ours (short, another format version, or unknown flag bits). */
export function decodeMessage(msg: Buffer): Decoded | null {
  if (msg.length < HEADER_SIZE || msg[0] !== FORMAT_VERSION) return null;
  const flags = msg[1];
  if (flags & ~KNOWN_FLAGS) return null;
  let id: string | null = null;
  let at = HEADER_SIZE;
  if (flags & FLAG_STREAM_ID) {
    const n = msg[HEADER_SIZE];
    if (n === undefined || msg.length < HEADER_SIZE + 1 + n) return null;
    id = msg.toString('latin1', HEADER_SIZE + 1, HEADER_SIZE + 1 + n);
    at = HEADER_SIZE + 1 + n;
  }
  return { origin: msg.toString('latin1', 2, 10), seq: msg.readUIntBE(10, 6), flags, id, payload: msg.subarray(at) };
}

interface Decoded {
  origin: string;
  seq: number;
  flags: number;
  /** Stream entry id (history on). */
  id: string | null;
  payload: Buffer;
}

export interface RedisBroker {
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'gap', listener: (topic: string, origin: string, missed: number) => void): this;
  on(event: 'ready', listener: () => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

/** Topics across processes and machines through Redis pub/sub. Events: 'error' (once per outage), 'gap', 'ready'. */
export class RedisBroker extends EventEmitter implements Broker {
  /** This broker's node id (16 hex digits), as 'gap' events name origins. */
  readonly nodeId: string;
  /** Publishes dropped because Redis was away or behind and the queue was full. */
  dropped = 0;
  /** Waiting for the queue to fall under a quarter (see congested); null: nobody. */
  private drainWaiters: (() => void)[] | null = null;
  /** Messages missed, as counted from sequence jumps ('gap' events). */
  missed = 0;
  /** Messages received that this node cannot read (another format version, unknown flags): dropped. */
  get unreadable(): number {
    return this.unreadableCount;
  }
  /** The subscriber connection (a duplicate of the client). */
  readonly subscriber: RedisClientLike;
  /** Resolves once the subscriber connection is up. */
  readonly ready: Promise<void>;
  readonly prefix: string;

  private readonly client: RedisClientLike;
  private readonly origin: Buffer;
  private readonly originKey: string;
  private readonly localFirst: boolean;
  private readonly sharded: boolean;
  private readonly maxQueue: number;
  private readonly maxQueueBytes: number;
  private readonly echoTimeout: number;
  private readonly history: { maxLen: number; maxAge: number } | null;
  private sink: BrokerSink | null = null;
  private readonly channels = new Map<string, Channel>();
  private readonly seqs = new Map<string, number>();
  private queue: [string, Buffer][] = [];
  private queueBytes = 0;
  /** Publishes sent and awaiting Redis's reply (bounded by maxQueue / maxQueueBytes too). */
  private inflight = 0;
  private inflightBytes = 0;
  private stalled = false;
  private unreadableCount = 0;
  private readonly unreadableSeen = new Set<string>();
  private stallTimer: NodeJS.Timeout | null = null;
  /** When the last reply came (or, with none awaited, when the first of those awaited was sent). */
  private replyAt = 0;
  private down = false;
  private closed = false;
  /** Command errors (not outages): the last time one was reported, and how many since. */
  private errorAt = 0;
  private errorsSince = 0;
  /**
   * Drops since the last drop report; whether an outage's or a stall's 'error' covered them (it
   * says publishes are being dropped); when the last drop report was made.
   */
  private dropsSince = 0;
  private dropsExplained = false;
  private dropReportAt = 0;
  private dropTimer: NodeJS.Timeout | null = null;
  private echoTimer: NodeJS.Timeout | null = null;
  private readonly raw = new Map<string, Listener>();
  /** Redis answered an EVAL of the history script on the current connection (EVALSHA is safe). */
  private scriptCached = false;
  /** A NOSCRIPT retry is under way: new publishes queue until everything in flight has settled. */
  private scriptHold = false;
  private readonly onClientError = (err: Error) => this.outage(err);
  private readonly onClientReady = () => {
    this.scriptCached = false; // a new connection, maybe to a restarted Redis: its cache may be empty
    this.recovered();
  };
  private readonly onSubDown = () => this.subscriberDown();
  private readonly onSubReady = () => {
    this.reconcile();
    this.recovered();
  };

  constructor(options: RedisBrokerOptions) {
    super();
    const client = options.client;
    if (!client || typeof client.duplicate !== 'function') throw new TypeError('RedisBroker needs a `redis` client: new RedisBroker({ client })');
    this.client = client;
    this.prefix = options.prefix ?? 'wasmws:';
    this.localFirst = options.localFirst ?? false;
    this.sharded = options.sharded ?? false;
    this.maxQueue = options.maxQueue ?? 10_000;
    this.maxQueueBytes = options.maxQueueBytes ?? 16 * 1024 * 1024;
    this.echoTimeout = options.echoTimeout ?? 2000;
    const h = options.history;
    this.history = h ? { maxLen: (h === true ? undefined : h.maxLen) ?? 1000, maxAge: (h === true ? undefined : h.maxAge) ?? 0 } : null;
    if (this.history && this.sharded) throw new TypeError('history is not available with sharded: true');
    if (this.sharded && (typeof client.sPublish !== 'function' || typeof client.sSubscribe !== 'function')) {
      throw new TypeError('sharded: true needs a client with sPublish/sSubscribe (redis v5+)');
    }
    this.origin = randomBytes(8);
    this.originKey = this.origin.toString('latin1');
    this.nodeId = this.origin.toString('hex');
    client.on('error', this.onClientError);
    client.on('ready', this.onClientReady);
    const sub = client.duplicate();
    this.subscriber = sub;
    sub.on('error', this.onClientError);
    sub.on('ready', this.onSubReady);
    sub.on('end', this.onSubDown);
    sub.on('reconnecting', this.onSubDown);
    this.ready = sub.connect().then(() => {});
    // A failed first connection is reported as an outage; the client keeps retrying.
    this.ready.catch((err) => this.outage(err));
  }

  attach(sink: BrokerSink): void {
    this.sink = attachOnce(this.sink, sink);
  }

  detach(sink: BrokerSink): void {
    if (this.sink !== sink) return;
    this.sink = null;
    for (const topic of [...this.channels.keys()]) this.unsubscribe(topic);
  }

  subscribe(topic: string): void {
    if (this.closed || this.channels.has(topic)) return;
    const ch: Channel = { active: false, listener: (m) => this.receive(topic, ch, m), seen: new Map(), awaiting: null, lastId: null, originIds: null, downId: null, held: null };
    this.channels.set(topic, ch);
    this.subscribeChannel(this.prefix + topic, ch.listener).catch(() => {}); // ch.active once confirmed
  }

  unsubscribe(topic: string): void {
    const ch = this.channels.get(topic);
    if (!ch) return;
    this.channels.delete(topic);
    this.releaseAwaiting(topic, ch, Infinity);
    this.unsubscribeChannel(this.prefix + topic, ch.listener);
  }

  publish(topic: string, payload: Buffer, binary: boolean, compress: boolean, except: WebSocket | null): number {
    const sink = this.sink;
    const ch = this.channels.get(topic);
    let local = 0;
    if (sink && ch) {
      local = sink.subscriberCount(topic);
      if (except && except.isSubscribed(topic)) local--;
    }
    if (this.closed) return ch && sink ? sink.deliver(topic, payload, binary, compress, except) : 0;
    const seq = nextSeq(this.seqs.get(topic) ?? 0);
    this.seqs.set(topic, seq);
    const flags = (binary ? FLAG_BINARY : 0) | (compress ? 0 : FLAG_NO_COMPRESS);
    const msg = encodeMessage(this.origin, seq, flags, payload);
    // Wait for the echo only when the publish goes out now (not queued, not dropped).
    const echo = !this.localFirst && ch !== undefined && ch.active && this.subscriber.isReady && this.canSend(msg.length);
    if (ch && sink && !echo) {
      // Earlier publishes still waiting for their echo go first: a publisher's order holds locally.
      if (ch.awaiting) this.releaseAwaiting(topic, ch, Infinity);
      sink.deliver(topic, payload, binary, compress, except);
    }
    if (echo) {
      // The copy encodeMessage made: the caller may reuse its buffer before the echo comes back.
      (ch!.awaiting ??= new Map()).set(seq, { payload: msg.subarray(HEADER_SIZE), flags, except, at: Date.now() });
      this.armEchoTimer();
    }
    this.send(this.prefix + topic, msg, echo ? topic : null, seq);
    return local;
  }

  /** Stop: unsubscribe everything, close the subscriber connection (the client stays the application's). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [topic, ch] of this.channels) this.releaseAwaiting(topic, ch, Infinity);
    this.channels.clear();
    if (this.echoTimer) clearInterval(this.echoTimer);
    this.echoTimer = null;
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
    if (this.dropTimer) clearTimeout(this.dropTimer);
    this.dropTimer = null;
    this.queue = [];
    this.queueBytes = 0;
    this.wakeDrained();
    this.client.off('error', this.onClientError);
    this.client.off('ready', this.onClientReady);
    const sub = this.subscriber;
    try {
      if (sub.isReady) await (sub.close ?? sub.quit)!.call(sub);
      else sub.destroy?.();
    } catch {
      sub.destroy?.();
    }
    sub.off('error', this.onClientError);
  }

  /** Redis is reachable on both connections. */
  get connected(): boolean {
    return this.client.isReady && this.subscriber.isReady;
  }

  /** Publishes waiting for Redis to come back. */
  get queued(): number {
    return this.queue.length;
  }

  /** @internal Subscribe to a raw channel on the subscriber connection (presence notifications). */
  _subscribeRaw(channel: string, listener: Listener): Promise<void> {
    this.raw.set(channel, listener);
    return this.subscribeChannel(channel, listener);
  }

  /** @internal */
  _unsubscribeRaw(channel: string): void {
    const l = this.raw.get(channel);
    if (!l) return;
    this.raw.delete(channel);
    this.unsubscribeChannel(channel, l);
  }

  /**
   * History on: the last `count` messages of `topic` from the stream, oldest first (for a client
   * that joins late). Empty when Redis is away.
   */
  async recent(topic: string, count = 50): Promise<{ data: Buffer; binary: boolean }[]> {
    if (!this.history || !this.client.isReady) return [];
    const entries = (await this.client.sendCommand(['XREVRANGE', this.streamKey(topic), '+', '-', 'COUNT', String(count)], AS_BUFFERS)) as [Buffer, Buffer[]][];
    const out: { data: Buffer; binary: boolean }[] = [];
    for (let i = entries.length - 1; i >= 0; i--) {
      const m = decodeMessage(entries[i][1][1]);
      if (m) out.push({ data: m.payload, binary: (m.flags & FLAG_BINARY) !== 0 });
    }
    return out;
  }

  /** @internal The application's client (commands go there). */
  get _client(): RedisClientLike {
    return this.client;
  }

  // ── internals ───────────────────────────────────────────────────────────────────────────

  // The subscriber connection: node-redis queues every command issued while it is not ready, without
  // limit, and replays them all at the reconnect. So while it is not ready we call nothing: `wanted`
  // holds the channels we want (one listener each), `applied` what node-redis holds (it resubscribes
  // those itself on reconnect); on 'ready' we reconcile the two (SUBSCRIBE what is wanted, nothing else).
  private readonly wanted = new Map<string, Listener>();
  private readonly applied = new Map<string, Listener>();

  private subscribeChannel(channel: string, listener: Listener): Promise<void> {
    this.wanted.set(channel, listener);
    return this.syncChannel(channel) ?? Promise.resolve();
  }

  private unsubscribeChannel(channel: string, listener: Listener): void {
    if (this.wanted.get(channel) === listener) this.wanted.delete(channel);
    this.syncChannel(channel)?.catch(() => {});
  }

  /** Make node-redis hold `wanted`'s listener for `channel` (or none); null when nothing was sent. */
  private syncChannel(channel: string): Promise<void> | null {
    const sub = this.subscriber;
    if (this.closed || !sub.isReady) return null; // reconciled on 'ready'
    const want = this.wanted.get(channel);
    const have = this.applied.get(channel);
    if (want === have) return null;
    // At once, not deferred: SUBSCRIBE and UNSUBSCRIBE of one channel must reach Redis in call order.
    try {
      if (have) {
        this.applied.delete(channel);
        (this.sharded ? sub.sUnsubscribe!(channel, have, true) : sub.unsubscribe(channel, have, true)).catch(() => {});
      }
      if (!want) return null;
      this.applied.set(channel, want);
      const p = this.sharded ? sub.sSubscribe!(channel, want, true) : sub.subscribe(channel, want, true);
      p.then(
        () => this.subscribed(channel, want),
        (err) => {
          if (this.applied.get(channel) === want) this.applied.delete(channel);
          if (sub.isReady) this.commandError(`SUBSCRIBE ${channel}`, err); // not an outage: say so
        },
      );
      return p;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Redis confirmed `channel`: a topic's publishes now come back to us. */
  private subscribed(channel: string, listener: Listener): void {
    if (!channel.startsWith(this.prefix)) return;
    const ch = this.channels.get(channel.slice(this.prefix.length));
    if (ch && ch.listener === listener) ch.active = true;
  }

  /** The subscriber is ready: node-redis resubscribed `applied`; bring it to `wanted`. */
  private reconcile(): void {
    const all = new Set([...this.applied.keys(), ...this.wanted.keys()]);
    for (const channel of all) this.syncChannel(channel)?.catch(() => {});
    for (const [channel, l] of this.applied) this.subscribed(channel, l);
  }

  /**
   * Flow control (Broker#congested): while Redis is up, more than half of maxQueue or
   * maxQueueBytes waits for it (in flight and queued). The server then holds back connections that
   * publish from their 'message' handler until under a quarter, so a fast publisher waits in TCP
   * instead of having its messages dropped. During an outage, or a stall (no reply for STALL_MS),
   * nothing is held: local delivery goes on, as the outage's 'error' says.
   */
  get congested(): boolean {
    return this.holdsPublishers && this.waitingOver(2);
  }

  /** Flow control applies: Redis is up and answering (not closed, down or stalled). */
  private get holdsPublishers(): boolean {
    return !this.closed && !this.down && !this.stalled && this.client.isReady;
  }

  onceDrained(fn: () => void): void {
    if (!this.congested) return fn();
    (this.drainWaiters ??= []).push(fn);
    this.watchStall(); // held publishers wait for replies: a Redis that stops answering must let them go
  }

  /** More than 1/`part` of maxQueue or maxQueueBytes waits (in flight and queued). */
  private waitingOver(part: number): boolean {
    return this.inflight + this.queue.length > this.maxQueue / part || this.inflightBytes + this.queueBytes > this.maxQueueBytes / part;
  }

  /** Wake the drain waiters: below a quarter, or flow control no longer applies (an outage, a stall, close). */
  private wakeDrained(): void {
    const w = this.drainWaiters;
    if (w === null || (this.holdsPublishers && this.waitingOver(4))) return;
    this.drainWaiters = null;
    callEach(w);
  }

  /** Room for one more publish on the wire: Redis ready, nothing queued before it, and fewer than
   *  maxQueue / maxQueueBytes publishes awaiting a reply (a stalled Redis is an outage too). */
  private canSend(bytes: number): boolean {
    return this.client.isReady && !this.scriptHold && this.queue.length === 0 && this.inflight < this.maxQueue && fits(this.inflightBytes, bytes, this.maxQueueBytes);
  }

  private send(channel: string, msg: Buffer, awaitingTopic: string | null, seq: number): void {
    if (this.canSend(msg.length)) return this.write(channel, msg, awaitingTopic, seq);
    // Redis is away or not answering: keep a bounded queue (never the client's unbounded queues).
    if (this.queue.length >= this.maxQueue || !fits(this.queueBytes, msg.length, this.maxQueueBytes)) {
      this.dropped++;
      this.noteDrop();
    } else {
      this.queue.push([channel, msg]);
      this.queueBytes += msg.length;
    }
    this.watchStall();
  }

  /**
   * A backlog that is being answered is not a stall: report one when no reply came for STALL_MS
   * while publishes wait (queued, or in flight while publishers are held back).
   */
  private watchStall(delay = STALL_MS): void {
    if (!this.client.isReady || this.stalled || this.stallTimer || this.closed) return;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      if (this.closed || this.stalled || this.inflight + this.queue.length === 0 || !this.client.isReady) return;
      const quiet = Date.now() - this.replyAt;
      if (quiet < STALL_MS) return this.watchStall(STALL_MS - quiet);
      this.stalled = true;
      this.dropsExplained = true;
      this.wakeDrained();
      this.report(new Error(`Redis is not answering: ${this.inflight} publishes have waited over ${STALL_MS / 1000} s for a reply (local delivery goes on; remote publishes are queued up to ${this.maxQueue}, then dropped)`));
    }, delay);
    this.stallTimer.unref();
  }

  private write(channel: string, msg: Buffer, awaitingTopic: string | null, seq: number): void {
    if (this.inflight === 0) this.replyWaitStarts();
    this.inflight++;
    this.inflightBytes += msg.length;
    this.command(channel, msg).then(
      () => this.settled(msg.length),
      (err) => {
        this.settled(msg.length);
        // Lost in flight (the connection dropped): deliver our own copy if it was waiting for the echo.
        if (awaitingTopic !== null) {
          const ch = this.channels.get(awaitingTopic);
          if (ch) this.releaseAwaiting(awaitingTopic, ch, seq);
        }
        // Only connection events make an outage; a refused command (WRONGTYPE, NOPERM, …) is reported as such.
        if (this.client.isReady) this.commandError('PUBLISH ' + channel, err);
        else this.outage(err);
      },
    );
  }

  /** Nothing was awaiting a reply: the wait starts now. */
  private replyWaitStarts(): void {
    this.replyAt = Date.now();
  }

  private settled(bytes: number): void {
    this.replyAt = Date.now();
    // Redis answers: a stall is over (flow control holds publishers again, instead of the queue
    // staying full and dropping for as long as they keep publishing).
    this.stalled = false;
    this.inflight--;
    this.inflightBytes -= bytes;
    if (this.inflight === 0) this.scriptHold = false;
    this.drain();
    this.wakeDrained();
  }

  /** Send what waits in the queue, as far as the in-flight bound allows. */
  private drain(): void {
    if (this.closed || !this.client.isReady || this.scriptHold) return;
    while (this.queue.length > 0 && this.inflight < this.maxQueue && fits(this.inflightBytes, this.queue[0][1].length, this.maxQueueBytes)) {
      const [channel, msg] = this.queue.shift()!;
      this.queueBytes -= msg.length;
      this.write(channel, msg, null, 0);
    }
    if (this.queue.length === 0 && this.inflight < this.maxQueue) this.stalled = false;
  }

  private command(channel: string, msg: Buffer): Promise<unknown> {
    if (this.history) {
      const h = this.history;
      const key = this.streamKey(channel.slice(this.prefix.length));
      const args = [key, msg, channel, String(h.maxLen), String(h.maxAge)];
      // Until Redis has answered one EVAL on this connection, send the script itself: an EVALSHA
      // refused with NOSCRIPT (a fresh or restarted server) and retried would be overtaken by the
      // publishes sent after the first retry loaded it, and the stream would lose publish order.
      const evalScript = () => this.client.sendCommand(['EVAL', HISTORY_SCRIPT, '1', ...args]);
      if (!this.scriptCached) {
        return evalScript().then((r) => {
          this.scriptCached = true;
          return r;
        });
      }
      return this.client.sendCommand(['EVALSHA', HISTORY_SHA, '1', ...args]).catch((err: Error) => {
        if (!/NOSCRIPT/.test(String(err?.message))) throw err;
        // SCRIPT FLUSH under us: the EVALSHAs sent before this retry fail too and are retried in
        // turn; nothing new is sent until all have settled, so none is overtaken.
        this.scriptCached = false;
        this.scriptHold = true;
        return evalScript();
      });
    }
    return this.sharded ? this.client.sPublish!(channel, msg) : this.client.publish(channel, msg);
  }

  private streamKey(topic: string): string {
    return `${this.prefix}history:{${topic}}`;
  }

  private receive(topic: string, ch: Channel, msg: Buffer): void {
    if (this.channels.get(topic) !== ch) return;
    const m = decodeMessage(msg);
    if (!m) return this.cannotRead(topic, msg);
    // A replay runs: after it, in the order Redis gave (our own echo too).
    if (ch.held) return void ch.held.push(m);
    if (m.origin === this.originKey) return this.ownEcho(topic, ch, m);
    this.handle(topic, ch, m, true);
  }

  /** A message we cannot read (another format version, unknown flags, too short): counted, and one
   *  'error' per origin and version (a node running a newer wasmws, say), never silent. */
  private cannotRead(topic: string, msg: Buffer): void {
    this.unreadableCount++;
    const version = msg.length > 0 ? msg[0] : -1;
    const origin = msg.length >= 10 ? msg.toString('hex', 2, 10) : '?';
    const key = `${origin}/${version}`;
    if (this.unreadableSeen.has(key) || this.unreadableSeen.size >= 1000) return;
    this.unreadableSeen.add(key);
    const why = msg.length < HEADER_SIZE ? `a ${msg.length}-byte message` : version !== FORMAT_VERSION ? `format version ${version} (this node reads ${FORMAT_VERSION})` : `unknown flag bits 0x${(msg[1] & ~KNOWN_FLAGS).toString(16)}`;
    this.report(new Error(`RedisBroker: dropped a message on topic ${JSON.stringify(topic)} from origin ${origin}: ${why}; further ones from this origin and version are only counted (unreadable)`));
  }

  /** Our own publish came back: deliver it now (and any earlier one whose echo was lost). */
  private ownEcho(topic: string, ch: Channel, m: Decoded): void {
    if (m.id) ch.lastId = m.id;
    const p = ch.awaiting?.get(m.seq);
    if (p) this.releaseAwaiting(topic, ch, m.seq);
  }

  /** Deliver a message from another node once, in order; on a sequence jump, replay first (history). */
  private handle(topic: string, ch: Channel, m: Decoded, mayReplay: boolean): void {
    if (m.origin === this.originKey) return; // our own (replayed): delivered when published
    const last = ch.seen.get(m.origin);
    if (last !== undefined) {
      if (m.seq <= last && last - m.seq < SEQ_MAX / 2) return; // old or repeated: at most once
      const missed = (m.seq - last - 1 + SEQ_MAX) % SEQ_MAX;
      const from = ch.originIds?.get(m.origin) ?? ch.lastId;
      if (missed > 0 && mayReplay && this.history && from) {
        ch.held = [m];
        this.replay(topic, ch, from);
        return;
      }
      if (missed > 0) {
        this.missed += missed;
        this.emit('gap', topic, Buffer.from(m.origin, 'latin1').toString('hex'), missed);
      }
    }
    ch.seen.set(m.origin, m.seq);
    if (m.id) {
      if (!ch.lastId || idBefore(ch.lastId, m.id)) ch.lastId = m.id;
      (ch.originIds ??= new Map()).set(m.origin, m.id);
    }
    this.sink?.deliver(topic, m.payload, (m.flags & FLAG_BINARY) !== 0, (m.flags & FLAG_NO_COMPRESS) === 0, null);
  }

  /** Read what came after ch.lastId from the stream, deliver it, then the messages held meanwhile. */
  private replay(topic: string, ch: Channel, from: string | null): void {
    ch.held ??= [];
    const finish = (entries: [Buffer, Buffer[]][]) => {
      const held = ch.held ?? [];
      ch.held = null;
      if (this.channels.get(topic) !== ch) return;
      for (const [id, fields] of entries) {
        const m = decodeMessage(fields[1]);
        if (!m) continue;
        m.id = id.toString('latin1');
        this.handle(topic, ch, m, false);
      }
      for (const m of held) {
        if (m.origin === this.originKey) this.ownEcho(topic, ch, m);
        else this.handle(topic, ch, m, false);
      }
    };
    if (!from || !this.client.isReady) return finish([]);
    const count = String(this.history!.maxLen * 2);
    this.client
      .sendCommand(['XRANGE', this.streamKey(topic), `(${from}`, '+', 'COUNT', count], AS_BUFFERS)
      .then((r) => finish(r as [Buffer, Buffer[]][]), () => finish([]));
  }

  /** Deliver our own publishes of `topic` up to `upTo` that wait for their echo, in order. */
  private releaseAwaiting(topic: string, ch: Channel, upTo: number): void {
    const a = ch.awaiting;
    if (!a) return;
    for (const [seq, p] of a) {
      if (seq > upTo) break;
      a.delete(seq);
      this.sink?.deliver(topic, p.payload, (p.flags & FLAG_BINARY) !== 0, (p.flags & FLAG_NO_COMPRESS) === 0, p.except);
    }
    if (a.size === 0) ch.awaiting = null;
  }

  /** A bounded wait for echoes: a publish whose echo is late is delivered locally. */
  private armEchoTimer(): void {
    if (this.echoTimer) return;
    this.echoTimer = setInterval(() => {
      const limit = Date.now() - this.echoTimeout;
      let left = false;
      for (const [topic, ch] of this.channels) {
        const a = ch.awaiting;
        if (!a) continue;
        // An echo that did come back and waits behind a replay is not late: it is delivered in
        // Redis's order when the replay ends (so are the publishes after it).
        let heldFrom = Infinity;
        if (ch.held) for (const h of ch.held) if (h.origin === this.originKey && a.has(h.seq)) heldFrom = Math.min(heldFrom, h.seq);
        let upTo = -1;
        for (const [seq, p] of a) {
          if (p.at > limit || seq >= heldFrom) break;
          upTo = seq;
        }
        if (upTo >= 0) this.releaseAwaiting(topic, ch, upTo);
        if (ch.awaiting) left = true;
      }
      if (!left && this.echoTimer) {
        clearInterval(this.echoTimer);
        this.echoTimer = null;
      }
    }, Math.max(10, Math.min(250, this.echoTimeout / 4)));
    this.echoTimer.unref();
  }

  private subscriberDown(): void {
    // Echoes will not come back on this connection: deliver what waits for them now.
    for (const [topic, ch] of this.channels) {
      this.releaseAwaiting(topic, ch, Infinity);
      ch.downId ??= ch.lastId; // history: replay from here once back
    }
  }

  /**
   * A publish was dropped (the queue full). Drops during an outage or a stall are what its one
   * 'error' announced ("queued up to N, then dropped"); any others mean Redis is up but slower than
   * the publishes, and are reported too, at most once per REPORT_EVERY_MS with their count: a
   * message that other nodes will never get is never lost silently. The check waits for the stall
   * detection (STALL_MS) to have had its say.
   */
  private noteDrop(): void {
    if (this.dropsSince++ === 0) this.dropsExplained = this.down || this.stalled || !this.client.isReady;
    if (this.dropTimer) return;
    const wait = Math.max(STALL_MS * 1.5, REPORT_EVERY_MS - (Date.now() - this.dropReportAt));
    this.dropTimer = setTimeout(() => this.reportDrops(), wait);
    this.dropTimer.unref();
  }

  private reportDrops(): void {
    this.dropTimer = null;
    const n = this.dropsSince;
    this.dropsSince = 0;
    // Covered by an outage's or a stall's report (made before the drops or since): not reported again.
    if (this.closed || n === 0 || this.dropsExplained) return;
    this.dropReportAt = Date.now();
    this.report(new Error(`RedisBroker: ${n} remote publish${n > 1 ? 'es' : ''} dropped while Redis was up: more than maxQueue (${this.maxQueue}) messages or maxQueueBytes (${this.maxQueueBytes}) bytes were waiting for Redis (other nodes will not get them; local delivery went on; broker.dropped counts them)`));
  }

  private outage(err: unknown): void {
    if (this.closed) return;
    this.subscriberDown();
    if (this.down) return;
    this.down = true;
    this.wakeDrained(); // (nothing is held during an outage)
    this.dropsExplained = true;
    const e = new Error(`Redis unavailable: ${(err as Error)?.message ?? String(err)} (local delivery goes on; remote publishes are queued up to ${this.maxQueue}, then dropped)`);
    (e as Error & { cause?: unknown }).cause = err;
    this.report(e);
  }

  private report(e: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', e);
    else process.emitWarning(e.message, 'RedisBrokerWarning');
  }

  /**
   * A command failed while the connection is up (WRONGTYPE, NOPERM, a timeout, …): not an outage,
   * so `down` and 'ready' are untouched. Reported as 'error' at most once per REPORT_EVERY_MS (with a count).
   */
  private commandError(what: string, err: unknown): void {
    if (this.closed) return;
    this.errorsSince++;
    const now = Date.now();
    if (now - this.errorAt < REPORT_EVERY_MS) return;
    const n = this.errorsSince;
    this.errorAt = now;
    this.errorsSince = 0;
    const e = new Error(`Redis command failed: ${what}: ${(err as Error)?.message || (err as Error)?.name || String(err)}${n > 1 ? ` (${n} failures since the last report)` : ''}`);
    (e as Error & { cause?: unknown }).cause = err;
    this.report(e);
  }

  private recovered(): void {
    if (this.closed) return;
    this.drain();
    if (!this.down || !this.client.isReady || !this.subscriber.isReady) return;
    this.down = false;
    // History: catch up on what was published while our subscriber was away.
    if (this.history) {
      for (const [topic, ch] of this.channels) {
        const from = ch.downId ?? ch.lastId;
        ch.downId = null;
        if (from && !ch.held) this.replay(topic, ch, from);
      }
    }
    this.emit('ready');
  }
}
