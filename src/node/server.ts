// WebSocketServer: the server side of the opening handshake (RFC 6455 §4.2), connection tracking,
// heartbeats, broadcast and graceful shutdown. ws-compatible options and events.
import { CloseCode } from '../protocol/constants.js';
import { EventEmitter } from 'node:events';
import * as http from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { WebSocket, OPEN } from './websocket.js';
import { DEFAULTS, resolveConnectionOptions, type ConnectionOptions, type ResolvedConnectionOptions } from './options.js';
import { noteIncoming } from './transport.js';
import { toBuffer, type Data } from '../protocol/data.js';
import { acceptResponseLines, buildErrorResponse, formatResponseLines, requestPath, runVerifyClient, selectSubprotocol, validateUpgrade } from '../handshake/upgrade.js';
import type { PerMessageDeflateOptions } from '../handshake/extensions.js';
import { negotiateServer } from '../deflate/deflate.js';
import { fanOut, Topics, type PublishOptions } from '../pubsub/topics.js';
import type { Broker } from '../pubsub/broker.js';
import type { Http2Session, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { attachHttp2Server, handleH2Stream, probeSession, refuseStream, isHttp2Server, type Http2AnyServer, type Http2WebSocketRequest } from './http2.js';

export interface VerifyClientInfo {
  origin: string | undefined;
  secure: boolean;
  req: http.IncomingMessage;
}
// Declared as methods so that their parameters compare bivariantly: a callback typed with @types/ws's
// VerifyClientCallbackSync/Async (whose `origin` is typed `string`) is accepted too.
type VerifyClientSync = { verify(info: VerifyClientInfo): boolean }['verify'];
type VerifyClientAsync = {
  verify(info: VerifyClientInfo, cb: (ok: boolean, code?: number, message?: string, headers?: http.OutgoingHttpHeaders) => void): void;
}['verify'];

export interface ServerOptions extends ConnectionOptions {
  port?: number;
  host?: string;
  backlog?: number;
  /** An http(s) server, or an http2 one (RFC 8441: WebSockets as HTTP/2 streams too, see src/node/http2.ts). */
  server?: http.Server | import('node:https').Server | Http2AnyServer;
  noServer?: boolean;
  /** Accept upgrades on this path only; other paths get 404. */
  path?: string;
  handleProtocols?: (protocols: Set<string>, req: http.IncomingMessage) => string | false;
  verifyClient?: VerifyClientSync | VerifyClientAsync;
  /** Keep `wss.clients` (default true). */
  clientTracking?: boolean;
  /** Origins allowed to connect (403 for others); a list or a predicate. Absent Origin (non-browser) passes. */
  allowedOrigins?: string[] | ((origin: string | undefined) => boolean);
  /** Close a socket whose handshake has not completed in this many ms (default 10 s; 0: no deadline). */
  handshakeTimeout?: number;
  /** Ping every client this often (ms) and terminate one that has sent nothing since the last ping. 0 = off. */
  heartbeatInterval?: number;
  /** permessage-deflate (RFC 7692); off by default. */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /** The class of the connections (a subclass of WebSocket), as in ws; constructed as `new WebSocket(null)`. */
  WebSocket?: typeof WebSocket;
  /** Where publishes go beyond this process: ClusterBroker, RedisBroker (default: this process only). */
  broker?: Broker;
}


const kHandled = Symbol('wasmws.handled');
const noop = () => {};

/** Write a short HTTP error and close the socket (RFC 6455 §4.2.1: "respond with an HTTP error"). */
function abortHandshake(socket: Duplex, status: number, message: string, headers?: Record<string, string>): void {
  if (socket.writable && !socket.destroyed) {
    socket.end(buildErrorResponse(status, message, headers));
    // Do not wait on a peer that never reads: the response is tiny, give it a moment and go.
    setTimeout(() => socket.destroy(), 1000).unref();
  } else socket.destroy();
}

export interface WebSocketServer {
  on(event: 'connection', listener: (this: WebSocketServer, ws: WebSocket, req: http.IncomingMessage) => void): this;
  on(event: 'headers', listener: (this: WebSocketServer, headers: string[], req: http.IncomingMessage) => void): this;
  on(event: 'error', listener: (this: WebSocketServer, err: Error) => void): this;
  on(event: 'listening' | 'close', listener: (this: WebSocketServer) => void): this;
  on(event: 'wsClientError', listener: (this: WebSocketServer, err: Error, socket: Duplex, req: http.IncomingMessage) => void): this;
  on(event: string | symbol, listener: (this: WebSocketServer, ...args: any[]) => void): this;
  once(event: 'connection', listener: (this: WebSocketServer, ws: WebSocket, req: http.IncomingMessage) => void): this;
  once(event: 'listening' | 'close', listener: (this: WebSocketServer) => void): this;
  once(event: 'headers', listener: (this: WebSocketServer, headers: string[], req: http.IncomingMessage) => void): this;
  once(event: 'error', listener: (this: WebSocketServer, err: Error) => void): this;
  once(event: 'wsClientError', listener: (this: WebSocketServer, err: Error, socket: Duplex, req: http.IncomingMessage) => void): this;
  once(event: string | symbol, listener: (this: WebSocketServer, ...args: any[]) => void): this;
}

export class WebSocketServer extends EventEmitter {
  readonly options: ServerOptions;
  /** @internal The connections' options, resolved once for all of them. */
  readonly connectionOptions: ResolvedConnectionOptions;
  /** Open connections (when clientTracking is on). */
  readonly clients: Set<WebSocket>;
  private readonly conns = new Set<WebSocket>();
  /** @internal Sockets and HTTP/2 streams whose handshake is in progress. */
  readonly pending = new Set<Duplex>();
  private server: http.Server | import('node:https').Server | Http2AnyServer | null = null;
  private ownServer = false;
  private heartbeat: NodeJS.Timeout | null = null;
  /** @internal */
  state: 'running' | 'closing' | 'closed' = 'running';
  private removeListeners: () => void = noop;
  /** @internal Topics and pub/sub (src/pubsub/topics.ts). */
  readonly _topics: Topics;

  constructor(options: ServerOptions, callback?: () => void) {
    super();
    const hasPort = options.port !== undefined;
    if ([hasPort, !!options.server, !!options.noServer].filter(Boolean).length !== 1) {
      throw new TypeError('One and only one of the "port", "server", or "noServer" options must be specified');
    }
    this.options = { clientTracking: true, handshakeTimeout: DEFAULTS.serverHandshakeTimeout, heartbeatInterval: DEFAULTS.heartbeatInterval, ...options };
    this.connectionOptions = resolveConnectionOptions(this.options);
    this.clients = this.options.clientTracking ? this.conns : new Set();
    this._topics = new Topics(options.broker);
    if (hasPort) {
      const hs = this.options.handshakeTimeout!;
      const server = http.createServer({
        // Slowloris: a request whose headers do not arrive in time is dropped by Node's HTTP parser.
        headersTimeout: hs,
        requestTimeout: hs,
        connectionsCheckingInterval: Math.max(100, Math.min(1000, hs / 2)),
      } as http.ServerOptions, (_req, res) => {
        const body = http.STATUS_CODES[426]!;
        res.writeHead(426, { 'Content-Type': 'text/plain', 'Content-Length': body.length, Upgrade: 'websocket' });
        res.end(body);
      });
      this.server = server;
      this.ownServer = true;
      server.listen(options.port, options.host, options.backlog ?? DEFAULTS.backlog, callback);
    } else if (options.server) {
      this.server = options.server;
    }
    if (this.server) {
      const server = this.server;
      const onListening = () => this.emit('listening');
      const onError = (err: Error) => this.emit('error', err);
      server.on('listening', onListening);
      server.on('error', onError);
      const offUpgrades = routeUpgrades(server, this);
      // On an http2 server, extended CONNECT streams as well (RFC 8441).
      const offStreams = isHttp2Server(server) ? attachHttp2Server(this, server) : noop;
      this.removeListeners = () => {
        offStreams();
        server.off('listening', onListening);
        server.off('error', onError);
        offUpgrades();
      };
    }
    const hb = this.options.heartbeatInterval!;
    if (hb > 0) {
      this.heartbeat = setInterval(() => this.beat(), hb);
      this.heartbeat.unref();
    }
  }

  /** The `path` option ('' when upgrades on any path are accepted); @types/ws declares it, ws itself leaves it unset. */
  get path(): string {
    return this.options.path ?? '';
  }

  /** The listening address (as net.Server#address()). */
  address(): AddressInfo | string | null {
    if (this.options.noServer) throw new Error('The server is operating in "noServer" mode');
    return this.server?.address() ?? null;
  }

  /** Does this request target our path? (ws's shouldHandle) */
  shouldHandle(req: http.IncomingMessage): boolean {
    return this.options.path === undefined || requestPath(req.url) === this.options.path;
  }

  /** Validate and complete an upgrade; `cb(ws, req)` gets the open connection. */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, cb: (ws: WebSocket, req: http.IncomingMessage) => void): void {
    socket.on('error', noop); // a reset during the handshake must not crash the process
    noteIncoming(); // an upgrade: turns stay short for a second, so that a reconnect storm is accepted fast
    if ((socket as any)[kHandled]) throw new Error('server.handleUpgrade() was called more than once with the same socket');
    (socket as any)[kHandled] = true;
    if (this.state !== 'running') return abortHandshake(socket, 503, 'Server is shutting down');
    const o = this.options;
    // shouldHandle may be overridden (as ws documents): it, not `path` alone, says what we serve.
    const check = validateUpgrade(req, { serves: this.shouldHandle(req), allowedOrigins: o.allowedOrigins });
    if (!check.ok) {
      // As in ws: a malformed handshake goes to 'wsClientError' listeners, who answer it themselves;
      // a request refused by policy (path → 404, allowedOrigins → 403) is answered here.
      if (check.status !== 404 && check.status !== 403 && this.emitClientError(check.message, socket, req)) return;
      return abortHandshake(socket, check.status, check.message, check.headers);
    }

    // Extensions (RFC 7692): a malformed offer header fails the handshake with 400.
    let ext: ReturnType<typeof negotiateServer> = null;
    if (o.perMessageDeflate) {
      try {
        ext = negotiateServer(check.extensions, o.perMessageDeflate, this.connectionOptions.maxPayload);
      } catch {
        const message = 'Invalid Sec-WebSocket-Extensions header';
        if (this.emitClientError(message, socket, req)) return;
        return abortHandshake(socket, 400, message);
      }
    }

    this.pending.add(socket);
    const timer = o.handshakeTimeout! > 0 ? setTimeout(() => {
      this.pending.delete(socket);
      socket.destroy();
    }, o.handshakeTimeout!) : undefined;
    timer?.unref();
    const finish = () => {
      clearTimeout(timer);
      this.pending.delete(socket);
    };

    const complete = () => {
      finish();
      if (!socket.readable || !socket.writable || socket.destroyed) {
        socket.destroy();
        return;
      }
      if (this.state !== 'running') return abortHandshake(socket, 503, 'Server is shutting down');
      const protocol = selectSubprotocol(check.protocols, o.handleProtocols, req);
      // 'headers' gets the response's lines (status line first, as in ws) to inspect, edit or push
      // "Name: value" lines to.
      const lines = acceptResponseLines({ key: check.key, protocol, extensions: ext?.response });
      this.emit('headers', lines, req);
      socket.write(formatResponseLines(lines));
      cb(this.accept(socket, head, protocol, ext, 'http/1.1'), req);
    };

    if (!o.verifyClient) return complete();
    const info: VerifyClientInfo = {
      origin: check.origin,
      secure: !!(req.socket as any)?.encrypted,
      req,
    };
    runVerifyClient(o.verifyClient as VerifyClientAsync, info, complete, (code, message, headers) => {
      finish();
      // Header values may be numbers or lists (OutgoingHttpHeaders); written as ws writes them: `${value}`.
      const h = headers && Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, `${v}`]));
      abortHandshake(socket, code, message ?? http.STATUS_CODES[code] ?? 'Unauthorized', h);
    });
  }

  /**
   * Validate and accept a WebSocket over HTTP/2 (RFC 8441): `stream` and `headers` as the http2
   * server's 'stream' event gives them. `cb(ws, req)` gets the open connection; refusals are
   * answered with an HTTP/2 status. For `noServer` users (attached servers route streams by themselves).
   */
  handleStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, cb: (ws: WebSocket, req: Http2WebSocketRequest) => void): void {
    handleH2Stream(this, stream, headers, cb);
  }

  /** Emit 'wsClientError' (err, socket, req) if anyone listens; false when nobody does. */
  private emitClientError(message: string, socket: Duplex, req: http.IncomingMessage): boolean {
    if (this.listenerCount('wsClientError') === 0) return false;
    this.emit('wsClientError', new Error(message), socket, req);
    return true;
  }

  /**
   * Create and track the connection. Kept apart from handleUpgrade so that nothing a connection
   * keeps alive (its listeners) captures the request, the handshake timer or their closures.
   */
  /** @internal */
  accept(socket: Duplex, head: Buffer, protocol: string, ext: ReturnType<typeof negotiateServer>, transport: 'http/1.1' | 'h2'): WebSocket {
    socket.off('error', noop);
    const ws = new (this.options.WebSocket ?? WebSocket)(null);
    const compressor = ext ? ext.create() : null;
    ws._open({ socket, head, protocol, extensions: ext?.response ?? '', compressor, transport }, 'server', this.connectionOptions);
    this.conns.add(ws);
    ws._server = this; // untracked when it closes (no closure and no listener per connection)
    return ws;
  }

  /** @internal A connection closed (WebSocket calls it before its 'close' event). */
  _untrack(ws: WebSocket): void {
    this.conns.delete(ws);
    this._topics.drop(ws);
    if (this.state === 'closing' && this.conns.size === 0) this.finishClose();
  }

  /** Heartbeat: terminate peers silent since the last ping, ping the rest. */
  private beat(): void {
    for (const ws of this.conns) {
      if (ws.readyState !== OPEN) continue;
      // Its pongs would wait unread: not judged while reading is paused (and then given a whole
      // interval), unless what waits for the peer has not moved since the last beat: a peer that
      // reads nothing is judged as silent whatever we do (an echo paused until its answer is
      // written would otherwise hold that answer, and the connection, for good). Still pinged:
      // towards a peer that died, the unanswered bytes make TCP give up.
      if (ws._conn?.readingPaused && ws._conn.transport.outputMoved()) {
        ws.isAlive = true;
        ws.ping();
        continue;
      }
      if (!ws.isAlive) {
        // (The session is read first: a reset stream no longer knows it.)
        const session = ws.transport === 'h2' ? (ws._socket as { session?: Http2Session } | null)?.session : undefined;
        ws.terminate();
        // Over h2 the reset went into a session that may be just as silent: probe it.
        if (session) probeSession(session, this.options.heartbeatInterval!);
        continue;
      }
      ws.isAlive = false;
      ws.ping();
    }
  }

  /**
   * Send one message to every open client: framed once, the same bytes written to each.
   * `except` skips one client (typically the sender). With permessage-deflate, connections whose
   * server_no_context_takeover makes every message stand alone share one compression per window
   * size (RFC 7692 §7.1.1.1); connections with context takeover compress with their own context.
   */
  broadcast(data: Data, opts: { binary?: boolean; except?: WebSocket } = {}): number {
    const binary = opts.binary ?? typeof data !== 'string';
    return fanOut(this.conns, toBuffer(data), binary, true, opts.except ?? null);
  }

  /**
   * Publish to every subscriber of `topic` (here and, through the broker, in every other process);
   * framed once per wire form. Returns the number of local recipients.
   */
  publish(topic: string, data: Data, options?: PublishOptions): number {
    return this._topics.publish(topic, data, options, null);
  }

  /** Local subscribers of `topic`. */
  subscriberCount(topic: string): number {
    return this._topics.subscriberCount(topic);
  }

  /** Topics with at least one local subscriber. */
  get topicCount(): number {
    return this._topics.size;
  }

  /**
   * Graceful shutdown: stop accepting, send close 1001 to every client, wait for their closing
   * handshakes (closeTimeout bounds it), then close the listening server and emit 'close'.
   */
  close(cb?: (err?: Error) => void): void {
    if (this.state === 'closed') {
      if (cb) process.nextTick(cb, new Error('The server is not running'));
      return;
    }
    if (cb) this.once('close', () => cb());
    if (this.state === 'closing') return;
    this.state = 'closing';
    if (this.heartbeat) clearInterval(this.heartbeat);
    // Handshakes in progress: an h2 stream gets 503 (a reset without a status would tell the
    // client nothing), a socket is destroyed.
    for (const s of this.pending) {
      if (typeof (s as Partial<ServerHttp2Stream>).respond === 'function') refuseStream(s as ServerHttp2Stream, 503, 'Server is shutting down');
      else s.destroy();
    }
    this.pending.clear();
    this.removeListeners();
    if (this.ownServer && this.server) {
      // 'close' waits for the listening socket too (its callback comes once every socket is gone).
      this.serverOpen = true;
      const server = this.server as http.Server;
      server.close(() => {
        this.serverOpen = false;
        if (this.conns.size === 0) this.finishClose();
      });
      server.closeIdleConnections?.();
    }
    for (const ws of this.conns) {
      if (ws.readyState === OPEN) ws.close(CloseCode.GOING_AWAY, 'server shutting down');
    }
    if (this.conns.size === 0) this.finishClose();
  }
  /** Our own HTTP server is still closing. */
  private serverOpen = false;

  private finishClose(): void {
    if (this.state === 'closed' || this.serverOpen) return;
    this.state = 'closed';
    this._topics.close();
    process.nextTick(() => this.emit('close'));
  }
}

type UpgradeListener = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;
/** The servers attached to each HTTP server (the `server` option), in the order they were made, and the one listener routing among them. */
const attachedServers = new WeakMap<object, { servers: WebSocketServer[]; listener: UpgradeListener }>();

/**
 * Route the HTTP server's upgrades among every WebSocketServer attached to it, through one
 * 'upgrade' listener: the first whose shouldHandle(req) accepts a request handles it, so several
 * servers on their own paths share one HTTP server (where each answering every upgrade would
 * handle a socket twice). An upgrade none of them serves gets 404 from the first, unless the HTTP
 * server has other 'upgrade' listeners (another library's endpoints): then it is left to them.
 * Returns the detach.
 */
function routeUpgrades(server: EventEmitter, wss: WebSocketServer): () => void {
  let route = attachedServers.get(server);
  if (route === undefined) {
    const servers: WebSocketServer[] = [];
    const listener: UpgradeListener = (req, socket, head) => {
      for (const w of servers) {
        if (w.shouldHandle(req)) return w.handleUpgrade(req, socket, head, (ws) => w.emit('connection', ws, req));
      }
      if (server.listenerCount('upgrade') > 1 || servers.length === 0) return;
      servers[0].handleUpgrade(req, socket, head, noop); // refused: 404 (or what else is wrong with it)
    };
    route = { servers, listener };
    attachedServers.set(server, route);
    server.on('upgrade', listener);
  }
  const r = route;
  r.servers.push(wss);
  return () => {
    const i = r.servers.indexOf(wss);
    if (i >= 0) r.servers.splice(i, 1);
    if (r.servers.length > 0) return;
    server.off('upgrade', r.listener);
    attachedServers.delete(server);
  };
}
