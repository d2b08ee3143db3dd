// Interop with implementations nobody here wrote: ws's client and server, undici's WebSocket.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WS, { WebSocketServer as WSServer } from 'ws';
import { WebSocket as UndiciWebSocket } from 'undici';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from '../src/index.js';
import { nextEvent, rng, randomBytes, startServer, stopServer, within } from './helpers.js';

const SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20];

describe('our server with ws as the client', () => {
  let wss: WebSocketServer;
  let url: string;
  beforeEach(async () => {
    ({ wss, url } = await startServer({ maxPayload: 32 << 20 }));
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary })));
  });
  afterEach(() => stopServer(wss));

  it.each(SIZES)('echoes a %i-byte binary and text message', async (n) => {
    const c = new WS(url, { maxPayload: 32 << 20 });
    await once(c, 'open');
    const bin = randomBytes(rng(n), n);
    const text = 'é'.repeat(n >> 1);
    c.send(bin);
    c.send(text);
    const got: [Buffer, boolean][] = [];
    await within(new Promise<void>((resolve) => c.on('message', (d: Buffer, b: boolean) => { got.push([d, b]); if (got.length === 2) resolve(); })), {
      timeout: 25_000, what: `the ${n}-byte echoes`,
    });
    expect(got[0][1]).toBe(true);
    expect(got[0][0].equals(bin)).toBe(true);
    expect(got[1][1]).toBe(false);
    expect(got[1][0].toString()).toBe(text);
    c.close();
    await once(c, 'close');
  }, 30_000);

  it('reassembles a message ws sends in fragments', async () => {
    const c = new WS(url);
    await once(c, 'open');
    c.send('frag', { fin: false });
    c.send('men', { fin: false });
    c.send('ted', { fin: true });
    const [data, isBinary] = await nextEvent<[Buffer, boolean]>(c, 'message');
    expect([data.toString(), isBinary]).toEqual(['fragmented', false]);
    c.terminate();
  });

  it('answers ws pings with pongs carrying the payload', async () => {
    const c = new WS(url);
    await once(c, 'open');
    c.ping('probe');
    const [payload] = await nextEvent<[Buffer]>(c, 'pong');
    expect(payload.toString()).toBe('probe');
    c.terminate();
  });

  it('completes a closing handshake the client starts, with code and reason', async () => {
    const serverSide = nextEvent<[WebSocket]>(wss, 'connection');
    const c = new WS(url);
    await once(c, 'open');
    const [ws] = await serverSide;
    const serverClosed = nextEvent<[number, Buffer]>(ws, 'close');
    c.close(4321, 'see you');
    const [code, reason] = await serverClosed;
    expect([code, reason.toString()]).toEqual([4321, 'see you']);
    const [ccode, creason] = await nextEvent<[number, Buffer]>(c, 'close');
    // Our reply echoes code and reason, as a ws server does.
    expect([ccode, creason.toString()]).toEqual([4321, 'see you']);
  });

  it('echoes code and reason to a ws client that closes with 4000 and a reason, as a ws server does', async () => {
    const theirs = new WSServer({ port: 0, host: '127.0.0.1' });
    await once(theirs, 'listening');
    const closeVia = async (target: string) => {
      const c = new WS(target);
      await once(c, 'open');
      c.close(4000, 'bye');
      const [code, reason] = await nextEvent<[number, Buffer]>(c, 'close');
      return [code, reason.toString()];
    };
    try {
      const reference = await closeVia(`ws://127.0.0.1:${(theirs.address() as AddressInfo).port}`);
      expect(reference).toEqual([4000, 'bye']);
      expect(await closeVia(url)).toEqual(reference);
    } finally {
      theirs.close();
    }
  });

  it('completes a closing handshake the server starts', async () => {
    const serverSide = nextEvent<[WebSocket]>(wss, 'connection');
    const c = new WS(url);
    await once(c, 'open');
    const [ws] = await serverSide;
    const closing = nextEvent<[number, Buffer]>(ws, 'close');
    ws.close(1000, 'bye');
    expect(ws.readyState).toBe(WebSocket.CLOSING);
    const [code, reason] = await nextEvent<[number, Buffer]>(c, 'close');
    expect([code, reason.toString()]).toEqual([1000, 'bye']);
    expect((await closing)[0]).toBe(1000);
    expect(ws.readyState).toBe(WebSocket.CLOSED);
  });

  it('reports 1006 to the client when the server terminates', async () => {
    const serverSide = nextEvent<[WebSocket]>(wss, 'connection');
    const c = new WS(url);
    await once(c, 'open');
    (await serverSide)[0].terminate();
    const [code] = await nextEvent<[number]>(c, 'close');
    expect(code).toBe(1006);
  });

  it('negotiates a subprotocol with handleProtocols', async () => {
    const { wss: s2, url: u2 } = await startServer({ handleProtocols: (p) => (p.has('chat') ? 'chat' : false) });
    try {
      const c = new WS(u2, ['superchat', 'chat']);
      await once(c, 'open');
      expect(c.protocol).toBe('chat');
      c.terminate();
    } finally {
      await stopServer(s2);
    }
  });
});

describe('our server with undici\'s WebSocket as the client', () => {
  it('echoes text and binary', async () => {
    const { wss, url } = await startServer();
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary })));
    try {
      const c = new UndiciWebSocket(url);
      c.binaryType = 'arraybuffer';
      const got: unknown[] = [];
      const done = new Promise<void>((resolve) => {
        c.onmessage = (ev) => { got.push(ev.data); if (got.length === 2) resolve(); };
      });
      await new Promise((r) => (c.onopen = r));
      c.send('hello undici');
      c.send(new Uint8Array([1, 2, 3, 250]));
      await done;
      expect(got[0]).toBe('hello undici');
      expect([...new Uint8Array(got[1] as ArrayBuffer)]).toEqual([1, 2, 3, 250]);
      const closed = new Promise<{ code: number }>((r) => (c.onclose = r as never));
      c.close(1000);
      expect((await closed).code).toBe(1000);
    } finally {
      await stopServer(wss);
    }
  });
});

describe('our client against ws\'s server', () => {
  let server: WSServer;
  let url: string;
  beforeEach(async () => {
    server = new WSServer({ port: 0, host: '127.0.0.1', maxPayload: 32 << 20, perMessageDeflate: false, handleProtocols: (p) => (p.has('b') ? 'b' : false) });
    await once(server, 'listening');
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
    server.on('connection', (ws) => {
      ws.on('message', (d, isBinary) => {
        if (d.toString() === 'close-me') ws.close(4100, 'as asked');
        else ws.send(d, { binary: isBinary });
      });
    });
  });
  afterEach(async () => {
    for (const c of server.clients) c.terminate();
    await new Promise((r) => server.close(r));
  });

  it.each(SIZES)('round-trips a %i-byte message', async (n) => {
    const c = new WebSocket(url, { maxPayload: 32 << 20 });
    await once(c, 'open');
    const bin = randomBytes(rng(n + 1), n);
    c.send(bin);
    // 16 MiB each way can take more than the default 5 s in a loaded full run: the test's own bound.
    const [data, isBinary] = await nextEvent<[Buffer, boolean]>(c, 'message', { timeout: 25_000, what: `the ${n}-byte echo` });
    expect(isBinary).toBe(true);
    expect(data.equals(bin)).toBe(true);
    c.close();
    await nextEvent(c, 'close');
  }, 30_000);

  it('receives a fragmented message ws sends, and pongs', async () => {
    server.removeAllListeners('connection');
    server.on('connection', (ws) => {
      ws.send('ab', { fin: false });
      ws.send('cd', { fin: true });
      ws.ping('x');
    });
    const c = new WebSocket(url);
    const message = nextEvent<[Buffer]>(c, 'message');
    const pinged = nextEvent<[Buffer]>(c, 'ping');
    const [data] = await message;
    expect(data.toString()).toBe('abcd');
    const [ping] = await pinged;
    expect(ping.toString()).toBe('x');
    c.terminate();
  });

  it('selects the subprotocol the server chose', async () => {
    const c = new WebSocket(url, ['a', 'b']);
    await once(c, 'open');
    expect(c.protocol).toBe('b');
    c.terminate();
  });

  it('closes with the code and reason the server sends', async () => {
    const c = new WebSocket(url);
    await once(c, 'open');
    c.send('close-me');
    const [code, reason] = await nextEvent<[number, Buffer]>(c, 'close');
    expect([code, reason.toString()]).toEqual([4100, 'as asked']);
  });

  it('fails cleanly on a non-101 answer', async () => {
    const { createServer } = await import('node:http');
    const http = createServer((_req, res) => { res.writeHead(403); res.end('no'); });
    http.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'));
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    try {
      const c = new WebSocket(`ws://127.0.0.1:${(http.address() as AddressInfo).port}`);
      const failed = nextEvent<[Error]>(c, 'error');
      const closed = nextEvent<[number]>(c, 'close');
      const [err] = await failed;
      expect(err.message).toMatch(/403/);
      const [code] = await closed;
      expect(code).toBe(1006);
      expect(c.readyState).toBe(WebSocket.CLOSED);
    } finally {
      http.close();
    }
  });

  it('refuses a server answer with a wrong Sec-WebSocket-Accept', async () => {
    const { createServer } = await import('node:http');
    const http = createServer();
    http.on('upgrade', (_req, socket) => socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bogus\r\n\r\n'));
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    try {
      const c = new WebSocket(`ws://127.0.0.1:${(http.address() as AddressInfo).port}`);
      const [err] = await nextEvent<[Error]>(c, 'error');
      expect(err.message).toMatch(/Sec-WebSocket-Accept/);
    } finally {
      http.closeAllConnections();
      http.close();
    }
  });
});
