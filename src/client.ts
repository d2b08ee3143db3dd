// The client side of the opening handshake (RFC 6455 §4.1): an HTTP/1.1 upgrade request through
// Node's http/https, then the socket is handed to the WebSocket as role 'client'.
import * as http from 'node:http';
import * as https from 'node:https';
import type { Duplex } from 'node:stream';
import type { WebSocket, ConnectionOptions } from './websocket.js';
import { buildUpgradeHeaders, generateKey, validateAcceptResponse } from './handshake.js';
import type { PerMessageDeflateOptions } from './extensions.js';
import { DEFAULT_MAX_PAYLOAD } from './constants.js';
import { acceptClient, clientOffer } from './deflate.js';

/** Options of `new WebSocket(url, protocols, options)`. */
export interface ClientOptions extends ConnectionOptions {
  /** Extra request headers. */
  headers?: Record<string, string>;
  origin?: string;
  /** Fail if the server has not answered the upgrade within this many ms (default 30 s). */
  handshakeTimeout?: number;
  /** Offer permessage-deflate (RFC 7692); default true, as in ws. */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /** Passed to http(s).request: an Agent, TLS options (ca, rejectUnauthorized, …), family, localAddress. */
  agent?: http.Agent;
  rejectUnauthorized?: boolean;
  ca?: string | Buffer | Array<string | Buffer>;
  family?: number;
  localAddress?: string;
}

const DEFAULT_HANDSHAKE_TIMEOUT = 30_000;

/** @internal Start the opening handshake for a client WebSocket. */
export function initAsClient(ws: WebSocket, address: string | URL, protocols: string[], opts: ClientOptions): void {
  let url: URL;
  try {
    url = address instanceof URL ? address : new URL(address);
  } catch {
    throw new SyntaxError(`Invalid URL: ${String(address)}`);
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new SyntaxError(`The URL's protocol must be one of "ws:", "wss:", "http:" or "https:"`);
  }
  if (url.hash) throw new SyntaxError('The URL contains a fragment identifier');
  const secure = url.protocol === 'wss:';
  const key = generateKey();
  const deflateOpts = opts.perMessageDeflate === false ? undefined : opts.perMessageDeflate;
  const extOffer = opts.perMessageDeflate !== false ? clientOffer(deflateOpts) : undefined;
  const headers = buildUpgradeHeaders({ key, protocols, origin: opts.origin, extensions: extOffer, headers: opts.headers });
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const req = (secure ? https : http).request({
    host,
    port: url.port || (secure ? 443 : 80),
    path: (url.pathname || '/') + url.search,
    method: 'GET',
    headers,
    agent: opts.agent,
    rejectUnauthorized: opts.rejectUnauthorized,
    ca: opts.ca,
    family: opts.family,
    localAddress: opts.localAddress,
    timeout: opts.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT,
  } as https.RequestOptions);
  let done = false;

  const failHandshake = (err: Error): void => {
    if (done) return;
    done = true;
    ws.abortHandshake = undefined;
    req.destroy();
    ws.readyState = 2;
    if (ws.listenerCount('error') > 0) ws.emit('error', err);
    process.nextTick(() => ws.emitClose());
  };
  ws.abortHandshake = failHandshake;

  req.on('error', failHandshake);
  req.on('timeout', () => failHandshake(new Error('Opening handshake has timed out')));
  req.on('response', (res) => {
    if (done) return;
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
    const check = validateAcceptResponse(res, key, protocols);
    if (!check.ok) {
      socket.destroy();
      return failHandshake(new Error(check.message));
    }
    // RFC 7692 §7.1: no header means the server declined and we go on without compression.
    let compressor = null;
    if (check.extensions !== undefined) {
      try {
        if (extOffer === undefined) throw new Error('Server sent a Sec-WebSocket-Extensions header but no extension was requested');
        compressor = acceptClient(check.extensions, deflateOpts, opts.maxPayload ?? DEFAULT_MAX_PAYLOAD);
      } catch (err) {
        socket.destroy();
        return failHandshake(err as Error);
      }
    }
    done = true;
    ws.abortHandshake = undefined;
    req.setTimeout(0);
    ws.protocol = check.protocol;
    ws.extensions = check.extensions ?? '';
    ws._setSocket(socket, head, 'client', opts, compressor);
  });
  req.end();
}
