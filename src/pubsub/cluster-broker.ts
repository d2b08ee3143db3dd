// ClusterBroker: topics across the workers of one machine (serveCluster), through the primary.
//
//   worker 1: wss.publish(t) ─IPC tpub─▶ primary: t → {workers with subscribers of t} ─IPC tmsg─▶ workers (1 included)
//
// - A worker tells the primary about a topic only while it has local subscribers of it (tsub on
//   the first, tunsub after the last); the primary forwards a publish to those workers only.
// - Payloads cross IPC as Buffers: serveCluster sets `serialization: 'advanced'` (V8's structured
//   clone), so no base64 and no JSON. (A worker forked some other way falls back to base64.)
// - Order: the publisher delivers its own message when it comes back from the primary, so every
//   worker delivers a topic's messages in the same order; `localFirst: true` delivers at once.
// Outside a cluster (one process) it delivers at once, like the default broker.
import type { WebSocket } from '../node/websocket.js';
import type { ClusterHub } from '../cluster/serve.js';
import { attachOnce, FLAG_BINARY, FLAG_NO_COMPRESS, type Broker, type BrokerSink } from './broker.js';
import { Buffer } from 'node:buffer';

/** The IPC tag of every wasmws message (as src/cluster/serve.ts). */
const TAG = '__wasmws';
/** Env set on workers forked by serveCluster: their IPC channel uses advanced serialization. */
export const ADVANCED_IPC_ENV = 'WASMWS_IPC_ADVANCED';

type Bytes = Uint8Array | { b64: string };

/** Topic messages on the IPC channel. */
export type TopicMsg =
  | { [TAG]: 1; t: 'tsub' | 'tunsub'; ns: string; topic: string } // worker → primary
  | { [TAG]: 1; t: 'tpub'; ns: string; topic: string; d: Bytes; f: number; s: number } // worker → primary
  | { [TAG]: 1; t: 'tmsg'; ns: string; topic: string; d: Bytes; f: number; s: number; o: number }; // primary → workers

export function isTopicMsg(m: unknown): m is TopicMsg {
  if (typeof m !== 'object' || m === null || (m as any)[TAG] !== 1) return false;
  const t = (m as any).t;
  return t === 'tsub' || t === 'tunsub' || t === 'tpub' || t === 'tmsg';
}

const advanced = () => process.env[ADVANCED_IPC_ENV] === '1';
const pack = (b: Buffer): Bytes => (advanced() ? b : { b64: b.toString('base64') });
function unpack(d: Bytes): Buffer {
  if (d instanceof Uint8Array) return Buffer.isBuffer(d) ? d : Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  return Buffer.from(d.b64, 'base64');
}

export interface ClusterBrokerOptions {
  /** Keeps the topics of several servers apart on one hub (default 'default'). */
  name?: string;
  /** Deliver local subscribers at once instead of on the echo from the primary. */
  localFirst?: boolean;
}

interface Pending {
  topic: string;
  payload: Buffer;
  flags: number;
  except: WebSocket | null;
}

/** Topics across the workers of a cluster, through the primary (see serveCluster). */
export class ClusterBroker implements Broker {
  readonly name: string;
  private readonly hub: ClusterHub;
  private readonly localFirst: boolean;
  private sink: BrokerSink | null = null;
  private readonly topics = new Set<string>();
  private seq = 0;
  /** Our own publishes waiting to come back, by sequence number (ascending). */
  private readonly awaiting = new Map<number, Pending>();

  constructor(hub: ClusterHub, options: ClusterBrokerOptions = {}) {
    this.hub = hub;
    this.name = options.name ?? 'default';
    this.localFirst = options.localFirst ?? false;
    if (hub._topicBrokers.has(this.name)) {
      throw new Error(`a ClusterBroker named ${JSON.stringify(this.name)} already exists on this hub (give each its own name)`);
    }
    hub._topicBrokers.set(this.name, this);
  }

  attach(sink: BrokerSink): void {
    this.sink = attachOnce(this.sink, sink);
  }

  detach(sink: BrokerSink): void {
    if (this.sink !== sink) return;
    this.sink = null;
    for (const topic of [...this.topics]) this.unsubscribe(topic);
    this.releaseAwaiting(Infinity);
    if (this.hub._topicBrokers.get(this.name) === this) this.hub._topicBrokers.delete(this.name);
  }

  subscribe(topic: string): void {
    if (this.topics.has(topic)) return;
    this.topics.add(topic);
    if (this.hub.clustered) this.hub._send({ [TAG]: 1, t: 'tsub', ns: this.name, topic });
  }

  unsubscribe(topic: string): void {
    if (!this.topics.delete(topic)) return;
    if (this.hub.clustered) this.hub._send({ [TAG]: 1, t: 'tunsub', ns: this.name, topic });
  }

  publish(topic: string, payload: Buffer, binary: boolean, compress: boolean, except: WebSocket | null): number {
    const sink = this.sink;
    const here = sink !== null && this.topics.has(topic);
    let local = 0;
    if (here) {
      local = sink!.subscriberCount(topic);
      if (except && except.isSubscribed(topic)) local--;
    }
    if (!this.hub.clustered || !this.hub._connected) {
      if (here) sink!.deliver(topic, payload, binary, compress, except);
      return local;
    }
    const flags = (binary ? FLAG_BINARY : 0) | (compress ? 0 : FLAG_NO_COMPRESS);
    const s = ++this.seq;
    // IPC is ordered: the primary saw our tsub before this tpub, so it comes back to us.
    if (here && this.localFirst) sink!.deliver(topic, payload, binary, compress, except);
    // A copy: the caller may reuse its buffer before the message comes back.
    else if (here) this.awaiting.set(s, { topic, payload: Buffer.from(payload), flags, except });
    this.hub._send({ [TAG]: 1, t: 'tpub', ns: this.name, topic, d: pack(payload), f: flags, s }, payload.length);
    return local;
  }

  /** The IPC channel to the primary is behind (Broker#congested: the server holds back publishers). */
  get congested(): boolean {
    return this.hub._congested;
  }

  onceDrained(fn: () => void): void {
    this.hub._onceDrained(fn);
  }

  /** @internal A message from the primary. */
  _receive(m: TopicMsg & { t: 'tmsg' }): void {
    const sink = this.sink;
    if (m.o === this.hub.id) {
      const p = this.awaiting.get(m.s);
      if (p) this.releaseAwaiting(m.s);
      return;
    }
    if (!sink || !this.topics.has(m.topic)) return;
    sink.deliver(m.topic, unpack(m.d), (m.f & FLAG_BINARY) !== 0, (m.f & FLAG_NO_COMPRESS) === 0, null);
  }

  /** Deliver our own publishes up to `upTo` in order (IPC loses nothing: earlier ones came back first). */
  private releaseAwaiting(upTo: number): void {
    for (const [s, p] of this.awaiting) {
      if (s > upTo) break;
      this.awaiting.delete(s);
      if (this.sink && this.topics.has(p.topic)) {
        this.sink.deliver(p.topic, p.payload, (p.flags & FLAG_BINARY) !== 0, (p.flags & FLAG_NO_COMPRESS) === 0, p.except);
      }
    }
  }
}

/** The primary's side: which workers want which topics, and the relay. */
export class PrimaryTopics {
  /** ns\0topic → worker ids. */
  private readonly subs = new Map<string, Set<number>>();
  /** worker id → its keys (to drop them when it exits). */
  private readonly byWorker = new Map<number, Set<string>>();

  constructor(private readonly sendTo: (id: number, m: TopicMsg) => void) {}

  receive(id: number, m: TopicMsg): void {
    if (m.t === 'tmsg') return;
    const key = `${m.ns}\0${m.topic}`;
    if (m.t === 'tsub') {
      let set = this.subs.get(key);
      if (!set) this.subs.set(key, (set = new Set()));
      set.add(id);
      let mine = this.byWorker.get(id);
      if (!mine) this.byWorker.set(id, (mine = new Set()));
      mine.add(key);
    } else if (m.t === 'tunsub') {
      this.leave(id, key);
      this.byWorker.get(id)?.delete(key);
    } else if (m.t === 'tpub') {
      const set = this.subs.get(key);
      if (!set) return;
      const out: TopicMsg = { [TAG]: 1, t: 'tmsg', ns: m.ns, topic: m.topic, d: m.d, f: m.f, s: m.s, o: id };
      for (const w of set) this.sendTo(w, out);
    }
  }

  /** A worker exited: its subscriptions go with it. */
  drop(id: number): void {
    const mine = this.byWorker.get(id);
    if (!mine) return;
    this.byWorker.delete(id);
    for (const key of mine) this.leave(id, key);
  }

  /** Workers subscribed to `topic` of broker `ns`. */
  workersOf(ns: string, topic: string): number[] {
    return [...(this.subs.get(`${ns}\0${topic}`) ?? [])];
  }

  private leave(id: number, key: string): void {
    const set = this.subs.get(key);
    if (!set) return;
    set.delete(id);
    if (set.size === 0) this.subs.delete(key);
  }
}
