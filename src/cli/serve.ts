// `wasmws serve`: one http server per process routing upgrades by path to two WebSocketServers
// (noServer): /chat (the chat room) and /echo. With --workers N, node:cluster runs N of them on
// one port and the ClusterHub relays chat messages and presence between them.
import * as http from 'node:http';
import * as http2 from 'node:http2';
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type ServerOptions, type VerifyClientInfo } from '../node/server.js';
import type { WebSocket } from '../node/websocket.js';
import { requestPath, buildErrorResponse, isExtendedConnect } from '../handshake/upgrade.js';
import { refuseStream } from '../node/http2.js';
import { createCodec } from '../codec/index.js';
import { ClusterHub, serveCluster, workerCount, type ClusterHandle } from '../cluster/serve.js';
import { ChatRoom, HubPresence, type ChatPresence } from './chat.js';
import { ClusterBroker } from '../pubsub/cluster-broker.js';
import { RedisBroker, type RedisClientLike } from '../pubsub/redis.js';
import { RedisPresence } from '../pubsub/presence.js';
import type { Broker } from '../pubsub/broker.js';
import { findPublicDir, staticFiles } from './static.js';
import type { ServeOptions } from './args.js';

/** A failure to start, with a message fit for a terminal (no stack trace). */
export class StartError extends Error {}

export interface App {
  /** An http.Server, or with --tls-cert/--tls-key an http2 secure server (h2 and HTTP/1.1 on one port). */
  server: http.Server | http2.Http2SecureServer;
  chat: WebSocketServer;
  echo: WebSocketServer;
  room: ChatRoom;
  hub: ClusterHub;
  /** http://host:port/ (https:// with TLS) */
  url: string;
  /** Graceful: close 1001 to every client, wait for their close handshakes (bounded), stop listening. */
  close(): Promise<void>;
}

const CLOSE_TIMEOUT = 5000;

/** Same-origin, clients without an Origin header (non-browsers), plus `--origin` values. */
function originCheck(origins: string[]) {
  const any = origins.includes('*');
  const extra = new Set(origins.filter((o) => o !== '*').map((o) => new URL(o).origin));
  return (info: VerifyClientInfo, cb: (ok: boolean, code?: number, message?: string) => void): void => {
    const origin = info.origin;
    if (any || origin === undefined) return cb(true);
    let host: string;
    let norm: string;
    try {
      const u = new URL(origin);
      host = u.host;
      norm = u.origin;
    } catch {
      return cb(false, 403, 'Origin not allowed');
    }
    // Over HTTP/2 the request's host is its :authority (there is no Host header).
    const own = info.req.headers.host ?? (info.req.headers as Record<string, string | undefined>)[':authority'];
    if (host === own || extra.has(norm)) return cb(true);
    cb(false, 403, 'Origin not allowed');
  };
}

function listenError(err: NodeJS.ErrnoException, port: number, host: string): StartError {
  switch (err.code) {
    case 'EADDRINUSE':
      return new StartError(`port ${port} on ${host} is already in use (stop the other server, or pick another --port; 0 picks a free one)`);
    case 'EACCES':
      return new StartError(`permission denied to listen on ${host}:${port} (ports below 1024 need privileges)`);
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StartError(`cannot listen on host "${host}": address not available on this machine`);
    default:
      return new StartError(`cannot listen on ${host}:${port}: ${err.message}`);
  }
}

export function formatUrl(host: string, port: number, scheme = 'http'): string {
  const h = host.includes(':') ? `[${host}]` : host;
  return `${scheme}://${h}:${port}`;
}

/** Connect to Redis for --redis (the optional `redis` package), bounded in time. */
async function connectRedis(url: string): Promise<{ client: RedisClientLike; broker: RedisBroker }> {
  let mod: { createClient(o: unknown): RedisClientLike };
  try {
    mod = (await import('redis' as string)) as typeof mod;
  } catch {
    throw new StartError('--redis needs the "redis" package: npm install redis');
  }
  // Give up at start after a few tries (exit 1 with a message); once up, reconnect for ever (≤ 2 s apart).
  let up = false;
  const reconnectStrategy = (retries: number, cause: Error) => (up ? Math.min(50 * 2 ** retries, 2000) : retries < 3 ? 100 : cause);
  const client = mod.createClient({ url, socket: { connectTimeout: 5000, reconnectStrategy } });
  let first: Error | null = null;
  client.on('error', (err: Error) => (first ??= err));
  const ok = await Promise.race([
    client.connect().then(() => true, () => false),
    new Promise<boolean>((r) => setTimeout(() => r(false), 5000).unref()),
  ]);
  up = ok;
  if (!ok) {
    client.destroy?.();
    const e = first as NodeJS.ErrnoException | null;
    throw new StartError(`cannot reach Redis at ${url}${e ? `: ${e.message || e.code}` : ''}`);
  }
  const broker = new RedisBroker({ client });
  // One line per outage and node (each worker is a Redis node of its own, and says which it is).
  const who = cluster.isWorker && cluster.worker ? ` (worker ${cluster.worker.id}, pid ${process.pid})` : '';
  broker.on('error', (err) => console.error(`wasmws${who}: ${err.message}`));
  broker.on('ready', () => console.error(`wasmws${who}: Redis is back`));
  await broker.ready;
  return { client, broker };
}

/**
 * The largest /chat message (src/cli/chat.ts: a join, or a text of 1,000 characters each escaped
 * in JSON as \uXXXX at worst, 6 bytes) is under 7 KiB: anything larger is refused from its header
 * (1009), before it is buffered, inflated or parsed.
 */
const CHAT_MAX_PAYLOAD = 16 * 1024;

/** Echoes wait for the client past this many bytes: its reading pauses until they are written. */
const ECHO_HIGH_WATER = 1024 * 1024;

/**
 * /echo with TCP backpressure: once more than ECHO_HIGH_WATER waits to be written to the client,
 * reading from it pauses until the echo that crossed the mark has been written, so a client that
 * sends without reading waits in its own kernel buffers instead of in this process (a naive echo
 * holds up to --max-backpressure per connection, and then drops it with 1008).
 */
function echoWithBackpressure(ws: WebSocket): void {
  let waiting = 0;
  const written = (): void => {
    if (--waiting === 0) ws.resume();
  };
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (ws.bufferedAmount + data.length <= ECHO_HIGH_WATER) return ws.send(data, { binary: isBinary });
    waiting++;
    ws.pause();
    ws.send(data, { binary: isBinary }, written);
  });
}

/** Start the http server, the chat room and the echo endpoint in this process. */
export async function startServer(o: ServeOptions, hub: ClusterHub = new ClusterHub()): Promise<App> {
  const handler = staticFiles(findPublicDir(), o.path);
  const common: ServerOptions = {
    noServer: true,
    maxPayload: o.maxPayload,
    maxBackpressure: o.maxBackpressure,
    heartbeatInterval: o.heartbeat,
    codec: o.codec,
    perMessageDeflate: o.deflate,
    closeTimeout: CLOSE_TIMEOUT,
    verifyClient: originCheck(o.origins),
  };
  // The chat's topic crosses workers through the primary, or every node through Redis (--redis).
  const redis = o.redis ? await connectRedis(o.redis) : null;
  const broker: Broker = redis ? redis.broker : new ClusterBroker(hub, { name: 'chat' });
  const presence: ChatPresence = redis ? new RedisPresence(redis.broker, { name: 'chat', ttl: o.presenceTtl }) : new HubPresence(hub);
  // A client that offers no subprotocol (wscat, curl) is still served; one offering "chat" gets it.
  const chat = new WebSocketServer({
    ...common, maxPayload: Math.min(CHAT_MAX_PAYLOAD, o.maxPayload), broker, handleProtocols: (p) => (p.has('chat') ? 'chat' : false),
  });
  const echo = new WebSocketServer({ ...common });
  hub.attach(chat, 'chat');
  hub.attach(echo, 'echo');
  const room = new ChatRoom(chat, presence);
  echo.on('connection', echoWithBackpressure);
  const backend = createCodec({ backend: o.codec }).backend;

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const path = requestPath(req.url);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('Method Not Allowed\n');
      return;
    }
    if (handler(req, res)) return;
    if (path === '/stats') {
      const body = JSON.stringify({
        pid: process.pid,
        worker: hub.id,
        codec: backend,
        connections: hub.connections,
        workers: hub.workers(),
        users: room.online,
        broker: redis ? 'redis' : 'cluster',
      });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(body);
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path === o.path || path === '/echo') {
      // HTTP/2 forbids the Upgrade header (RFC 9113 §8.2.2); there a WebSocket is an extended CONNECT.
      const upgrade = req.httpVersionMajor >= 2 ? {} : { Upgrade: 'websocket' };
      res.writeHead(426, { ...upgrade, 'Content-Type': 'text/plain' }).end('Upgrade Required: this is a WebSocket endpoint\n');
      return;
    }
    if (path === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('Not Found\n');
  };
  const server = o.tls ? tlsServer(o.tls, o.headerTimeout, onRequest) : http.createServer(slowRequests(o.headerTimeout), onRequest);
  const h2sessions = new Set<http2.ServerHttp2Session>();
  if (!(server instanceof http.Server)) {
    const h2 = server as http2.Http2SecureServer;
    h2.on('session', (s) => {
      h2sessions.add(s);
      s.on('close', () => h2sessions.delete(s));
    });
    // RFC 8441: WebSockets as streams of the page's own h2 connection, routed by path as upgrades are.
    h2.on('stream', (stream, headers) => {
      if (!isExtendedConnect(headers)) return;
      const path = requestPath(String(headers[':path'] ?? '/'));
      const wss = path === o.path ? chat : path === '/echo' || path === '/' ? echo : null;
      if (!wss) return refuseStream(stream, 404, 'Not found');
      wss.handleStream(stream, headers, (ws, req) => wss.emit('connection', ws, req));
    });
    // With a request handler, Node answers CONNECT with 405 unless someone listens for 'connect'
    // (nodejs/node#36977): extended CONNECTs are served above, plain ones (proxy requests) get 405.
    h2.on('connect', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
      if (isExtendedConnect(req.headers)) return;
      res.writeHead(405, { 'content-type': 'text/plain' }).end('Method Not Allowed\n');
    });
  }
  (server as http.Server).on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = requestPath(req.url);
    // The echo endpoint also answers upgrades on "/" (load generators and conformance suites often
    // connect there by default); a plain GET / still serves the page.
    const wss = path === o.path ? chat : path === '/echo' || path === '/' ? echo : null;
    if (!wss) {
      socket.on('error', () => {});
      socket.end(buildErrorResponse(404, 'Not found'));
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  (server as http.Server).on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Node's own statuses (what it answers when nobody listens): slow headers 408, too large 431.
    const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    if (socket.writable && (socket as Partial<Socket>).bytesWritten === 0) {
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\n\r\n`);
    }
    socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(listenError(err, o.port, o.host));
    server.once('error', onError);
    server.listen(o.port, o.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= new Promise<void>((resolve) => {
      server.close();
      (server as http.Server).closeIdleConnections?.();
      let left = 2;
      const done = () => {
        if (--left > 0) return;
        clearTimeout(force);
        (server as http.Server).closeAllConnections?.();
        // h2 connections: GOAWAY, then gone once their last stream is (a browser keeps one idle).
        for (const s of h2sessions) s.close();
        setTimeout(() => {
          for (const s of h2sessions) s.destroy();
        }, 1000).unref();
        resolve();
      };
      // Peers that never answer our close frame are cut after the close timeout.
      const force = setTimeout(() => {
        for (const ws of [...chat.clients, ...echo.clients]) ws.terminate();
      }, CLOSE_TIMEOUT + 500);
      force.unref();
      chat.close(() => {
        if (!redis) return done();
        // Our presence key goes first (the others see us leave at once), then both Redis connections.
        void (presence as RedisPresence).close()
          .then(() => redis.broker.close())
          .then(() => redis.client.close?.() ?? redis.client.quit?.())
          .catch(() => {})
          .finally(done);
      });
      echo.close(() => done());
    }));
  hub.onShutdown(close);
  return { server, chat, echo, room, hub, url: formatUrl(o.host, port, o.tls ? 'https' : 'http') + '/', close };
}

/** The --tls-cert/--tls-key server: h2 (advertising extended CONNECT, RFC 8441 §3) with HTTP/1.1 on the same port (ALPN). */
/**
 * Slowloris: a request whose headers have not all come within `ms` (--header-timeout) gets 408
 * (Node checks every connectionsCheckingInterval, 30 s by default: a socket could hold on for 40 s
 * with a 10 s limit), a whole request at most 3 × that; a TLS handshake at most `ms` (tls's default
 * is 120 s).
 */
const slowRequests = (ms: number) =>
  ({ headersTimeout: ms, requestTimeout: 3 * ms, connectionsCheckingInterval: Math.max(50, Math.min(1000, ms >> 2)) }) as http.ServerOptions;

function tlsServer(files: { cert: string; key: string }, headerTimeout: number, onRequest: (req: http.IncomingMessage, res: http.ServerResponse) => void): http2.Http2SecureServer {
  const read = (flag: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new StartError(`cannot read ${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const cert = read('--tls-cert', files.cert);
  const key = read('--tls-key', files.key);
  try {
    const server = http2.createSecureServer(
      { cert, key, allowHTTP1: true, settings: { enableConnectProtocol: true }, handshakeTimeout: headerTimeout } as http2.SecureServerOptions,
      onRequest as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
    );
    // With allowHTTP1 the constructor sets its own HTTP/1.1 limits (60 s, 300 s, every 30 s),
    // whatever the options say; they are read again when it starts listening.
    Object.assign(server, slowRequests(headerTimeout));
    return server;
  } catch (err) {
    throw new StartError(`cannot use --tls-cert ${files.cert} / --tls-key ${files.key}: ${(err as Error).message}`);
  }
}

/** How often a server started by npm checks that npm is still its parent. */
const PARENT_POLL_MS = 500;

/** Run `wasmws serve`: one process or a cluster; resolves once listening. */
export async function runServe(o: ServeOptions, log: (line: string) => void = console.log): Promise<ClusterHandle> {
  const workers = workerCount(o.workers);
  const handle = await serveCluster({
    workers,
    shutdownTimeout: CLOSE_TIMEOUT + 2000,
    worker: async (hub) => (await startServer(o, hub)).server,
  });
  if (handle.role === 'worker') return handle;
  const port = handle.address?.port ?? o.port;
  const base = formatUrl(o.host, port, o.tls ? 'https' : 'http');
  const ws = formatUrl(o.host, port, o.tls ? 'wss' : 'ws');
  const backend = createCodec({ backend: o.codec }).backend;
  log(`wasmws: listening on ${base}/`);
  log(`  chat page  ${base}/`);
  log(`  chat       ${ws}${o.path}  (subprotocol "chat")`);
  log(`  echo       ${ws}/echo`);
  log(`  codec ${backend} · permessage-deflate ${o.deflate ? "on" : "off"} · ${workers} worker${workers === 1 ? '' : 's'} (${workers === 1 ? 'single process' : 'node:cluster'}) · pid ${process.pid}`);
  if (o.tls) log(`  tls        h2 + HTTP/1.1 on one port: WebSockets as streams of the page's h2 connection (RFC 8441), or HTTP/1.1 upgrades`);
  if (o.redis) log(`  redis      ${new URL(o.redis).host}: chat and presence across every serve process using it`);
  log('Press Ctrl+C to stop.');
  let stopping = false;
  const bye = (signal: string) => {
    stopping = true;
    log(`wasmws: ${signal}, closing connections (1001) and exiting`);
  };
  process.once('SIGINT', () => bye('SIGINT'));
  process.once('SIGTERM', () => bye('SIGTERM'));
  if (process.env.npm_lifecycle_event) {
    // Started by npm (`npm start`): npm forwards SIGTERM/SIGINT to us (the script execs node), but
    // if npm itself is killed outright, nobody would tell us. Re-parenting means our supervisor is
    // gone: shut down as on SIGTERM rather than linger with the port bound.
    const parent = process.ppid;
    const watch = setInterval(() => {
      if (process.ppid === parent || stopping) return;
      clearInterval(watch);
      bye('parent process exited');
      void handle.shutdown().then(() => process.exit(0));
    }, PARENT_POLL_MS);
    watch.unref();
  }
  if (handle.role === 'primary') {
    handle.events.on('exit', (w, code, signal) => {
      if (!stopping) log(`wasmws: worker ${w.id} (pid ${w.process.pid}) exited (${signal ?? code})`);
    });
    handle.events.on('respawn', (w) => log(`wasmws: started worker ${w.id} to replace it`));
    handle.events.on('warning', (err: Error) => log(err.message));
  }
  return handle;
}
