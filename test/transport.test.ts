// The connection over both kinds of transport: a real TCP socket, and a plain in-memory Duplex pair
// (no net.Socket anywhere: injected into an http.Server with `server.emit('connection', duplex)`,
// and given to the client as its `createConnection`). The same cases run over both.
import { afterEach, describe, expect, it } from 'vitest';
import * as http from 'node:http';
import * as net from 'node:net';
import { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type ServerOptions } from '../src/index.js';
import { generateKey } from '../src/handshake/upgrade.js';
import { raw, nextEvent, until } from './helpers.js';
import { FrameParser, type Frame } from '../src/protocol/parser.js';

/** Two connected Duplex ends that honour backpressure (a write waits until the other end reads). */
function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const pending: ((() => void) | null)[] = [null, null];
  const make = (i: number) =>
    new Duplex({
      read() {
        // The reader wants more: let the other end's blocked write complete.
        const cb = pending[1 - i];
        pending[1 - i] = null;
        cb?.();
      },
      write(chunk, _enc, cb) {
        const other = ends[1 - i];
        if (other.destroyed) return cb(new Error('peer destroyed'));
        if (other.push(chunk)) cb();
        else pending[i] = cb;
      },
      final(cb) {
        ends[1 - i].push(null);
        cb();
      },
      destroy(err, cb) {
        const other = ends[1 - i];
        const waiting = pending[i];
        pending[i] = null;
        waiting?.();
        if (!other.destroyed) other.destroy();
        cb(err);
      },
    });
  ends.push(make(0), make(1));
  return [ends[0], ends[1]];
}

interface Rig {
  wss: WebSocketServer;
  /** A client WebSocket over this transport. */
  client(opts?: object): WebSocket;
  /** A raw byte stream to the server (nothing sent yet). */
  rawStream(): Promise<Duplex>;
  close(): Promise<void>;
}

async function tcpRig(opts: Partial<ServerOptions>): Promise<Rig> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', ...opts });
  await nextEvent(wss, 'listening');
  const port = (wss.address() as net.AddressInfo).port;
  return {
    wss,
    client: (o = {}) => new WebSocket(`ws://127.0.0.1:${port}/`, o),
    rawStream: async () => {
      const s = net.connect(port, '127.0.0.1');
      await nextEvent(s, 'connect');
      return s;
    },
    close: () => new Promise((resolve) => wss.close(() => resolve())),
  };
}

async function duplexRig(opts: Partial<ServerOptions>): Promise<Rig> {
  const server = http.createServer();
  const wss = new WebSocketServer({ noServer: true, ...opts });
  server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req)));
  const open = new Set<Duplex>();
  const connect = (): Duplex => {
    const [a, b] = duplexPair();
    open.add(a).add(b);
    server.emit('connection', a);
    return b;
  };
  return {
    wss,
    // The host is only the Host header: no socket is opened, createConnection gives the stream.
    client: (o = {}) => new WebSocket('ws://127.0.0.1/', { ...o, createConnection: connect as never }),
    rawStream: async () => connect(),
    close: async () => {
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      for (const d of open) d.destroy();
    },
  };
}

const upgradeRequest = (key: string) =>
  `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;

/** Reads a raw stream: the 101 response, then server frames. */
function reader(s: Duplex) {
  let buf = Buffer.alloc(0);
  let headerDone = false;
  const frames: Frame[] = [];
  const parser = new FrameParser({ role: 'client' });
  let ended = false;
  s.on('data', (c: Buffer) => {
    if (!headerDone) {
      buf = Buffer.concat([buf, c]);
      const i = buf.indexOf('\r\n\r\n');
      if (i < 0) return;
      headerDone = true;
      c = buf.subarray(i + 4);
    }
    frames.push(...parser.push(c));
  });
  s.on('end', () => { ended = true; });
  s.on('close', () => { ended = true; });
  return { frames, get upgraded() { return headerDone; }, get ended() { return ended; } };
}

const K = [9, 8, 7, 6];

describe.each([
  ['a TCP socket', tcpRig],
  ['an in-memory Duplex pair', duplexRig],
] as const)('the connection over %s', (_name, makeRig) => {
  let rig: Rig;
  afterEach(async () => {
    await rig?.close();
  });

  const echoRig = async (opts: Partial<ServerOptions> = {}) => {
    rig = await makeRig(opts);
    rig.wss.on('connection', (ws) => ws.on('message', (d, isBinary) => ws.send(d, { binary: isBinary })));
    return rig;
  };

  it('echoes text and binary messages of every length form (7-bit, 16-bit, 64-bit)', async () => {
    await echoRig();
    const c = rig.client();
    await nextEvent(c, 'open');
    for (const n of [0, 125, 126, 65535, 65536, 1 << 20]) {
      const data = Buffer.alloc(n, n % 251);
      c.send(data);
      const [got, isBinary] = await nextEvent<[Buffer, boolean]>(c, 'message');
      expect([got.equals(data), isBinary]).toEqual([true, true]);
    }
    c.send('héllo');
    const [text, isBinary] = await nextEvent<[Buffer, boolean]>(c, 'message');
    expect([text.toString(), isBinary]).toEqual(['héllo', false]);
    c.terminate();
  });

  it('reassembles a fragmented message and answers pings with their payload', async () => {
    await echoRig();
    const c = rig.client();
    await nextEvent(c, 'open');
    c.send('frag', { fin: false });
    c.send('men', { fin: false });
    c.send('ted', { fin: true });
    const [m] = await nextEvent<[Buffer]>(c, 'message');
    expect(m.toString()).toBe('fragmented');
    c.ping('probe');
    const [pong] = await nextEvent<[Buffer]>(c, 'pong');
    expect(pong.toString()).toBe('probe');
    c.terminate();
  });

  it('completes a closing handshake the client starts: code and reason on both sides, wasClean', async () => {
    await echoRig();
    const serverSide = nextEvent<[WebSocket]>(rig.wss, 'connection');
    const c = rig.client();
    await nextEvent(c, 'open');
    const [s] = await serverSide;
    const serverClosed = nextEvent<[number, Buffer]>(s, 'close');
    const clean = new Promise<boolean>((resolve) => c.addEventListener('close', (ev: { wasClean: boolean }) => resolve(ev.wasClean)));
    c.close(4000, 'bye');
    expect(c.readyState).toBe(WebSocket.CLOSING);
    const [code, reason] = await nextEvent<[number, Buffer]>(c, 'close');
    expect([code, reason.toString(), c.readyState]).toEqual([4000, 'bye', WebSocket.CLOSED]);
    const [sc, sr] = await serverClosed;
    expect([sc, sr.toString()]).toEqual([4000, 'bye']);
    expect(await clean).toBe(true);
  });

  it('completes a closing handshake the server starts', async () => {
    await echoRig();
    rig.wss.on('connection', (ws) => ws.close(1001, 'going'));
    const c = rig.client();
    const [code, reason] = await nextEvent<[number, Buffer]>(c, 'close');
    expect([code, reason.toString()]).toEqual([1001, 'going']);
  });

  it('reports 1006 to the client when the server terminates, and to the server when the peer ends without a close frame', async () => {
    await echoRig();
    const serverSide = nextEvent<[WebSocket]>(rig.wss, 'connection');
    const c = rig.client();
    await nextEvent(c, 'open');
    const [s] = await serverSide;
    s.terminate();
    const [code] = await nextEvent<[number]>(c, 'close');
    expect(code).toBe(1006);

    const raw1 = await rig.rawStream();
    const serverSide2 = nextEvent<[WebSocket]>(rig.wss, 'connection');
    const r = reader(raw1);
    raw1.write(upgradeRequest(generateKey()));
    const [s2] = await serverSide2;
    await until(() => r.upgraded);
    const closed = nextEvent<[number]>(s2, 'close');
    raw1.end(); // FIN, no close frame
    const [code2] = await closed;
    expect(code2).toBe(1006);
  });

  it('delivers frames that came with the upgrade request, then fails with 1007 on invalid UTF-8 and ends the stream', async () => {
    await echoRig();
    const s = await rig.rawStream();
    const r = reader(s);
    const serverSide = nextEvent<[WebSocket]>(rig.wss, 'connection');
    s.write(Buffer.concat([
      Buffer.from(upgradeRequest(generateKey())),
      raw({ opcode: 1, payload: Buffer.from('early'), key: K }),
    ]));
    const [ws] = await serverSide;
    const closed = nextEvent<[number]>(ws, 'close');
    await until(() => r.frames.length >= 1);
    expect(r.frames[0].payload.toString()).toBe('early');
    s.write(raw({ opcode: 1, payload: Buffer.from([0xff, 0xfe]), key: K }));
    await until(() => r.frames.some((f) => f.opcode === 8) && r.ended);
    const close = r.frames.find((f) => f.opcode === 8)!;
    expect(close.payload.readUInt16BE(0)).toBe(1007);
    s.destroy();
    const [code] = await closed;
    expect(code).toBe(1007);
  });

  it('closes an idle connection with 1001 after idleTimeout (the timer wheel, not the socket\'s timer)', async () => {
    rig = await makeRig({ idleTimeout: 150 });
    const serverSide = nextEvent<[WebSocket]>(rig.wss, 'connection');
    const c = rig.client();
    await nextEvent(c, 'open');
    const [s] = await serverSide;
    // Activity keeps it open: a message every 50 ms for 400 ms.
    let last = 0;
    for (let i = 0; i < 8; i++) {
      c.send('keep');
      last = Date.now();
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(s.readyState).toBe(WebSocket.OPEN);
    const [code, reason] = await nextEvent<[number, Buffer]>(c, 'close', { timeout: 3000 });
    expect([code, reason.toString()]).toEqual([1001, 'idle timeout']);
    expect(Date.now() - last).toBeGreaterThanOrEqual(150 - 5);
  });

  it('pauses reading on pause() and delivers what waited on resume()', async () => {
    rig = await makeRig({});
    const serverSide = nextEvent<[WebSocket]>(rig.wss, 'connection');
    const c = rig.client();
    await nextEvent(c, 'open');
    const [s] = await serverSide;
    const got: string[] = [];
    s.on('message', (d) => got.push(String(d)));
    s.pause();
    expect(s.isPaused).toBe(true);
    for (let i = 0; i < 5; i++) c.send(`m${i}`);
    // Give the messages every chance to arrive: a round trip the other way.
    s.ping();
    await nextEvent(c, 'ping');
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toEqual([]);
    s.resume();
    await until(() => got.length === 5);
    expect(got).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    c.terminate();
  });

  it('drops a peer that does not read once more than maxBackpressure bytes wait (1008), without stalling the server', async () => {
    rig = await makeRig({ maxBackpressure: 256 * 1024 });
    const s = await rig.rawStream();
    s.write(upgradeRequest(generateKey()));
    const [ws] = await nextEvent<[WebSocket]>(rig.wss, 'connection');
    s.pause(); // never read: the kernel's or the pair's buffer fills, then ours
    const errors: string[] = [];
    ws.on('error', (e) => errors.push(e.message));
    const closed = nextEvent<[number]>(ws, 'close');
    const chunk = Buffer.alloc(64 * 1024);
    for (let i = 0; i < 2000 && ws.readyState === WebSocket.OPEN; i++) {
      ws.send(chunk);
      if (i % 16 === 15) await new Promise((r) => setImmediate(r));
    }
    const [code] = await closed;
    expect(code).toBe(1008);
    expect(errors.some((m) => /slow peer/.test(m))).toBe(true);
    s.destroy();
    // The server still serves others.
    rig.wss.on('connection', (w) => w.on('message', (d) => w.send(d)));
    const c = rig.client();
    await nextEvent(c, 'open');
    c.send('still here');
    const [m] = await nextEvent<[Buffer]>(c, 'message');
    expect(m.toString()).toBe('still here');
    c.terminate();
  });
});
