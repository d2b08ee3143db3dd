// Presence across nodes through Redis (who is online, for the chat): every node keeps one key with
// its own values and a TTL, refreshed while it lives, so a node that dies (SIGKILL, power loss)
// drops out when its key expires — Redis' clock decides, not the nodes'.
//
//   key   prefix + presence:{name}:<nodeId>  = JSON array of values, PX ttl (refreshed every ttl/3)
//   index prefix + presence:{name}           = set of node ids (a member whose key expired is removed by readers)
//   channel prefix + presence:{name}         = "a node changed": the others re-read at once
//
// The {name} hash tag keeps one presence's keys in one slot (Redis Cluster).
import { EventEmitter } from 'node:events';
import type { RedisBroker } from './redis.js';

export interface RedisPresenceOptions {
  /** Which presence (default 'default'). */
  name?: string;
  /** Lifetime of a node's key, ms (default 15 s); a dead node drops out after at most ttl + ttl/3. */
  ttl?: number;
}

export interface RedisPresence {
  on(event: 'change', listener: (lists: string[][]) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

/** Per-node values (e.g. user names) seen by every node. Event 'change' (lists: one array per live node). */
export class RedisPresence extends EventEmitter {
  readonly name: string;
  readonly ttl: number;
  private readonly broker: RedisBroker;
  private readonly key: string;
  private readonly index: string;
  private readonly channel: string;
  private mine: string[] = [];
  private others = new Map<string, string[]>();
  private timer: NodeJS.Timeout;
  private reading = false;
  private again = false;
  private closed = false;
  private last = '';
  private readonly onReady = () => void this.write(true);

  constructor(broker: RedisBroker, options: RedisPresenceOptions = {}) {
    super();
    this.broker = broker;
    this.name = options.name ?? 'default';
    this.ttl = options.ttl ?? 15_000;
    const base = `${broker.prefix}presence:{${this.name}}`;
    this.index = base;
    this.channel = base;
    this.key = `${base}:${broker.nodeId}`;
    void broker._subscribeRaw(this.channel, (msg) => {
      if (msg.toString() !== broker.nodeId) this.read();
    }).catch(() => {});
    broker.on('ready', this.onReady);
    this.timer = setInterval(() => void this.write(false), Math.max(50, Math.floor(this.ttl / 3)));
    this.timer.unref();
    void this.write(true);
  }

  /** This node's values. */
  set(values: string[]): void {
    this.mine = [...values];
    this.emitIfChanged();
    void this.write(true);
  }

  /** One array per live node (this one first). */
  get lists(): string[][] {
    return [this.mine, ...this.others.values()];
  }

  /** Remove this node's key and tell the others. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.broker.off('ready', this.onReady);
    this.broker._unsubscribeRaw(this.channel);
    const c = this.broker._client;
    if (!c.isReady) return;
    try {
      await c.sendCommand(['DEL', this.key]);
      await c.sendCommand(['SREM', this.index, this.broker.nodeId]);
      await c.sendCommand(['PUBLISH', this.channel, this.broker.nodeId]);
    } catch {
      // Redis went away: the key expires by itself.
    }
  }

  private async write(notify: boolean): Promise<void> {
    const c = this.broker._client;
    if (this.closed || !c.isReady) return;
    try {
      await c.sendCommand(['SET', this.key, JSON.stringify(this.mine), 'PX', String(this.ttl)]);
      await c.sendCommand(['SADD', this.index, this.broker.nodeId]);
      if (notify) await c.sendCommand(['PUBLISH', this.channel, this.broker.nodeId]);
    } catch {
      return; // an outage: the broker reports it once
    }
    this.read();
  }

  /** Read every node's values (coalesced: one read in flight, one more if asked meanwhile). */
  private read(): void {
    if (this.closed) return;
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = true;
    void this.readOnce().finally(() => {
      this.reading = false;
      if (this.again) {
        this.again = false;
        this.read();
      }
    });
  }

  private async readOnce(): Promise<void> {
    const c = this.broker._client;
    if (!c.isReady) return;
    try {
      const ids = ((await c.sendCommand(['SMEMBERS', this.index])) as unknown[]).map(String).filter((id) => id !== this.broker.nodeId);
      const values = ids.length ? ((await c.sendCommand(['MGET', ...ids.map((id) => `${this.index}:${id}`)])) as unknown[]) : [];
      const others = new Map<string, string[]>();
      const dead: string[] = [];
      ids.forEach((id, i) => {
        const v = values[i];
        if (v === null || v === undefined) return void dead.push(id);
        try {
          const list = JSON.parse(String(v));
          if (Array.isArray(list)) others.set(id, list.map(String));
        } catch {
          // not ours: ignore
        }
      });
      if (dead.length) await c.sendCommand(['SREM', this.index, ...dead]);
      if (this.closed) return;
      this.others = new Map([...others].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
      this.emitIfChanged();
    } catch {
      // an outage: keep the last known values
    }
  }

  private emitIfChanged(): void {
    const lists = this.lists;
    const sig = JSON.stringify(lists.flat().sort());
    if (sig === this.last) return;
    this.last = sig;
    this.emit('change', lists);
  }
}
