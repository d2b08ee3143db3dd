// WebSockets over HTTP/2 (RFC 8441), server and client. Only the opening handshake differs from
// HTTP/1.1: an extended CONNECT (:method CONNECT, :protocol websocket) answered with :status 200.
// After it, the stream's DATA carries RFC 6455 frames, and the connection is the same WebSocket
// and Protocol as over TCP, with the Http2Stream (a Duplex) as its transport:
//
//   h2 session ─┬─ stream 1: GET /            (the page)
//               ├─ stream 3: CONNECT websocket ─▶ WebSocket._setSocket(stream) ─▶ Protocol
//               └─ stream 5: CONNECT websocket ─▶ WebSocket._setSocket(stream) ─▶ Protocol
//
// Closing (RFC 8441 §5): our close frame, then end() = END_STREAM (the connection code ends its
// transport after the closing handshake); the peer's END_STREAM closes the stream; a reset happens
// only when closeTimeout passes. A peer's RST_STREAM after the closing handshake is a clean close,
// one before it is 1006 — the same rule as a TCP reset.
import * as http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { WebSocketServer, VerifyClientInfo } from './server.js';
import type { WebSocket } from './websocket.js';
import type { ClientOptions, HandshakeHooks } from './client.js';
import { DEFAULTS, resolveConnectionOptions } from './options.js';
import { resetStream } from './transport.js';
import {
  buildExtendedConnectHeaders, h2AcceptLines, h2ErrorHeaders, h2ResponseHeaders, isExtendedConnect, requestPath,
  validateExtendedConnect, validateExtendedConnectResponse, H2_WEBSOCKET_PROTOCOL, runVerifyClient, selectSubprotocol,
} from '../handshake/upgrade.js';
import { acceptClient, clientOffer, negotiateServer } from '../deflate/deflate.js';
import { Buffer } from 'node:buffer';

/** An http2 server (TLS or cleartext) a WebSocketServer can serve streams of. */
export type Http2AnyServer = http2.Http2SecureServer | http2.Http2Server;

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR } = http2.constants;
const EMPTY = Buffer.alloc(0);
const noop = () => {};
/** How long a refused stream may stay open for a peer that keeps sending (ms). */
const REFUSE_LINGER = 1000;

/** True for the servers of node:http2 (only they have updateSettings). */
export function isHttp2Server(server: unknown): server is Http2AnyServer {
  return typeof (server as { updateSettings?: unknown } | null)?.updateSettings === 'function';
}

/**
 * The request of a WebSocket over HTTP/2, shaped like the IncomingMessage of an HTTP/1.1 upgrade
 * where that makes sense: `url` is :path, `headers` are the stream's (pseudo-headers included;
 * there is no `host`, use `headers[':authority']`), `socket` is the session's socket.
 */
export interface Http2WebSocketRequest {
  method: 'CONNECT';
  url: string;
  headers: http2.IncomingHttpHeaders;
  httpVersion: '2.0';
  httpVersionMajor: 2;
  httpVersionMinor: 0;
  socket: Socket;
  stream: http2.ServerHttp2Stream;
}

// ── server ────────────────────────────────────────────────────────────────────────────────

const kHandled = Symbol('wasmws.h2.handled');
type MarkedStream = http2.ServerHttp2Stream & { [kHandled]?: true };

/**
 * Answer a refused extended CONNECT with an HTTP/2 status and a short text body. A peer that keeps
 * its side open is reset after a moment (RFC 9113 §8.1: RST_STREAM NO_ERROR after a complete response).
 */
export function refuseStream(stream: http2.ServerHttp2Stream, status: number, message: string, headers?: Parameters<typeof h2ErrorHeaders>[1]): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    resetStream(stream, NGHTTP2_CANCEL);
    return;
  }
  // Discard what the peer sends: a stream closes only once its readable side has been read to
  // the end (unread DATA would keep it, and a graceful session close, waiting).
  stream.resume();
  try {
    stream.respond(h2ErrorHeaders(status, headers));
    stream.end(message);
  } catch {
    stream.destroy();
    return;
  }
  setTimeout(() => {
    resetStream(stream, NGHTTP2_NO_ERROR); // (CANCEL when the peer's window kept our answer back)
  }, REFUSE_LINGER).unref();
}

function requestOf(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Http2WebSocketRequest {
  return {
    method: 'CONNECT',
    url: String(headers[':path'] ?? '/'),
    headers,
    httpVersion: '2.0',
    httpVersionMajor: 2,
    httpVersionMinor: 0,
    socket: stream.session?.socket as Socket,
    stream,
  };
}

/** WebSocketServer#handleStream: validate an extended CONNECT, run the policy hooks, answer 200 and connect. */
export function handleH2Stream(
  wss: WebSocketServer,
  stream: MarkedStream,
  headers: http2.IncomingHttpHeaders,
  cb: (ws: WebSocket, req: Http2WebSocketRequest) => void,
): void {
  // Taken already (by a WebSocketServer attached to the server, or an earlier call): not ours to
  // answer, and a throw here would be one inside the server's 'stream' event, crashing the process.
  if (stream[kHandled]) return;
  stream[kHandled] = true;
  stream.on('error', noop); // a reset during the handshake must not crash the process
  // Answered already: Node's compatibility layer sends 405 to a CONNECT when a 'request' listener
  // exists and no 'connect' one (nodejs/node#36977); servers we attach to get a 'connect' guard.
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  if (wss.state !== 'running') return refuseStream(stream, 503, 'Server is shutting down');
  // END_STREAM on the request's HEADERS: the peer can send no WebSocket frame on it (it would open,
  // then end at once with 1006).
  if (stream.endAfterHeaders) return refuseStream(stream, 400, 'An extended CONNECT must leave its stream open (END_STREAM was set)');
  const o = wss.options;
  const check = validateExtendedConnect(headers, { path: o.path, allowedOrigins: o.allowedOrigins });
  if (!check.ok) return refuseStream(stream, check.status, check.message, check.headers);

  // Extensions (RFC 7692 over RFC 8441 §5): negotiated exactly as over HTTP/1.1.
  let ext: ReturnType<typeof negotiateServer> = null;
  if (o.perMessageDeflate) {
    try {
      ext = negotiateServer(check.extensions, o.perMessageDeflate, wss.connectionOptions.maxPayload);
    } catch {
      return refuseStream(stream, 400, 'Invalid Sec-WebSocket-Extensions header');
    }
  }

  const req = requestOf(stream, headers);
  wss.pending.add(stream);
  const timer = o.handshakeTimeout! > 0 ? setTimeout(() => {
    wss.pending.delete(stream);
    resetStream(stream, NGHTTP2_CANCEL);
  }, o.handshakeTimeout!) : undefined;
  timer?.unref();
  const finish = () => {
    clearTimeout(timer);
    wss.pending.delete(stream);
  };

  const complete = () => {
    finish();
    // Answered meanwhile (503 from wss.close(), the handshake timeout): nothing more to say.
    if (stream.destroyed || stream.closed || stream.headersSent) return;
    if (wss.state !== 'running') return refuseStream(stream, 503, 'Server is shutting down');
    const protocol = selectSubprotocol(check.protocols, o.handleProtocols, req as never);
    // 'headers' gets the response as lines ("HTTP/2 200", then "name: value"), as over HTTP/1.1.
    const lines = h2AcceptLines({ protocol, extensions: ext?.response });
    wss.emit('headers', lines, req);
    try {
      stream.respond(h2ResponseHeaders(lines));
    } catch {
      stream.destroy();
      return;
    }
    stream.off('error', noop);
    const ws = wss.accept(stream, EMPTY, protocol, ext, 'h2');
    cb(ws, req);
  };

  if (!o.verifyClient) return complete();
  const info: VerifyClientInfo = { origin: check.origin, secure: stream.session?.encrypted === true, req: req as never };
  runVerifyClient(o.verifyClient as Parameters<typeof runVerifyClient<VerifyClientInfo>>[0], info, complete, (code, message, hdrs) => {
    finish();
    if (stream.headersSent) return;
    refuseStream(stream, code, message ?? 'Unauthorized', hdrs as Record<string, string> | undefined);
  });
}

/**
 * nodejs/node#36977: once a 'request' listener exists, Node's compatibility layer answers every
 * CONNECT with 405 unless a 'connect' listener exists. This one lets extended CONNECTs through to
 * the 'stream' listeners and, when it is the only 'connect' listener, answers a plain CONNECT with
 * 405 as Node would. One per server, shared by the WebSocketServers attached to it.
 */
function connectGuard(this: Http2AnyServer, req: http2.Http2ServerRequest, res: http2.Http2ServerResponse | Socket): void {
  const alone = this.listeners('connect').every((l) => l === connectGuard);
  if (!(req as Partial<http2.Http2ServerRequest>).stream) {
    // An HTTP/1.1 CONNECT (allowHTTP1): `res` is the socket. Node's HTTP/1.1 server destroys it
    // when nobody listens for 'connect'; so do we when only we do.
    if (alone) (res as Socket).destroy();
    return;
  }
  if (isExtendedConnect(req.headers)) return;
  if (alone) {
    const r = res as http2.Http2ServerResponse;
    r.statusCode = 405;
    r.end();
  }
}

/** What we keep per http2 server, for its lifetime: the WebSocketServers attached to it. */
interface H2Host {
  attached: Set<WebSocketServer>;
}
const hosts = new WeakMap<Http2AnyServer, H2Host>();

/**
 * The extended CONNECT no 'stream' listener claimed by the end of its tick: a refusal from the
 * first running WebSocketServer's rules (404 off every path, 501 for another :protocol), 503 when
 * none runs (they closed or are closing: an h2 stream nobody answers would hang, and Node's
 * compatibility layer would answer 405).
 */
function unclaimed(stream: MarkedStream, headers: http2.IncomingHttpHeaders, host: H2Host): void {
  if (stream[kHandled] || stream.headersSent || stream.destroyed || stream.closed) return;
  stream[kHandled] = true;
  stream.on('error', noop);
  let running: WebSocketServer | undefined;
  for (const w of host.attached) if (w.state === 'running') running = running ?? w;
  if (!running) return refuseStream(stream, 503, 'Server is shutting down');
  const check = validateExtendedConnect(headers, { path: running.options.path });
  if (!check.ok) refuseStream(stream, check.status, check.message, check.headers);
  else refuseStream(stream, 404, 'Not found');
}

/**
 * The server's part that outlives every WebSocketServer on it (installed once, never removed):
 * the 'connect' guard and the responder for unclaimed extended CONNECTs, so that a session opened
 * while SETTINGS_ENABLE_CONNECT_PROTOCOL was advertised never gets 405 or silence.
 */
function hostOf(server: Http2AnyServer): H2Host {
  let host = hosts.get(server);
  if (host) return host;
  const h: H2Host = { attached: new Set() };
  hosts.set(server, h);
  server.on('connect', connectGuard);
  server.on('stream', (stream: MarkedStream, headers: http2.IncomingHttpHeaders) => {
    if (!stream[kHandled] && isExtendedConnect(headers)) process.nextTick(unclaimed, stream, headers, h);
  });
  return h;
}

/**
 * Serve the WebSocket streams of an http2 server: advertise SETTINGS_ENABLE_CONNECT_PROTOCOL
 * (RFC 8441 §3) to sessions from now on, take extended CONNECTs for our path from the 'stream'
 * event, and guard them from the compatibility layer's 405. Returns the detach function: new
 * sessions stop getting the setting once no attached WebSocketServer runs.
 */
export function attachHttp2Server(wss: WebSocketServer, server: Http2AnyServer): () => void {
  const host = hostOf(server);
  host.attached.add(wss);
  server.updateSettings({ enableConnectProtocol: true });
  const path = wss.options.path;
  const onStream = (stream: MarkedStream, headers: http2.IncomingHttpHeaders) => {
    if (stream[kHandled] || !isExtendedConnect(headers)) return;
    // Another path or :protocol may belong to another listener (another WebSocketServer on this
    // server): leave it to them, or to the host's responder by the end of this tick.
    const mine =
      headers[':protocol'] === H2_WEBSOCKET_PROTOCOL &&
      (path === undefined || requestPath(String(headers[':path'] ?? '/')) === path);
    if (mine) handleH2Stream(wss, stream, headers, (ws, req) => wss.emit('connection', ws, req));
  };
  server.on('stream', onStream);
  const detach = () => {
    server.off('stream', onStream);
    host.attached.delete(wss);
  };
  // Detached when the WebSocketServer has closed, not when it starts to: streams arriving during a
  // graceful close get 503 from it, later ones from the host's responder.
  return () => {
    let others = false;
    for (const w of host.attached) if (w !== wss && w.state === 'running') others = true;
    if (!others) server.updateSettings({ enableConnectProtocol: false });
    if (wss.state === 'closed') detach();
    else wss.once('close', detach);
  };
}

/** Sessions with a liveness probe in flight. */
const probing = new WeakSet<http2.Http2Session>();

/**
 * The heartbeat terminated a WebSocket over h2 (its peer went silent): the RST_STREAM went into
 * a session that may be dead as a whole, and nothing else would notice. Ping it; no ACK within
 * `ms` destroys it (its TCP/TLS socket with it).
 */
export function probeSession(session: http2.Http2Session, ms: number): void {
  if (session.destroyed || session.closed || probing.has(session)) return;
  probing.add(session);
  const timer = setTimeout(() => {
    probing.delete(session);
    if (!session.destroyed) session.destroy();
  }, ms);
  timer.unref();
  const done = (err: Error | null) => {
    clearTimeout(timer);
    probing.delete(session);
    if (err && !session.destroyed) session.destroy();
  };
  try {
    if (!session.ping(done)) done(new Error('ping refused'));
  } catch (err) {
    done(err as Error);
  }
}

// ── client ────────────────────────────────────────────────────────────────────────────────

/** A client session and what we know of it. */
interface SessionEntry {
  session: http2.ClientHttp2Session;
  /** Cache key; null for a session the application passed (never closed by us). */
  key: string | null;
  /** Did the server advertise SETTINGS_ENABLE_CONNECT_PROTOCOL? null until its SETTINGS arrived. */
  connectProtocol: boolean | null;
  waiters: ((ok: boolean) => void)[];
  /** WebSockets using the session, and handshakes in progress on it. */
  refs: number;
  /** Streams open on it (ours): at the server's SETTINGS_MAX_CONCURRENT_STREAMS, a new one waits in nghttp2. */
  streams: number;
}

/**
 * Our own sessions per origin (and TLS options): WebSockets to one origin share one, and another
 * opens when the server's SETTINGS_MAX_CONCURRENT_STREAMS is reached on those there are.
 */
const sessions = new Map<string, SessionEntry[]>();

function forget(e: SessionEntry): void {
  if (e.key === null) return;
  const list = sessions.get(e.key);
  const i = list ? list.indexOf(e) : -1;
  if (i < 0) return;
  list!.splice(i, 1);
  if (list!.length === 0) sessions.delete(e.key);
}

/** No room for another stream: the server's SETTINGS arrived and its limit is reached. */
function full(e: SessionEntry): boolean {
  return e.connectProtocol !== null && e.streams >= (e.session.remoteSettings?.maxConcurrentStreams ?? Infinity);
}
const userSessions = new WeakMap<http2.ClientHttp2Session, SessionEntry>();
const objectIds = new WeakMap<object, number>();
let nextObjectId = 1;

/** A cache-key part: primitives as themselves, objects and functions by identity. */
function idOf(v: unknown): string {
  if ((typeof v !== 'object' && typeof v !== 'function') || v === null) return JSON.stringify(v) ?? String(v);
  let id = objectIds.get(v as object);
  if (id === undefined) objectIds.set(v as object, (id = nextObjectId++));
  return `#${id}`;
}

function settle(e: SessionEntry, ok: boolean): void {
  if (e.connectProtocol !== null) return;
  e.connectProtocol = ok;
  if (!ok) forget(e);
  for (const w of e.waiters.splice(0)) w(ok);
  if (!ok) release(e, 0);
}

function whenReady(e: SessionEntry, cb: (ok: boolean) => void): void {
  if (e.connectProtocol !== null) process.nextTick(cb, e.connectProtocol);
  else e.waiters.push(cb);
}

/** Drop `n` references; our own session closes (GOAWAY, then the socket) when nothing uses it. */
function release(e: SessionEntry, n: number): void {
  e.refs -= n;
  if (e.refs > 0 || e.key === null) return;
  forget(e);
  if (e.session.destroyed) return;
  // Still connecting, or the server's SETTINGS not yet in (a handshake timed out or was
  // terminated before): close() would wait for a connection that may never come; destroy it.
  if (e.session.connecting || e.connectProtocol === null) e.session.destroy();
  else if (!e.session.closed) e.session.close();
}

/**
 * The options of a WebSocket that shape its connection (TLS: trust, client certificate, name
 * checks; the socket: family, local address, lookup), passed to http2.connect. A session is shared
 * only by WebSockets that agree on all of them.
 */
const CONNECTION_OPTIONS = [
  'rejectUnauthorized', 'ca', 'cert', 'key', 'pfx', 'passphrase', 'crl', 'ciphers', 'ecdhCurve', 'sigalgs',
  'minVersion', 'maxVersion', 'secureOptions', 'secureProtocol', 'honorCipherOrder', 'dhparam', 'sessionIdContext',
  'privateKeyIdentifier', 'privateKeyEngine', 'clientCertEngine', 'servername', 'checkServerIdentity',
  'family', 'localAddress', 'lookup',
] as const;

function ownSession(url: URL, opts: ClientOptions): SessionEntry {
  const secure = url.protocol === 'wss:';
  const origin = `${secure ? 'https' : 'http'}://${url.host}`;
  const connect: Record<string, unknown> = {};
  let key = origin;
  for (const name of CONNECTION_OPTIONS) {
    const v = (opts as Record<string, unknown>)[name];
    if (v === undefined) continue;
    connect[name] = v;
    key += `|${name}=${idOf(v)}`;
  }
  for (const cached of sessions.get(key) ?? []) {
    if (!cached.session.closed && !cached.session.destroyed && cached.connectProtocol !== false && !full(cached)) return cached;
  }
  const session = http2.connect(origin, connect as http2.SecureClientSessionOptions);
  const e: SessionEntry = { session, key, connectProtocol: null, waiters: [], refs: 0, streams: 0 };
  const list = sessions.get(key);
  if (list) list.push(e);
  else sessions.set(key, [e]);
  // RFC 8441 §3: the server's first SETTINGS says whether it takes extended CONNECT. A session that
  // fails or closes before (no h2 in ALPN, an HTTP/1.1-only cleartext server) means "fall back".
  session.once('remoteSettings', (s) => settle(e, s.enableConnectProtocol === true));
  session.on('error', () => settle(e, false));
  session.once('close', () => {
    forget(e);
    settle(e, false);
  });
  return e;
}

/**
 * A session the application passed: its SETTINGS may have arrived long ago (no event will come)
 * or not yet. A PING's ACK comes after the server's SETTINGS (they open its side of the connection),
 * so once it is back, remoteSettings is the server's.
 */
function userSession(session: http2.ClientHttp2Session): SessionEntry {
  let e = userSessions.get(session);
  if (e && e.connectProtocol !== false) return e;
  e = { session, key: null, connectProtocol: null, waiters: [], refs: 0, streams: 0 };
  userSessions.set(session, e);
  const entry = e;
  const advertised = () => session.remoteSettings?.enableConnectProtocol === true;
  if (advertised()) {
    entry.connectProtocol = true;
    return entry;
  }
  session.once('remoteSettings', (s) => {
    if (s.enableConnectProtocol) settle(entry, true);
  });
  const ping = () => {
    try {
      if (!session.ping((err) => settle(entry, !err && advertised()))) settle(entry, advertised());
    } catch {
      settle(entry, false);
    }
  };
  if (session.closed || session.destroyed) settle(entry, false);
  else if (session.connecting) session.once('connect', ping);
  else ping();
  return entry;
}

/**
 * @internal The client's opening handshake over HTTP/2 (RFC 8441 §4, §5): reuse or open the
 * session for the URL's origin, wait for its SETTINGS, send the extended CONNECT, check the 200,
 * bind the stream. `fallback()` runs the HTTP/1.1 handshake instead when the server does not
 * advertise SETTINGS_ENABLE_CONNECT_PROTOCOL (or does not speak h2).
 */
export function startHttp2Client(url: URL, protocols: string[], opts: ClientOptions, hooks: HandshakeHooks, fallback: () => void): void {
  const ws = hooks.emitter;
  const secure = url.protocol === 'wss:';
  const deflateOpts = opts.perMessageDeflate === false ? undefined : opts.perMessageDeflate;
  const extOffer = opts.perMessageDeflate !== false ? clientOffer(deflateOpts) : undefined;
  // Throws (bad subprotocols) synchronously, as the HTTP/1.1 path does.
  const headers = buildExtendedConnectHeaders({
    authority: url.host,
    path: (url.pathname || '/') + url.search,
    scheme: secure ? 'https' : 'http',
    protocols,
    origin: opts.origin,
    extensions: extOffer,
    headers: opts.headers,
  });
  let e = opts.http2Session ? userSession(opts.http2Session) : ownSession(url, opts);
  e.refs++;
  let held = true;
  const drop = () => {
    if (!held) return;
    held = false;
    release(e, 1);
  };
  let done = false;
  let stream: http2.ClientHttp2Stream | null = null;
  const deadline = opts.handshakeTimeout ?? DEFAULTS.clientHandshakeTimeout; // 0 (as in ws): none
  const timer = deadline > 0 ? setTimeout(() => fail(new Error('Opening handshake has timed out')), deadline) : undefined;
  const settleHandshake = () => {
    done = true;
    clearTimeout(timer);
    hooks.setAbort(undefined);
  };
  const fail = (err: Error): void => {
    if (done) return;
    settleHandshake();
    if (stream && !stream.destroyed) {
      stream.resume(); // unread DATA (an error body) would keep the stream, and our session, open
      resetStream(stream, NGHTTP2_CANCEL);
    }
    drop();
    hooks.failed(err);
  };
  hooks.setAbort(fail);

  const onReady = (ok: boolean): void => {
    if (done) return;
    if (!ok) {
      settleHandshake();
      drop();
      fallback();
      return;
    }
    if (e.key !== null && full(e)) {
      // The server's SETTINGS_MAX_CONCURRENT_STREAMS is reached here: another session for the origin.
      drop();
      e = ownSession(url, opts);
      e.refs++;
      held = true;
      whenReady(e, onReady);
      return;
    }
    let s: http2.ClientHttp2Stream;
    try {
      s = e.session.request(headers, { endStream: false });
    } catch (err) {
      return fail(err as Error);
    }
    const owner = e;
    owner.streams++;
    s.once('close', () => owner.streams--);
    stream = s;
    const onError = (err: Error) => fail(err);
    const onClose = () => fail(new Error(`The stream closed before the server's response (RST_STREAM ${s.rstCode})`));
    s.on('error', onError);
    s.once('close', onClose);
    s.once('response', (h) => {
      if (done) return;
      const res = { statusCode: Number(h[':status']), headers: h, httpVersion: '2.0' };
      const check = validateExtendedConnectResponse(h, protocols);
      if (!check.ok) {
        if (res.statusCode !== 200 && ws.listenerCount('unexpected-response') > 0) {
          // As over HTTP/1.1: the application handles the response (the stream is its body);
          // terminate()/close() still end the attempt.
          // Handled by the application from now on: the stream's end is no failure of ours (no
          // 'error' and 1006 after it); the session is released when the stream closes.
          clearTimeout(timer);
          s.off('error', onError);
          s.off('close', onClose);
          s.on('error', noop);
          s.once('close', drop);
          ws.emit('unexpected-response', s, res);
          return;
        }
        return fail(new Error(check.message));
      }
      let compressor;
      try {
        compressor = acceptClient(check.extensions, extOffer, deflateOpts, resolveConnectionOptions(opts).maxPayload);
      } catch (err) {
        return fail(err as Error);
      }
      // As over HTTP/1.1: close() or terminate() from an 'upgrade' listener ends the attempt
      // (fail() resets the stream and emits 'error' and 'close').
      ws.emit('upgrade', res);
      if (done) return;
      settleHandshake();
      s.off('error', onError);
      s.off('close', onClose);
      ws.once('close', drop);
      hooks.opened({ socket: s, head: EMPTY, protocol: check.protocol, extensions: check.extensions ?? '', compressor, transport: 'h2' });
    });
  };
  whenReady(e, onReady);
}
