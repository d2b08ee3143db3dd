// The opening handshake (RFC 6455 §4), as pure functions: no sockets, no node:http.
// Server: validateUpgrade → buildAcceptResponse | buildErrorResponse.
// Client: generateKey → buildUpgradeRequest → validateAcceptResponse.
// Every parser here is a single left-to-right scan (no backtracking regex: ws CVE-2021-32640 was a
// ReDoS in Sec-WebSocket-Protocol parsing).
import { createHash, randomBytes } from 'node:crypto';
import { WS_GUID } from '../protocol/constants.js';
import { Buffer } from 'node:buffer';

/** A header map as Node gives it (lower-case keys) or as a sans-I/O caller passes it (any case). */
export type HeaderMap = Record<string, string | string[] | undefined>;

/** The only protocol version this package speaks (RFC 6455 §4.1, §11.3.5). */
export const WS_VERSION = '13';
/** Sec-WebSocket-Key is base64 of 16 bytes: 22 characters plus "==" (RFC 6455 §4.1 item 7). */
const KEY_LENGTH = 24;

/** Reason phrases for the statuses the handshake sends (RFC 9110 §15), inlined to stay off node:http. */
const REASON: Record<number, string> = {
  101: 'Switching Protocols',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  426: 'Upgrade Required',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

// RFC 7230 §3.2.6 tchar: "!#$%&'*+-.^_`|~" / DIGIT / ALPHA.
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TCHAR[c.charCodeAt(0)] = 1;
}
const SP = 0x20;
const HTAB = 0x09;
const COMMA = 0x2c;

/** True if `code` is an RFC 7230 tchar. */
export function isTokenChar(code: number): boolean {
  return code < 128 && TCHAR[code] === 1;
}

/** True if `s` is a non-empty RFC 7230 token. */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (!isTokenChar(s.charCodeAt(i))) return false;
  return true;
}

/** Reads a header by name, case-insensitively; repeated values are joined with ", " as Node does. */
/** RFC 6455 §4.2.1 item 8: the subprotocols a request offers (none: empty), or null if malformed. */
function offeredProtocols(h: HeaderMap): Set<string> | null {
  const value = header(h, 'sec-websocket-protocol');
  return value === undefined ? new Set<string>() : parseSubprotocols(value);
}

export function header(headers: HeaderMap, name: string): string | undefined {
  const lower = name.toLowerCase();
  let v = headers[lower];
  if (v === undefined) {
    for (const k of Object.keys(headers)) {
      if (k.length === lower.length && k.toLowerCase() === lower) {
        v = headers[k];
        break;
      }
    }
  }
  return Array.isArray(v) ? v.join(', ') : v;
}

/**
 * Splits a comma-separated header list (RFC 7230 §7) into trimmed, lower-cased elements; empty
 * elements are skipped. Never throws; does not validate token characters (use parseSubprotocols).
 */
export function parseTokenList(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const s = Array.isArray(value) ? value.join(',') : value;
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i <= s.length; i++) {
    if (i === s.length || s.charCodeAt(i) === COMMA) {
      let a = start;
      let b = i;
      while (a < b && isOws(s.charCodeAt(a))) a++;
      while (b > a && isOws(s.charCodeAt(b - 1))) b--;
      if (b > a) out.push(s.slice(a, b).toLowerCase());
      start = i + 1;
    }
  }
  return out;
}

/** True if the comma-separated list `value` holds `token`, compared case-insensitively. */
export function hasToken(value: string | string[] | undefined, token: string): boolean {
  return parseTokenList(value).includes(token.toLowerCase());
}

function isOws(code: number): boolean {
  return code === SP || code === HTAB;
}

/**
 * Parses Sec-WebSocket-Protocol (RFC 6455 §4.1, §11.3.4): tokens separated by commas with optional
 * whitespace. Returns null for an empty list, an empty element, a non-token character or a
 * duplicate (the server answers 400). Names keep their case (subprotocols are case-sensitive).
 */
export function parseSubprotocols(value: string | undefined): Set<string> | null {
  if (value === undefined) return null;
  const r = scanSubprotocols(value, false);
  return typeof r === 'string' ? null : r;
}

/**
 * The scan behind parseSubprotocols and `subprotocol.parse`: the set of names, or why the value is
 * malformed (ws's messages). `wsRules` refuses whitespace at the very start and end of the value,
 * as ws's `subprotocol.parse` does.
 */
export function scanSubprotocols(value: string, wsRules: boolean): Set<string> | string {
  const set = new Set<string>();
  let start = -1; // first char of the current token
  let end = -1; // one past its last char, once whitespace ended it
  for (let i = 0; i <= value.length; i++) {
    const atEnd = i === value.length;
    const c = atEnd ? COMMA : value.charCodeAt(i);
    if (c === COMMA) {
      // An empty element, or (ws's rules) trailing whitespace.
      if (start === -1 || (atEnd && wsRules && end !== -1)) return atEnd ? 'Unexpected end of input' : `Unexpected character at index ${i}`;
      const name = value.slice(start, end === -1 ? i : end);
      if (set.has(name)) return `The "${name}" subprotocol is duplicated`;
      set.add(name);
      start = end = -1;
    } else if (isOws(c) && !(wsRules && i === 0)) {
      if (start !== -1 && end === -1) end = i;
    } else if (isTokenChar(c) && end === -1) {
      if (start === -1) start = i;
    } else {
      // A non-token character, or "a b": whitespace inside an element.
      return `Unexpected character at index ${i}`;
    }
  }
  return set;
}

/** True if `s` is base64 of exactly 16 bytes: 22 alphabet characters then "==" (RFC 6455 §4.1). */
export function isValidKey(s: string | undefined): s is string {
  if (s === undefined || s.length !== KEY_LENGTH) return false;
  for (let i = 0; i < 22; i++) {
    const c = s.charCodeAt(i);
    const ok =
      (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2f;
    if (!ok) return false;
  }
  return s.charCodeAt(22) === 0x3d && s.charCodeAt(23) === 0x3d;
}

/** Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)) (RFC 6455 §1.3, §4.2.2 item 5.4). */
export function acceptKey(key: string): string {
  return createHash('sha1').update(key + WS_GUID).digest('base64');
}

/** A fresh Sec-WebSocket-Key: 16 random bytes, base64 (RFC 6455 §4.1 item 7). */
export function generateKey(): string {
  return randomBytes(16).toString('base64');
}

/** The path of a request-target without its query or fragment (absolute-form reduced to its path). */
export function requestPath(url: string | undefined): string {
  let u = url ?? '/';
  if (!u.startsWith('/')) {
    // absolute-form "http://host/p" (RFC 7230 §5.3.2)
    const scheme = u.indexOf('://');
    if (scheme !== -1) {
      const slash = u.indexOf('/', scheme + 3);
      u = slash === -1 ? '/' : u.slice(slash);
    }
  }
  let cut = u.length;
  const q = u.indexOf('?');
  if (q !== -1) cut = q;
  const h = u.indexOf('#');
  if (h !== -1 && h < cut) cut = h;
  return u.slice(0, cut);
}

/** The request as validateUpgrade needs it; a Node IncomingMessage fits. */
export interface UpgradeRequest {
  method?: string;
  httpVersion?: string;
  headers: HeaderMap;
  url?: string;
}

/** Server-side checks beyond RFC 6455 itself. */
export interface UpgradeOptions {
  /** Only this pathname (query ignored) is served; others get 404. */
  path?: string;
  /** False: the request's resource is not one we serve (404), decided by the caller (shouldHandle). */
  serves?: boolean;
  /** Origins allowed (compared lower-cased), or a predicate; an absent Origin is always allowed. */
  allowedOrigins?: string[] | ((origin: string | undefined) => boolean);
}

/** A request that may be upgraded. `extensions` is the raw Sec-WebSocket-Extensions value. */
export interface UpgradeAccepted {
  ok: true;
  key: string;
  protocols: Set<string>;
  origin?: string;
  extensions?: string;
}

/** A request to refuse with `status`; `headers` must go into the error response. */
export interface UpgradeRejected {
  ok: false;
  status: number;
  message: string;
  headers?: Record<string, string>;
}

function reject(status: number, message: string, headers?: Record<string, string>): UpgradeRejected {
  return headers ? { ok: false, status, message, headers } : { ok: false, status, message };
}

function normalizeOrigin(o: string): string {
  const t = o.trim().toLowerCase();
  return t.endsWith('/') ? t.slice(0, -1) : t;
}

/**
 * The subprotocol to answer with (RFC 6455 §4.2.2): the application's choice from the offered ones
 * (ws's handleProtocols; `false` means none), or the first one offered; '' for none.
 */
export function selectSubprotocol<R>(offered: Set<string>, handle: ((protocols: Set<string>, req: R) => string | false) | undefined, req: R): string {
  if (offered.size === 0) return '';
  const chosen = handle ? handle(offered, req) : offered.values().next().value!;
  return chosen || '';
}

/**
 * Run ws's verifyClient: with two parameters it answers through its callback, with one it returns.
 * A refusal without a code is 401; `headers` are the callback's extra response headers.
 */
export function runVerifyClient<I>(
  verify: (info: I, cb: (ok: boolean, code?: number, message?: string, headers?: Record<string, unknown>) => void) => unknown,
  info: I,
  accept: () => void,
  refuse: (code: number, message?: string, headers?: Record<string, unknown>) => void,
): void {
  if (verify.length === 2) {
    verify(info, (ok, code = 401, message, headers) => (ok ? accept() : refuse(code, message, headers)));
    return;
  }
  if ((verify as unknown as (info: I) => boolean)(info)) accept();
  else refuse(401);
}

/** Validates a client's opening handshake (RFC 6455 §4.2.1) and says how to answer it. */
export function validateUpgrade(req: UpgradeRequest, opts: UpgradeOptions = {}): UpgradeAccepted | UpgradeRejected {
  const h = req.headers;
  // §4.2.1 item 1: "an HTTP/1.1 or higher GET request". ws answers 405 for other methods.
  if (req.method !== undefined && req.method.toUpperCase() !== 'GET') {
    return reject(405, 'Invalid HTTP method', { Allow: 'GET' });
  }
  if (req.httpVersion !== undefined) {
    const major = parseInt(req.httpVersion, 10);
    const minor = parseInt(req.httpVersion.slice(req.httpVersion.indexOf('.') + 1), 10);
    if (!(major > 1 || (major === 1 && minor >= 1))) return reject(400, 'Invalid HTTP version');
    // §4.2.1 item 2: "A |Host| header field containing the server's authority" (HTTP/1.1 also
    // requires it, RFC 9112 §3.2; HTTP/2 carries :authority instead).
    if (major === 1 && header(h, 'host') === undefined) return reject(400, 'Missing Host header');
  }
  // A resource we do not serve is 404, whatever else is wrong with the request.
  if (opts.serves === false || (opts.path !== undefined && requestPath(req.url) !== opts.path)) return reject(404, 'Not found');
  // §4.2.1 items 3 and 4.
  if (!hasToken(header(h, 'upgrade'), 'websocket')) return reject(400, 'Invalid Upgrade header');
  if (!hasToken(header(h, 'connection'), 'upgrade')) return reject(400, 'Invalid Connection header');
  // §4.2.1 item 5; a repeated key arrives joined ("a, b") and fails the length check.
  const key = header(h, 'sec-websocket-key');
  if (!isValidKey(key)) return reject(400, 'Missing or invalid Sec-WebSocket-Key header');
  // §4.2.1 item 6, §4.4: a well-formed but unsupported version is 426 with the versions we speak.
  const version = header(h, 'sec-websocket-version');
  const v = version?.trim();
  if (v === undefined || v.length === 0 || v.length > 3 || !/^[0-9]+$/.test(v)) {
    return reject(400, 'Missing or invalid Sec-WebSocket-Version header', { 'Sec-WebSocket-Version': WS_VERSION });
  }
  if (v !== WS_VERSION) {
    return reject(426, 'Unsupported WebSocket version', { 'Sec-WebSocket-Version': WS_VERSION });
  }
  // §4.2.1 item 8.
  const protocols = offeredProtocols(h);
  if (protocols === null) return reject(400, 'Invalid Sec-WebSocket-Protocol header');
  // §4.2.1 item 7, §10.2: Origin (Sec-WebSocket-Origin from version-8 era clients).
  const origin = header(h, 'origin') ?? header(h, 'sec-websocket-origin');
  if (!originAllowed(origin, opts.allowedOrigins)) return reject(403, 'Origin not allowed');
  const out: UpgradeAccepted = { ok: true, key, protocols };
  if (origin !== undefined) out.origin = origin;
  const extensions = header(h, 'sec-websocket-extensions');
  if (extensions !== undefined) out.extensions = extensions;
  return out;
}

/** The allowedOrigins policy: a list (compared normalized) or a predicate; an absent Origin passes a list. */
function originAllowed(origin: string | undefined, allowed: UpgradeOptions['allowedOrigins']): boolean {
  if (allowed === undefined) return true;
  if (typeof allowed === 'function') return allowed(origin);
  return origin === undefined || allowed.some((a) => normalizeOrigin(a) === normalizeOrigin(origin));
}

function checkHeaderText(what: string, s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x0d || c === 0x0a || c === 0) throw new TypeError(`Invalid character in ${what}`);
  }
  return s;
}

function headerLine(name: string, value: string): string {
  if (!isToken(name)) throw new TypeError(`Invalid header name: ${JSON.stringify(name)}`);
  return `${name}: ${checkHeaderText(`header ${name}`, value)}\r\n`;
}

/**
 * The lines of the 101 response that completes the handshake (RFC 6455 §4.2.2 item 5), status line
 * first, without CRLFs: what ws hands to its 'headers' listeners, to inspect or extend.
 */
export function acceptResponseLines(o: { key: string; protocol?: string; extensions?: string }): string[] {
  const lines = ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${acceptKey(o.key)}`];
  if (o.protocol) lines.push(headerLine('Sec-WebSocket-Protocol', o.protocol).slice(0, -2));
  if (o.extensions) lines.push(headerLine('Sec-WebSocket-Extensions', o.extensions).slice(0, -2));
  return lines;
}

/** A response head from its lines (as acceptResponseLines gives them, possibly edited); throws TypeError on CR, LF or NUL in a line. */
export function formatResponseLines(lines: string[]): string {
  let s = '';
  for (const line of lines) s += `${checkHeaderText('extra header', line)}\r\n`;
  return s + '\r\n';
}

/** The 101 response that completes the handshake (RFC 6455 §4.2.2 item 5). `extraHeaders` are full "Name: value" lines. */
export function buildAcceptResponse(o: {
  key: string;
  protocol?: string;
  extensions?: string;
  extraHeaders?: string[];
}): string {
  return formatResponseLines([...acceptResponseLines(o), ...(o.extraHeaders ?? [])]);
}

/** A complete short HTTP error response that refuses the upgrade and closes (RFC 6455 §4.2.2). */
export function buildErrorResponse(status: number, message: string, headers?: Record<string, string>): string {
  const reason = REASON[status] ?? 'Error';
  const body = message || reason;
  let s =
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n`;
  if (headers) for (const [k, v] of Object.entries(headers)) s += headerLine(k, v);
  return s + '\r\n' + body;
}

/** What the client puts in its opening handshake. */
export interface UpgradeRequestOptions {
  /** The Host header value ("example.com:8080"). */
  host: string;
  /** The request-target: path plus query. */
  path: string;
  key: string;
  protocols?: string[];
  origin?: string;
  extensions?: string;
  headers?: Record<string, string>;
}

/** The client handshake headers as a map (for http.request); throws SyntaxError on bad or repeated subprotocols. */
export function buildUpgradeHeaders(o: Omit<UpgradeRequestOptions, 'path' | 'host'> & { host?: string }): Record<string, string> {
  const out: Record<string, string> = {};
  if (o.host !== undefined) out['Host'] = o.host;
  out['Upgrade'] = 'websocket';
  out['Connection'] = 'Upgrade';
  out['Sec-WebSocket-Key'] = o.key;
  out['Sec-WebSocket-Version'] = WS_VERSION;
  if (o.protocols && o.protocols.length > 0) {
    // §4.1 item 10: each "MUST be unique" and a token.
    const seen = new Set<string>();
    for (const p of o.protocols) {
      if (!isToken(p) || seen.has(p)) throw new SyntaxError('An invalid or duplicated subprotocol was specified');
      seen.add(p);
    }
    out['Sec-WebSocket-Protocol'] = o.protocols.join(', ');
  }
  if (o.origin !== undefined) out['Origin'] = o.origin;
  if (o.extensions) out['Sec-WebSocket-Extensions'] = o.extensions;
  if (o.headers) for (const [k, v] of Object.entries(o.headers)) out[k] = v;
  return out;
}

/** The client's opening handshake as raw HTTP (RFC 6455 §4.1). */
export function buildUpgradeRequest(o: UpgradeRequestOptions): string {
  let s = `GET ${checkHeaderText('path', o.path || '/')} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(buildUpgradeHeaders(o))) s += headerLine(k, v);
  return s + '\r\n';
}

/** Checks the server's answer to our handshake (RFC 6455 §4.1, client requirements 1–6). */
export function validateAcceptResponse(
  res: { statusCode?: number; headers: HeaderMap },
  key: string,
  requestedProtocols: string[],
): { ok: true; protocol: string; extensions?: string } | { ok: false; message: string } {
  const h = res.headers;
  if (res.statusCode !== 101) return { ok: false, message: `Unexpected server response: ${res.statusCode}` };
  // §4.1 item 2: the value itself must be "websocket" (not a list holding it), unlike a request's
  // Upgrade, which §4.2.1 lets be any list with the token (as HTTP allows).
  if (header(h, 'upgrade')?.trim().toLowerCase() !== 'websocket') return { ok: false, message: 'Invalid Upgrade header' };
  if (!hasToken(header(h, 'connection'), 'upgrade')) return { ok: false, message: 'Invalid Connection header' };
  if (header(h, 'sec-websocket-accept') !== acceptKey(key)) {
    return { ok: false, message: 'Invalid Sec-WebSocket-Accept header' };
  }
  return checkSelection(h, requestedProtocols);
}

/** The subprotocol and extensions the server selected (RFC 6455 §4.1 items 5, 6); shared by HTTP/1.1 and HTTP/2. */
function checkSelection(h: HeaderMap, requestedProtocols: string[]): { ok: true; protocol: string; extensions?: string } | { ok: false; message: string } {
  // §4.1 item 6, with ws's rule that a server ignoring all our subprotocols fails the handshake.
  const protocol = header(h, 'sec-websocket-protocol');
  if (protocol !== undefined) {
    if (requestedProtocols.length === 0) {
      return { ok: false, message: 'Server sent a subprotocol but none was requested' };
    }
    if (!requestedProtocols.includes(protocol)) return { ok: false, message: 'Server sent an invalid subprotocol' };
  } else if (requestedProtocols.length > 0) {
    return { ok: false, message: 'Server sent no subprotocol' };
  }
  const extensions = header(h, 'sec-websocket-extensions');
  return extensions !== undefined ? { ok: true, protocol: protocol ?? '', extensions } : { ok: true, protocol: protocol ?? '' };
}

// ── WebSockets over HTTP/2 (RFC 8441) ────────────────────────────────────────────────────────
// Server: validateExtendedConnect → h2AcceptLines → h2ResponseHeaders | h2ErrorHeaders.
// Client: buildExtendedConnectHeaders → validateExtendedConnectResponse.
// The same checks as HTTP/1.1 where they apply; no Sec-WebSocket-Key/Accept, no Upgrade/Connection.

/** The :protocol of a WebSocket over HTTP/2 (RFC 8441 §4, the "websocket" upgrade token). */
export const H2_WEBSOCKET_PROTOCOL = 'websocket';

/** Headers HTTP/2 forbids (RFC 9113 §8.2.2): connection-specific, meaningless on a stream. */
const H2_CONNECTION_HEADERS = new Set(['connection', 'upgrade', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'host', 'http2-settings']);

/** An extended CONNECT that may be accepted. `extensions` is the raw Sec-WebSocket-Extensions value. */
export interface ExtendedConnectAccepted {
  ok: true;
  protocols: Set<string>;
  origin?: string;
  extensions?: string;
}

/** True if `h` is an extended CONNECT (RFC 8441 §4: CONNECT with a :protocol), for any protocol. */
export function isExtendedConnect(h: HeaderMap): boolean {
  return header(h, ':method') === 'CONNECT' && header(h, ':protocol') !== undefined;
}

/**
 * Validates a WebSocket's extended CONNECT (RFC 8441 §4, §5) from the stream's header map
 * (pseudo-headers included) and says how to answer it: 405 for another method, 400 for a CONNECT
 * without :protocol, :scheme, :path or :authority, 501 for a :protocol other than "websocket",
 * 404 off `path`, 400 for a missing or other Sec-WebSocket-Version (with "sec-websocket-version:
 * 13"; HTTP/2 has no 426), 400 for a malformed Sec-WebSocket-Protocol, 403 for a refused Origin.
 */
export function validateExtendedConnect(h: HeaderMap, opts: UpgradeOptions = {}): ExtendedConnectAccepted | UpgradeRejected {
  if (header(h, ':method') !== 'CONNECT') return reject(405, 'Invalid HTTP method', { Allow: 'CONNECT' });
  const protocol = header(h, ':protocol');
  if (protocol === undefined) return reject(400, 'Missing :protocol pseudo-header');
  // Exactly "websocket", the registered upgrade token (RFC 8441 §4), as browsers and nghttp2 send it.
  if (protocol !== H2_WEBSOCKET_PROTOCOL) return reject(501, 'Unsupported :protocol');
  // §4: "the :scheme and :path pseudo-header fields of the target URI MUST also be included".
  const path = header(h, ':path');
  if (!path || !header(h, ':scheme') || !header(h, ':authority')) return reject(400, 'Missing :scheme, :path or :authority');
  if (opts.path !== undefined && requestPath(path) !== opts.path) return reject(404, 'Not found');
  // §5: Sec-WebSocket-Version as in RFC 6455 §4.2.1 item 6.
  const v = header(h, 'sec-websocket-version')?.trim();
  if (v !== WS_VERSION) {
    return reject(400, v ? 'Unsupported WebSocket version' : 'Missing Sec-WebSocket-Version header', { 'Sec-WebSocket-Version': WS_VERSION });
  }
  const protocols = offeredProtocols(h);
  if (protocols === null) return reject(400, 'Invalid Sec-WebSocket-Protocol header');
  const origin = header(h, 'origin');
  if (!originAllowed(origin, opts.allowedOrigins)) return reject(403, 'Origin not allowed');
  const out: ExtendedConnectAccepted = { ok: true, protocols };
  if (origin !== undefined) out.origin = origin;
  const extensions = header(h, 'sec-websocket-extensions');
  if (extensions !== undefined) out.extensions = extensions;
  return out;
}

/**
 * The response that accepts an extended CONNECT (RFC 8441 §5: a 2xx, here 200) as lines, status
 * line first ("HTTP/2 200"), as the 'headers' event hands them out; h2ResponseHeaders turns them
 * into the header map `stream.respond` takes.
 */
export function h2AcceptLines(o: { protocol?: string; extensions?: string }): string[] {
  const lines = ['HTTP/2 200'];
  if (o.protocol) lines.push(headerLine('sec-websocket-protocol', o.protocol).slice(0, -2));
  if (o.extensions) lines.push(headerLine('sec-websocket-extensions', o.extensions).slice(0, -2));
  return lines;
}

/**
 * A header map for `Http2Stream#respond` from response lines (h2AcceptLines', possibly edited):
 * the status from the first line, "Name: value" lines with names lower-cased, repeated names as
 * lists. Connection-specific headers, which HTTP/2 forbids (RFC 9113 §8.2.2), are dropped. Throws
 * TypeError on a malformed line or CR, LF or NUL.
 */
export function h2ResponseHeaders(lines: string[]): Record<string, string | string[] | number> {
  const status = /^HTTP\/2(?:\.0)? ([1-5][0-9][0-9])\b/.exec(lines[0] ?? '');
  if (!status) throw new TypeError(`Invalid status line: ${JSON.stringify(lines[0])}`);
  const out: Record<string, string | string[] | number> = { ':status': Number(status[1]) };
  for (let i = 1; i < lines.length; i++) {
    const line = checkHeaderText('extra header', lines[i]);
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim().toLowerCase() : '';
    if (!isToken(name)) throw new TypeError(`Invalid header line: ${JSON.stringify(line)}`);
    if (H2_CONNECTION_HEADERS.has(name)) continue;
    const value = line.slice(colon + 1).trim();
    const prev = out[name];
    out[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [String(prev), value];
  }
  return out;
}

/** The header map of a refusal (`status`, a text body follows); `headers` as a rejection carries them. */
export function h2ErrorHeaders(
  status: number,
  headers?: Record<string, string | number | readonly (string | number)[]>,
): Record<string, string | number | string[]> {
  const out: Record<string, string | number | string[]> = { ':status': status, 'content-type': 'text/plain; charset=utf-8' };
  if (!headers) return out;
  for (const [k, v] of Object.entries(headers)) {
    const name = checkHeaderText('header name', k).toLowerCase();
    // Connection-specific headers (fine in an HTTP/1.1 refusal) are malformed in HTTP/2: dropped.
    if (H2_CONNECTION_HEADERS.has(name) || v === undefined) continue;
    out[name] = Array.isArray(v) ? v.map((x) => checkHeaderText(`header ${k}`, String(x))) : checkHeaderText(`header ${k}`, String(v));
  }
  return out;
}

/** What the client puts in its extended CONNECT. */
export interface ExtendedConnectOptions {
  /** host[:port] of the target URI. */
  authority: string;
  /** The path plus query. */
  path: string;
  scheme: 'https' | 'http';
  protocols?: string[];
  origin?: string;
  extensions?: string;
  headers?: Record<string, string>;
}

/**
 * The client's extended CONNECT (RFC 8441 §4, §5) as an HTTP/2 header map: :method CONNECT,
 * :protocol websocket, :scheme, :path, :authority, sec-websocket-version 13, and the offered
 * subprotocols, extensions and Origin. Extra headers are lower-cased; a Host header becomes
 * :authority; connection-specific ones are dropped. Throws SyntaxError on bad or repeated subprotocols.
 */
export function buildExtendedConnectHeaders(o: ExtendedConnectOptions): Record<string, string> {
  // The HTTP/1.1 builder validates the subprotocols, Origin and extension offer the same way.
  const h1 = buildUpgradeHeaders({ key: '', protocols: o.protocols, origin: o.origin, extensions: o.extensions, headers: o.headers });
  const out: Record<string, string> = {
    ':method': 'CONNECT',
    ':protocol': H2_WEBSOCKET_PROTOCOL,
    ':scheme': o.scheme,
    ':path': checkHeaderText('path', o.path || '/'),
    ':authority': o.authority,
  };
  for (const [k, v] of Object.entries(h1)) {
    const name = k.toLowerCase();
    if (name === 'sec-websocket-key') continue;
    if (name === 'host') out[':authority'] = v;
    else if (!H2_CONNECTION_HEADERS.has(name)) out[name] = checkHeaderText(`header ${k}`, v);
  }
  return out;
}

/** Checks the server's answer to our extended CONNECT (RFC 8441 §5: a 2xx; then RFC 6455 §4.1 items 5, 6). */
export function validateExtendedConnectResponse(
  h: HeaderMap,
  requestedProtocols: string[],
): { ok: true; protocol: string; extensions?: string } | { ok: false; message: string } {
  const status = Number(header(h, ':status'));
  if (!(status >= 200 && status < 300)) return { ok: false, message: `Unexpected server response: ${status}` };
  return checkSelection(h, requestedProtocols);
}
