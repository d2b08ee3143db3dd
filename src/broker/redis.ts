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
// - A node subscribes to a channel only while its topic has local subscribers.
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { WebSocket } from '../websocket.js';
import { attachOnce, FLAG_BINARY, FLAG_NO_COMPRESS, type Broker, type BrokerSink } from './types.js';

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
  sendCommand(args: (string | Buffer)[]): Promise<unknown>;
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
  /** Publishes kept while Redis is away (default 10,000 messages)… */
  maxQueue?: number;
  /** …and at most this many bytes (default 16 MiB); beyond either they are dropped. */
  maxQueueBytes?: number;
  /** Deliver our own publish locally when its echo has not come back in this many ms (default 2000). */
  echoTimeout?: number;
}

export const FORMAT_VERSION = 1;
export const HEADER_SIZE = 16;
const SEQ_MAX = 2 ** 48;

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

/** Decode a message; null when it is not ours (short, or another format version). */
export function decodeMessage(msg: Buffer): { origin: string; seq: number; flags: number; payload: Buffer } | null {
  if (msg.length < HEADER_SIZE || msg[0] !== FORMAT_VERSION) return null;
  return { origin: msg.toString('latin1', 2, 10), seq: msg.readUIntBE(10, 6), flags: msg[1], payload: msg.subarray(HEADER_SIZE) };
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
  /** Publishes dropped because Redis was away and the queue was full. */
  dropped = 0;
  /** Messages missed, as counted from sequence jumps ('gap' events). */
  missed = 0;
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
  private sink: BrokerSink | null = null;
  private readonly channels = new Map<string, Channel>();
  private readonly seqs = new Map<string, number>();
  private queue: [string, Buffer][] = [];
  private queueBytes = 0;
  private down = false;
  private closed = false;
  private subConnected = false;
  private echoTimer: NodeJS.Timeout | null = null;
  private readonly raw = new Map<string, Listener>();
  private readonly onClientError = (err: Error) => this.outage(err);
  private readonly onClientReady = () => this.recovered();
  private readonly onSubDown = () => this.subscriberDown();

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
    sub.on('ready', this.onClientReady);
    sub.on('end', this.onSubDown);
    sub.on('reconnecting', this.onSubDown);
    this.ready = sub.connect().then(() => {
      this.subConnected = true;
    });
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
    const ch: Channel = { active: false, listener: (m) => this.receive(topic, ch, m), seen: new Map(), awaiting: null };
    this.channels.set(topic, ch);
    this.subscribeChannel(this.prefix + topic, ch.listener).then(
      () => {
        if (this.channels.get(topic) === ch) ch.active = true;
      },
      () => {}, // an outage: the error is reported once; node-redis re-subscribes after its reconnect
    );
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
    const seq = ((this.seqs.get(topic) ?? 0) % SEQ_MAX) + 1;
    this.seqs.set(topic, seq);
    const flags = (binary ? FLAG_BINARY : 0) | (compress ? 0 : FLAG_NO_COMPRESS);
    const msg = encodeMessage(this.origin, seq, flags, payload);
    const echo = !this.localFirst && ch !== undefined && ch.active && this.subscriber.isReady && this.client.isReady;
    if (ch && sink && !echo) sink.deliver(topic, payload, binary, compress, except);
    if (echo) {
      (ch!.awaiting ??= new Map()).set(seq, { payload, flags, except, at: Date.now() });
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
    this.queue = [];
    this.queueBytes = 0;
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

  /** @internal The application's client (commands go there). */
  get _client(): RedisClientLike {
    return this.client;
  }

  // ── internals ───────────────────────────────────────────────────────────────────────────

  private subscribeChannel(channel: string, listener: Listener): Promise<void> {
    const sub = this.subscriber;
    const run = () => (this.sharded ? sub.sSubscribe!(channel, listener, true) : sub.subscribe(channel, listener, true));
    try {
      return this.subConnected ? run() : this.ready.then(run);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private unsubscribeChannel(channel: string, listener: Listener): void {
    const sub = this.subscriber;
    const run = () => (this.sharded ? sub.sUnsubscribe!(channel, listener, true) : sub.unsubscribe(channel, listener, true));
    // At once, not deferred: SUBSCRIBE and UNSUBSCRIBE of one channel must reach Redis in call order.
    let p: Promise<void>;
    try {
      p = this.subConnected ? run() : this.ready.then(run);
    } catch (err) {
      p = Promise.reject(err);
    }
    p.catch(() => {});
  }

  private send(channel: string, msg: Buffer, awaitingTopic: string | null, seq: number): void {
    if (this.client.isReady) {
      this.command(channel, msg).catch((err) => {
        // Lost in flight (the connection dropped): deliver our own copy if it was waiting for the echo.
        if (awaitingTopic !== null) {
          const ch = this.channels.get(awaitingTopic);
          if (ch) this.releaseAwaiting(awaitingTopic, ch, seq);
        }
        this.outage(err);
      });
      return;
    }
    // Redis is away: keep a bounded queue (never the client's unbounded offline queue).
    if (this.queue.length >= this.maxQueue || this.queueBytes + msg.length > this.maxQueueBytes) {
      this.dropped++;
      return;
    }
    this.queue.push([channel, msg]);
    this.queueBytes += msg.length;
  }

  private command(channel: string, msg: Buffer): Promise<unknown> {
    return this.sharded ? this.client.sPublish!(channel, msg) : this.client.publish(channel, msg);
  }

  private receive(topic: string, ch: Channel, msg: Buffer): void {
    if (this.channels.get(topic) !== ch) return;
    const m = decodeMessage(msg);
    if (!m) return;
    const sink = this.sink;
    if (m.origin === this.originKey) {
      // Our own publish came back: deliver it now (and any earlier one whose echo was lost).
      const p = ch.awaiting?.get(m.seq);
      if (p) this.releaseAwaiting(topic, ch, m.seq);
      return;
    }
    const last = ch.seen.get(m.origin);
    if (last !== undefined) {
      if (m.seq <= last && last - m.seq < SEQ_MAX / 2) return; // old or repeated: at most once
      const missed = (m.seq - last - 1 + SEQ_MAX) % SEQ_MAX;
      if (missed > 0) {
        this.missed += missed;
        this.emit('gap', topic, Buffer.from(m.origin, 'latin1').toString('hex'), missed);
      }
    }
    ch.seen.set(m.origin, m.seq);
    if (sink) sink.deliver(topic, m.payload, (m.flags & FLAG_BINARY) !== 0, (m.flags & FLAG_NO_COMPRESS) === 0, null);
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
        let upTo = -1;
        for (const [seq, p] of a) {
          if (p.at > limit) break;
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
    for (const [topic, ch] of this.channels) this.releaseAwaiting(topic, ch, Infinity);
  }

  private outage(err: unknown): void {
    if (this.closed) return;
    this.subscriberDown();
    if (this.down) return;
    this.down = true;
    const e = new Error(`Redis unavailable: ${(err as Error)?.message ?? String(err)} (local delivery goes on; remote publishes are queued up to ${this.maxQueue})`);
    (e as Error & { cause?: unknown }).cause = err;
    if (this.listenerCount('error') > 0) this.emit('error', e);
    else process.emitWarning(e.message, 'RedisBrokerWarning');
  }

  private recovered(): void {
    if (this.closed) return;
    if (this.client.isReady && this.queue.length > 0) {
      const q = this.queue;
      this.queue = [];
      this.queueBytes = 0;
      for (const [channel, msg] of q) this.command(channel, msg).catch((err) => this.outage(err));
    }
    if (!this.down || !this.client.isReady || !this.subscriber.isReady) return;
    this.down = false;
    this.emit('ready');
  }
}
