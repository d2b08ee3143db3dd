// Topics and pub/sub (the uWebSockets / Bun API): which sockets of one server want which topic,
// and frame-once delivery to them.
//
//   ws.subscribe(t) ──▶ Topics: topic → Set<WebSocket>, ws → Set<topic> ──first / last──▶ broker.(un)subscribe
//   wss.publish(t, d) ─▶ broker.publish ─▶ … ─▶ Topics.deliver: one frame per wire form, same bytes to each
//
// A message is framed once (plain), or compressed once per window size for connections whose
// server_no_context_takeover lets a compressed message stand alone (RFC 7692 §7.1.1.1); connections
// with context takeover compress it with their own context. Each subscriber gets the bytes through
// its protocol's queue, so one socket write per tick, ordering behind its own compressions, and
// maxBackpressure apply exactly as for send(): a slow subscriber is dropped, the others go on.
import type { WebSocket } from '../node/websocket.js';
import { FanOut } from '../protocol/fanout.js';
import { toBuffer, type Data } from '../protocol/data.js';
import { LocalBroker, type Broker, type BrokerSink } from './broker.js';
import { holdWhileBehind } from '../node/connection.js';

/** WebSocket.OPEN (a value import of websocket.ts would be circular). */
const OPEN = 1;

/** Longest topic, in UTF-16 code units (topics are map keys and Redis channel names: keep them short). */
export const MAX_TOPIC_LENGTH = 256;

/** Options of publish (as Bun's: `compress: false` sends it uncompressed everywhere). */
export interface PublishOptions {
  binary?: boolean;
  compress?: boolean;
}

/**
 * Send one message to every open socket of `sockets` but `except`: framed once, the same bytes
 * written to each (src/protocol/fanout.ts). Returns the number of recipients.
 */
export function fanOut(sockets: Iterable<WebSocket>, payload: Buffer, binary: boolean, compress: boolean, except: WebSocket | null): number {
  const m = new FanOut(payload, binary, compress);
  let sent = 0;
  for (const ws of sockets) {
    // Through each connection's protocol, so that it waits behind a compression in flight.
    if (ws !== except && ws._sendShared(m)) sent++;
  }
  return sent;
}

/** Throws unless `topic` is a valid topic name. */
export function checkTopic(topic: unknown): asserts topic is string {
  if (typeof topic !== 'string') throw new TypeError('topic must be a string');
  if (topic.length === 0 || topic.length > MAX_TOPIC_LENGTH) {
    throw new RangeError(`topic must be 1 to ${MAX_TOPIC_LENGTH} UTF-16 code units long`);
  }
  // A lone surrogate becomes U+FFFD in UTF-8 (a Redis channel name): two such topics would collide.
  if (!wellFormed(topic)) throw new RangeError('topic must be well-formed UTF-16 (no unpaired surrogates)');
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const wellFormed: (s: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
    ? (s) => (s as string & { isWellFormed(): boolean }).isWellFormed()
    : (s) => !LONE_SURROGATE.test(s);

/** The topics of one WebSocketServer. */
export class Topics implements BrokerSink {
  readonly broker: Broker;
  private readonly subs = new Map<string, Set<WebSocket>>();

  constructor(broker?: Broker) {
    this.broker = broker ?? new LocalBroker();
    this.broker.attach(this);
  }

  subscribe(ws: WebSocket, topic: string): boolean {
    checkTopic(topic);
    if (ws.readyState !== OPEN) return false;
    const mine = (ws._subs ??= new Set());
    if (mine.has(topic)) return false;
    mine.add(topic);
    const set = this.subs.get(topic);
    if (set) set.add(ws);
    else {
      // The first local subscriber: only now does the broker hear of the topic.
      this.subs.set(topic, new Set([ws]));
      this.broker.subscribe(topic);
    }
    return true;
  }

  unsubscribe(ws: WebSocket, topic: string): boolean {
    checkTopic(topic);
    if (!ws._subs?.delete(topic)) return false;
    this.leave(ws, topic);
    return true;
  }

  /** A socket closed: its subscriptions end. */
  drop(ws: WebSocket): void {
    const mine = ws._subs;
    if (!mine) return;
    ws._subs = null;
    for (const topic of mine) this.leave(ws, topic);
  }

  private leave(ws: WebSocket, topic: string): void {
    const set = this.subs.get(topic);
    if (!set || !set.delete(ws)) return;
    if (set.size === 0) {
      this.subs.delete(topic);
      this.broker.unsubscribe(topic);
    }
  }

  /** Publish through the broker; `except` (the sender of ws.publish) is skipped. */
  publish(topic: string, data: Data, opts: PublishOptions | undefined, except: WebSocket | null): number {
    checkTopic(topic);
    const binary = opts?.binary ?? typeof data !== 'string';
    const broker = this.broker;
    const n = broker.publish(topic, toBuffer(data), binary, opts?.compress !== false, except);
    // Behind: the connection whose message made this publish stops reading until it drains.
    if (broker.congested && broker.onceDrained) holdWhileBehind((fn) => broker.onceDrained!(fn), except?._conn ?? null);
    return n;
  }

  /** BrokerSink: the broker hands a message to our subscribers. */
  deliver(topic: string, payload: Buffer, binary: boolean, compress: boolean, except: WebSocket | null): number {
    const set = this.subs.get(topic);
    return set ? fanOut(set, payload, binary, compress, except) : 0;
  }

  subscriberCount(topic: string): number {
    return this.subs.get(topic)?.size ?? 0;
  }

  /** Topics with at least one local subscriber. */
  get size(): number {
    return this.subs.size;
  }

  close(): void {
    this.broker.detach(this);
  }
}

/** What a WebSocket needs from its server's topics (set by the server on accept). */
export function topicsOf(ws: WebSocket): Topics {
  const t = ws._server?._topics;
  if (!t) throw new Error('Topics are available on server-side connections only');
  return t;
}
