// Shared by the HTTP/2 (RFC 8441) tests: a self-signed certificate made once per test run, an h2
// server with a WebSocketServer on it, and a hand-driven client stream speaking raw frames.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { WebSocketServer, type ServerOptions } from '../src/node/server.js';
import { FrameParser, type Frame } from '../src/protocol/parser.js';
import { encodeFrame, encodeClosePayload } from '../src/protocol/frame.js';
import { Waitable } from './helpers.js';

export interface Cert {
  key: Buffer;
  cert: Buffer;
  keyFile: string;
  certFile: string;
}

/**
 * A certificate for localhost and 127.0.0.1, made with openssl once per test run: every test file
 * of a vitest run has the same parent process, so the first one makes it and the others reuse it.
 */
export function testCert(): Cert {
  const dir = join(tmpdir(), `wasmws-tls-${process.ppid}`);
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  const fresh = existsSync(certFile) && Date.now() - statSync(certFile).mtimeMs < 12 * 3600_000;
  if (!fresh) {
    mkdirSync(dir, { recursive: true });
    const work = mkdtempSync(join(dir, 'new-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '2',
      '-keyout', join(work, 'key.pem'), '-out', join(work, 'cert.pem'),
    ], { stdio: 'ignore', timeout: 20_000 });
    // Renames are atomic: a file running alongside sees the old pair or the new one, never half.
    renameSync(join(work, 'key.pem'), keyFile);
    renameSync(join(work, 'cert.pem'), certFile);
    rmSync(work, { recursive: true, force: true });
  }
  return { key: readFileSync(keyFile), cert: readFileSync(certFile), keyFile, certFile };
}

export interface H2Setup {
  server: http2.Http2SecureServer;
  wss: WebSocketServer;
  port: number;
  origin: string;
  close(): Promise<void>;
}

/**
 * An h2 server (HTTP/1.1 fallback on the same port, a 'request' handler as most applications have
 * one) with a WebSocketServer attached that echoes unless `onConnection` is given.
 */
export async function h2Server(opts: Partial<ServerOptions> = {}, serverOpts: http2.SecureServerOptions = {}): Promise<H2Setup> {
  const { key, cert } = testCert();
  const server = http2.createSecureServer({ key, cert, allowHTTP1: true, settings: { enableConnectProtocol: true }, ...serverOpts }, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`page ${req.url}`);
  });
  const wss = new WebSocketServer({ server, ...opts } as ServerOptions);
  wss.on('connection', (ws) => ws.on('message', (d, isBinary) => ws.send(d as Buffer, { binary: isBinary })));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    wss,
    port,
    origin: `https://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          for (const ws of wss.clients) ws.terminate();
          for (const s of sessions) s.destroy();
        }, 2000);
        // Sessions are destroyed on a later turn: on Node 20, destroying one from inside the
        // close cascade of its streams can spin in native code (Http2Session::SendPendingData)
        // when it holds a stream answered by the compatibility layer; Node 22+ does not.
        wss.close(() =>
          setImmediate(() => {
            for (const s of sessions) s.destroy();
            server.close(() => {
              clearTimeout(t);
              resolve();
            });
          }),
        );
      }),
  };
}

/** Node's http2 client session to `origin` once the server's SETTINGS arrived. */
export async function h2Session(origin: string, opts: http2.SecureClientSessionOptions = {}): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(origin, { rejectUnauthorized: false, ...opts });
  session.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no SETTINGS from the server')), 5000);
    session.once('remoteSettings', () => {
      clearTimeout(t);
      resolve();
    });
  });
  return session;
}

export const CONNECT = (path: string, extra: http2.OutgoingHttpHeaders = {}): http2.OutgoingHttpHeaders => ({
  ':method': 'CONNECT',
  ':protocol': 'websocket',
  ':scheme': 'https',
  ':path': path,
  'sec-websocket-version': '13',
  ...extra,
});

/** A client stream speaking raw frames: what the server sends is parsed, what we send is masked by hand. */
export class H2Client extends Waitable {
  frames: Frame[] = [];
  status = 0;
  headers: http2.IncomingHttpHeaders = {};
  /** The server's END_STREAM arrived. */
  ended = false;
  /** The stream closed; `rstCode` says how (0 = both sides ended it). */
  closed = false;
  rstCode: number | undefined;
  body = Buffer.alloc(0);
  private parser = new FrameParser({ role: 'client', maxPayload: 1 << 30, allowRsv1: true });

  constructor(readonly stream: http2.ClientHttp2Stream, readonly raw = false) {
    super();
    stream.on('error', () => {});
    stream.on('response', (h) => {
      this.status = Number(h[':status']);
      this.headers = h;
      this.wake();
    });
    stream.on('data', (chunk: Buffer) => {
      if (this.status !== 200 || raw) this.body = Buffer.concat([this.body, chunk]);
      else {
        try {
          this.frames.push(...this.parser.push(chunk));
        } catch {
          // a malformed server frame: tests look at frames
        }
      }
      this.wake();
    });
    stream.on('end', () => {
      this.ended = true;
      this.wake();
    });
    stream.on('close', () => {
      this.closed = true;
      this.rstCode = stream.rstCode;
      this.wake();
    });
  }

  /** Open an extended CONNECT on `session` and wait for the response. */
  static async open(session: http2.ClientHttp2Session, path: string, extra: http2.OutgoingHttpHeaders = {}, raw = false): Promise<H2Client> {
    const c = new H2Client(session.request(CONNECT(path, extra), { endStream: false }), raw);
    await c.until(() => c.status !== 0 || c.closed);
    return c;
  }

  /** Send a masked frame (as a client must, RFC 6455 §5.3). */
  send(opcode: number, payload: Buffer | string = Buffer.alloc(0), opts: { fin?: boolean; rsv1?: boolean; mask?: boolean } = {}, written?: () => void): void {
    this.stream.write(encodeFrame(opcode, typeof payload === 'string' ? Buffer.from(payload) : payload, { mask: opts.mask ?? true, fin: opts.fin, rsv1: opts.rsv1 }), written);
  }

  /** Send a close frame; `written` runs once it has left (handed to the session's socket). */
  sendClose(code?: number, reason = '', written?: () => void): void {
    this.send(8, encodeClosePayload(code, reason), {}, written);
  }

  closeFrame(): [number, string] | undefined {
    const f = this.frames.find((x) => x.opcode === 8);
    if (!f) return undefined;
    return f.payload.length >= 2 ? [f.payload.readUInt16BE(0), f.payload.subarray(2).toString()] : [1005, ''];
  }

  messages(): Frame[] {
    return this.frames.filter((f) => f.opcode === 1 || f.opcode === 2);
  }
}

export const randomPayload = (n: number): Buffer => (n === 0 ? Buffer.alloc(0) : randomBytes(n));

/** What startServerOverH2's servers accepted: connections that arrived as h2 streams. */
export const overH2 = { connections: 0 };

/**
 * `startServer` (test/helpers.ts) with the WebSocketServer on an h2 server instead, behind a TCP
 * bridge: every TCP connection to `port` sends an HTTP/1.1 upgrade request, which becomes an
 * extended CONNECT stream on one shared h2 session (RFC 8441), answered "101" on the TCP side once
 * the stream has its 200; then bytes are relayed both ways, TCP FIN ⇄ END_STREAM, TCP reset ⇄
 * RST_STREAM. Raw-socket suites (test/conformance.test.ts) thus run unchanged over h2 streams.
 */
export async function startServerOverH2(opts: Partial<ServerOptions> = {}): Promise<{ wss: WebSocketServer; port: number; url: string }> {
  const { key, cert } = testCert();
  const server = http2.createSecureServer({ key, cert, settings: { enableConnectProtocol: true } });
  const wss = new WebSocketServer({ server, ...opts } as ServerOptions);
  wss.on('connection', (ws) => {
    if (ws.transport === 'h2') overH2.connections++;
  });
  const serverSessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    serverSessions.add(s);
    s.on('close', () => serverSessions.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const session = await h2Session(`https://127.0.0.1:${(server.address() as AddressInfo).port}`);
  const sockets = new Set<net.Socket>();
  const bridge = net.createServer((socket) => {
    socket.setNoDelay(true); // as the server's own sockets: no Nagle delay on relayed frames
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let head = Buffer.alloc(0);
    const onHead = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onHead);
      socket.pause();
      const lines = head.subarray(0, end).toString('latin1').split('\r\n');
      const rest = head.subarray(end + 4);
      const extra: http2.OutgoingHttpHeaders = {};
      for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        const name = line.slice(0, i).trim().toLowerCase();
        if (name === 'sec-websocket-extensions' || name === 'sec-websocket-protocol' || name === 'origin') extra[name] = line.slice(i + 1).trim();
      }
      const stream = session.request(CONNECT(lines[0].split(' ')[1] ?? '/', extra), { endStream: false });
      stream.on('error', () => {});
      stream.once('response', (h) => {
        const status = Number(h[':status']);
        if (status !== 200) {
          socket.end(`HTTP/1.1 ${status} Refused\r\nConnection: close\r\n\r\n`);
          stream.close(http2.constants.NGHTTP2_CANCEL);
          return;
        }
        let res = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n';
        for (const name of ['sec-websocket-extensions', 'sec-websocket-protocol']) if (h[name]) res += `${name}: ${h[name]}\r\n`;
        socket.write(res + '\r\n');
        if (rest.length > 0) stream.write(rest);
        stream.on('data', (d: Buffer) => socket.write(d));
        stream.on('end', () => socket.end());
        // A reset (or a stream closed without END_STREAM) is a TCP reset.
        stream.on('close', () => {
          if (!socket.writableEnded) socket.resetAndDestroy();
        });
        socket.on('data', (d: Buffer) => stream.write(d));
        socket.on('end', () => stream.end());
        socket.on('close', () => {
          if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
        });
        socket.resume();
      });
    };
    socket.on('data', onHead);
  });
  await new Promise<void>((r) => bridge.listen(0, '127.0.0.1', r));
  wss.once('close', () =>
    // A later turn: see h2Server's close about Node 20.
    setImmediate(() => {
      session.destroy();
      for (const s of sockets) s.destroy();
      for (const s of serverSessions) s.destroy();
      bridge.close();
      server.close();
    }),
  );
  const port = (bridge.address() as AddressInfo).port;
  return { wss, port, url: `ws://127.0.0.1:${port}` };
}
