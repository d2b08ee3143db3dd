// The client side of the opening handshake (RFC 6455 §4.1): an HTTP/1.1 upgrade request through
// Node's http/https (or an extended CONNECT over HTTP/2, src/node/http2.ts). It reports to the
// WebSocket that started it through HandshakeHooks and hands it a HandshakeResult; it never
// writes into the WebSocket.
import * as http from 'node:http';
import * as https from 'node:https';
import { unescape } from 'node:querystring';
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { SecureContextOptions } from 'node:tls';
import type { EventEmitter } from 'node:events';
import { buildUpgradeHeaders, generateKey, validateAcceptResponse } from '../handshake/upgrade.js';
import type { PerMessageDeflateOptions } from '../handshake/extensions.js';
import { acceptClient, clientOffer } from '../deflate/deflate.js';
import { DEFAULTS, resolveConnectionOptions, type ConnectionOptions } from './options.js';
import type { HandshakeResult } from './connection.js';
import type { ClientHttp2Session } from 'node:http2';
import { startHttp2Client } from './http2.js';
import type { CertMeta, FinishRequestCallback } from '../ws-types.js';
import { Buffer } from 'node:buffer';

/**
 * Options of `new WebSocket(url, protocols, options)`. Every option http(s).request and TLS take
 * (agent, ca, cert, key, servername, lookup, createConnection, signal, …) is passed through to the
 * upgrade request, as ws does; `host`, `port`, `path`, `method`, `protocol` and `timeout` come
 * from the URL and from `handshakeTimeout`.
 */
export interface ClientOptions extends ConnectionOptions, SecureContextOptions {
  /** Extra request headers. */
  headers?: Record<string, string>;
  origin?: string;
  /** Fail if the server has not answered the upgrade within this many ms (default 30 s). */
  handshakeTimeout?: number;
  /** Offer permessage-deflate (RFC 7692); default true, as in ws. */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /** Follow 3xx answers with a Location (default false), at most `maxRedirects` (10) times; 'redirect' is emitted for each. */
  followRedirects?: boolean;
  maxRedirects?: number;
  /** Sec-WebSocket-Version: only 13 (RFC 6455); any other value throws RangeError. */
  protocolVersion?: number;
  /** Called with the upgrade request instead of `request.end()`: set last headers, then end it (ws's option). */
  finishRequest?: FinishRequestCallback;
  agent?: http.Agent;
  rejectUnauthorized?: boolean;
  family?: number;
  localAddress?: string;
  /** Passed to TLS (typed as in @types/ws). */
  checkServerIdentity?(servername: string, cert: CertMeta): boolean;
  /** Opens the connection (http.request's option). */
  createConnection?: typeof net.createConnection;
  /** Ignored, as in ws: the URL gives the host. */
  host?: string;
  /** Ignored, as in ws: the URL gives the scheme. */
  protocol?: string;
  /**
   * RFC 8441: open the WebSocket as a stream of an HTTP/2 session (shared by every WebSocket to the
   * same origin) when the server advertises SETTINGS_ENABLE_CONNECT_PROTOCOL; HTTP/1.1 otherwise.
   * `ws.transport` says which one is used.
   */
  http2?: boolean;
  /** RFC 8441 on this session (yours: never closed by us); implies `http2`. */
  http2Session?: ClientHttp2Session;
}

/** The only Sec-WebSocket-Version (RFC 6455 §4.1). */
const PROTOCOL_VERSION = 13;

/** How the handshake reports to the WebSocket that started it. */
export interface HandshakeHooks {
  /** 'redirect', 'upgrade' and 'unexpected-response' are emitted on it (the WebSocket); finishRequest gets it. */
  readonly emitter: EventEmitter;
  /** The URL now requested (normalized; a redirect changes it). */
  setUrl(url: string): void;
  /** What close() / terminate() call to end the handshake in progress (undefined once it is over). */
  setAbort(abort: ((err: Error) => void) | undefined): void;
  /** The handshake succeeded. */
  opened(result: HandshakeResult): void;
  /** The handshake failed: the WebSocket emits 'error' and 'close'. */
  failed(err: Error): void;
}

/** What a chain of redirects remembers about the first request (headers to drop when it changes host). */
interface RedirectState {
  count: number;
  /** host:port of the first URL, or its socket path for ws+unix. */
  origin: string;
  ipc: boolean;
  secure: boolean;
  /** The caller's headers, lower-cased (so that an Authorization header can be dropped whatever its case). */
  headers: Record<string, string>;
}

/** @internal Start the opening handshake for a client WebSocket. Throws for a bad URL or option. */
export function startClientHandshake(
  address: string | URL,
  protocols: string[],
  opts: ClientOptions,
  hooks: HandshakeHooks,
  redirect?: RedirectState,
): void {
  const ws = hooks.emitter;
  const protocolVersion = opts.protocolVersion ?? PROTOCOL_VERSION;
  if (protocolVersion !== PROTOCOL_VERSION) {
    throw new RangeError(`Unsupported protocol version: ${protocolVersion} (supported versions: ${PROTOCOL_VERSION})`);
  }
  let url: URL;
  try {
    url = new URL(address); // a copy: the caller's URL object is not modified below
  } catch {
    throw new SyntaxError(`Invalid URL: ${String(address)}`);
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  hooks.setUrl(url.href);
  const secure = url.protocol === 'wss:';
  const ipc = url.protocol === 'ws+unix:';
  if (url.protocol !== 'ws:' && !secure && !ipc) {
    throw new SyntaxError('The URL\'s protocol must be one of "ws:", "wss:", "http:", "https:", or "ws+unix:"');
  }
  if (ipc && !url.pathname) throw new SyntaxError("The URL's pathname is empty");
  if (url.hash) throw new SyntaxError('The URL contains a fragment identifier');
  if ((opts.http2 || opts.http2Session) && !ipc) {
    // Falls back to this function, for HTTP/1.1, when the server does not take extended CONNECT.
    const h1: ClientOptions = { ...opts, http2: false, http2Session: undefined };
    return startHttp2Client(url, protocols, opts, hooks, () => startClientHandshake(url, protocols, h1, hooks, redirect));
  }
  const key = generateKey();
  const deflateOpts = opts.perMessageDeflate === false ? undefined : opts.perMessageDeflate;
  const extOffer = opts.perMessageDeflate !== false ? clientOffer(deflateOpts) : undefined;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  let path = url.pathname + url.search;
  // ws+unix:///tmp/sock:/chat?x — the socket path, then the request path after the first ':'.
  let socketPath: string | undefined;
  if (ipc) {
    const i = path.indexOf(':');
    socketPath = i === -1 ? path : path.slice(0, i);
    path = i === -1 ? '' : path.slice(i + 1);
  }
  // Credentials in the URL win over an `auth` request option (http.request's own, passed through).
  let auth =
    url.username || url.password
      ? `${unescape(url.username)}:${unescape(url.password)}`
      : (opts as { auth?: string }).auth;

  let userHeaders = opts.headers;
  if (opts.followRedirects) {
    if (!redirect) {
      const lower: Record<string, string> = {};
      for (const [k, v] of Object.entries(opts.headers ?? {})) lower[k.toLowerCase()] = v;
      redirect = { count: 0, origin: ipc ? socketPath! : url.host, ipc, secure, headers: lower };
    }
    userHeaders = { ...redirect.headers };
    if (redirect.count > 0 && ws.listenerCount('redirect') === 0) {
      // Credentials do not follow a redirect to another host or from wss: to ws: (curl's rule, as in ws).
      const sameHost = ipc === redirect.ipc && (ipc ? socketPath : url.host) === redirect.origin;
      if (!sameHost || (redirect.secure && !secure)) {
        delete userHeaders.authorization;
        delete userHeaders.cookie;
        if (!sameHost) delete userHeaders.host;
        auth = undefined;
      }
    }
    // URL credentials become the Authorization header, unless one was given (the first one wins).
    if (auth !== undefined && redirect.headers.authorization === undefined) {
      redirect.headers.authorization = userHeaders.authorization = 'Basic ' + Buffer.from(auth).toString('base64');
    }
    auth = undefined;
  }
  const headers = buildUpgradeHeaders({ key, protocols, origin: opts.origin, extensions: extOffer, headers: userHeaders });
  const secureModule = secure ? https : http;
  const req = secureModule.request({
    ...(opts as https.RequestOptions),
    host,
    hostname: undefined,
    port: url.port || (secure ? 443 : 80),
    path,
    socketPath,
    auth,
    protocol: undefined,
    method: 'GET',
    headers,
    timeout: undefined, // the handshake's deadline is our own timer below (any Duplex, not only sockets)
    // As ws: a connection of its own, not one from http.globalAgent's keep-alive pool (a pooled
    // socket the server has since closed would fail the retry after a refused handshake).
    agent: opts.agent !== undefined || typeof (opts as { createConnection?: unknown }).createConnection === 'function' ? opts.agent : false,
  } as https.RequestOptions);
  let done = false;

  // A deadline for the whole handshake (ws uses the socket's idle timeout instead, which needs a
  // net.Socket and restarts with every byte a slow server sends).
  // 0 (as in ws): no deadline.
  const deadline = opts.handshakeTimeout ?? DEFAULTS.clientHandshakeTimeout;
  const timer = deadline > 0 ? setTimeout(() => failHandshake(new Error('Opening handshake has timed out')), deadline) : undefined;
  timer?.unref?.();
  const failHandshake = (err: Error): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    hooks.setAbort(undefined);
    req.destroy();
    hooks.failed(err);
  };
  hooks.setAbort(failHandshake);
  if (redirect && redirect.count > 0) ws.emit('redirect', url.href, req);

  req.on('error', failHandshake);
  req.on('response', (res) => {
    if (done) return;
    const location = res.headers.location;
    const status = res.statusCode ?? 0;
    if (location && opts.followRedirects && status >= 300 && status < 400) {
      if (++redirect!.count > (opts.maxRedirects ?? DEFAULTS.maxRedirects)) {
        failHandshake(new Error('Maximum redirects exceeded'));
        return;
      }
      done = true;
      clearTimeout(timer);
      hooks.setAbort(undefined);
      res.resume();
      req.destroy();
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        hooks.failed(new SyntaxError(`Invalid URL: ${location}`));
        return;
      }
      try {
        startClientHandshake(next, protocols, opts, hooks, redirect);
      } catch (err) {
        hooks.failed(err as Error); // e.g. a redirect to another scheme
      }
      return;
    }
    if (ws.listenerCount('unexpected-response') > 0) {
      // The application handles the response; terminate()/close() still end the attempt (as in ws):
      // abortHandshake stays set, so they destroy the request and emit 'error' and 'close'.
      ws.emit('unexpected-response', req, res);
      return;
    }
    res.resume();
    failHandshake(new Error(`Unexpected server response: ${res.statusCode}`));
  });
  req.on('upgrade', (res: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (done) {
      socket.destroy();
      return;
    }
    ws.emit('upgrade', res);
    // The application may have closed or terminated the connection from an 'upgrade' listener.
    if (done) {
      socket.destroy();
      return;
    }
    const check = validateAcceptResponse(res, key, protocols);
    if (!check.ok) {
      socket.destroy();
      return failHandshake(new Error(check.message));
    }
    let compressor;
    try {
      compressor = acceptClient(check.extensions, extOffer, deflateOpts, resolveConnectionOptions(opts).maxPayload);
    } catch (err) {
      socket.destroy();
      return failHandshake(err as Error);
    }
    done = true;
    clearTimeout(timer);
    hooks.setAbort(undefined);
    hooks.opened({ socket, head, protocol: check.protocol, extensions: check.extensions ?? '', compressor, transport: 'http/1.1' });
  });
  if (opts.finishRequest) opts.finishRequest(req, ws as Parameters<FinishRequestCallback>[1]);
  else req.end();
}
