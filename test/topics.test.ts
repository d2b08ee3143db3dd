// Topics in one process: the uWS/Bun API, frame-once delivery, churn, memory freed on close, and a
// subscriber that never reads.
import { describe, it, expect, afterEach } from 'vitest';
import * as net from 'node:net';
import { once } from 'node:events';
import { WebSocket, WebSocketServer } from '../src/index.js';
import { PerMessageDeflate } from '../src/deflate/deflate.js';
import { MAX_TOPIC_LENGTH } from '../src/pubsub/topics.js';
import { sleep, startServer, stopServer, until, upgradeRequest, TEST_KEY } from './helpers.js';

const open: WebSocketServer[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((w) => stopServer(w)));
});

/** A server whose connections subscribe to the topics in their URL (?t=a,b). */
async function topicServer(opts: Record<string, unknown> = {}) {
  const s = await startServer(opts);
  open.push(s.wss);
  const server: WebSocket[] = [];
  s.wss.on('connection', (ws, req) => {
    const t = new URL(req.url!, 'http://x').searchParams.get('t');
    for (const topic of t ? t.split(',') : []) ws.subscribe(topic);
    server.push(ws);
    ws.on('message', (d, isBinary) => {
      // "pub:<topic>:<text>" publishes from this socket (ws.publish skips the sender).
      const m = /^pub:([^:]+):(.*)$/s.exec(d.toString());
      if (m && !isBinary) ws.publish(m[1], m[2]);
    });
  });
  return { ...s, server };
}

/** A client that records every message; resolves once open. */
async function client(url: string, opts: Record<string, unknown> = {}) {
  const ws = new WebSocket(url, opts);
  const got: string[] = [];
  ws.on('message', (d, isBinary) => got.push(isBinary ? `bin:${(d as Buffer).toString('hex')}` : d.toString()));
  await once(ws, 'open');
  return { ws, got };
}

describe('topics: the API', () => {
  it('subscribe / unsubscribe return whether anything changed; isSubscribed and subscriptions follow', async () => {
    const { wss, url, server } = await topicServer();
    const { ws } = await client(url);
    await until(() => server.length === 1);
    const s = server[0];
    expect(s.subscribe('a')).toBe(true);
    expect(s.subscribe('a')).toBe(false);
    expect(s.subscribe('b')).toBe(true);
    expect(s.isSubscribed('a')).toBe(true);
    expect(s.isSubscribed('c')).toBe(false);
    expect(s.subscriptions.sort()).toEqual(['a', 'b']);
    expect(wss.subscriberCount('a')).toBe(1);
    expect(s.unsubscribe('a')).toBe(true);
    expect(s.unsubscribe('a')).toBe(false);
    expect(s.subscriptions).toEqual(['b']);
    expect(wss.subscriberCount('a')).toBe(0);
    ws.close();
  });

  it('rejects topics that are not 1 to 256 UTF-16 code units, or not well-formed UTF-16', async () => {
    const { server, url, wss } = await topicServer();
    const { ws } = await client(url);
    await until(() => server.length === 1);
    expect(() => server[0].subscribe('')).toThrow(RangeError);
    expect(() => server[0].subscribe('x'.repeat(MAX_TOPIC_LENGTH + 1))).toThrow(RangeError);
    expect(() => server[0].subscribe(42 as unknown as string)).toThrow(TypeError);
    expect(server[0].subscribe('x'.repeat(MAX_TOPIC_LENGTH))).toBe(true);
    expect(() => server[0].subscribe('x'.repeat(MAX_TOPIC_LENGTH + 1))).toThrow(/UTF-16 code units/);
    // Unpaired surrogates would all become U+FFFD at Redis (one channel): rejected, on every path.
    for (const bad of ['\uD800', '\uDBFF', 'a\uDC00', '\uDC00\uD800', 'x\uD83D']) {
      expect(() => server[0].subscribe(bad)).toThrow(/unpaired surrogates/);
      expect(() => server[0].publish(bad, 'm')).toThrow(/unpaired surrogates/);
      expect(() => wss.publish(bad, 'm')).toThrow(/unpaired surrogates/);
    }
    expect(server[0].subscribe('\uD83D\uDE00')).toBe(true); // a pair is fine
    expect(server[0].subscribe('\uFFFD')).toBe(true);
    ws.close();
  });

  it('client-side connections have no topics', async () => {
    const { url } = await topicServer();
    const { ws } = await client(url);
    expect(() => ws.subscribe('a')).toThrow(/server-side/);
    expect(ws.subscriptions).toEqual([]);
    ws.close();
  });

  it('wss.publish reaches every subscriber and nobody else; returns the local count', async () => {
    const { wss, url, server } = await topicServer();
    const a = await client(`${url}/?t=news`);
    const b = await client(`${url}/?t=news,sport`);
    const c = await client(`${url}/?t=sport`);
    await until(() => server.length === 3);
    expect(wss.publish('news', 'n1')).toBe(2);
    expect(wss.publish('sport', Buffer.from([1, 2]))).toBe(2);
    expect(wss.publish('nobody', 'x')).toBe(0);
    expect(wss.publish('news', 'n2', { binary: true })).toBe(2);
    await until(() => a.got.length === 2 && b.got.length === 3 && c.got.length === 1);
    expect(a.got).toEqual(['n1', 'bin:6e32']);
    expect(b.got).toEqual(['n1', 'bin:0102', 'bin:6e32']);
    expect(c.got).toEqual(['bin:0102']);
    for (const x of [a, b, c]) x.ws.close();
  });

  it('ws.publish skips the sender', async () => {
    const { url, server } = await topicServer();
    const a = await client(`${url}/?t=room`);
    const b = await client(`${url}/?t=room`);
    await until(() => server.length === 2);
    a.ws.send('pub:room:hello');
    await until(() => b.got.length === 1);
    await sleep(50);
    expect(b.got).toEqual(['hello']);
    expect(a.got).toEqual([]);
    a.ws.close();
    b.ws.close();
  });

  it('subscriptions end when the socket closes; 10,000 subscriptions are freed', async () => {
    const { wss, url, server } = await topicServer();
    const clients = await Promise.all(Array.from({ length: 100 }, () => client(url)));
    await until(() => server.length === 100);
    for (const s of server) for (let t = 0; t < 100; t++) s.subscribe(`topic-${t}`);
    expect(wss.topicCount).toBe(100);
    expect(wss.subscriberCount('topic-7')).toBe(100);
    for (const c of clients.slice(0, 50)) c.ws.close();
    await until(() => wss.clients.size === 50);
    expect(wss.subscriberCount('topic-7')).toBe(50);
    for (const c of clients.slice(50)) c.ws.terminate();
    await until(() => wss.clients.size === 0);
    expect(wss.topicCount).toBe(0);
    expect(wss.subscriberCount('topic-7')).toBe(0);
    for (const s of server) expect(s.subscriptions).toEqual([]);
  });

  it('survives subscribe / unsubscribe churn: only current subscribers get each message', async () => {
    const { wss, url, server } = await topicServer();
    const clients = await Promise.all(Array.from({ length: 20 }, () => client(url)));
    await until(() => server.length === 20);
    // Deterministic churn: expected messages are computed from the subscription state at each publish.
    let seed = 12345;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    const expected = server.map(() => [] as string[]);
    for (let round = 0; round < 400; round++) {
      const i = rand(20);
      const topic = `t${rand(4)}`;
      if (rand(2) === 0) server[i].subscribe(topic);
      else server[i].unsubscribe(topic);
      const pub = `t${rand(4)}`;
      const msg = `${round}:${pub}`;
      const n = wss.publish(pub, msg);
      let count = 0;
      server.forEach((s, k) => {
        if (s.isSubscribed(pub)) {
          expected[k].push(msg);
          count++;
        }
      });
      expect(n).toBe(count);
      for (let t = 0; t < 4; t++) {
        expect(wss.subscriberCount(`t${t}`)).toBe(server.filter((s) => s.isSubscribed(`t${t}`)).length);
      }
    }
    // Clients connected concurrently, so the server's order is not theirs: compare as multisets.
    const total = expected.reduce((a, e) => a + e.length, 0);
    await until(() => clients.reduce((a, c) => a + c.got.length, 0) === total);
    const want = expected.map((e) => e.join('|')).sort();
    const have = clients.map((c) => c.got.join('|')).sort();
    expect(have).toEqual(want);
    for (const c of clients) c.ws.close();
  });
});

describe('topics: frame-once delivery', () => {
  it('compresses once per window size with server_no_context_takeover', async () => {
    const { wss, url, server } = await topicServer({ perMessageDeflate: { serverNoContextTakeover: true, threshold: 16 } });
    const shared = PerMessageDeflate.prototype.compressShared;
    let calls = 0;
    PerMessageDeflate.prototype.compressShared = function (this: PerMessageDeflate, ...args: Parameters<typeof shared>) {
      calls++;
      return shared.apply(this, args);
    };
    try {
      const a = await client(`${url}/?t=z`, { perMessageDeflate: { serverMaxWindowBits: 10 } });
      const b = await client(`${url}/?t=z`, { perMessageDeflate: { serverMaxWindowBits: 10 } });
      const c = await client(`${url}/?t=z`, { perMessageDeflate: { serverMaxWindowBits: 15 } });
      const d = await client(`${url}/?t=z`, { perMessageDeflate: false });
      await until(() => server.length === 4);
      const text = 'compress me '.repeat(50);
      expect(wss.publish('z', text)).toBe(4);
      await until(() => [a, b, c, d].every((x) => x.got.length === 1));
      for (const x of [a, b, c, d]) expect(x.got[0]).toBe(text);
      expect(calls).toBe(2); // window 10 and window 15
      expect(wss.publish('z', text, { compress: false })).toBe(4);
      await until(() => [a, b, c, d].every((x) => x.got.length === 2));
      expect(calls).toBe(2);
      for (const x of [a, b, c, d]) x.ws.close();
    } finally {
      PerMessageDeflate.prototype.compressShared = shared;
    }
  });

  it('a subscriber that never reads is dropped at maxBackpressure; the others get everything', async () => {
    const { wss, port, server } = await topicServer({ maxBackpressure: 512 * 1024 });
    // The slow one: a raw socket that completes the handshake, then never reads again.
    const slow = net.connect(port, '127.0.0.1');
    await once(slow, 'connect');
    slow.write(upgradeRequest('/?t=feed', { Host: `127.0.0.1:${port}`, Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': TEST_KEY, 'Sec-WebSocket-Version': '13' }));
    await once(slow, 'data');
    slow.pause();
    const fast = await Promise.all([0, 1, 2].map(() => client(`ws://127.0.0.1:${port}/?t=feed`)));
    await until(() => server.length === 4);
    const slowServer = server[0];
    let slowClose = 0;
    slowServer.on('close', (code) => (slowClose = code));
    slowServer.on('error', () => {});
    const chunk = Buffer.alloc(16 * 1024, 7);
    const N = 400; // 6.4 MB in all: far past the slow socket's buffers and the 512 KiB bound
    let sent = 0;
    // Publish in bursts, yielding so that sockets flush; bounded in time.
    const end = Date.now() + 15_000;
    while (sent < N && Date.now() < end) {
      for (let i = 0; i < 4; i++) wss.publish('feed', chunk);
      sent += 4;
      await new Promise((r) => setImmediate(r));
    }
    await until(() => fast.every((f) => f.got.length === N || f.ws.readyState !== WebSocket.OPEN), { timeout: 10_000 });
    expect(fast.map((f) => f.got.length)).toEqual([N, N, N]);
    expect(slowClose).toBe(1008);
    expect(wss.subscriberCount('feed')).toBe(3);
    slow.destroy();
    for (const f of fast) f.ws.close();
  });
});

describe('topics: flow control from the broker (Broker#congested)', () => {
  /** A broker that records publishes and is congested while `congested` says so. */
  function gateBroker() {
    const b = {
      published: [] as string[],
      congested: false,
      /** Congested once this many were published. */
      limit: Infinity,
      waiters: [] as (() => void)[],
      attach() {},
      detach() {},
      subscribe() {},
      unsubscribe() {},
      publish(_t: string, payload: Buffer) {
        b.published.push(payload.toString());
        if (b.published.length === b.limit) b.congested = true;
        return 0;
      },
      onceDrained(fn: () => void) {
        if (!b.congested) fn();
        else b.waiters.push(fn);
      },
      drain() {
        b.congested = false;
        for (const fn of b.waiters.splice(0)) fn();
      },
    };
    return b;
  }

  it('a connection publishing from its message handler stops at once (also the rest of its read), then goes on in order', async () => {
    const broker = gateBroker();
    broker.limit = 3;
    const { wss, port } = await startServer({ broker } as never);
    open.push(wss);
    wss.on('connection', (ws) => {
      ws.on('message', (d) => wss.publish('t', d as Buffer));
    });
    const { RawClient, raw } = await import('./helpers.js');
    const K = [0x11, 0x22, 0x33, 0x44];
    const c = await RawClient.connect(port);
    // 50 messages and a ping in one write: one read.
    const frames = Array.from({ length: 50 }, (_, i) => raw({ opcode: 1, payload: Buffer.from(`m${i}`), key: K }));
    frames.splice(25, 0, raw({ opcode: 9, payload: Buffer.from('p'), key: K }));
    c.send(Buffer.concat(frames));
    await sleep(200);
    expect(broker.published).toEqual(['m0', 'm1', 'm2']);
    expect(c.frames.filter((f) => f.opcode === 10)).toEqual([]); // the ping waits behind them, in order
    // Drained: the held frames go on; the broker congests again at 10, and drains again.
    broker.limit = 10;
    broker.drain();
    expect(broker.published.length).toBe(10);
    broker.drain();
    await until(() => broker.published.length === 50 && c.frames.some((f) => f.opcode === 10), { timeout: 3000, what: 'the rest' });
    expect(broker.published).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`));
    expect(c.frames.find((f) => f.opcode === 10)!.payload.toString()).toBe('p');
    // Reading goes on after the drain: a later message is published at once.
    c.send(raw({ opcode: 1, payload: Buffer.from('later'), key: K }));
    await until(() => broker.published.includes('later'), { timeout: 3000, what: 'a later message' });
    c.socket.destroy();
  });

  it('a violation read after held frames waits for them: the whole messages before it are published, then 1002', async () => {
    const broker = gateBroker();
    broker.limit = 1;
    const { wss, port } = await startServer({ broker } as never);
    open.push(wss);
    wss.on('connection', (ws) => ws.on('message', (d) => wss.publish('t', d as Buffer)));
    const { RawClient, raw } = await import('./helpers.js');
    const K = [0x11, 0x22, 0x33, 0x44];
    const c = await RawClient.connect(port);
    const frames = Array.from({ length: 5 }, (_, i) => raw({ opcode: 1, payload: Buffer.from(`m${i}`), key: K }));
    frames.push(raw({ opcode: 3, payload: Buffer.from('?'), key: K })); // reserved opcode
    c.send(Buffer.concat(frames));
    await sleep(150);
    expect(broker.published).toEqual(['m0']);
    expect(c.closeFrame()).toBeUndefined();
    broker.drain();
    await c.until(() => c.closeFrame() !== undefined, { what: 'the close frame' });
    expect(broker.published).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect(c.closeFrame()![0]).toBe(1002);
    c.socket.destroy();
  });

  it('a held connection that is closed stays held (a closing flood is bounded too) and completes the closing handshake once the broker drains', async () => {
    const broker = gateBroker();
    broker.limit = 1;
    const { wss, url } = await startServer({ broker, closeTimeout: 5000 } as never);
    wss.on('connection', (ws) => ws.on('message', (d) => wss.publish('t', d as Buffer)));
    const c = await client(url);
    for (let i = 0; i < 20; i++) c.ws.send(`m${i}`);
    await until(() => broker.published.length === 1, { timeout: 3000, what: 'the first publish' });
    const closed = new Promise<number>((r) => c.ws.once('close', (code) => r(code)));
    const done = new Promise<void>((r) => wss.close(() => r()));
    await sleep(300);
    expect(broker.published.length).toBe(1); // still held while closing
    const t0 = Date.now();
    broker.drain();
    await done;
    expect(await closed).toBe(1001);
    expect(Date.now() - t0).toBeLessThan(2000); // the handshake, not closeTimeout
    expect(broker.published.length).toBe(20); // what it sent before its close frame, in order
    expect(broker.published).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
  });

  it('ws.publish from a for-await loop (outside any handler) holds the publishing socket', async () => {
    const broker = gateBroker();
    broker.limit = 2;
    const { wss, url } = await startServer({ broker } as never);
    open.push(wss);
    wss.on('connection', async (ws) => {
      ws.subscribe('t');
      for await (const m of ws) ws.publish('t', m as string);
    });
    const c = await client(url);
    const pad = '.'.repeat(8 * 1024); // 3.2 MB in all: several reads
    for (let i = 0; i < 400; i++) c.ws.send(`m${i}${pad}`);
    await until(() => broker.published.length >= 2, { timeout: 3000, what: 'the first publishes' });
    await sleep(300);
    // Held: the socket is not read on (what its iterator had buffered still goes: about a read's worth).
    const held = broker.published.length;
    expect(held).toBeLessThan(300);
    await sleep(200);
    expect(broker.published.length).toBe(held);
    broker.limit = Infinity;
    broker.drain();
    await until(() => broker.published.length === 400, { timeout: 3000, what: 'the rest after the drain' });
    expect(broker.published).toEqual(Array.from({ length: 400 }, (_, i) => `m${i}${pad}`));
    c.ws.close();
  });
});
