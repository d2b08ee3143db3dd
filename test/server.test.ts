// Server behaviour over real sockets: handshake statuses, lifecycle, limits, the connection API.
import { afterEach, describe, expect, it } from 'vitest';
import WS from 'ws';
import * as net from 'node:net';
import * as http from 'node:http';
import { once } from 'node:events';
import { WebSocket, WebSocketServer } from '../src/index.js';
import { encodeClosePayload } from '../src/protocol/frame.js';
import { PIN_BOUND, RawClient, nextEvent, raw, sleep, startRoutedServer, startServer, stopServer, until, upgradeRequest, within } from './helpers.js';

const K = [9, 8, 7, 6];
const servers: WebSocketServer[] = [];
async function server(opts: Parameters<typeof startServer>[0] = {}) {
  const s = await startServer(opts);
  servers.push(s.wss);
  return s;
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => stopServer(s)));
});

/** A server and a `ws` client connected to it: the client, and our server-side connection. */
async function pair(opts: Parameters<typeof startServer>[0] = {}) {
  const s = await server(opts);
  const serverWs = nextEvent<[WebSocket]>(s.wss, 'connection');
  const c = new WS(s.url);
  await once(c, 'open');
  const [ws] = await serverWs;
  return { ...s, c, ws };
}

function status(res: string): number {
  return Number(res.split(' ')[1]);
}

describe('handshake over real sockets', () => {
  it('answers 101 with the RFC 6455 §1.3 accept value', async () => {
    const { port } = await server();
    const c = await RawClient.connect(port);
    expect(status(c.response)).toBe(101);
    expect(c.response).toMatch(/\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
    c.socket.destroy();
  });

  const cases: [string, string, number][] = [
    ['a wrong path', upgradeRequest('/nope'), 404],
    ['version 8', upgradeRequest('/chat', { 'Sec-WebSocket-Version': '8' }), 426],
    ['a missing key', upgradeRequest('/chat').replace(/Sec-WebSocket-Key: .*\r\n/, ''), 400],
    ['a key of 15 bytes', upgradeRequest('/chat', { 'Sec-WebSocket-Key': Buffer.alloc(15).toString('base64') }), 400],
    ['a duplicated key', upgradeRequest('/chat').replace('\r\n\r\n', `\r\nSec-WebSocket-Key: ${Buffer.alloc(16, 1).toString('base64')}\r\n\r\n`), 400],
    ['a foreign Origin', upgradeRequest('/chat', { Origin: 'https://evil.example' }), 403],
    ['a bad subprotocol list', upgradeRequest('/chat', { 'Sec-WebSocket-Protocol': 'a,,b' }), 400],
    ['POST', upgradeRequest('/chat').replace('GET', 'POST'), 405],
  ];
  it.each(cases)('refuses %s with the right status and closes the socket', async (_n, req, code) => {
    const { port } = await server({ path: '/chat', allowedOrigins: ['https://good.example'] });
    const c = await RawClient.connect(port, req);
    expect(status(c.response)).toBe(code);
    if (code === 426) expect(c.response).toMatch(/Sec-WebSocket-Version: 13/);
    await c.until(() => c.closed);
  });

  it('accepts an allowed Origin and matches Upgrade/Connection tokens case-insensitively', async () => {
    const { port } = await server({ path: '/chat', allowedOrigins: ['https://good.example'] });
    const req = upgradeRequest('/chat', { Origin: 'https://GOOD.example', Connection: 'keep-alive, UPGRADE', Upgrade: 'WebSocket' });
    const c = await RawClient.connect(port, req);
    expect(status(c.response)).toBe(101);
    c.socket.destroy();
  });

  it('answers a plain HTTP request with 426', async () => {
    const { port } = await server();
    const res = await new Promise<http.IncomingMessage>((resolve) => http.get(`http://127.0.0.1:${port}/`, resolve));
    expect(res.statusCode).toBe(426);
    res.resume();
  });

  it('refuses with 401 when verifyClient says no (sync and async)', async () => {
    const { port } = await server({ verifyClient: () => false });
    expect(status((await RawClient.connect(port)).response)).toBe(401);
    const { port: p2 } = await server({ verifyClient: (_i: unknown, cb: (ok: boolean, code?: number) => void) => setTimeout(() => cb(false, 429), 5) });
    expect(status((await RawClient.connect(p2)).response)).toBe(429);
  });

  it('lets a "headers" listener add response headers', async () => {
    const { wss, port } = await server();
    wss.on('headers', (headers: string[]) => headers.push('Set-Cookie: a=b'));
    const c = await RawClient.connect(port);
    expect(c.response).toMatch(/\r\nSet-Cookie: a=b/);
    c.socket.destroy();
  });

  it('closes a socket whose handshake is not finished within handshakeTimeout', async () => {
    const { port } = await server({ handshakeTimeout: 300 });
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    await once(s, 'connect');
    s.write('GET / HTTP/1.1\r\nHost: x\r\n');
    s.resume();
    const t0 = Date.now();
    await nextEvent(s, 'close', { timeout: 5000 });
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('shares one HTTP server among servers on their own paths: each gets its own, others get 404, an overridden shouldHandle is asked', async () => {
    const srv = http.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    class Rooms extends WebSocketServer {
      shouldHandle(req: http.IncomingMessage): boolean {
        return (req.url ?? '').startsWith('/room/');
      }
    }
    const a = new WebSocketServer({ server: srv, path: '/a' });
    const b = new WebSocketServer({ server: srv, path: '/b' });
    const rooms = new Rooms({ server: srv, path: '/exact' });
    for (const [w, name] of [[a, 'a'], [b, 'b'], [rooms, 'rooms']] as const) {
      w.on('connection', (ws: WebSocket, req: http.IncomingMessage) => ws.send(`${name} ${req.url}`));
    }
    try {
      for (const [path, want] of [['/a', 'a /a'], ['/b?x=1', 'b /b?x=1'], ['/room/7', 'rooms /room/7']]) {
        const c = new WS(`ws://127.0.0.1:${port}${path}`);
        const [d] = await nextEvent<[Buffer]>(c, 'message');
        expect(d.toString()).toBe(want);
        c.terminate();
      }
      for (const path of ['/c', '/exact']) {
        const c = await RawClient.connect(port, upgradeRequest(path));
        expect(status(c.response), path).toBe(404);
        await c.until(() => c.closed);
      }
      // Another library's 'upgrade' listener on the same server: what none of ours serves is left to it.
      srv.on('upgrade', (req, socket) => {
        if (req.url === '/theirs') socket.end('HTTP/1.1 418 I am a teapot\r\nConnection: close\r\n\r\n');
      });
      const t = await RawClient.connect(port, upgradeRequest('/theirs'));
      expect(status(t.response)).toBe(418);
      t.socket.destroy();
      const c = new WS(`ws://127.0.0.1:${port}/b`);
      expect((await nextEvent<[Buffer]>(c, 'message'))[0].toString()).toBe('b /b');
      c.terminate();
    } finally {
      for (const w of [a, b, rooms]) await stopServer(w);
      srv.close();
    }
  });

  it('works in noServer mode with handleUpgrade', async () => {
    const wss = new WebSocketServer({ noServer: true });
    const srv = http.createServer();
    srv.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req)));
    wss.on('connection', (ws: WebSocket) => ws.send('from noServer'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const c = new WS(`ws://127.0.0.1:${(srv.address() as net.AddressInfo).port}`);
      const [d] = await nextEvent<[Buffer]>(c, 'message');
      expect(d.toString()).toBe('from noServer');
      c.terminate();
    } finally {
      await stopServer(wss);
      srv.close();
    }
  });
});

describe('protocol errors over real sockets', () => {
  it.each([
    ['an unmasked client frame', raw({ opcode: 1, payload: Buffer.from('x') }), 1002],
    ['invalid UTF-8', raw({ opcode: 1, payload: Buffer.from([0xff]), key: K }), 1007],
    ['a too-large declared length', raw({ opcode: 2, declared: 2n ** 40n, form: 64, key: K }), 1009],
    ['RSV2', raw({ opcode: 1, rsv: 2, key: K }), 1002],
  ])('closes with the right code on %s, even with no error listener, and the server keeps serving', async (_n, bytes, code) => {
    const { wss, port, url } = await server();
    const serverSideClose = new Promise<number>((r) => wss.once('connection', (ws: WebSocket) => ws.on('close', r)));
    const bad = await RawClient.connect(port);
    bad.send(bytes);
    await bad.until(() => bad.closeFrame() !== undefined && bad.closed);
    expect(bad.closeFrame()![0]).toBe(code);
    expect(await serverSideClose).toBe(code);
    // An innocent client still works.
    const good = new WS(url);
    wss.once('connection', (ws: WebSocket) => ws.on('message', (d: Buffer) => ws.send(d)));
    await once(good, 'open');
    good.send('still here');
    const [d] = await nextEvent<[Buffer]>(good, 'message');
    expect(d.toString()).toBe('still here');
    good.terminate();
  });
});

describe('skipUTF8Validation (the ws option name)', () => {
  it('delivers invalid UTF-8 text as is when skipUTF8Validation is set, and fails it with 1007 when not', async () => {
    for (const skip of [true, false]) {
      const { wss, port } = await server({ skipUTF8Validation: skip } as Parameters<typeof startServer>[0]);
      const got = new Promise<{ data?: Buffer; code?: number }>((r) => wss.once('connection', (ws: WebSocket) => {
        ws.on('message', (d: Buffer) => r({ data: Buffer.from(d) }));
        ws.on('close', (code: number) => r({ code }));
      }));
      const c = await RawClient.connect(port);
      c.send(raw({ opcode: 1, payload: Buffer.from([0x61, 0xff, 0x62]), key: K }));
      expect(await got).toEqual(skip ? { data: Buffer.from([0x61, 0xff, 0x62]) } : { code: 1007 });
      c.socket.destroy();
    }
  });
});

describe('connection lifecycle', () => {
  it('heartbeat terminates a peer that never answers pings', async () => {
    const { wss, port } = await server({ heartbeatInterval: 100 });
    const closed = new Promise<number>((resolve) => wss.on('connection', (ws: WebSocket) => ws.on('close', resolve)));
    const silent = await RawClient.connect(port);
    silent.socket.pause(); // reads nothing, answers nothing
    const t0 = Date.now();
    expect(await closed).toBe(1006);
    expect(Date.now() - t0).toBeLessThan(2000);
    silent.socket.destroy();
  });

  it('heartbeat keeps a peer that answers pings', async () => {
    // 200 ms: the peer answers each ping within one interval even on a loaded machine (at 50 ms a
    // starved fork in CI once missed one and was rightly terminated).
    const { wss, url } = await server({ heartbeatInterval: 200 });
    const c = new WS(url);
    await once(c, 'open');
    let pings = 0;
    c.on('ping', () => pings++);
    await until(() => pings >= 3, { timeout: 5000, what: 'three pings' });
    expect(c.readyState).toBe(WS.OPEN);
    expect(wss.clients.size).toBe(1);
    c.terminate();
  });

  it('heartbeat and idleTimeout do not judge a connection whose reading is paused (its pongs wait unread), and do once it resumes', async () => {
    const hb = await server({ heartbeatInterval: 100 });
    const conn = nextEvent<[WebSocket]>(hb.wss, 'connection');
    const c = new WS(hb.url); // ws answers every ping
    await once(c, 'open');
    const [ws] = await conn;
    let closed = false;
    ws.on('close', () => (closed = true));
    ws.pause();
    await sleep(1000); // ten heartbeats
    expect(closed).toBe(false);
    ws.resume();
    // A for-await consumer that is behind (64 messages) pauses reading too, here for about a second.
    for (let i = 0; i < 100; i++) c.send(String(i));
    let seen = 0;
    for await (const m of ws) {
      expect(String(m)).toBe(String(seen));
      if (++seen === 100) break;
      await sleep(15);
    }
    expect(closed).toBe(false);
    expect(c.readyState).toBe(WS.OPEN);
    c.terminate();

    const idle = await server({ idleTimeout: 300 });
    const conn2 = nextEvent<[WebSocket]>(idle.wss, 'connection');
    const d = new WS(idle.url);
    await once(d, 'open');
    const [ws2] = await conn2;
    let closed2 = false;
    d.on('close', () => (closed2 = true));
    ws2.pause();
    await sleep(1000); // three idle timeouts
    expect(closed2).toBe(false);
    const closing = nextEvent<[number]>(d, 'close', { timeout: 5000, what: 'the idle close' });
    ws2.resume();
    expect((await closing)[0]).toBe(1001);
  });

  it('closes an idle connection with 1001 after idleTimeout', async () => {
    const { url } = await server({ idleTimeout: 200 });
    const c = new WS(url);
    const [code, reason] = await nextEvent<[number, Buffer]>(c, 'close', { timeout: 3000 });
    expect([code, reason.toString()]).toEqual([1001, 'idle timeout']);
  });

  it('graceful shutdown sends 1001 to every client and emits close', async () => {
    const { wss, url } = await startServer();
    const clients = await Promise.all(Array.from({ length: 5 }, async () => {
      const c = new WS(url);
      await once(c, 'open');
      return c;
    }));
    const codes = Promise.all(clients.map((c) => nextEvent<[number]>(c, 'close').then(([code]) => code)));
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    expect(await codes).toEqual([1001, 1001, 1001, 1001, 1001]);
    expect(wss.clients.size).toBe(0);
    // The port is released: a new connection is refused.
    const c = new WS(url);
    const [err] = await nextEvent<[Error]>(c, 'error');
    expect((err as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
  });

  it('drops a slow reader that exceeds maxBackpressure with 1008, and other clients keep working', async () => {
    const { wss, port, url } = await server({ maxBackpressure: 1 << 20 });
    const serverWs = nextEvent<[WebSocket]>(wss, 'connection');
    const slow = await RawClient.connect(port);
    slow.socket.pause();
    const [ws] = await serverWs;
    const closed = nextEvent<[number]>(ws, 'close', { timeout: 10_000 });
    const chunk = Buffer.alloc(64 * 1024);
    for (let i = 0; i < 200 && ws.readyState === WebSocket.OPEN; i++) {
      ws.send(chunk);
      await new Promise((r) => setImmediate(r));
    }
    const [code] = await closed;
    expect(code).toBe(1008);
    const good = new WS(url);
    await once(good, 'open');
    good.terminate();
    slow.socket.destroy();
  });

  it('sends one message larger than maxBackpressure on an idle connection (only a backlog counts)', async () => {
    const { wss, url } = await server({ maxBackpressure: 64 * 1024 });
    wss.on('connection', (ws: WebSocket) => ws.send(Buffer.alloc(1 << 20, 7)));
    const c = new WS(url);
    const [data] = await nextEvent<[Buffer]>(c, 'message');
    expect(data.length).toBe(1 << 20);
    expect(c.readyState).toBe(WS.OPEN);
    c.terminate();
  });

  it('broadcasts the same frame to every client except one', async () => {
    const { wss, url } = await server();
    const conns: WebSocket[] = [];
    wss.on('connection', (ws: WebSocket) => conns.push(ws));
    const clients = await Promise.all(Array.from({ length: 4 }, async () => {
      const c = new WS(url);
      await once(c, 'open');
      return c;
    }));
    await sleep(20);
    const got = clients.map((c) => new Promise<string>((r) => c.once('message', (d: Buffer) => r(d.toString()))));
    expect(wss.broadcast('news', { except: conns[0] })).toBe(3);
    const received = await Promise.race([Promise.all(got.slice(1)), sleep(2000)]);
    expect(received).toEqual(['news', 'news', 'news']);
    let firstGot = false;
    clients[0].on('message', () => (firstGot = true));
    await sleep(50);
    expect(firstGot).toBe(false);
    clients.forEach((c) => c.terminate());
  });

  it('sends a Buffer[] as the concatenation of its pieces, from send and from broadcast alike', async () => {
    const { wss, url } = await server();
    const conn = nextEvent<[WebSocket]>(wss, 'connection');
    const c = new WS(url);
    await once(c, 'open');
    const [ws] = await conn;
    const got: Buffer[] = [];
    c.on('message', (d: Buffer) => got.push(Buffer.from(d)));
    const pieces = () => [Buffer.from('ab'), Buffer.from([0, 1, 2]), Buffer.from('cd')];
    ws.send(pieces());
    expect(wss.broadcast(pieces())).toBe(1);
    expect(wss.broadcast([new Uint8Array([9, 8]) as Buffer])).toBe(1);
    ws.send([1, 2, 250] as unknown as Buffer[]); // byte values, as Buffer.from and ws take them
    await expect.poll(() => got.length).toBe(4);
    expect(got[3]).toEqual(Buffer.from([1, 2, 250]));
    expect(got[0]).toEqual(Buffer.concat(pieces()));
    expect(got[1]).toEqual(Buffer.concat(pieces()));
    expect(got[2]).toEqual(Buffer.from([9, 8]));
    c.terminate();
  });

  it('coalesces the frames sent in one tick into one write', async () => {
    // The server's TCP socket is the one the test handed to handleUpgrade: count the writes on it.
    const s = await startRoutedServer();
    try {
      const conn = nextEvent<[WebSocket]>(s.wss, 'connection');
      const c = new WS(s.url);
      await once(c, 'open');
      const [ws] = await conn;
      const socket = s.socketOf(ws);
      // Counted where every write lands, whether it came through socket.write or the transport
      // wrote the handle itself (raw I/O): Node's stream handle of the socket.
      let writes = 0;
      const handle = (socket as unknown as { _handle: Record<string, (...a: unknown[]) => number> })._handle;
      for (const m of ['writeBuffer', 'writev', 'writeUtf8String', 'writeLatin1String', 'writeAsciiString', 'writeUcs2String']) {
        const orig = handle[m];
        if (typeof orig === 'function') handle[m] = (...a: unknown[]) => { writes++; return orig.apply(handle, a); };
      }
      let n = 0;
      const all = new Promise<void>((r) => c.on('message', () => { if (++n === 100) r(); }));
      for (let i = 0; i < 100; i++) ws.send(`m${i}`);
      await within(all, { what: '100 messages' });
      expect(writes).toBe(1);
      c.terminate();
    } finally {
      await s.close();
    }
  });
});

describe('the upgraded socket, as the application sees it (raw handle I/O, and with WASMWS_RAW_IO=off the socket\'s own)', () => {
  type Server = Awaited<ReturnType<typeof startRoutedServer>>;
  /** A raw client connected to `s`: the client, the server-side WebSocket and its TCP socket. */
  const rawPeer = async (s: Server) => {
    const conn = nextEvent<[WebSocket]>(s.wss, 'connection');
    const c = await RawClient.connect(s.port);
    const [ws] = await conn;
    return { c, ws, socket: s.socketOf(ws) };
  };
  /** Run `body` against a routed server and one raw peer; the server is closed after, whatever happens. */
  const withRawPeer = async (body: (p: Awaited<ReturnType<typeof rawPeer>> & { s: Server }) => Promise<void>) => {
    const s = await startRoutedServer();
    try {
      await body({ s, ...(await rawPeer(s)) });
    } finally {
      await s.close();
    }
  };

  it('socket.bytesRead and bytesWritten count every byte both ways', () => withRawPeer(async ({ c, ws, socket }) => {
    const read0 = socket.bytesRead;
    const written0 = socket.bytesWritten;
    ws.on('message', (d, isBinary) => ws.send(d as Buffer, { binary: isBinary }));
    let sent = 0;
    for (let i = 0; i < 50; i++) {
      const f = raw({ opcode: 2, payload: Buffer.alloc(i * 37, i), key: K });
      sent += f.length;
      c.send(f);
    }
    await c.until(() => c.frames.length === 50, { what: '50 echoes' });
    const echoed = c.frames.reduce((n, f) => n + f.payload.length + (f.payload.length < 126 ? 2 : 4), 0);
    expect(socket.bytesRead - read0).toBe(sent);
    expect(socket.bytesWritten - written0).toBe(echoed);
    c.socket.destroy();
  }));

  it("a timeout set on the upgraded socket counts the connection's reads and writes as activity", () => withRawPeer(async ({ c, ws, socket }) => {
    ws.on('message', (d) => ws.send(d as Buffer));
    let timeouts = 0;
    socket.on('timeout', () => timeouts++);
    socket.setTimeout(400);
    // Traffic every 50 ms for 1.2 s: never 400 ms without a read and a write.
    for (let i = 0; i < 24; i++) {
      c.send(raw({ opcode: 2, payload: Buffer.from([i]), key: K }));
      await sleep(50);
    }
    await c.until(() => c.frames.length === 24, { what: '24 echoes' });
    expect(timeouts).toBe(0);
    // Then quiet: the timeout fires.
    await until(() => timeouts > 0, { timeout: 3000, what: "'timeout' once the connection is quiet" });
    c.socket.destroy();
  }));

  for (const how of ['FIN', 'reset'] as const) {
    it(`a paused connection still notices its peer going away (${how}): close 1006, nothing delivered while paused`, () => withRawPeer(async ({ c, ws }) => {
      ws.pause();
      let messages = 0;
      ws.on('message', () => messages++);
      const closed = nextEvent<[number]>(ws, 'close', { timeout: 5000, what: "'close' of the paused connection" });
      await sleep(50);
      if (how === 'FIN') c.socket.end();
      else c.socket.resetAndDestroy();
      const [code] = await closed;
      expect(code).toBe(1006);
      expect(messages).toBe(0);
    }));
  }

  it('a paused connection keeps what it read, and each payload of it, once resumed, pins at most 64 KiB', () => withRawPeer(async ({ c, ws }) => {
    // Reads are up to 512 KiB: a read kept while paused is copied out in pieces, so a small message
    // the application keeps does not hold the whole read. The peer's write goes to the kernel at
    // once (loopback) and the event loop is held a moment, so the server's next read takes it all.
    ws.pause();
    const got: Buffer[] = [];
    ws.on('message', (d) => got.push(d as Buffer));
    const want = Array.from({ length: 12000 }, (_, i) => Buffer.from(`${i}`.padStart(20, '.')));
    c.send(Buffer.concat(want.map((p) => raw({ opcode: 2, payload: p, key: K })))); // ~310 KB
    const t0 = Date.now();
    while (Date.now() - t0 < 50); // bounded: 50 ms
    await sleep(200);
    expect(got).toHaveLength(0);
    ws.resume();
    await until(() => got.length === want.length, { what: `${want.length} messages after the resume` });
    expect(got.every((g, i) => g.equals(want[i]))).toBe(true);
    expect(Math.max(...got.map((g) => g.buffer.byteLength))).toBeLessThanOrEqual(PIN_BOUND);
    c.socket.destroy();
  }));

  it('payloads the application keeps stay intact while later reads arrive (whole frames, frames over several reads, fragments)', () => withRawPeer(async ({ c, ws }) => {
    // Raw I/O reads every connection into one shared buffer: what is handed out must be a copy.
    const kept: Buffer[] = [];
    ws.on('message', (d) => kept.push(d as Buffer)); // kept as given, not copied
    const body = (i: number, n: number) => Buffer.from(Array.from({ length: n }, (_, j) => (i * 31 + j * 7) & 0xff));
    const want: Buffer[] = [];
    for (let round = 0; round < 20; round++) {
      // A burst of whole frames (one read, most likely), …
      const burst: Buffer[] = [];
      for (let i = 0; i < 10; i++) {
        const p = body(round * 100 + i, 1 + ((round * 10 + i) % 90));
        want.push(p);
        burst.push(raw({ opcode: 2, payload: p, key: K }));
      }
      c.send(Buffer.concat(burst));
      await sleep(5);
      // … a frame whose header and payload come in three reads, …
      const big = body(round * 100 + 50, 3000);
      want.push(big);
      const f = raw({ opcode: 2, payload: big, key: K });
      for (const [a, b] of [[0, 1], [1, 1200], [1200, f.length]]) {
        c.send(f.subarray(a, b));
        await sleep(5);
      }
      // … and a message in two fragments, in two reads.
      const frag = body(round * 100 + 70, 400);
      want.push(frag);
      c.send(raw({ opcode: 2, fin: false, payload: frag.subarray(0, 150), key: K }));
      await sleep(5);
      c.send(raw({ opcode: 0, payload: frag.subarray(150), key: K }));
      await sleep(5);
    }
    await until(() => kept.length === want.length, { what: `${want.length} messages` });
    // Then more traffic through the same buffer before the check.
    for (let i = 0; i < 50; i++) c.send(raw({ opcode: 2, payload: Buffer.alloc(1000, 0xee), key: K }));
    await until(() => kept.length === want.length + 50, { what: '50 more messages' });
    kept.slice(0, want.length).forEach((k, i) => expect(k.equals(want[i]), `message ${i}`).toBe(true));
    c.socket.destroy();
  }));

  it("small frames waiting for a slow peer stay intact while other connections' frames go through the same outgoing memory", () => withRawPeer(async ({ c, ws, s }) => {
    // Small frames are framed into shared slabs that are reused once their writes are done: the
    // ones a stalled write still holds must not be written over.
    c.socket.pause();
    const N = 16_000;
    const frame = (i: number) => Buffer.alloc(1000, (i * 13) & 0xff).fill(i >>> 8, 0, 1).fill(i & 0xff, 1, 2);
    for (let i = 0; i < N; i++) ws.send(frame(i)); // 16 MB in one tick: more than the socket buffers take
    await sleep(20);
    expect(ws.bufferedAmount).toBeGreaterThan(0);
    // Meanwhile another connection's echo pushes megabytes of small frames through.
    const { c: c2, ws: ws2 } = await rawPeer(s);
    ws2.on('message', (d) => ws2.send(d as Buffer));
    for (let round = 0; round < 20; round++) {
      const burst: Buffer[] = [];
      for (let i = 0; i < 200; i++) burst.push(raw({ opcode: 2, payload: Buffer.alloc(900, round), key: K }));
      c2.send(Buffer.concat(burst));
      await c2.until(() => c2.frames.length === (round + 1) * 200, { what: `echo round ${round}` });
    }
    expect(c2.frames.every((f, i) => f.payload.length === 900 && f.payload.every((b) => b === Math.floor(i / 200)))).toBe(true);
    c.socket.resume();
    await c.until(() => c.frames.length === N, { timeout: 10_000, what: `${N} frames at the slow peer` });
    const bad = c.frames.findIndex((f, i) => !f.payload.equals(frame(i)));
    expect(bad).toBe(-1);
    c.socket.destroy();
    c2.socket.destroy();
  }));

  it('a paused connection keeps what arrives for its resume, in order', () => withRawPeer(async ({ c, ws }) => {
    ws.pause();
    const got: number[] = [];
    ws.on('message', (d) => got.push((d as Buffer)[0]));
    for (let i = 0; i < 100; i++) c.send(raw({ opcode: 2, payload: Buffer.alloc(300, i), key: K }));
    await sleep(150);
    expect(got).toEqual([]);
    ws.resume();
    await until(() => got.length === 100, { what: '100 messages after the resume' });
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => i));
    c.socket.destroy();
  }));

  it('terminate() with writes still waiting: every send callback runs once, and the server serves on', () => withRawPeer(async ({ c, ws, s }) => {
    c.socket.pause();
    const calls = new Array<number>(64).fill(0);
    for (let i = 0; i < 64; i++) ws.send(Buffer.alloc(256 * 1024, i), () => calls[i]++);
    await sleep(100);
    ws.terminate();
    await until(() => calls.every((n) => n > 0), { what: 'every send callback' });
    await sleep(50);
    expect(calls).toEqual(new Array(64).fill(1));
    // The server still serves.
    const { c: c2, ws: ws2 } = await rawPeer(s);
    ws2.on('message', (d) => ws2.send(d as Buffer));
    c2.send(raw({ opcode: 2, payload: Buffer.from('again'), key: K }));
    await c2.until(() => c2.frames.length === 1, { what: 'an echo on a new connection' });
    expect(c2.frames[0].payload.toString()).toBe('again');
    c.socket.destroy();
    c2.socket.destroy();
  }));

  it('a peer that stops reading: what waits counts in bufferedAmount, arrives complete and in order, then drain', () => withRawPeer(async ({ c, ws }) => {
    c.socket.pause(); // the kernel's buffers fill, then the server's writes wait
    const N = 200;
    const msg = (i: number) => Buffer.alloc(64 * 1024, i & 0xff);
    let drains = 0;
    ws.on('drain', () => drains++);
    for (let i = 0; i < N; i++) ws.send(msg(i));
    await sleep(100);
    expect(ws.bufferedAmount).toBeGreaterThan(1024 * 1024); // 12.5 MiB sent, a few MiB fit the kernel
    c.socket.resume();
    await c.until(() => c.frames.length === N, { timeout: 20_000, what: `${N} messages` });
    for (let i = 0; i < N; i++) expect(c.frames[i].payload.equals(msg(i))).toBe(true);
    await until(() => ws.bufferedAmount === 0 && drains > 0, { timeout: 5000, what: 'drain' });
    c.socket.destroy();
  }));
});

describe('connection API', () => {
  it('iterates messages with for await, pausing the socket while the consumer lags', async () => {
    const { c, ws } = await pair();
    const it = ws[Symbol.asyncIterator]();
    for (let i = 0; i < 200; i++) c.send(i % 2 ? Buffer.from([i]) : `t${i}`);
    await sleep(200);
    expect(ws.isPaused).toBe(true); // 64 buffered: the socket stopped reading
    const got: (string | Buffer)[] = [];
    for (let i = 0; i < 200; i++) got.push((await it.next()).value as string | Buffer);
    expect(got[0]).toBe('t0');
    expect(Buffer.isBuffer(got[1]) && got[1][0]).toBe(1);
    expect(got[198]).toBe('t198');
    expect(ws.isPaused).toBe(false);
    c.close();
    expect((await it.next()).done).toBe(true);
  });

  it('keeps a pause() the application made while a for-await consumer drains', async () => {
    const { c, ws } = await pair();
    const it = ws[Symbol.asyncIterator]();
    for (let i = 0; i < 100; i++) c.send(`m${i}`);
    await until(() => ws.isPaused, { what: 'the iterator to pause reading (64 buffered)' });
    ws.pause(); // the application's own pause
    // Drain what the iterator holds, below its low-water mark: a next() still pending after 100 ms
    // means the queue is empty and nothing more is read.
    const got: string[] = [];
    let pending: Promise<IteratorResult<string | Buffer>> | null = null;
    for (let i = 0; i < 200 && !pending; i++) {
      const next = it.next();
      const r = await Promise.race([next, sleep(100).then(() => null)]);
      if (r) got.push(String(r.value));
      else pending = next;
    }
    expect(got.length).toBeGreaterThanOrEqual(40);
    expect(got.slice(0, 3)).toEqual(['m0', 'm1', 'm2']);
    expect(ws.isPaused).toBe(true);
    // Still paused: what the client sends now (and whatever it sent before) stays unread.
    c.send('after the pause');
    expect(await Promise.race([pending!.then(() => 'read'), sleep(300).then(() => 'not read')])).toBe('not read');
    ws.resume();
    // Reading resumes: every message arrives, in order.
    const first = await within(pending!, { what: 'a message after resume()' });
    got.push(String(first.value));
    for (let i = 0; i < 200 && got.length < 101; i++) got.push(String((await within(it.next(), { what: 'the rest after resume()' })).value));
    expect(got).toEqual([...Array.from({ length: 100 }, (_, i) => `m${i}`), 'after the pause']);
    c.terminate();
  });

  it('supports addEventListener and on* properties with browser-style events', async () => {
    const { wss, url } = await server();
    wss.on('connection', (ws: WebSocket) => ws.send('hi'));
    const c = new WebSocket(url);
    const events: string[] = [];
    c.onopen = () => events.push('open');
    const msg = new Promise<string>((r) => c.addEventListener('message', (ev: { data: string }) => r(ev.data), { once: true }));
    expect(await msg).toBe('hi');
    const closed = new Promise<{ code: number; wasClean: boolean }>((r) => (c.onclose = r as never));
    c.close(1000);
    expect(await closed).toMatchObject({ code: 1000, wasClean: true });
    expect(events).toEqual(['open']);
  });

  it('validates close codes and reasons, and ping size', async () => {
    const { url } = await server();
    const c = new WebSocket(url);
    await once(c, 'open');
    expect(() => c.close(1005)).toThrow(TypeError);
    expect(() => c.close(1000, 'x'.repeat(124))).toThrow(RangeError);
    expect(() => c.ping(Buffer.alloc(126))).toThrow(RangeError);
    c.terminate();
  });

  it('ignores a close reason given without a code (as ws) and completes the closing handshake', async () => {
    const { c, ws } = await pair();
    const closed = nextEvent<[number]>(c, 'close');
    ws.close(undefined, 'bye');
    expect((await closed)[0]).toBe(1005);
  });

  it('lets terminate() end a handshake after an unexpected-response, emitting error and close', async () => {
    const srv = http.createServer();
    srv.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const c = new WebSocket(`ws://127.0.0.1:${(srv.address() as net.AddressInfo).port}`);
      const errored = nextEvent<[Error]>(c, 'error');
      const closed = nextEvent<[number]>(c, 'close');
      c.on('unexpected-response', (_req: unknown, res: http.IncomingMessage) => {
        expect(res.statusCode).toBe(403);
        res.resume();
        c.terminate();
      });
      await errored;
      expect((await closed)[0]).toBe(1006);
      expect(c.readyState).toBe(WebSocket.CLOSED);
    } finally {
      srv.closeAllConnections();
      srv.close();
    }
  });

  it('reports bufferedAmount and calls send callbacks once written', async () => {
    const { url } = await server();
    const c = new WebSocket(url);
    await once(c, 'open');
    c.send(Buffer.alloc(1000));
    expect(c.bufferedAmount).toBeGreaterThanOrEqual(1000);
    await new Promise<void>((resolve, reject) => c.send('x', (err) => (err ? reject(err) : resolve())));
    c.terminate();
  });

  it('echoes the close the peer sends with a reason, and the server side gets code and reason', async () => {
    const { wss, port } = await server();
    const serverWs = nextEvent<[WebSocket]>(wss, 'connection');
    const c = await RawClient.connect(port);
    const [ws] = await serverWs;
    const closed = nextEvent<[number, Buffer]>(ws, 'close');
    c.send(raw({ opcode: 8, payload: encodeClosePayload(3001, 'app'), key: K }));
    await c.until(() => c.closeFrame() !== undefined && c.closed);
    // Code and reason echoed, as ws does.
    expect(c.closeFrame()).toEqual([3001, 'app']);
    const [code, reason] = await closed;
    expect([code, reason.toString()]).toEqual([3001, 'app']);
  });
});
