// RedisBroker against a real redis-server (started here on a free loopback port, no persistence):
// servers in separate processes with clients on each, order and at-most-once, churn, an outage
// mid-stream (one error, gaps reported, delivery resumes, bounded queue), sharded pub/sub.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as net from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';
import { createClient } from 'redis';
import { WebSocket, WebSocketServer, RedisBroker } from '../src/index.js';
import { encodeMessage, decodeMessage, nextSeq, HEADER_SIZE, HISTORY_SCRIPT } from '../src/pubsub/redis.js';
import { HAVE_REDIS, RedisServer } from './redis-server.js';
import { ensureDist, poll, sleep, stopServer, until, within } from './helpers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const NODE = join(ROOT, 'test', 'fixtures', 'redis-node.mjs');

/** A client that records every message. */
async function client(url: string) {
  const ws = new WebSocket(url);
  const got: string[] = [];
  ws.on('message', (d) => got.push(d.toString()));
  ws.on('error', () => {});
  await once(ws, 'open');
  return { ws, got };
}

/** A server node in its own process (test/fixtures/redis-node.mjs). */
interface Node {
  proc: ChildProcess;
  port: number;
  nodeId: string;
  events: { event: string; [k: string]: unknown }[];
}
async function startNode(redisUrl: string, mode = ''): Promise<Node> {
  const proc = spawn(process.execPath, [NODE, redisUrl, mode], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  const events: Node['events'] = [];
  const lines = createInterface({ input: proc.stdout! });
  const first = new Promise<{ port: number; nodeId: string }>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('node did not start in 10 s')), 10_000);
    lines.on('line', (l) => {
      const o = JSON.parse(l);
      if (o.port) {
        clearTimeout(t);
        resolve(o);
      } else events.push(o);
    });
    proc.once('exit', (code) => reject(new Error(`node exited with ${code}`)));
  });
  const { port, nodeId } = await first;
  return { proc, port, nodeId, events };
}
/**
 * A broker on a Redis of its own (options `opts`, `prefix` required), the errors it reports, and a
 * plain client subscribed to its channel for topic 't' that hands each raw message to `onWatch`;
 * everything is stopped after `fn` (a stalled Redis is resumed first).
 */
async function watchedBroker(
  opts: { prefix: string; maxQueue?: number; maxQueueBytes?: number },
  onWatch: (message: Buffer) => void,
  fn: (t: { own: RedisServer; cl: ReturnType<typeof createClient>; broker: RedisBroker; errors: string[] }) => Promise<void>,
): Promise<void> {
  const own = await RedisServer.start();
  const cl = createClient({ url: own.url });
  cl.on('error', () => {});
  await cl.connect();
  const watch = createClient({ url: own.url });
  watch.on('error', () => {});
  await watch.connect();
  await watch.subscribe(`${opts.prefix}t`, (m) => onWatch(m as unknown as Buffer), true);
  const broker = new RedisBroker({ client: cl, ...opts });
  const errors: string[] = [];
  broker.on('error', (e) => errors.push(e.message));
  await broker.ready;
  try {
    await fn({ own, cl, broker, errors });
  } finally {
    own.resume();
    await broker.close();
    await cl.close().catch(() => {});
    await watch.close().catch(() => {});
    await own.stop();
  }
}

async function stopNode(n: Node): Promise<void> {
  if (n.proc.exitCode !== null) return;
  const exited = once(n.proc, 'exit');
  n.proc.kill('SIGTERM');
  await Promise.race([exited, sleep(3000)]);
  if (n.proc.exitCode === null) n.proc.kill('SIGKILL');
}

describe('RedisBroker wire format', () => {
  it('is a 16-byte header (version, flags, origin, u48 sequence) and the raw payload', () => {
    const origin = Buffer.from('0102030405060708', 'hex');
    const msg = encodeMessage(origin, 2 ** 40 + 5, 3, Buffer.from('hi'));
    expect(msg.length).toBe(HEADER_SIZE + 2);
    expect(msg.subarray(0, HEADER_SIZE).toString('hex')).toBe('0103' + '0102030405060708' + '010000000005');
    const m = decodeMessage(msg)!;
    expect(m.seq).toBe(2 ** 40 + 5);
    expect(m.flags).toBe(3);
    expect(m.payload.toString()).toBe('hi');
    expect(Buffer.from(m.origin, 'latin1').equals(origin)).toBe(true);
    expect(decodeMessage(Buffer.from('short'))).toBeNull();
    const other = Buffer.from(msg);
    other[0] = 2;
    expect(decodeMessage(other)).toBeNull();
    const flagged = Buffer.from(msg);
    flagged[1] |= 0x80; // a flag bit this version does not know
    expect(decodeMessage(flagged)).toBeNull();
  });

  it('sequence numbers wrap within u48 (2^48 - 1, then 0) and every one encodes', () => {
    expect(nextSeq(0)).toBe(1);
    expect(nextSeq(2 ** 48 - 2)).toBe(2 ** 48 - 1);
    expect(nextSeq(2 ** 48 - 1)).toBe(0);
    const origin = Buffer.alloc(8);
    for (const seq of [2 ** 48 - 1, nextSeq(2 ** 48 - 1)]) expect(decodeMessage(encodeMessage(origin, seq, 0, Buffer.alloc(0)))!.seq).toBe(seq);
  });
});

describe.skipIf(!HAVE_REDIS)('RedisBroker with a real redis-server', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    ensureDist(join(ROOT, 'dist', 'esm', 'index.js'));
    redis = await RedisServer.start();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('three servers in three processes: every message reaches every client once, in the same order', async () => {
    const nodes = await Promise.all([0, 1, 2].map(() => startNode(redis.url)));
    try {
      const clients = [];
      for (const n of nodes) for (let k = 0; k < 2; k++) clients.push(await client(`ws://127.0.0.1:${n.port}/?t=room`));
      // Subscriptions are confirmed by Redis asynchronously: wait until a probe from each node is everywhere.
      for (let i = 0; i < nodes.length; i++) clients[i * 2].ws.send(`pub:room:probe${i}`);
      await until(() => clients.every((c) => c.got.filter((m) => m.startsWith('probe')).length === 3), { timeout: 5000, what: 'probes' });
      for (const c of clients) c.got.length = 0;
      const PER = 40;
      // Every client publishes at once, interleaved: 6 × 40 = 240 messages from three nodes.
      for (let i = 0; i < PER; i++) clients.forEach((c, k) => c.ws.send(`pub:room:${k}-${i}`));
      const total = clients.length * PER;
      await until(() => clients.every((c) => c.got.length >= total), { timeout: 10_000, what: 'all messages' });
      await sleep(100); // nothing more (no duplicates) arrives
      const ref = clients[0].got;
      expect(ref.length).toBe(total);
      expect(new Set(ref).size).toBe(total);
      for (const c of clients) expect(c.got).toEqual(ref); // same order everywhere
      // Each publisher's own messages keep their order.
      for (let k = 0; k < clients.length; k++) {
        const mine = ref.filter((m) => m.startsWith(`${k}-`));
        expect(mine).toEqual(Array.from({ length: PER }, (_, i) => `${k}-${i}`));
      }
      for (const n of nodes) expect(n.events.filter((e) => e.event === 'gap' || e.event === 'error')).toEqual([]);
      for (const c of clients) c.ws.close();
    } finally {
      await Promise.all(nodes.map(stopNode));
    }
  });

  it('two servers in two processes: ws.publish skips the sender, topics stay apart', async () => {
    const nodes = await Promise.all([0, 1].map(() => startNode(redis.url)));
    try {
      const a = await client(`ws://127.0.0.1:${nodes[0].port}/?t=x`);
      const b = await client(`ws://127.0.0.1:${nodes[1].port}/?t=x,y`);
      const c = await client(`ws://127.0.0.1:${nodes[1].port}/?t=y`);
      a.ws.send('pub:x:probe');
      await until(() => a.got.length === 1 && b.got.length === 1, { timeout: 5000, what: 'probe' });
      a.ws.send('wspub:x:from-a');
      c.ws.send('pub:y:to-y');
      await until(() => b.got.length === 3 && c.got.length === 1, { timeout: 5000, what: 'messages' });
      await sleep(50);
      expect(a.got).toEqual(['probe']);
      expect(b.got.slice(1).sort()).toEqual(['from-a', 'to-y']);
      expect(c.got).toEqual(['to-y']);
      for (const x of [a, b, c]) x.ws.close();
    } finally {
      await Promise.all(nodes.map(stopNode));
    }
  });

  it('sharded pub/sub (SSUBSCRIBE / SPUBLISH) carries topics between two servers', async () => {
    const mk = async () => {
      const cl = createClient({ url: redis.url });
      cl.on('error', () => {});
      await cl.connect();
      const broker = new RedisBroker({ client: cl, sharded: true, prefix: 'sh:' });
      await broker.ready;
      const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', broker });
      await once(wss, 'listening');
      wss.on('connection', (ws) => ws.subscribe('s'));
      return { cl, broker, wss, url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}/` };
    };
    const [A, B] = [await mk(), await mk()];
    const a = await client(A.url);
    const b = await client(B.url);
    await until(() => A.wss.subscriberCount('s') === 1 && B.wss.subscriberCount('s') === 1);
    // Both nodes' SSUBSCRIBEs are confirmed by Redis: then a publish from either reaches both.
    const numsub = async () => Number(((await A.cl.sendCommand(['PUBSUB', 'SHARDNUMSUB', 'sh:s'])) as unknown[])[1]);
    await poll(async () => (await numsub()) >= 2, { timeout: 5000, interval: 10, what: 'both SSUBSCRIBEs' });
    expect(await numsub()).toBe(2);
    expect(((await A.cl.sendCommand(['PUBSUB', 'SHARDCHANNELS', 'sh:*'])) as unknown[]).map(String)).toEqual(['sh:s']);
    A.wss.publish('s', 'one');
    B.wss.publish('s', 'two');
    await until(() => a.got.length === 2 && b.got.length === 2, { timeout: 5000, what: 'sharded messages' });
    expect(a.got).toEqual(b.got);
    for (const X of [A, B]) {
      await stopServer(X.wss);
      await X.broker.close();
      await X.cl.close();
    }
  });

  it('subscribes to a channel only while its topic has local subscribers (churn)', async () => {
    const cl = createClient({ url: redis.url });
    cl.on('error', () => {});
    await cl.connect();
    const broker = new RedisBroker({ client: cl, prefix: 'churn:' });
    await broker.ready;
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', broker });
    await once(wss, 'listening');
    const port = (wss.address() as { port: number }).port;
    const server: import('../src/index.js').WebSocket[] = [];
    wss.on('connection', (ws) => server.push(ws));
    const clients = await Promise.all(Array.from({ length: 10 }, () => client(`ws://127.0.0.1:${port}/`)));
    await until(() => server.length === 10);
    const channels = async () => ((await cl.sendCommand(['PUBSUB', 'CHANNELS', 'churn:*'])) as string[]).map(String).sort();
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    for (let round = 0; round < 500; round++) {
      const s = server[rand(10)];
      const t = `t${rand(8)}`;
      if (rand(2)) s.subscribe(t);
      else s.unsubscribe(t);
    }
    // The same topic on and off within one tick, ending on: Redis must end up subscribed.
    for (const s of server) s.unsubscribe('flip');
    server[0].subscribe('flip');
    server[0].unsubscribe('flip');
    server[0].subscribe('flip');
    server[1].subscribe('flop');
    server[1].unsubscribe('flop');
    const want = [...new Set(server.flatMap((s) => s.subscriptions))].map((t) => `churn:${t}`).sort();
    expect(want).toContain('churn:flip');
    expect(want).not.toContain('churn:flop');
    // Redis applies SUBSCRIBE/UNSUBSCRIBE in order: the end state matches the local one.
    let have: string[] = [];
    await poll(async () => JSON.stringify((have = await channels())) === JSON.stringify(want), { timeout: 5000, what: 'Redis to match the local subscriptions' })
      .catch(() => {}); // the assertion shows the difference
    expect(have).toEqual(want);
    // …and a publish from another node reaches the flipped subscriber.
    const cl2 = createClient({ url: redis.url });
    cl2.on('error', () => {});
    await cl2.connect();
    const other = new RedisBroker({ client: cl2, prefix: 'churn:' });
    const before = clients.map((c) => c.got.length);
    other.publish('flip', Buffer.from('flipped'), false, true, null);
    await until(() => clients.some((c, i) => c.got.length > before[i]), { timeout: 5000, what: 'flipped delivery' });
    expect(clients.flatMap((c) => c.got).filter((m) => m === 'flipped').length).toBe(1);
    await other.close();
    await cl2.close();
    for (const c of clients) c.ws.terminate();
    await until(() => wss.clients.size === 0);
    await poll(async () => (await channels()).length === 0, { timeout: 5000, what: 'every channel unsubscribed' }).catch(() => {});
    expect(await channels()).toEqual([]);
    await stopServer(wss);
    await broker.close();
    await cl.close();
  });

  /** A TCP relay to Redis that can refuse new connections (to keep one node away for a while). */
  async function relay(port: number) {
    const live = new Set<net.Socket>();
    const r = { open: true, port: 0, close: () => {} };
    const srv = net.createServer((down) => {
      if (!r.open) return void down.destroy();
      const up = net.connect(port, '127.0.0.1');
      live.add(down).add(up);
      const end = () => {
        down.destroy();
        up.destroy();
        live.delete(down);
        live.delete(up);
      };
      down.on('error', end).on('close', end);
      up.on('error', end).on('close', end);
      down.pipe(up).pipe(down);
    });
    await new Promise<void>((res) => srv.listen(0, '127.0.0.1', () => res()));
    r.port = (srv.address() as net.AddressInfo).port;
    r.close = () => {
      for (const s of live) s.destroy();
      srv.close();
    };
    return r;
  }

  const outage = async (history: boolean) => {
    const own = await RedisServer.start();
    // B reaches Redis through a relay that stays shut after the restart until A is back and has
    // published: B is away longer than A, deterministically.
    const gate = await relay(own.port);
    const mk = async (redisPort: number) => {
      const cl = createClient({ url: `redis://127.0.0.1:${redisPort}`, socket: { reconnectStrategy: () => 50 } });
      cl.on('error', () => {});
      await cl.connect();
      const broker = new RedisBroker({ client: cl, maxQueue: 20, history });
      const errors: string[] = [];
      const gaps: number[] = [];
      let readies = 0;
      broker.on('error', (e) => errors.push(e.message));
      broker.on('gap', (_t, _o, missed) => gaps.push(missed));
      broker.on('ready', () => readies++);
      await broker.ready;
      const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', broker });
      await once(wss, 'listening');
      wss.on('connection', (ws) => ws.subscribe('feed'));
      const port = (wss.address() as { port: number }).port;
      return { cl, broker, wss, errors, gaps, get readies() { return readies; }, url: `ws://127.0.0.1:${port}/` };
    };
    const A = await mk(own.port);
    const B = await mk(gate.port);
    try {
      const a = await client(A.url);
      const b = await client(B.url);
      await until(() => A.wss.subscriberCount('feed') === 1 && B.wss.subscriberCount('feed') === 1);
      let n = 0;
      const pub = () => A.wss.publish('feed', `m${n++}`);
      // Before: flowing both ways.
      pub();
      await until(() => b.got.length === 1 && a.got.length === 1, { timeout: 5000, what: 'first message' });
      for (let i = 0; i < 10; i++) pub();
      await until(() => b.got.length === 11, { timeout: 5000, what: 'before the outage' });
      gate.open = false;
      await own.stop();
      await until(() => !A.broker.connected && !B.broker.connected, { timeout: 5000, what: 'outage noticed' });
      // During: local subscribers still get everything; remote publishes queue up to 20, then drop.
      for (let i = 0; i < 100; i++) pub();
      expect(A.broker.queued).toBeLessThanOrEqual(20);
      expect(A.broker.dropped).toBe(80);
      await until(() => a.got.length === n, { timeout: 5000, what: 'local delivery during the outage' });
      await own.start();
      // A is back first: its queue (20) is flushed and 10 more are published while B is away.
      await until(() => A.broker.connected, { timeout: 5000, what: 'A reconnects' });
      expect(B.broker.connected).toBe(false);
      for (let i = 0; i < 10; i++) pub();
      await A.cl.ping(); // after the PUBLISHes on the same connection: Redis has them
      gate.open = true;
      await until(() => A.broker.connected && B.broker.connected, { timeout: 10_000, what: 'reconnect' });
      await until(() => A.readies >= 1 && B.readies >= 1, { timeout: 5000, what: "'ready' after the outage" });
      // After: delivery resumes; B saw every message once or reported it missing.
      for (let i = 0; i < 5; i++) pub();
      await until(() => b.got.includes(`m${n - 1}`), { timeout: 5000, what: 'after the outage' });
      await until(() => a.got.length === n, { timeout: 5000, what: 'local after the outage' });
      expect(a.got).toEqual(Array.from({ length: n }, (_, i) => `m${i}`));
      const missed = B.gaps.reduce((x, y) => x + y, 0);
      // Without history, what B's subscriber missed while it was away (A's 20 queued and 10 more)
      // is lost too; with it, B replays from the stream everything that reached Redis: only the 80
      // dropped at A are missing.
      if (history) expect(missed).toBe(80);
      else expect(missed).toBeGreaterThanOrEqual(110);
      expect(b.got.length + missed).toBe(n);
      expect(new Set(b.got).size).toBe(b.got.length); // no duplicates
      const idx = b.got.map((m) => Number(m.slice(1)));
      expect(idx).toEqual([...idx].sort((x, y) => x - y)); // in order
      expect(A.errors.length).toBe(1);
      expect(B.errors.length).toBe(1);
      expect(A.errors[0]).toMatch(/Redis unavailable/);
      expect(A.errors[0]).toMatch(/queued up to \d+, then dropped/); // a drop is never silent (README)
      a.ws.close();
      b.ws.close();
    } finally {
      // Bounded, so that a failure above is reported as itself and not as the test's timeout (a
      // client still reconnecting through the shut relay may never finish a graceful close).
      for (const X of [A, B]) {
        await within(stopServer(X.wss), { timeout: 3000, what: 'server close' }).catch(() => {});
        await within(X.broker.close(), { timeout: 3000, what: 'broker close' }).catch(() => {});
        await within(X.cl.close(), { timeout: 1000, what: 'client close' }).catch(() => {
          try {
            X.cl.destroy();
          } catch {
            // already closed
          }
        });
      }
      gate.close();
      await own.stop();
    }
  };
  it('Redis killed mid-stream and restarted: one error, gap reported, delivery resumes, bounded queue', () => outage(false), 30_000);
  it('with history: after the outage a node replays what it missed from the stream; only dropped messages are gaps', () => outage(true), 30_000);

  it('history: recent() returns the last messages of a topic, binary intact; the stream is bounded', async () => {
    const cl = createClient({ url: redis.url });
    cl.on('error', () => {});
    await cl.connect();
    const broker = new RedisBroker({ client: cl, prefix: 'hist:', history: { maxLen: 10 } });
    await broker.ready;
    for (let i = 0; i < 300; i++) broker.publish('h', Buffer.from([i & 0xff, 0xff, 0x00]), true, true, null);
    broker.publish('h', Buffer.from('last'), false, true, null);
    let got: { data: Buffer; binary: boolean }[] = [];
    await poll(async () => {
      got = await broker.recent('h', 3);
      return got.length > 0 && got[got.length - 1].data.toString() === 'last';
    }, { timeout: 5000, what: "'last' in the history" }).catch(() => {}); // the assertions show what came
    expect(got.map((m) => m.binary)).toEqual([true, true, false]);
    expect(got[0].data.equals(Buffer.from([298 & 0xff, 0xff, 0x00]))).toBe(true);
    expect(got[2].data.toString()).toBe('last');
    // MAXLEN ~ trims whole macro nodes: about 10, never all 301.
    expect(Number(await cl.sendCommand(['XLEN', 'hist:history:{h}']))).toBeLessThan(200);
    await broker.close();
    await cl.close();
  });

  /** Calls of one command Redis has served since it started (INFO commandstats). */
  const calls = async (cl: { sendCommand(a: string[]): Promise<unknown> }, cmd: string) => {
    const info = String(await cl.sendCommand(['INFO', 'commandstats']));
    return Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
  };

  it('subscribe/unsubscribe churn while Redis is down is not queued: the reconnect subscribes the wanted set only', async () => {
    const own = await RedisServer.start();
    const cl = createClient({ url: own.url, socket: { reconnectStrategy: () => 50 } });
    cl.on('error', () => {});
    await cl.connect();
    const broker = new RedisBroker({ client: cl, prefix: 'oq:' });
    broker.on('error', () => {});
    await broker.ready;
    try {
      broker.subscribe('keep');
      broker.subscribe('drop');
      const channels = async () => ((await cl.sendCommand(['PUBSUB', 'CHANNELS', 'oq:*'])) as unknown[]).map(String).sort();
      await until(() => broker.connected, { timeout: 5000 });
      let have: string[] = [];
      await poll(async () => (have = await channels()).length >= 2, { timeout: 5000, interval: 5, what: 'two channels' }).catch(() => {});
      expect(have).toEqual(['oq:drop', 'oq:keep']);
      await own.stop();
      await until(() => !broker.connected && !broker.subscriber.isReady, { timeout: 5000, what: 'outage noticed' });
      broker.unsubscribe('drop');
      for (let i = 0; i < 20_000; i++) {
        broker.subscribe(`c${i % 1000}`);
        broker.unsubscribe(`c${i % 1000}`);
      }
      broker.subscribe('new');
      await own.start(); // a fresh server: its command counts start at zero
      await until(() => broker.connected, { timeout: 10_000, what: 'reconnect' });
      await poll(async () => JSON.stringify((have = await channels())) === '["oq:keep","oq:new"]', { timeout: 5000, what: 'the wanted set subscribed' })
        .catch(() => {});
      expect(have).toEqual(['oq:keep', 'oq:new']);
      await sleep(50);
      // node-redis's resubscribe, then ours: a handful of commands, not 40,000 replayed.
      expect(await calls(cl, 'subscribe')).toBeLessThanOrEqual(4);
      expect(await calls(cl, 'unsubscribe')).toBeLessThanOrEqual(4);
    } finally {
      await broker.close();
      await cl.close().catch(() => {});
      await own.stop();
    }
  }, 20_000);

  it('a stalled Redis (SIGSTOP): publishes awaiting a reply are bounded, then queued, then dropped; all flows after SIGCONT', async () => {
    let got = 0;
    await watchedBroker({ prefix: 'st:', maxQueue: 100, maxQueueBytes: 1 << 20 }, () => void got++, async ({ own, cl, broker, errors }) => {
      await own.stall();
      const payload = Buffer.alloc(1024, 1);
      const N = 20_000;
      for (let i = 0; i < N; i++) broker.publish('t', payload, true, true, null);
      expect(broker.queued).toBeLessThanOrEqual(100);
      expect(broker.dropped).toBeGreaterThanOrEqual(N - 200);
      await until(() => errors.length === 1, { timeout: 5000, what: 'one error' }); // after a second without a reply
      expect(errors[0]).toMatch(/not answering/);
      own.proc!.kill('SIGCONT');
      await until(() => broker.queued === 0, { timeout: 5000, what: 'queue drained' });
      await cl.ping();
      await until(() => got === N - broker.dropped, { timeout: 5000, what: 'every kept publish delivered' });
      broker.publish('t', payload, true, true, null); // flowing again: sent at once
      expect(broker.queued).toBe(0);
      await until(() => got === N + 1 - broker.dropped, { timeout: 5000, what: 'a later publish' });
      expect(errors.length).toBe(1);
    });
  }, 20_000);

  it('a publisher faster than a healthy Redis: what the bounds drop is reported as one error with its count, the rest arrives in order', async () => {
    const got: number[] = [];
    await watchedBroker({ prefix: 'fd:', maxQueue: 50 }, (m) => void got.push(m.readUInt32BE(HEADER_SIZE)), async ({ broker, errors }) => {
      const N = 2000;
      for (let i = 0; i < N; i++) {
        const b = Buffer.alloc(4);
        b.writeUInt32BE(i);
        broker.publish('t', b, true, true, null); // all in one tick: at most 50 in flight, 50 queued
      }
      expect(broker.dropped).toBe(N - 100);
      await until(() => errors.length === 1, { timeout: 5000, what: 'the drop report' });
      expect(errors[0]).toMatch(new RegExp(`^RedisBroker: ${N - 100} remote publishes dropped while Redis was up`));
      await until(() => got.length === 100, { timeout: 5000, what: 'the kept publishes' });
      expect(got).toEqual([...Array(100).keys()]); // the first 100, in order
      await sleep(300);
      expect(errors.length).toBe(1);
      expect(got.length).toBe(100);
    });
  }, 20_000);

  it('a client publishing from its message handler while Redis is slow is held back (TCP), not dropped: every message arrives, in order', async () => {
    const got: number[] = [];
    await watchedBroker({ prefix: 'fc:', maxQueue: 200 }, (m) => void got.push(m.readUInt32BE(HEADER_SIZE)), async ({ own, broker, errors }) => {
      const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', broker });
      wss.on('connection', (ws) => ws.on('message', (d) => wss.publish('t', d as Buffer)));
      await once(wss, 'listening');
      try {
        const c = await client(`ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}`);
        await own.stall(); // Redis answers nothing for a while: what waits for it would pass maxQueue
        const N = 2000;
        for (let i = 0; i < N; i += 10) {
          for (let j = i; j < i + 10; j++) c.ws.send(Buffer.from([j >>> 24, (j >>> 16) & 255, (j >>> 8) & 255, j & 255]));
          await sleep(1);
        }
        await sleep(300);
        own.resume();
        await until(() => got.length >= N, { timeout: 15_000, what: 'every publish through Redis' });
        expect(got).toEqual([...Array(N).keys()]);
        expect(broker.dropped).toBe(0);
        expect(errors).toEqual([]);
        c.ws.close();
      } finally {
        await stopServer(wss);
      }
    });
  }, 30_000);

  it('a stall past a second is an outage for flow control: held publishers are let go (local traffic goes on), the drops reported', async () => {
    await watchedBroker({ prefix: 'fs:', maxQueue: 200 }, () => {}, async ({ own, broker, errors }) => {
      const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', broker });
      let handled = 0;
      wss.on('connection', (ws) => ws.on('message', (d) => {
        handled++;
        wss.publish('t', d as Buffer);
      }));
      await once(wss, 'listening');
      try {
        const c = await client(`ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}`);
        await own.stall();
        for (let i = 0; i < 1000; i++) c.ws.send(Buffer.from([i >>> 8, i & 255]));
        await until(() => errors.length === 1, { timeout: 5000, what: 'the stall report' });
        expect(errors[0]).toMatch(/not answering/);
        await until(() => handled === 1000, { timeout: 5000, what: 'every message handled once the stall was declared' });
        expect(broker.dropped).toBeGreaterThanOrEqual(1000 - 400);
        own.resume();
        c.ws.close();
      } finally {
        await stopServer(wss);
      }
    });
  }, 30_000);

  it('after a stall, replies end it: publishers are held again and drops stop, though they never stopped publishing', async () => {
    await watchedBroker({ prefix: 'fe:' }, () => {}, async ({ own, broker, errors }) => {
      const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', broker });
      wss.on('connection', (ws) => ws.on('message', (d) => wss.publish('t', d as Buffer)));
      await once(wss, 'listening');
      let stop = false;
      try {
        const c = await client(`ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}`);
        const msg = Buffer.alloc(200, 7);
        const t0 = Date.now();
        (function pump() {
          if (stop || c.ws.readyState !== c.ws.OPEN || Date.now() - t0 > 15_000) return;
          while (c.ws.bufferedAmount < 64 * 1024) c.ws.send(msg);
          setTimeout(pump, 1);
        })();
        await sleep(300);
        await own.stall();
        await until(() => errors.some((e) => /not answering/.test(e)), { timeout: 5000, what: 'the stall report' });
        // The stall let publishers go: the queue's bounds drop (as the stall's report says).
        await until(() => broker.dropped > 0, { timeout: 8000, what: 'drops during the stall' });
        own.resume();
        await sleep(1500); // replies come again
        const a = broker.dropped;
        await sleep(1500);
        expect(broker.dropped).toBe(a); // held again, no more drops
      } finally {
        stop = true;
        await stopServer(wss);
      }
    });
  }, 30_000);

  it('a message larger than maxQueueBytes still reaches Redis when nothing else is held (it is not dropped unreported)', async () => {
    const sizes: number[] = [];
    await watchedBroker({ prefix: 'big:', maxQueueBytes: 1024 }, (m) => void sizes.push(m.length - HEADER_SIZE), async ({ broker, errors }) => {
      broker.publish('t', Buffer.alloc(4096, 7), true, true, null);
      broker.publish('t', Buffer.alloc(8192, 8), true, true, null); // waits for the first: the queue held nothing
      broker.publish('t', Buffer.alloc(16), true, true, null); // past the byte bound behind the second: dropped, reported
      await until(() => sizes.length === 2, { timeout: 5000, what: 'both large messages' });
      expect(sizes).toEqual([4096, 8192]);
      expect(broker.dropped).toBe(1);
      await until(() => errors.length === 1, { timeout: 5000, what: 'the drop report' });
      expect(errors[0]).toMatch(/^RedisBroker: 1 remote publish dropped while Redis was up/);
    });
  }, 20_000);

  it('a command error (WRONGTYPE) is reported as such and is not an outage: the next real outage is reported', async () => {
    const own = await RedisServer.start();
    const cl = createClient({ url: own.url, socket: { reconnectStrategy: () => 50 } });
    cl.on('error', () => {});
    await cl.connect();
    await cl.sendCommand(['SET', 'ce:history:{t}', 'x']); // a key of the wrong type for the stream
    const broker = new RedisBroker({ client: cl, prefix: 'ce:', history: true });
    const errors: string[] = [];
    let readies = 0;
    broker.on('error', (e) => errors.push(e.message));
    broker.on('ready', () => readies++);
    await broker.ready;
    try {
      broker.publish('t', Buffer.from('a'), false, true, null);
      broker.publish('t', Buffer.from('b'), false, true, null); // within the rate limit: not reported again
      await until(() => errors.length === 1, { timeout: 5000, what: 'command error' });
      expect(errors[0]).toMatch(/command failed.*WRONGTYPE/);
      expect(errors[0]).not.toMatch(/unavailable/);
      expect(broker.connected).toBe(true);
      await own.stop();
      await until(() => errors.length === 2, { timeout: 5000, what: 'outage error' });
      expect(errors[1]).toMatch(/Redis unavailable/);
      await own.start();
      await until(() => readies === 1, { timeout: 10_000, what: "'ready' after the outage" });
      expect(errors.length).toBe(2);
    } finally {
      await broker.close();
      await cl.close().catch(() => {});
      await own.stop();
    }
  }, 20_000);

  /** A node: its own Redis client and broker, a server, and one client subscribed to topic 't'. */
  const nodeWithSubscriber = async (opts: Omit<ConstructorParameters<typeof RedisBroker>[0], 'client'>) => {
    const cl = createClient({ url: redis.url });
    cl.on('error', () => {});
    await cl.connect();
    const broker = new RedisBroker({ client: cl, ...opts });
    await broker.ready;
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', broker });
    await once(wss, 'listening');
    wss.on('connection', (ws) => ws.subscribe('t'));
    const c = await client(`ws://127.0.0.1:${(wss.address() as { port: number }).port}/`);
    await until(() => wss.subscriberCount('t') === 1);
    return { cl, broker, wss, c };
  };

  it("the publisher's own subscribers get each message as published, though the caller reuses its Buffer", async () => {
    const mk = () => nodeWithSubscriber({ prefix: 'reuse:' });
    const A = await mk();
    const B = await mk();
    const n = async () => Number(((await A.cl.sendCommand(['PUBSUB', 'NUMSUB', 'reuse:t'])) as unknown[])[1]);
    await poll(async () => (await n()) >= 2, { timeout: 5000, interval: 10, what: 'both subscriptions' });
    const buf = Buffer.alloc(2);
    for (const s of ['m1', 'm2', 'm3']) {
      buf.write(s);
      A.wss.publish('t', buf);
    }
    await until(() => A.c.got.length === 3 && B.c.got.length === 3, { timeout: 5000, what: 'three messages' });
    expect(A.c.got).toEqual(['m1', 'm2', 'm3']);
    expect(B.c.got).toEqual(['m1', 'm2', 'm3']);
    for (const X of [A, B]) {
      X.c.ws.close();
      await stopServer(X.wss);
      await X.broker.close();
      await X.cl.close();
    }
  });

  it('history: publishes stay in order in the stream and live when Redis has not cached the script yet (fresh server, SCRIPT FLUSH)', async () => {
    // A restarted Redis has an empty script cache. Publishing by EVALSHA with an EVAL retry on
    // NOSCRIPT let publishes sent after the first retry had loaded the script overtake the
    // retries still queued: the stream's order broke and receivers took the late ones for old
    // ones. The broker must send the script itself until Redis has it, so order holds.
    const mk = () => nodeWithSubscriber({ prefix: 'nos:', history: true });
    const A = await mk();
    const B = await mk();
    const n = async () => Number(((await A.cl.sendCommand(['PUBSUB', 'NUMSUB', 'nos:t'])) as unknown[])[1]);
    await poll(async () => (await n()) >= 2, { timeout: 5000, interval: 10, what: 'both subscriptions' });
    const gaps: number[] = [];
    B.broker.on('gap', (_t, _o, missed) => gaps.push(missed));
    const total = 400;
    const want = Array.from({ length: total }, (_, i) => `m${i}`);
    for (let round = 0; round < 2; round++) {
      await A.cl.sendCommand(['SCRIPT', 'FLUSH']);
      // Bursts across event-loop turns, so later bursts are sent while earlier replies come back.
      for (let i = 0; i < total; i++) {
        A.wss.publish('t', `m${i}`);
        if (i % 8 === 7) await new Promise((r) => setImmediate(r));
      }
      await until(() => B.c.got.length >= total * (round + 1) && A.c.got.length >= total * (round + 1), { timeout: 5000, what: `${total} messages at A and B` }).catch(() => {});
      expect(B.c.got.slice(total * round)).toEqual(want);
      expect(A.c.got.slice(total * round)).toEqual(want);
      const stream = (await A.cl.sendCommand(['XRANGE', 'nos:history:{t}', '-', '+', 'COUNT', '2000'], { typeMapping: { 36: Buffer } })) as [Buffer, Buffer[]][];
      const seqs = stream.map(([, f]) => decodeMessage(f[1])!.seq);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
      await A.cl.sendCommand(['DEL', 'nos:history:{t}']);
    }
    expect(gaps).toEqual([]);
    for (const X of [A, B]) {
      X.c.ws.close();
      await stopServer(X.wss);
      await X.broker.close();
      await X.cl.close();
    }
  });

  it('history: during a replay our own echo waits behind the held remote messages (same order on every node), however long the replay takes', async () => {
    // echoTimeout far below the replay's length: an echo that came back and waits behind the
    // replay must not be taken for a lost one (it once was, on a loaded machine).
    const mk = () => nodeWithSubscriber({ prefix: 'ro:', history: true, echoTimeout: 10 });
    const A = await mk();
    const D = await mk();
    const inj = createClient({ url: redis.url });
    inj.on('error', () => {}); // a failed assertion above its close() must not leave an unhandled 'error'
    await inj.connect();
    const n = async () => Number(((await inj.sendCommand(['PUBSUB', 'NUMSUB', 'ro:t'])) as unknown[])[1]);
    await poll(async () => (await n()) >= 2, { timeout: 5000, interval: 10, what: 'both subscriptions' });
    // A third origin C, publishing through the history script as a broker does.
    const C = Buffer.from('cccccccc');
    const viaScript = (seq: number, text: string) =>
      inj.sendCommand(['EVAL', HISTORY_SCRIPT, '1', 'ro:history:{t}', encodeMessage(C, seq, 0, Buffer.from(text)), 'ro:t', '1000', '0']);
    await viaScript(1, 'c1');
    await until(() => A.c.got.length === 1 && D.c.got.length === 1, { timeout: 5000, what: 'c1' });
    // c2 is in the stream but never published live: c3 is a jump, and A and D replay.
    await inj.sendCommand(['XADD', 'ro:history:{t}', '*', 'm', encodeMessage(C, 2, 0, Buffer.from('c2'))]);
    // Entries that are not messages (skipped) make the replay long enough for a1's echo to arrive during it.
    const junk = Buffer.alloc(20_000, 0x7e);
    await Promise.all(Array.from({ length: 400 }, () => inj.sendCommand(['XADD', 'ro:history:{t}', '*', 'm', junk])));
    void viaScript(3, 'c3');
    A.wss.publish('t', 'a1'); // its echo reaches A while A replays (or before c3: the same order on both)
    await until(() => A.c.got.length === 4 && D.c.got.length === 4, { timeout: 5000, what: 'four messages' });
    expect(A.c.got).toEqual(D.c.got);
    await inj.close();
    for (const X of [A, D]) {
      X.c.ws.close();
      await stopServer(X.wss);
      await X.broker.close();
      await X.cl.close();
    }
  });

  it('localFirst delivers at once, while the echo cannot come back (Redis stalled); the default waits for it', async () => {
    const own = await RedisServer.start();
    const mk = async (localFirst: boolean) => {
      const cl = createClient({ url: own.url });
      cl.on('error', () => {});
      await cl.connect();
      const broker = new RedisBroker({ client: cl, localFirst, echoTimeout: 60_000, prefix: 'lf:' });
      broker.on('error', () => {});
      await broker.ready;
      const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', broker });
      await once(wss, 'listening');
      wss.on('connection', (ws) => ws.subscribe('lf'));
      const c = await client(`ws://127.0.0.1:${(wss.address() as { port: number }).port}/`);
      await until(() => wss.subscriberCount('lf') === 1);
      return { cl, broker, wss, c };
    };
    const L = await mk(true);
    const E = await mk(false);
    try {
      const n = async () => Number(((await L.cl.sendCommand(['PUBSUB', 'NUMSUB', 'lf:lf'])) as unknown[])[1]);
      await poll(async () => (await n()) >= 2, { timeout: 5000, interval: 10, what: 'both subscriptions' });
      // One round trip through Redis first: both brokers have their subscription confirmed (before
      // that, a publish is delivered locally at once by design).
      E.wss.publish('lf', 'warm');
      await until(() => L.c.got.length === 1 && E.c.got.length === 1, { timeout: 5000, what: 'warm-up echo' });
      L.c.got.length = 0;
      E.c.got.length = 0;
      await own.stall(); // connections stay up, nothing comes back
      expect(L.wss.publish('lf', 'now')).toBe(1);
      expect(E.wss.publish('lf', 'later')).toBe(1);
      await until(() => L.c.got.length === 1, { timeout: 2000, what: 'localFirst delivery with the echo path blocked' });
      expect(L.c.got).toEqual(['now']);
      await sleep(100);
      expect(E.c.got).toEqual([]); // the default waits for its echo (the check that the path is blocked)
      own.resume();
      await until(() => E.c.got.length === 2 && L.c.got.length === 2, { timeout: 5000, what: 'echoes after SIGCONT' });
      expect(L.c.got).toEqual(['now', 'later']); // 'now' once: its echo is not delivered again
      expect(E.c.got.sort()).toEqual(['later', 'now']);
    } finally {
      own.proc?.kill('SIGCONT');
      for (const X of [L, E]) {
        X.c.ws.close();
        await stopServer(X.wss);
        await X.broker.close();
        await X.cl.close().catch(() => {});
      }
      await own.stop();
    }
  }, 20_000);

  it('messages it cannot read (another format version, unknown flags) are counted, with one error per origin and version', async () => {
    const cl = createClient({ url: redis.url });
    cl.on('error', () => {});
    await cl.connect();
    const broker = new RedisBroker({ client: cl, prefix: 'uv:' });
    const errors: string[] = [];
    broker.on('error', (e) => errors.push(e.message));
    await broker.ready;
    broker.subscribe('t');
    const n = async () => Number(((await cl.sendCommand(['PUBSUB', 'NUMSUB', 'uv:t'])) as unknown[])[1]);
    await poll(async () => (await n()) >= 1, { timeout: 5000, interval: 10, what: 'the subscription' });
    const X = Buffer.from('xxxxxxxx');
    const Y = Buffer.from('yyyyyyyy');
    const v2 = (o: Buffer) => {
      const m = encodeMessage(o, 1, 0, Buffer.from('p'));
      m[0] = 2;
      return m;
    };
    const badFlags = encodeMessage(X, 1, 0x80, Buffer.from('p'));
    for (const m of [v2(X), v2(X), v2(Y), badFlags, badFlags]) await cl.publish('uv:t', m);
    await until(() => broker.unreadable === 5, { timeout: 5000, what: 'five unreadable' });
    expect(errors.length).toBe(3);
    expect(errors[0]).toMatch(/7878787878787878: format version 2/);
    expect(errors[1]).toMatch(/7979797979797979: format version 2/);
    expect(errors[2]).toMatch(/unknown flag bits 0x80/);
    await broker.close();
    await cl.close();
  });
});
