// The chat room over real sockets (in-process server from src/cli/serve.ts, our own client).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from '../src/index.js';
import { startServer, type App } from '../src/cli/serve.js';
import { parseChat, LIMITS } from '../src/cli/chat.js';
import { DEFAULTS } from '../src/cli/args.js';
import * as http from 'node:http';
import * as net from 'node:net';
import { sleep } from './helpers.js';

type Msg = { type: string; [k: string]: any };

/** A chat client that records every frame and can wait for one matching a predicate. */
class Client {
  readonly ws: WebSocket;
  readonly got: Msg[] = [];
  private waiters: { pred: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];
  closed: Promise<{ code: number; reason: string }>;

  constructor(url: string, protocols: string | string[] = 'chat') {
    this.ws = new WebSocket(url, protocols);
    this.ws.on('message', (data: Buffer) => {
      const m = JSON.parse(data.toString()) as Msg;
      this.got.push(m);
      this.waiters = this.waiters.filter((w) => (w.pred(m) ? (w.resolve(m), false) : true));
    });
    this.closed = new Promise((resolve) => this.ws.on('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })));
  }
  open(): Promise<this> {
    return new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve(this));
      this.ws.once('error', reject);
    });
  }
  send(obj: unknown): void {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }
  /** The first frame (already received or future) matching `pred`. */
  next(pred: (m: Msg) => boolean, what = 'frame', ms = 5000): Promise<Msg> {
    const seen = this.got.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.got)}`)), ms);
      this.waiters.push({ pred, resolve: (m) => (clearTimeout(t), resolve(m)) });
    });
  }
  /** Wait for a frame arriving after now. */
  fresh(pred: (m: Msg) => boolean, what?: string): Promise<Msg> {
    const n = this.got.length;
    return this.next((m) => this.got.indexOf(m) >= n && pred(m), what);
  }
}

const presenceIs = (users: string[]) => (m: Msg) => m.type === 'presence' && JSON.stringify(m.users) === JSON.stringify(users);
const errorFrame = (m: Msg) => m.type === 'error';

let app: App;
let wsUrl: string;
const clients: Client[] = [];
async function client(protocols?: string | string[]): Promise<Client> {
  const c = new Client(wsUrl + 'chat', protocols);
  clients.push(c);
  return c.open();
}

beforeAll(async () => {
  app = await startServer({ ...DEFAULTS, port: 0, origins: [], heartbeat: 0 });
  wsUrl = app.url.replace('http:', 'ws:');
});
afterAll(async () => {
  for (const c of clients) c.ws.terminate();
  await app?.close();
});

describe('parseChat', () => {
  it('accepts join and message, rejects the rest with a reason', () => {
    expect(parseChat('{"type":"join","name":"  ada "}')).toEqual({ type: 'join', name: 'ada' });
    expect(parseChat('{"type":"message","text":" hi "}')).toEqual({ type: 'message', text: ' hi ' });
    expect(parseChat('nope')).toBe('invalid JSON');
    expect(parseChat('[1]')).toMatch(/object/);
    expect(parseChat('null')).toMatch(/object/);
    expect(parseChat('{"type":"dance"}')).toMatch(/unknown message type "dance"/);
    expect(parseChat('{"text":"x"}')).toMatch(/missing "type"/);
    expect(parseChat('{"type":"join","name":""}')).toMatch(/empty/);
    expect(parseChat('{"type":"join","name":42}')).toMatch(/name/);
    expect(parseChat(JSON.stringify({ type: 'join', name: 'x'.repeat(LIMITS.name) }))).toEqual({ type: 'join', name: 'x'.repeat(32) });
    expect(parseChat(JSON.stringify({ type: 'join', name: 'x'.repeat(LIMITS.name + 1) }))).toMatch(/too long/);
    expect(parseChat(JSON.stringify({ type: 'join', name: 'a\nb' }))).toMatch(/control/);
    expect(parseChat(JSON.stringify({ type: 'message', text: 'y'.repeat(LIMITS.text) }))).toEqual({ type: 'message', text: 'y'.repeat(1000) });
    expect(parseChat(JSON.stringify({ type: 'message', text: 'y'.repeat(LIMITS.text + 1) }))).toMatch(/too long/);
    expect(parseChat(JSON.stringify({ type: 'message', text: '   ' }))).toMatch(/empty/);
    expect(parseChat(JSON.stringify({ type: 'message', text: 'line1\nline2\ttab' }))).toEqual({ type: 'message', text: 'line1\nline2\ttab' });
  });
});

describe('chat room over sockets', () => {
  it('selects the "chat" subprotocol and sends presence on connect', async () => {
    const c = await client('chat');
    expect(c.ws.protocol).toBe('chat');
    await c.next((m) => m.type === 'presence', 'initial presence');
    c.ws.close();
    await c.closed;
  });

  it('accepts a client offering no subprotocol (none selected)', async () => {
    const c = await client([]);
    expect(c.ws.protocol).toBe('');
    await c.next((m) => m.type === 'presence');
    c.ws.close();
    await c.closed;
  });

  it('join → presence, message → everyone, leave → presence', async () => {
    const a = await client();
    const b = await client();
    a.send({ type: 'join', name: 'ada' });
    await a.next(presenceIs(['ada']), 'presence [ada]');
    await b.next(presenceIs(['ada']), 'presence [ada] at b');
    b.send({ type: 'join', name: 'bob' });
    await a.next(presenceIs(['ada', 'bob']), 'presence [ada,bob]');
    await b.next(presenceIs(['ada', 'bob']));

    const before = Date.now();
    const html = '<img src=x onerror=alert(1)> & <b>"bold"</b>';
    a.send({ type: 'message', text: html });
    const atB = await b.next((m) => m.type === 'message' && m.name === 'ada', 'ada’s message at b');
    const atA = await a.next((m) => m.type === 'message' && m.name === 'ada', 'ada’s message echoed to a');
    // Verbatim: no server-side escaping (the page renders text with textContent).
    expect(atB).toEqual({ type: 'message', name: 'ada', text: html, time: atB.time });
    expect(atA.text).toBe(html);
    expect(atB.time).toBeGreaterThanOrEqual(before - 1000);
    expect(atB.time).toBeLessThanOrEqual(Date.now() + 1000);

    b.send({ type: 'message', text: 'hi ada 👋' });
    await a.next((m) => m.type === 'message' && m.name === 'bob' && m.text === 'hi ada 👋', 'bob’s reply');

    b.ws.close();
    await b.closed;
    await a.fresh(presenceIs(['ada']), 'presence after bob left');
    a.ws.close();
    await a.closed;
  });

  it('coalesces presence: 40 clients joining and leaving in a loop send the list at most every 200 ms, and the last list arrives', async () => {
    const watcher = await client();
    const before = watcher.got.length;
    const t0 = Date.now();
    for (let round = 0; round < 4; round++) {
      const churn = await Promise.all(Array.from({ length: 10 }, () => client()));
      churn.forEach((c, i) => c.send({ type: 'join', name: `churn${round}-${i}` }));
      await sleep(20);
      for (const c of churn) c.ws.close();
      await Promise.all(churn.map((c) => c.closed));
    }
    // A change that lasts arrives (the window's trailing edge), however the churn fell in the windows.
    const stay = await client();
    stay.send({ type: 'join', name: 'stay' });
    await watcher.fresh(presenceIs(['stay']), 'the list with the one who stayed');
    const elapsed = Date.now() - t0;
    const lists = watcher.got.slice(before).filter((m) => m.type === 'presence').length;
    // Uncoalesced: 80 lists (one per join and per leave).
    expect(lists).toBeGreaterThanOrEqual(1);
    expect(lists).toBeLessThanOrEqual(Math.ceil(elapsed / 200) + 1);
    expect(lists).toBeLessThan(40);
    stay.ws.close();
    await watcher.fresh(presenceIs([]), 'the empty list once the last one left');
    watcher.ws.close();
  });

  it('answers bad input with an error frame and stays connected', async () => {
    const c = await client();
    c.send('not json');
    expect((await c.fresh(errorFrame)).error).toBe('invalid JSON');
    c.send({ type: 'message', text: 'before join' });
    expect((await c.fresh(errorFrame)).error).toMatch(/join first/);
    c.send({ type: 'wave' });
    expect((await c.fresh(errorFrame)).error).toMatch(/unknown message type/);
    c.send({ type: 'join', name: 'n'.repeat(33) });
    expect((await c.fresh(errorFrame)).error).toMatch(/name too long \(max 32/);
    c.ws.send(Buffer.from([1, 2, 3]));
    expect((await c.fresh(errorFrame)).error).toMatch(/binary/);
    c.send({ type: 'join', name: 'carol' });
    await c.next((m) => m.type === 'presence' && m.users.includes('carol'));
    c.send({ type: 'join', name: 'carol2' });
    expect((await c.fresh(errorFrame)).error).toBe('already joined');
    c.send({ type: 'message', text: 'x'.repeat(1001) });
    expect((await c.fresh(errorFrame)).error).toMatch(/message too long \(max 1000/);
    // Still usable after all that.
    c.send({ type: 'message', text: 'x'.repeat(1000) });
    const m = await c.fresh((m) => m.type === 'message');
    expect(m.text).toHaveLength(1000);
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    c.ws.close();
    await c.closed;
  });

  it('closes with 1008 after repeated abuse', async () => {
    const c = await client();
    for (let i = 0; i < LIMITS.errors; i++) c.send('{');
    const { code } = await c.closed;
    expect(code).toBe(1008);
  });

  it('serves the page, the stats and 404 for unknown upgrade paths', async () => {
    const page = await fetch(app.url);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(page.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    expect(await page.text()).toContain('data-chat-path="/chat"');
    expect((await fetch(app.url + 'chat.js')).status).toBe(200);
    expect((await fetch(app.url + '../package.json')).status).toBe(404);
    expect((await fetch(app.url + 'chat')).status).toBe(426);
    const stats = await (await fetch(app.url + 'stats')).json();
    expect(stats.workers).toHaveLength(1);
    expect(typeof stats.connections).toBe('number');

    const status = await new Promise<number>((resolve, reject) => {
      const req = http.get(app.url + 'nowhere', { headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13' } });
      req.on('response', (res) => resolve(res.statusCode!));
      req.on('upgrade', () => reject(new Error('upgraded')));
      req.on('error', reject);
    });
    expect(status).toBe(404);
  });

  it('serves the echo endpoint for a WebSocket upgrade on /', async () => {
    const ws = new WebSocket(wsUrl);
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    const reply = new Promise<string>((r) => ws.once('message', (d: Buffer) => r(d.toString())));
    ws.send('root echo');
    expect(await reply).toBe('root echo');
    ws.close();
  });

  it('rejects a foreign Origin with 403 but accepts its own', async () => {
    const foreign = new WebSocket(wsUrl + 'chat', 'chat', { origin: 'https://evil.example' });
    const err = await new Promise<Error>((resolve) => foreign.on('error', resolve));
    expect(String(err.message)).toMatch(/403/);
    const host = new URL(app.url).host;
    const same = new WebSocket(wsUrl + 'chat', 'chat', { origin: `http://${host}` });
    await new Promise((resolve, reject) => {
      same.once('open', resolve);
      same.once('error', reject);
    });
    same.close();
  });

  it('echoes text as text and binary as binary on /echo', async () => {
    const ws = new WebSocket(wsUrl + 'echo');
    await new Promise((r) => ws.once('open', r));
    const got: [Buffer, boolean][] = [];
    const two = new Promise<void>((resolve) => ws.on('message', (d: Buffer, bin: boolean) => { got.push([d, bin]); if (got.length === 2) resolve(); }));
    ws.send('hello');
    ws.send(Buffer.from([0, 255, 7]));
    await two;
    expect(got[0][0].toString()).toBe('hello');
    expect(got[0][1]).toBe(false);
    expect([...got[1][0]]).toEqual([0, 255, 7]);
    expect(got[1][1]).toBe(true);
    ws.close();
  });

  it('closes every client with 1001 on shutdown', async () => {
    const other = await startServer({ ...DEFAULTS, port: 0, origins: [], heartbeat: 0 });
    const url = other.url.replace('http:', 'ws:');
    const a = new Client(url + 'chat');
    const e = new WebSocket(url + 'echo');
    await a.open();
    await new Promise((r) => e.once('open', r));
    const eClosed = new Promise<number>((r) => e.on('close', (code: number) => r(code)));
    await other.close();
    expect((await a.closed).code).toBe(1001);
    expect(await eClosed).toBe(1001);
    // Not listening any more.
    const port = Number(new URL(other.url).port);
    await expect(new Promise((resolve, reject) => net.connect(port, '127.0.0.1').on('connect', resolve).on('error', reject))).rejects.toThrow();
  });
});

describe('ClusterHub in one process', () => {
  it('publishes locally, broadcasts to attached servers, counts connections', async () => {
    const { ClusterHub, WebSocketServer } = await import('../src/index.js');
    const hub = new ClusterHub();
    expect(hub.clustered).toBe(false);
    const got: [string, string][] = [];
    hub.on('message', (ch: string, d: string | Buffer) => got.push([ch, String(d)]));
    hub.publish('news', 'hello');
    await new Promise((r) => setTimeout(r, 10));
    expect(got).toEqual([['news', 'hello']]);

    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((r) => wss.once('listening', r));
    hub.attach(wss);
    const port = (wss.address() as net.AddressInfo).port;
    const ws = new WebSocket(`ws://127.0.0.1:${port}`);
    await new Promise((r) => ws.once('open', r));
    await expect.poll(() => hub.connections).toBe(1);
    const msg = new Promise<string>((r) => ws.once('message', (d: Buffer) => r(d.toString())));
    expect(hub.broadcast('to all')).toBe(1);
    expect(await msg).toBe('to all');
    const bin = new Promise<Buffer>((r) => ws.once('message', (d: Buffer) => r(Buffer.from(d))));
    expect(hub.broadcast([Buffer.from('ab'), Buffer.from('cd')])).toBe(1);
    expect(await bin).toEqual(Buffer.from('abcd'));
    ws.close();
    await expect.poll(() => hub.connections).toBe(0);
    await new Promise<void>((r) => wss.close(() => r()));
    hub.close();
  });
});
