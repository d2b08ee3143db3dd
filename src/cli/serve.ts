// `wasmws serve`: one http server per process routing upgrades by path to two WebSocketServers
// (noServer): /chat (the chat room) and /echo. With --workers N, node:cluster runs N of them on
// one port and the ClusterHub relays chat messages and presence between them.
import * as http from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type ServerOptions, type VerifyClientInfo } from '../server.js';
import type { WebSocket } from '../websocket.js';
import { requestPath, buildErrorResponse } from '../handshake.js';
import { createCodec } from '../codec/index.js';
import { ClusterHub, serveCluster, workerCount, type ClusterHandle } from '../cluster.js';
import { ChatRoom, HubPresence, type ChatPresence } from './chat.js';
import { ClusterBroker } from '../broker/cluster.js';
import { RedisBroker, type RedisClientLike } from '../broker/redis.js';
import { RedisPresence } from '../broker/presence.js';
import type { Broker } from '../broker/types.js';
import { findPublicDir, staticFiles } from './static.js';
import type { ServeOptions } from './args.js';

/** A failure to start, with a message fit for a terminal (no stack trace). */
export class StartError extends Error {}

export interface App {
  server: http.Server;
  chat: WebSocketServer;
  echo: WebSocketServer;
  room: ChatRoom;
  hub: ClusterHub;
  /** http://host:port/ */
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
    if (host === info.req.headers.host || extra.has(norm)) return cb(true);
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
  // One line per outage (the broker reports it once, and 'ready' when both connections are back).
  broker.on('error', (err) => console.error(`wasmws: ${err.message}`));
  broker.on('ready', () => console.error('wasmws: Redis is back'));
  await broker.ready;
  return { client, broker };
}

/** Start the http server, the chat room and the echo endpoint in this process. */
export async function startServer(o: ServeOptions, hub: ClusterHub = new ClusterHub()): Promise<App> {
  const handler = staticFiles(findPublicDir(), o.path);
  const common: ServerOptions = {
    noServer: true,
    maxPayload: o.maxPayload,
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
  const chat = new WebSocketServer({ ...common, broker, handleProtocols: (p) => (p.has('chat') ? 'chat' : false) });
  const echo = new WebSocketServer({ ...common });
  hub.attach(chat, 'chat');
  hub.attach(echo, 'echo');
  const room = new ChatRoom(chat, presence);
  echo.on('connection', (ws: WebSocket) => {
    ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary }));
  });
  const backend = createCodec({ backend: o.codec }).backend;

  const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) => {
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
      res.writeHead(426, { Upgrade: 'websocket', 'Content-Type': 'text/plain' }).end('Upgrade Required: this is a WebSocket endpoint\n');
      return;
    }
    if (path === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('Not Found\n');
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
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
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
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
      server.closeIdleConnections();
      let left = 2;
      const done = () => {
        if (--left > 0) return;
        clearTimeout(force);
        server.closeAllConnections();
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
  return { server, chat, echo, room, hub, url: formatUrl(o.host, port) + '/', close };
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
  const base = formatUrl(o.host, port);
  const ws = formatUrl(o.host, port, 'ws');
  const backend = createCodec({ backend: o.codec }).backend;
  log(`wasmws: listening on ${base}/`);
  log(`  chat page  ${base}/`);
  log(`  chat       ${ws}${o.path}  (subprotocol "chat")`);
  log(`  echo       ${ws}/echo`);
  log(`  codec ${backend} · permessage-deflate ${o.deflate ? "on" : "off"} · ${workers} worker${workers === 1 ? '' : 's'} (${workers === 1 ? 'single process' : 'node:cluster'}) · pid ${process.pid}`);
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
  }
  return handle;
}
