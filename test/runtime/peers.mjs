// Servers and clients as the suite drives them: our WebSocketServer, our WebSocket client, the
// runtime's global WebSocket, and a raw TCP client that speaks frames byte by byte.
import { Buffer } from 'node:buffer';
import * as net from 'node:net';
import { WebSocketServer, WebSocket as OurWebSocket, FrameParser, encodeFrame } from '../../dist/esm/index.js';
import { Queue, deferred, withTimeout } from './harness.mjs';
import { TEST_KEY, upgradeRequest } from '../fixtures.mjs';

export { TEST_KEY, upgradeRequest };

const servers = new Set();

/**
 * Our server on 127.0.0.1, port 0. Every connection is wrapped (`conns.next()` gives the next one);
 * `onConnection(ws, req, conn)` adds behaviour; by default each message is echoed.
 */
export async function startServer(opts = {}, onConnection = echo) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', ...opts });
  servers.add(wss);
  const conns = new Queue('a server-side connection');
  wss.on('error', () => {});
  wss.on('connection', (ws, req) => {
    const conn = wrapOurs(ws, 'server');
    conn.req = req;
    conn.socket = req.socket;
    onConnection(ws, req, conn);
    conns.push(conn);
  });
  await withTimeout(new Promise((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  }), 10_000, 'the server to listen');
  const port = wss.address().port;
  return { wss, port, url: `ws://127.0.0.1:${port}`, conns, stop: () => stopServer(wss) };
}

export function echo(ws) {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
}

/** Close a server, bounded in time (clients still open are terminated first). */
export function stopServer(wss) {
  servers.delete(wss);
  for (const c of wss.clients ?? []) c.terminate();
  return withTimeout(new Promise((r) => wss.close(() => r())), 5000, 'the server to close').catch(() => {});
}

export async function stopAllServers() {
  await Promise.all([...servers].map(stopServer));
}

/**
 * A uniform view of one end of a connection: `messages.next()` → { text } | { binary: Buffer },
 * `closed` → { code, reason }, `pings` / `pongs` queues (ours only).
 */
function wrapOurs(ws, side) {
  const messages = new Queue(`a message (${side})`);
  const pings = new Queue(`a ping (${side})`);
  const pongs = new Queue(`a pong (${side})`);
  const errors = [];
  const closed = deferred();
  ws.on('message', (data, isBinary) => {
    const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    messages.push(isBinary ? { binary: buf } : { text: buf.toString('utf8') });
  });
  ws.on('ping', (d) => pings.push(Buffer.from(d).toString()));
  ws.on('pong', (d) => pongs.push(Buffer.from(d).toString()));
  ws.on('error', (e) => errors.push(e));
  ws.on('close', (code, reason) => closed.resolve({ code, reason: Buffer.from(reason ?? '').toString('utf8') }));
  return {
    ws, side, messages, pings, pongs, errors,
    closed: closed.promise,
    waitClosed: (ms = 5000) => withTimeout(closed.promise, ms, `the close event (${side})`),
    send: (data, opts) => ws.send(data, opts),
    close: (code, reason) => ws.close(code, reason),
    get protocol() { return ws.protocol; },
    get extensions() { return ws.extensions; },
  };
}

/** Our client, open. Rejects on a handshake error or after `ms`. */
export async function openOurs(url, protocols, opts = {}, ms = 5000) {
  const ws = protocols === undefined ? new OurWebSocket(url, opts) : new OurWebSocket(url, protocols, opts);
  const peer = wrapOurs(ws, 'our client');
  await withTimeout(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('close', (code) => reject(new Error(`closed (${code}) before open`)));
  }), ms, 'our client to open');
  return peer;
}

/** The runtime's own `WebSocket` (WHATWG API), or undefined where there is none. */
export const RuntimeWebSocket = typeof globalThis.WebSocket === 'function' ? globalThis.WebSocket : undefined;

/** The runtime's client, open, with the same uniform view (`binaryType = 'arraybuffer'`). */
export async function openRuntime(url, protocols, ms = 5000) {
  const ws = protocols === undefined ? new RuntimeWebSocket(url) : new RuntimeWebSocket(url, protocols);
  ws.binaryType = 'arraybuffer';
  const messages = new Queue('a message (runtime client)');
  const closed = deferred();
  const errors = [];
  ws.addEventListener('message', (ev) => {
    const d = ev.data;
    if (typeof d === 'string') messages.push({ text: d });
    else if (d instanceof ArrayBuffer) messages.push({ binary: Buffer.from(d) });
    else if (ArrayBuffer.isView(d)) messages.push({ binary: Buffer.from(d.buffer, d.byteOffset, d.byteLength), note: `binaryType ignored: ${d.constructor.name}` });
    else if (d && typeof d.arrayBuffer === 'function') d.arrayBuffer().then((ab) => messages.push({ binary: Buffer.from(ab), note: 'Blob' }));
    else messages.push({ unknown: d });
  });
  ws.addEventListener('error', (ev) => errors.push(ev));
  ws.addEventListener('close', (ev) => closed.resolve({ code: ev.code, reason: ev.reason, wasClean: ev.wasClean }));
  await withTimeout(new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve, { once: true });
    ws.addEventListener('close', (ev) => reject(new Error(`closed (${ev.code}) before open`)), { once: true });
  }), ms, 'the runtime client to open');
  return {
    ws, side: 'runtime client', messages, errors,
    closed: closed.promise,
    waitClosed: (t = 5000) => withTimeout(closed.promise, t, 'the close event (runtime client)'),
    send: (data) => ws.send(data),
    close: (code, reason) => ws.close(code, reason),
    get protocol() { return ws.protocol; },
    get extensions() { return ws.extensions; },
  };
}

// ── raw TCP ──────────────────────────────────────────────────────────────────────────────────

/** A hand-driven client over node:net: our bytes out, the server's frames parsed as a client would. */
export class RawClient {
  static async connect(port, request = upgradeRequest("/"), ms = 5000) {
    const c = new RawClient();
    const socket = net.connect(port, '127.0.0.1');
    c.socket = socket;
    c.frames = [];
    c.response = '';
    c.closed = false;
    c.parseError = null;
    c.listeners = new Set();
    const parser = new FrameParser({ role: 'client', maxPayload: 1 << 30 });
    socket.on('error', () => {});
    let head = Buffer.alloc(0);
    let upgraded = false;
    socket.on('data', (chunk) => {
      if (!upgraded) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return c.wake();
        c.response = head.subarray(0, end).toString('latin1');
        upgraded = true;
        chunk = head.subarray(end + 4);
      }
      try {
        if (chunk.length > 0) c.frames.push(...parser.push(Buffer.from(chunk)));
      } catch (e) {
        c.parseError = e;
      }
      c.wake();
    });
    socket.on('close', () => {
      c.closed = true;
      c.wake();
    });
    await withTimeout(new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    }), ms, 'the TCP connection');
    socket.setNoDelay(true);
    socket.write(request);
    await c.until(() => c.response !== '' || c.closed, ms, 'the handshake response');
    return c;
  }

  wake() {
    for (const l of [...this.listeners]) l();
  }

  /** Wait until `pred()` holds, re-checked on every event, at most `ms`. */
  until(pred, ms = 5000, what = 'a condition') {
    if (pred()) return Promise.resolve();
    let listener;
    return withTimeout(new Promise((resolve) => {
      listener = () => {
        if (pred()) resolve();
      };
      this.listeners.add(listener);
    }), ms, what).finally(() => this.listeners.delete(listener));
  }

  /** The close frame the server sent, as { code, reason }. */
  closeFrame() {
    const f = this.frames.find((x) => x.opcode === 8);
    if (!f) return undefined;
    return f.payload.length >= 2 ? { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString() } : { code: 1005, reason: '' };
  }

  send(bytes) {
    this.socket.write(bytes);
  }

  /** A masked client frame through our encoder. */
  sendFrame(opcode, payload, opts = {}) {
    this.socket.write(encodeFrame(opcode, payload, { mask: true, ...opts }));
  }

  destroy() {
    this.socket.destroy();
  }
}
