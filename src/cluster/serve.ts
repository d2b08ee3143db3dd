// Several cores: one process per core (node:cluster) sharing one listening port, with a hub that
// relays messages between workers through the primary over IPC.
//
//   client ─▶ worker 1 ──IPC──▶ primary ──IPC──▶ worker 1, worker 2, … ─▶ their clients
//
// - `publish(channel, data)` goes through the primary to every worker, the sender included, so all
//   workers see all published messages in the same order.
// - `broadcast(data)` sends to the clients of every attached WebSocketServer on every worker
//   (locally at once, to the other workers through the primary).
// - `share(key, value)` sets this worker's value for a key; every worker is told the values of all
//   workers (`shared(key)`, event 'shared'). A worker that exits loses its values. Connection
//   counts of attached servers travel this way and are summed by `connections`.
// Without a cluster (one process), the same hub works locally, so application code is the same.
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import { availableParallelism, cpus } from 'node:os';
import type { AddressInfo } from 'node:net';
import type { WebSocketServer } from '../node/server.js';
import type { WebSocket } from '../node/websocket.js';
import { toBuffer, type Data } from '../protocol/data.js';
import { ADVANCED_IPC_ENV, isTopicMsg, PrimaryTopics, type ClusterBroker, type TopicMsg } from '../pubsub/cluster-broker.js';
import { callEach } from '../pubsub/broker.js';
import { holdWhileBehind } from '../node/connection.js';
import { Buffer } from 'node:buffer';

/** Marks our IPC messages so that they do not collide with the application's own. */
const TAG = '__wasmws';
const CONN_KEY = '\0connections';
const BROADCAST = '\0broadcast:';

type Wire = string | Uint8Array | { b64: string };
type Msg =
  | { [TAG]: 1; t: 'pub'; ch: string; d: Wire; skip?: number } // worker → primary → workers
  | { [TAG]: 1; t: 'share'; key: string; v: unknown } // worker → primary
  | { [TAG]: 1; t: 'shared'; key: string; vs: unknown[] } // primary → workers
  | { [TAG]: 1; t: 'hello' } // worker → primary: my hub listens, send me the shared values
  | { [TAG]: 1; t: 'fatal'; message: string } // worker → primary: could not start
  | { [TAG]: 1; t: 'shutdown' } // primary → worker
  | { [TAG]: 1; t: 'hold'; on: boolean } // primary → workers: its channels to workers are behind (IPC flow control)
  | TopicMsg; // topics (src/pubsub/cluster-broker.ts)

/**
 * IPC flow control (per worker): bytes handed to the channel to the primary and not yet written
 * (each message counted as its payload plus IPC_OVERHEAD). Above the high-water mark the hub is
 * congested: its ClusterBrokers' servers hold back connections that publish (Broker#congested)
 * until it is back under the low-water mark. Without it a client publishing as fast as it can
 * filled the worker's memory (the channel, the primary and V8's serialization are slower than a
 * socket): 60 MB → 900 MB in 6 s in an audit. The primary counts what it sends each worker the
 * same way: while one of those is over the mark it tells every worker to hold ('hold'), so that
 * fan-out to slower workers does not fill the primary instead.
 */
const IPC_HIGH_WATER = 4 << 20;
const IPC_LOW_WATER = 1 << 20;
const IPC_OVERHEAD = 128;
/** A worker over the mark that read nothing for this long no longer holds the others (ms)… */
const IPC_STUCK_MS = 5000;
/** …and past this many bytes waiting for it, its messages are dropped (reported on the handle's events as 'warning'). */
const IPC_STUCK_MAX = 64 << 20;

const ignore = () => {};
/** Payload bytes of a message, for IPC flow control. */
function wireBytes(m: Msg): number {
  if (m.t !== 'pub' && m.t !== 'tpub' && m.t !== 'tmsg') return 0;
  const d = m.d;
  return typeof d === 'string' ? d.length : d instanceof Uint8Array ? d.byteLength : d.b64.length;
}

const isMsg = (m: unknown): m is Msg => typeof m === 'object' && m !== null && (m as any)[TAG] === 1;
// Workers forked by serveCluster talk V8 serialization (Buffers as bytes); others get base64 in JSON.
const enc = (d: string | Buffer): Wire => (typeof d === 'string' ? d : process.env[ADVANCED_IPC_ENV] === '1' ? d : { b64: d.toString('base64') });
const dec = (w: Wire): string | Buffer =>
  typeof w === 'string' ? w : w instanceof Uint8Array ? Buffer.from(w.buffer, w.byteOffset, w.byteLength) : Buffer.from(w.b64, 'base64');
const toPayload = (data: Data): string | Buffer => (typeof data === 'string' ? data : toBuffer(data));

/** What a worker reports about itself (value of the connections key). */
export interface WorkerInfo {
  /** cluster worker id (0 outside a cluster). */
  id: number;
  pid: number;
  /** Open connections per attached server name. */
  connections: Record<string, number>;
}

/**
 * The worker side: relays messages and shared values through the primary. Outside a cluster worker
 * it works locally. Events: 'message' (channel, data), 'shared' (key, values), 'connections' (total).
 */
export class ClusterHub extends EventEmitter {
  /** True in a cluster worker, false in a single process. */
  readonly clustered: boolean;
  /** cluster worker id (0 outside a cluster). */
  readonly id: number;
  private readonly mine = new Map<string, unknown>();
  private readonly all = new Map<string, unknown[]>();
  private readonly servers = new Map<WebSocketServer, string>();
  private readonly dirty = new Set<string>();
  private flushing = false;
  private shutdownHandlers: (() => unknown)[] = [];
  private shuttingDown: Promise<void> | null = null;
  private readonly onIpc = (m: unknown) => this.receive(m);
  /** @internal ClusterBrokers on this hub, by name. */
  readonly _topicBrokers = new Map<string, ClusterBroker>();
  /** Default bound of shutdown(), also when the primary asks for it. */
  private readonly shutdownTimeout: number;
  /** Bytes (estimated) handed to the IPC channel whose write has not completed. */
  private backlogBytes = 0;
  /** Waiting for the backlog to fall under IPC_LOW_WATER (null: nobody). */
  private drainWaiters: (() => void)[] | null = null;
  /** The primary asked workers to hold publishers (its channels to workers are behind). */
  private primaryHold = false;
  private readonly onDisconnect = () => this.drained();
  /** Listening to the primary (false after close()). */
  private listening = true;

  /** `shutdownTimeout`: default bound of each shutdown handler, ms (default 10 s; serveCluster passes its own). */
  constructor(opts: { shutdownTimeout?: number } = {}) {
    super();
    this.shutdownTimeout = opts.shutdownTimeout ?? 10_000;
    this.clustered = cluster.isWorker && typeof process.send === 'function';
    this.id = this.clustered ? cluster.worker!.id : 0;
    if (this.clustered) {
      process.on('message', this.onIpc);
      process.on('disconnect', this.onDisconnect);
      this.send({ [TAG]: 1, t: 'hello' });
    }
    this.reportConnections();
  }

  /** Send `data` on `channel` to every worker, this one included (same order everywhere). */
  publish(channel: string, data: string | Buffer): void {
    if (this.clustered) {
      this.send({ [TAG]: 1, t: 'pub', ch: channel, d: enc(data) }, data.length);
      this.holdIfBehind();
    }
    else process.nextTick(() => this.deliver(channel, data));
  }

  /**
   * Send to the clients of every attached server named `server` (default 'default') on every
   * worker. `except` skips one local client (typically the sender). Returns the local count.
   */
  broadcast(data: Data, opts: { binary?: boolean; except?: WebSocket; server?: string } = {}): number {
    const payload = toPayload(data);
    const binary = opts.binary ?? typeof payload !== 'string';
    const name = opts.server ?? 'default';
    const sent = this.localBroadcast(name, payload, binary, opts.except);
    if (this.clustered) {
      const wire = binary && typeof payload === 'string' ? Buffer.from(payload) : payload;
      this.send({ [TAG]: 1, t: 'pub', ch: BROADCAST + name, d: enc(wire), skip: this.id }, wire.length);
      this.holdIfBehind();
    }
    return sent;
  }

  /**
   * Track a server: its connection count joins `connections`, and `broadcast({ server: name })`
   * reaches its clients. Returns a function that detaches it.
   */
  attach(wss: WebSocketServer, name = 'default'): () => void {
    this.servers.set(wss, name);
    const onConnection = (ws: WebSocket) => {
      this.reportConnections();
      ws.once('close', () => this.reportConnections());
    };
    wss.on('connection', onConnection);
    this.reportConnections();
    return () => {
      wss.off('connection', onConnection);
      this.servers.delete(wss);
      this.reportConnections();
    };
  }

  /** Set this worker's value for `key`; every worker learns all values (event 'shared'). */
  share(key: string, value: unknown): void {
    this.mine.set(key, value);
    if (!this.clustered) this.all.set(key, [value]);
    this.dirty.add(key);
    if (this.flushing) return;
    this.flushing = true;
    // Coalesce bursts (a hundred connections in one tick make one IPC message).
    setImmediate(() => {
      this.flushing = false;
      for (const k of this.dirty) {
        if (this.clustered) this.send({ [TAG]: 1, t: 'share', key: k, v: this.mine.get(k) });
        else this.emitShared(k);
      }
      this.dirty.clear();
    });
  }

  /** The latest values of `key` from every live worker (this one included once it round-tripped). */
  shared<T = unknown>(key: string): T[] {
    return (this.all.get(key) ?? []) as T[];
  }

  /** Open connections of attached servers, summed over all workers. */
  get connections(): number {
    let n = 0;
    for (const w of this.workers()) for (const c of Object.values(w.connections)) n += c;
    return n;
  }

  /** What every live worker reported: id, pid and connection counts per server name. */
  workers(): WorkerInfo[] {
    return this.shared<WorkerInfo>(CONN_KEY);
  }

  /** Run `fn` on shutdown (SIGINT/SIGTERM, or the primary asked); the process exits once all settle. */
  onShutdown(fn: () => unknown): void {
    this.shutdownHandlers.push(fn);
  }

  /** Run the shutdown handlers (each bounded by `timeoutMs`, default the constructor's shutdownTimeout). Idempotent. */
  shutdown(timeoutMs = this.shutdownTimeout): Promise<void> {
    this.shuttingDown ??= (async () => {
      const bounded = (p: unknown) =>
        Promise.race([Promise.resolve(p).catch(() => {}), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
      await Promise.all(this.shutdownHandlers.map((fn) => bounded((async () => fn())())));
    })();
    return this.shuttingDown;
  }

  /** Stop listening to the primary (the hub is unusable afterwards). */
  close(): void {
    if (!this.clustered) return;
    process.off('message', this.onIpc);
    process.off('disconnect', this.onDisconnect);
    this.listening = false;
    this.primaryHold = false;
    this.drained();
  }

  private reportConnections(): void {
    const counts: Record<string, number> = {};
    for (const [wss, name] of this.servers) counts[name] = (counts[name] ?? 0) + wss.clients.size;
    this.share(CONN_KEY, { id: this.id, pid: process.pid, connections: counts } satisfies WorkerInfo);
  }

  private localBroadcast(name: string, payload: string | Buffer, binary: boolean, except?: WebSocket): number {
    let n = 0;
    for (const [wss, nm] of this.servers) if (nm === name) n += wss.broadcast(payload, { binary, except });
    return n;
  }

  private deliver(channel: string, data: string | Buffer): void {
    if (channel.startsWith(BROADCAST)) {
      const name = channel.slice(BROADCAST.length);
      // Text was sent as a string over IPC, binary as bytes (base64 outside serveCluster).
      this.localBroadcast(name, data, typeof data !== 'string');
      return;
    }
    this.emit('message', channel, data);
  }

  private emitShared(key: string): void {
    this.emit('shared', key, this.shared(key));
    if (key === CONN_KEY) this.emit('connections', this.connections);
  }

  private receive(m: unknown): void {
    if (!isMsg(m)) return;
    if (m.t === 'pub') this.deliver(m.ch, dec(m.d));
    else if (m.t === 'shared') {
      this.all.set(m.key, m.vs);
      this.emitShared(m.key);
    } else if (m.t === 'shutdown') void this.shutdown().then(() => process.exit(0));
    else if (m.t === 'tmsg') this._topicBrokers.get(m.ns)?._receive(m);
    else if (m.t === 'hold') {
      this.primaryHold = m.on;
      this.drained();
    }
  }

  /** @internal For ClusterBroker: `bytes`, the payload's length (IPC flow control). */
  _send(m: Msg, bytes = 0): void {
    this.send(m, bytes);
  }

  /** Bytes (payloads, estimated) handed to the IPC channel to the primary and not yet written. */
  get ipcBacklog(): number {
    return this.backlogBytes;
  }

  /** @internal More is waiting to go to the primary than it should (see IPC_HIGH_WATER). */
  get _congested(): boolean {
    return this.channelUp && (this.backlogBytes > IPC_HIGH_WATER || this.primaryHold);
  }

  /** Nothing is worth waiting for once the channel is gone (or the hub closed): its callbacks never come. */
  private get channelUp(): boolean {
    return this.clustered && this.listening && process.connected === true;
  }

  /** A publish or broadcast from a 'message' handler while IPC is behind: that connection waits (as ClusterBroker's). */
  private holdIfBehind(): void {
    if (this._congested) holdWhileBehind((fn) => this._onceDrained(fn));
  }

  /** @internal Call `fn` once the IPC backlog is under the low-water mark (at once if not congested). */
  _onceDrained(fn: () => void): void {
    if (!this._congested) return fn();
    (this.drainWaiters ??= []).push(fn);
  }

  /** @internal The IPC channel to the primary is open. */
  get _connected(): boolean {
    return process.connected === true;
  }

  private send(m: Msg, bytes = 0): void {
    if (!process.connected) return;
    const n = bytes + IPC_OVERHEAD;
    // The callback comes once the write completed, or failed (a channel that closed cancels its queue).
    process.send!(m, undefined, undefined, () => {
      this.backlogBytes -= n;
      this.drained();
    });
    this.backlogBytes += n; // (after: a message that cannot be serialized throws, and is not counted)
  }

  /** Wake the drain waiters once the backlog is under the low-water mark and the primary holds nothing (or the channel is gone). */
  private drained(): void {
    const w = this.drainWaiters;
    if (w === null || (this.channelUp && (this.backlogBytes > IPC_LOW_WATER || this.primaryHold))) return;
    this.drainWaiters = null;
    callEach(w);
  }
}

/** Options of serveCluster. */
export interface ClusterOptions {
  /** Number of processes; 'auto' = available cores. 1 runs `worker` in this process (no fork). */
  workers?: number | 'auto';
  /**
   * Runs in every worker (or in this process when workers is 1): start your servers here and
   * attach them to the hub. Return the listening http.Server/WebSocketServer to have its address
   * reported. A throw (e.g. EADDRINUSE) stops the whole cluster: serveCluster rejects.
   */
  worker: (hub: ClusterHub) => unknown | Promise<unknown>;
  /** Replace a worker that exits while the cluster runs (default true). */
  respawn?: boolean;
  /** SIGINT/SIGTERM shut down gracefully and exit 0 (default true). */
  handleSignals?: boolean;
  /** Bound on each shutdown, ms (default 10 s); then workers are killed. */
  shutdownTimeout?: number;
}

/** What serveCluster resolves to. */
export interface ClusterHandle {
  role: 'primary' | 'worker' | 'single';
  /** Number of worker processes (1 for a single process). */
  workers: number;
  /** The listening address, when known (primary: from the first worker; single: from worker()'s return). */
  address: AddressInfo | null;
  /** The hub (worker and single roles); null in the primary. */
  hub: ClusterHub | null;
  /** Graceful stop: close 1001 to every client of every worker, then resolve. */
  shutdown(): Promise<void>;
  /** Primary: emits 'exit' (worker, code, signal), 'respawn' (worker) and 'warning' (Error: a worker that stopped reading its IPC channel). */
  events: EventEmitter;
  /** Primary: ids of the workers subscribed at the primary to `topic` of ClusterBroker `name`. */
  topicWorkers?: (topic: string, name?: string) => number[];
}

/** Resolve 'auto' or a number to a worker count. */
export function workerCount(w: number | 'auto' | undefined): number {
  if (w === undefined || w === 'auto') {
    return typeof availableParallelism === 'function' ? availableParallelism() : cpus().length || 1;
  }
  if (!Number.isInteger(w) || w < 1) throw new RangeError(`workers must be a positive integer or 'auto' (got ${String(w)})`);
  return w;
}

function addressOf(x: unknown): AddressInfo | null {
  const a = x && typeof (x as any).address === 'function' ? (x as any).address() : null;
  return a && typeof a === 'object' && typeof a.port === 'number' ? (a as AddressInfo) : null;
}

/**
 * Serve on several cores. In the primary, forks the workers, relays hub traffic between them,
 * replaces a worker that dies and resolves once every worker listens. In a worker (or with
 * `workers: 1`), runs `worker(hub)`.
 */
export async function serveCluster(opts: ClusterOptions): Promise<ClusterHandle> {
  const n = workerCount(opts.workers);
  const timeout = opts.shutdownTimeout ?? 10_000;
  const handleSignals = opts.handleSignals !== false;
  const events = new EventEmitter();

  if (cluster.isWorker || n === 1) {
    // The hub bounds its handlers by shutdownTimeout however the shutdown comes (signal, the
    // primary's request, handle.shutdown()): before the primary's kill at shutdownTimeout + 1 s.
    const hub = new ClusterHub({ shutdownTimeout: timeout });
    const role = cluster.isWorker ? 'worker' : 'single';
    if (handleSignals || hub.clustered) {
      const stop = () => void hub.shutdown(timeout).then(() => process.exit(0));
      if (handleSignals) {
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      }
      if (hub.clustered) process.once('disconnect', stop); // the primary is gone
    }
    let result: unknown;
    try {
      result = await opts.worker(hub);
    } catch (err) {
      if (hub.clustered) {
        process.send!({ [TAG]: 1, t: 'fatal', message: (err as Error)?.message ?? String(err) } satisfies Msg, () => process.exit(1));
        return new Promise(() => {}); // exiting
      }
      hub.close();
      throw err;
    }
    return { role, workers: role === 'single' ? 1 : n, address: addressOf(result), hub, shutdown: () => hub.shutdown(timeout), events };
  }

  // ── primary ─────────────────────────────────────────────────────────────────────────────
  const values = new Map<string, Map<number, unknown>>(); // key → worker id → value
  const live = new Map<number, Worker>();
  let stopping: Promise<void> | null = null;
  let ready = false;
  let address: AddressInfo | null = null;
  const listened = new Set<number>();
  let deaths: number[] = [];

  // IPC flow control towards the workers (see IPC_HIGH_WATER), per worker: bytes sent and not yet
  // written; when a write to it last completed (or its backlog began); and, once it is stuck (read
  // nothing for IPC_STUCK_MS while over the mark: stopped, spinning; it no longer holds everyone's
  // publishers), how many messages to it were dropped past IPC_STUCK_MAX (null: not stuck).
  const flow = new Map<number, { bytes: number; progress: number; dropped: number | null }>();
  let holding = false;
  let stuckCheck: NodeJS.Timeout | null = null;
  const tellHold = (on: boolean) => {
    holding = on;
    for (const w of live.values()) if (w.isConnected()) w.send({ [TAG]: 1, t: 'hold', on } satisfies Msg, undefined, undefined, ignore);
    if (on && stuckCheck === null) {
      stuckCheck = setTimeout(checkStuck, IPC_STUCK_MS);
      stuckCheck.unref();
    }
  };
  const checkStuck = () => {
    stuckCheck = null;
    if (!holding) return;
    const now = Date.now();
    for (const [id, f] of flow) {
      // Stuck: over the mark, and not one write to it completed for IPC_STUCK_MS (a busy worker
      // that reads, however slowly, is waited for).
      if (f.bytes <= IPC_LOW_WATER || f.dropped !== null || now - f.progress < IPC_STUCK_MS) continue;
      f.dropped = 0;
      events.emit('warning', new Error(`wasmws: worker ${id} has not read its IPC channel for ${IPC_STUCK_MS / 1000} s (${f.bytes} bytes waiting): the other workers no longer wait for it; past ${IPC_STUCK_MAX} bytes its messages are dropped`));
    }
    maybeRelease();
    if (holding) {
      stuckCheck = setTimeout(checkStuck, IPC_STUCK_MS / 5); // (a worker may get stuck at any time)
      stuckCheck.unref();
    }
  };
  const maybeRelease = () => {
    if (!holding) return;
    for (const f of flow.values()) if (f.bytes > IPC_LOW_WATER && f.dropped === null) return;
    tellHold(false);
  };
  const flowOf = (id: number) => {
    let f = flow.get(id);
    if (f === undefined) flow.set(id, (f = { bytes: 0, progress: 0, dropped: null }));
    return f;
  };
  const sendTo = (w: Worker, m: Msg) => {
    if (!w.isConnected()) return;
    const n = wireBytes(m) + IPC_OVERHEAD;
    const fl = flowOf(w.id);
    if (fl.dropped !== null && fl.bytes > IPC_STUCK_MAX) {
      if (fl.dropped++ === 0) events.emit('warning', new Error(`wasmws: worker ${w.id} is stuck: dropping messages to it (more than ${IPC_STUCK_MAX} bytes wait for it)`));
      return;
    }
    w.send(m, undefined, undefined, () => {
      if (flow.get(w.id) !== fl) return; // it exited
      fl.bytes -= n;
      fl.progress = Date.now();
      if (fl.bytes <= IPC_LOW_WATER) {
        fl.dropped = null; // reading again
        maybeRelease();
      }
    });
    if (fl.bytes <= IPC_LOW_WATER) fl.progress = Date.now(); // a backlog begins: its clock starts
    fl.bytes += n;
    if (!holding && fl.bytes > IPC_HIGH_WATER) tellHold(true);
  };
  const sendAll = (m: Msg, skip?: number) => {
    for (const [id, w] of live) if (id !== skip) sendTo(w, m);
  };
  const topics = new PrimaryTopics((id, m) => {
    const w = live.get(id);
    if (w) sendTo(w, m);
  });
  const sharedMsg = (key: string): Msg => ({ [TAG]: 1, t: 'shared', key, vs: [...(values.get(key)?.values() ?? [])] });

  let resolveReady!: (h: ClusterHandle) => void;
  let rejectReady!: (e: Error) => void;
  const readyP = new Promise<ClusterHandle>((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });

  const shutdown = (): Promise<void> => {
    stopping ??= new Promise<void>((resolve) => {
      if (live.size === 0) return resolve();
      const kill = setTimeout(() => {
        for (const w of live.values()) w.process.kill('SIGKILL');
      }, timeout + 1000);
      kill.unref();
      events.on('exit', () => {
        if (live.size === 0) {
          clearTimeout(kill);
          resolve();
        }
      });
      for (const [id, w] of live) {
        // A worker that listens runs its hub: ask over IPC. One still starting gets SIGTERM (its
        // signal handler, if installed yet, shuts down the same way).
        if (listened.has(id) && w.isConnected()) w.send({ [TAG]: 1, t: 'shutdown' } satisfies Msg, undefined, undefined, ignore);
        else w.process.kill('SIGTERM');
      }
    });
    return stopping;
  };
  const handle: ClusterHandle = {
    role: 'primary', workers: n, address: null, hub: null, shutdown, events,
    topicWorkers: (topic, name = 'default') => topics.workersOf(name, topic),
  };

  const fork = (): Worker => {
    const w = cluster.fork({ [ADVANCED_IPC_ENV]: '1' });
    live.set(w.id, w);
    w.on('error', ignore); // EPIPE on a channel that a dying worker closed: its 'exit' follows
    w.on('message', (m: unknown) => {
      if (!isMsg(m)) return;
      if (isTopicMsg(m)) topics.receive(w.id, m);
      else if (m.t === 'pub') sendAll(m, m.skip);
      else if (m.t === 'hello') onHello();
      else if (m.t === 'share') {
        let byWorker = values.get(m.key);
        if (!byWorker) values.set(m.key, (byWorker = new Map()));
        byWorker.set(w.id, m.v);
        sendAll(sharedMsg(m.key));
      } else if (m.t === 'fatal' && !ready) {
        // Could not start (port in use, …): stop the others, then report.
        const err = new Error(m.message);
        void shutdown().then(() => rejectReady(err));
      }
    });
    const onHello = () => {
      // A new worker's hub learns the current shared values of the others.
      for (const key of values.keys()) sendTo(w, sharedMsg(key));
      if (holding) w.send({ [TAG]: 1, t: 'hold', on: true } satisfies Msg, undefined, undefined, ignore);
    };
    w.on('listening', (addr: AddressInfo) => {
      address ??= addr;
      listened.add(w.id);
      if (!ready && listened.size >= n) {
        ready = true;
        handle.address = address;
        resolveReady(handle);
      }
    });
    w.on('exit', (code, signal) => {
      live.delete(w.id);
      flow.delete(w.id);
      maybeRelease();
      listened.delete(w.id);
      topics.drop(w.id);
      for (const [key, byWorker] of values) if (byWorker.delete(w.id)) sendAll(sharedMsg(key));
      events.emit('exit', w, code, signal);
      if (stopping) return;
      if (!ready) {
        // A worker that dies before listening fails the start, whether or not we respawn.
        const err = new Error(`worker ${w.id} exited (${signal ?? code}) before listening`);
        void shutdown().then(() => rejectReady(err));
        return;
      }
      if (opts.respawn === false) return;
      // Replace it; back off if workers keep dying (a crash loop must not spin the CPU).
      const now = Date.now();
      deaths = deaths.filter((t) => now - t < 10_000);
      deaths.push(now);
      const delay = Math.min(5000, 50 * 2 ** Math.max(0, deaths.length - 1));
      setTimeout(() => {
        if (!stopping) events.emit('respawn', fork());
      }, delay);
    });
    return w;
  };

  if (handleSignals) {
    const stop = () => void shutdown().then(() => process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  }
  // V8 serialization on the IPC channel: Buffers cross as bytes (topics), not as JSON.
  cluster.setupPrimary({ serialization: 'advanced' });
  for (let i = 0; i < n; i++) fork();
  return readyP;
}
