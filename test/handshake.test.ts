import { describe, expect, it } from 'vitest';
import {
  acceptKey,
  buildAcceptResponse,
  buildErrorResponse,
  buildUpgradeHeaders,
  buildUpgradeRequest,
  buildExtendedConnectHeaders,
  generateKey,
  h2ErrorHeaders,
  h2ResponseHeaders,
  hasToken,
  header,
  parseSubprotocols,
  parseTokenList,
  requestPath,
  validateAcceptResponse,
  validateUpgrade,
  validateExtendedConnect,
  validateExtendedConnectResponse,
  type HeaderMap,
  type UpgradeRequest,
} from '../src/handshake/upgrade.js';

// RFC 6455 §1.3 sample handshake.
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

function req(headers: HeaderMap = {}, extra: Partial<UpgradeRequest> = {}): UpgradeRequest {
  return {
    method: 'GET',
    httpVersion: '1.1',
    url: '/chat',
    headers: {
      host: 'server.example.com',
      upgrade: 'websocket',
      connection: 'Upgrade',
      'sec-websocket-key': KEY,
      'sec-websocket-version': '13',
      ...headers,
    },
    ...extra,
  };
}

function without(name: string): UpgradeRequest {
  const r = req();
  delete r.headers[name];
  return r;
}

function fails(r: UpgradeRequest, status: number, opts = {}) {
  const v = validateUpgrade(r, opts);
  expect(v.ok).toBe(false);
  if (v.ok) throw new Error('unreachable');
  expect(v.status).toBe(status);
  return v;
}

function timed(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

describe('acceptKey / generateKey', () => {
  it('computes the RFC 6455 §1.3 Sec-WebSocket-Accept for the sample key', () => {
    expect(acceptKey(KEY)).toBe(ACCEPT);
  });
  it('generates a 16-byte base64 key that the server accepts', () => {
    const k = generateKey();
    expect(Buffer.from(k, 'base64')).toHaveLength(16);
    expect(validateUpgrade(req({ 'sec-websocket-key': k })).ok).toBe(true);
    expect(generateKey()).not.toBe(k);
  });
});

describe('token lists', () => {
  it('splits, trims and lower-cases list elements, skipping empty ones', () => {
    expect(parseTokenList(' keep-alive ,\tUpgrade,,')).toEqual(['keep-alive', 'upgrade']);
    expect(parseTokenList(['a', 'B'])).toEqual(['a', 'b']);
    expect(parseTokenList(undefined)).toEqual([]);
  });
  it('finds a token case-insensitively', () => {
    expect(hasToken('keep-alive, Upgrade', 'upgrade')).toBe(true);
    expect(hasToken('keep-alive, upgraded', 'upgrade')).toBe(false);
  });
  it('reads headers whatever the case of the key, joining repeated values', () => {
    expect(header({ 'Sec-WebSocket-Key': 'x' }, 'sec-websocket-key')).toBe('x');
    expect(header({ 'sec-websocket-key': ['a', 'b'] }, 'Sec-WebSocket-Key')).toBe('a, b');
    expect(header({}, 'x')).toBeUndefined();
  });
  it('strips the query from the request path', () => {
    expect(requestPath('/chat?x=1')).toBe('/chat');
    expect(requestPath('http://h:1/chat?x')).toBe('/chat');
    expect(requestPath(undefined)).toBe('/');
  });
});

describe('parseSubprotocols', () => {
  it('parses comma-separated tokens with optional whitespace', () => {
    expect([...parseSubprotocols('chat, superchat,\tv2.json')!]).toEqual(['chat', 'superchat', 'v2.json']);
    expect([...parseSubprotocols(' chat ')!]).toEqual(['chat']);
  });
  it('keeps the case of subprotocol names', () => {
    expect([...parseSubprotocols('Chat, chat')!]).toEqual(['Chat', 'chat']);
  });
  it.each([
    ['an empty value', ''],
    ['an empty element', 'a,,b'],
    ['a trailing comma', 'a,'],
    ['a duplicate', 'chat, chat'],
    ['a separator character', 'a/b'],
    ['whitespace inside an element', 'a b'],
    ['non-ASCII', 'caf\u00e9'],
    ['a quoted name', '"chat"'],
  ])('rejects %s', (_, v) => {
    expect(parseSubprotocols(v)).toBeNull();
  });
  it('parses inputs built to make a backtracking regex explode in linear time', () => {
    const inputs = [
      'a,' + ' '.repeat(50000) + 'b',
      'a' + ' '.repeat(100000) + 'b',
      'a,'.repeat(30000) + '!',
      ' '.repeat(100000) + '\u0000',
      'a'.repeat(200000) + ' ,',
    ];
    for (const s of inputs) expect(timed(() => parseSubprotocols(s))).toBeLessThan(100);
    expect(parseSubprotocols(inputs[0])).toEqual(new Set(['a', 'b']));
  });
});

describe('validateUpgrade', () => {
  it('accepts the RFC 6455 §1.3 handshake', () => {
    const v = validateUpgrade(req({ origin: 'http://example.com', 'sec-websocket-protocol': 'chat, superchat' }));
    expect(v).toEqual({
      ok: true,
      key: KEY,
      protocols: new Set(['chat', 'superchat']),
      origin: 'http://example.com',
    });
  });
  it('accepts case-insensitive Upgrade and Connection token lists', () => {
    expect(validateUpgrade(req({ upgrade: 'WebSocket', connection: 'keep-alive, Upgrade' })).ok).toBe(true);
    expect(validateUpgrade(req({ upgrade: 'h2c, websocket', connection: 'UPGRADE' })).ok).toBe(true);
  });
  it('accepts headers given with any key case', () => {
    const v = validateUpgrade({
      method: 'GET',
      headers: { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': KEY, 'Sec-WebSocket-Version': '13' },
    });
    expect(v.ok).toBe(true);
  });
  it('passes the raw Sec-WebSocket-Extensions value through', () => {
    const v = validateUpgrade(req({ 'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits' }));
    expect(v.ok && v.extensions).toBe('permessage-deflate; client_max_window_bits');
  });
  it('answers 405 with Allow: GET for a POST', () => {
    const v = fails(req({}, { method: 'POST' }), 405);
    expect(v.headers).toEqual({ Allow: 'GET' });
  });
  it('answers 400 for an HTTP/1.1 request without Host (§4.2.1 item 2), not for HTTP/2 (:authority)', () => {
    expect(fails(without('host'), 400).message).toBe('Missing Host header');
    const h2 = without('host');
    h2.httpVersion = '2.0';
    expect(validateUpgrade(h2).ok).toBe(true);
  });
  it('answers 400 for HTTP/1.0', () => {
    fails(req({}, { httpVersion: '1.0' }), 400);
    expect(validateUpgrade(req({}, { httpVersion: '2.0' })).ok).toBe(true);
  });
  it('answers 400 without an Upgrade: websocket token', () => {
    fails(without('upgrade'), 400);
    expect(fails(req({ upgrade: 'h2c' }), 400).message).toBe('Invalid Upgrade header');
  });
  it('answers 400 without a Connection: upgrade token', () => {
    fails(without('connection'), 400);
    fails(req({ connection: 'keep-alive' }), 400);
  });
  it('answers 400 without a Sec-WebSocket-Key', () => {
    fails(without('sec-websocket-key'), 400);
  });
  it('answers 400 for a duplicated Sec-WebSocket-Key (joined by Node or given as an array)', () => {
    fails(req({ 'sec-websocket-key': `${KEY}, ${KEY}` }), 400);
    fails(req({ 'sec-websocket-key': [KEY, KEY] }), 400);
  });
  it('answers 400 for keys decoding to 15 or 17 bytes', () => {
    const k15 = Buffer.alloc(15, 1).toString('base64');
    const k17 = Buffer.alloc(17, 1).toString('base64');
    fails(req({ 'sec-websocket-key': k15 }), 400);
    fails(req({ 'sec-websocket-key': k17 }), 400);
    fails(req({ 'sec-websocket-key': KEY.slice(0, 22) }), 400); // unpadded
    fails(req({ 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ-_' }), 400); // not base64
    fails(req({ 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25j\u00e9Q==' }), 400); // non-ASCII
  });
  it('answers 426 with Sec-WebSocket-Version when the version is 8', () => {
    const v = fails(req({ 'sec-websocket-version': '8' }), 426);
    expect(v.headers).toEqual({ 'Sec-WebSocket-Version': '13' });
  });
  it('answers 400 with Sec-WebSocket-Version when the version is missing or malformed', () => {
    for (const r of [without('sec-websocket-version'), req({ 'sec-websocket-version': 'x' }), req({ 'sec-websocket-version': '13, 13' })]) {
      expect(fails(r, 400).headers).toEqual({ 'Sec-WebSocket-Version': '13' });
    }
  });
  it('answers 404 for a path other than the configured one, ignoring the query', () => {
    fails(req({}, { url: '/other' }), 404, { path: '/chat' });
    expect(validateUpgrade(req({}, { url: '/chat?token=1' }), { path: '/chat' }).ok).toBe(true);
  });
  it('answers 400 for an invalid Sec-WebSocket-Protocol', () => {
    fails(req({ 'sec-websocket-protocol': 'chat, chat' }), 400);
    fails(req({ 'sec-websocket-protocol': 'a,,b' }), 400);
    fails(req({ 'sec-websocket-protocol': '' }), 400);
  });
  it('answers 403 for an Origin outside allowedOrigins, comparing case-insensitively', () => {
    const opts = { allowedOrigins: ['https://Example.com'] };
    fails(req({ origin: 'https://evil.com' }), 403, opts);
    expect(validateUpgrade(req({ origin: 'HTTPS://EXAMPLE.COM' }), opts).ok).toBe(true);
    expect(validateUpgrade(req({ 'sec-websocket-origin': 'https://example.com' }), opts).ok).toBe(true);
    fails(req({ 'sec-websocket-origin': 'https://evil.com' }), 403, opts);
  });
  it('allows a request without Origin (a non-browser client)', () => {
    expect(validateUpgrade(req(), { allowedOrigins: ['https://example.com'] }).ok).toBe(true);
  });
  it('asks an allowedOrigins predicate', () => {
    const seen: (string | undefined)[] = [];
    const pred = (o: string | undefined) => (seen.push(o), o === 'https://a');
    fails(req({ origin: 'https://b' }), 403, { allowedOrigins: pred });
    expect(validateUpgrade(req({ origin: 'https://a' }), { allowedOrigins: pred }).ok).toBe(true);
    expect(seen).toEqual(['https://b', 'https://a']);
  });
  it('copes with 100 headers and a 64 KiB header value', () => {
    const many: HeaderMap = {};
    for (let i = 0; i < 100; i++) many[`x-h${i}`] = 'v'.repeat(100);
    many['x-big'] = 'x'.repeat(65536);
    expect(validateUpgrade(req(many)).ok).toBe(true);
    const big = ' ,'.repeat(32768);
    expect(timed(() => fails(req({ 'sec-websocket-protocol': big }), 400))).toBeLessThan(100);
    expect(timed(() => fails(req({ connection: big }), 400))).toBeLessThan(100);
    expect(timed(() => fails(req({ 'sec-websocket-key': 'A'.repeat(65536) }), 400))).toBeLessThan(100);
  });
  it('rejects non-ASCII bytes in the Upgrade header', () => {
    fails(req({ upgrade: 'websock\u00e9t' }), 400);
  });
});

describe('response builders', () => {
  it('builds the RFC 6455 §1.3 101 response', () => {
    expect(buildAcceptResponse({ key: KEY, protocol: 'chat' })).toBe(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${ACCEPT}\r\nSec-WebSocket-Protocol: chat\r\n\r\n`,
    );
  });
  it('appends extensions and extra header lines', () => {
    const s = buildAcceptResponse({ key: KEY, extensions: 'permessage-deflate', extraHeaders: ['X-A: 1'] });
    expect(s.endsWith('Sec-WebSocket-Extensions: permessage-deflate\r\nX-A: 1\r\n\r\n')).toBe(true);
  });
  it('refuses CR or LF in header values (header injection)', () => {
    expect(() => buildAcceptResponse({ key: KEY, protocol: 'a\r\nX: y' })).toThrow(TypeError);
    expect(() => buildErrorResponse(400, 'x', { A: 'b\nc' })).toThrow(TypeError);
  });
  it('builds an error response with reason phrase, length and extra headers', () => {
    expect(buildErrorResponse(426, 'Unsupported WebSocket version', { 'Sec-WebSocket-Version': '13' })).toBe(
      'HTTP/1.1 426 Upgrade Required\r\nConnection: close\r\nContent-Type: text/plain\r\n' +
        'Content-Length: 29\r\nSec-WebSocket-Version: 13\r\n\r\nUnsupported WebSocket version',
    );
    expect(buildErrorResponse(404, 'caf\u00e9')).toContain('Content-Length: 5\r\n');
    for (const s of [400, 401, 403, 405, 429, 500, 503]) expect(buildErrorResponse(s, '')).not.toMatch(/^HTTP\/1.1 \d+ Error/);
  });
  it('builds the client request', () => {
    const s = buildUpgradeRequest({
      host: 'server.example.com',
      path: '/chat',
      key: KEY,
      protocols: ['chat', 'superchat'],
      origin: 'http://example.com',
    });
    expect(s).toBe(
      'GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n` +
        'Origin: http://example.com\r\n\r\n',
    );
  });
  it('refuses invalid or duplicated client subprotocols', () => {
    expect(() => buildUpgradeHeaders({ key: KEY, protocols: ['a', 'a'] })).toThrow(SyntaxError);
    expect(() => buildUpgradeHeaders({ key: KEY, protocols: ['a b'] })).toThrow(SyntaxError);
  });
  it('produces a request that validateUpgrade accepts', () => {
    const text = buildUpgradeRequest({ host: 'h', path: '/p?q', key: generateKey(), protocols: ['x'] });
    const lines = text.split('\r\n');
    const headers: HeaderMap = {};
    for (const l of lines.slice(1, -2)) headers[l.slice(0, l.indexOf(':'))] = l.slice(l.indexOf(':') + 2);
    expect(validateUpgrade({ method: 'GET', url: '/p?q', headers }, { path: '/p' }).ok).toBe(true);
  });
});

describe('validateAcceptResponse', () => {
  const good = (h: HeaderMap = {}, statusCode = 101) => ({
    statusCode,
    headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-accept': ACCEPT, ...h },
  });
  it('accepts the RFC 6455 §1.3 response', () => {
    expect(validateAcceptResponse(good({ 'sec-websocket-protocol': 'chat' }), KEY, ['chat', 'superchat'])).toEqual({
      ok: true,
      protocol: 'chat',
    });
    expect(validateAcceptResponse(good(), KEY, [])).toEqual({ ok: true, protocol: '' });
  });
  it('fails on a status other than 101', () => {
    expect(validateAcceptResponse(good({}, 200), KEY, [])).toEqual({ ok: false, message: 'Unexpected server response: 200' });
  });
  it('fails on a missing Upgrade or Connection token', () => {
    expect(validateAcceptResponse(good({ upgrade: 'h2c' }), KEY, []).ok).toBe(false);
    // §4.1 item 2: the value must be "websocket" (any case), not a list that holds it.
    for (const upgrade of ['websocket, h2c', 'h2c, websocket', 'websocket,']) {
      expect(validateAcceptResponse(good({ upgrade }), KEY, [])).toEqual({ ok: false, message: 'Invalid Upgrade header' });
    }
    expect(validateAcceptResponse(good({ upgrade: 'WebSocket' }), KEY, []).ok).toBe(true);
    expect(validateAcceptResponse(good({ connection: 'close' }), KEY, []).ok).toBe(false);
  });
  it('fails on a wrong or duplicated Sec-WebSocket-Accept', () => {
    expect(validateAcceptResponse(good(), generateKey(), []).ok).toBe(false);
    expect(validateAcceptResponse(good({ 'sec-websocket-accept': [ACCEPT, ACCEPT] }), KEY, []).ok).toBe(false);
  });
  it('fails when the server picks a subprotocol we did not offer, or none of ours', () => {
    expect(validateAcceptResponse(good({ 'sec-websocket-protocol': 'x' }), KEY, ['chat'])).toEqual({
      ok: false,
      message: 'Server sent an invalid subprotocol',
    });
    expect(validateAcceptResponse(good({ 'sec-websocket-protocol': 'x' }), KEY, []).ok).toBe(false);
    expect(validateAcceptResponse(good(), KEY, ['chat'])).toEqual({ ok: false, message: 'Server sent no subprotocol' });
  });
  it('passes Sec-WebSocket-Extensions through', () => {
    const v = validateAcceptResponse(good({ 'sec-websocket-extensions': 'permessage-deflate' }), KEY, []);
    expect(v).toEqual({ ok: true, protocol: '', extensions: 'permessage-deflate' });
  });
});

describe('RFC 8441 extended CONNECT (h2) helpers', () => {
  const ok = { ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'https', ':path': '/chat?x=1', ':authority': 'a.example', 'sec-websocket-version': '13' };
  const without = (k: string) => Object.fromEntries(Object.entries(ok).filter(([n]) => n !== k));

  it('validateExtendedConnect: the status for each fault', () => {
    const cases: [HeaderMap, number][] = [
      [{ ...ok, ':method': 'GET' }, 405],
      [without(':protocol'), 400],
      [{ ...ok, ':protocol': 'connect-udp' }, 501],
      [{ ...ok, ':protocol': 'WebSocket' }, 501],
      [without(':path'), 400],
      [without(':scheme'), 400],
      [without(':authority'), 400],
      [without('sec-websocket-version'), 400],
      [{ ...ok, 'sec-websocket-version': '8' }, 400],
      [{ ...ok, 'sec-websocket-protocol': 'a,,b' }, 400],
    ];
    for (const [h, status] of cases) {
      const r = validateExtendedConnect(h);
      expect(r.ok, JSON.stringify(h)).toBe(false);
      if (!r.ok) expect(r.status, JSON.stringify(h)).toBe(status);
    }
    const v = validateExtendedConnect({ ...ok, 'sec-websocket-version': '8' });
    expect(!v.ok && v.headers).toEqual({ 'Sec-WebSocket-Version': '13' });
    const off = validateExtendedConnect(ok, { path: '/other' });
    expect(!off.ok && off.status).toBe(404);
    const origin = validateExtendedConnect({ ...ok, origin: 'https://evil.example' }, { allowedOrigins: ['https://a.example'] });
    expect(!origin.ok && origin.status).toBe(403);
    const good = validateExtendedConnect({ ...ok, 'sec-websocket-protocol': 'a, b', origin: 'https://a.example', 'sec-websocket-extensions': 'permessage-deflate' }, { path: '/chat' });
    expect(good.ok).toBe(true);
    if (good.ok) {
      expect([...good.protocols]).toEqual(['a', 'b']);
      expect(good.origin).toBe('https://a.example');
      expect(good.extensions).toBe('permessage-deflate');
    }
  });

  it('buildExtendedConnectHeaders: pseudo-headers, no key, Host as :authority, no connection-specific headers', () => {
    const h = buildExtendedConnectHeaders({ authority: 'a.example:8443', path: '/p?q', scheme: 'https', protocols: ['x', 'y'], origin: 'https://a.example', headers: { Host: 'b.example', Connection: 'keep-alive', 'X-Extra': '1' } });
    expect(h[':method']).toBe('CONNECT');
    expect(h[':protocol']).toBe('websocket');
    expect(h[':scheme']).toBe('https');
    expect(h[':path']).toBe('/p?q');
    expect(h[':authority']).toBe('b.example');
    expect(h['sec-websocket-version']).toBe('13');
    expect(h['sec-websocket-protocol']).toBe('x, y');
    expect(h['origin']).toBe('https://a.example');
    expect(h['x-extra']).toBe('1');
    expect(h['sec-websocket-key']).toBeUndefined();
    expect(h['connection']).toBeUndefined();
    expect(h['upgrade']).toBeUndefined();
    expect(() => buildExtendedConnectHeaders({ authority: 'a', path: '/', scheme: 'https', protocols: ['x', 'x'] })).toThrow(SyntaxError);
  });

  it('h2ResponseHeaders and h2ErrorHeaders: status, lower-cased names, repeated names as lists, connection headers dropped', () => {
    expect(h2ResponseHeaders(['HTTP/2 200', 'Sec-WebSocket-Protocol: chat', 'Set-Cookie: a=1', 'set-cookie: b=2', 'Connection: Upgrade', 'Upgrade: websocket'])).toEqual({
      ':status': 200,
      'sec-websocket-protocol': 'chat',
      'set-cookie': ['a=1', 'b=2'],
    });
    expect(() => h2ResponseHeaders(['HTTP/1.1 101 Switching Protocols'])).toThrow(TypeError);
    expect(() => h2ResponseHeaders(['HTTP/2 200', 'no colon'])).toThrow(TypeError);
    expect(() => h2ResponseHeaders(['HTTP/2 200', 'X: a\r\nY: b'])).toThrow(TypeError);
    expect(h2ErrorHeaders(429, { 'Retry-After': 5, Connection: 'close', 'Keep-Alive': 'x', 'Transfer-Encoding': 'chunked', Upgrade: 'websocket', 'Proxy-Connection': 'close', 'Set-Cookie': ['a=1', 'b=2'] })).toEqual({
      ':status': 429,
      'content-type': 'text/plain; charset=utf-8',
      'retry-after': '5',
      'set-cookie': ['a=1', 'b=2'],
    });
  });

  it('validateExtendedConnectResponse: a 2xx, then the subprotocol checks', () => {
    expect(validateExtendedConnectResponse({ ':status': '200' }, [])).toEqual({ ok: true, protocol: '' });
    const refused = validateExtendedConnectResponse({ ':status': '403' }, []);
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.message).toMatch(/403/);
    expect(validateExtendedConnectResponse({ ':status': '101' }, []).ok).toBe(false);
    expect(validateExtendedConnectResponse({ ':status': '200', 'sec-websocket-protocol': 'b' }, ['a', 'b'])).toMatchObject({ ok: true, protocol: 'b' });
    expect(validateExtendedConnectResponse({ ':status': '200', 'sec-websocket-protocol': 'c' }, ['a', 'b']).ok).toBe(false);
    expect(validateExtendedConnectResponse({ ':status': '200', 'sec-websocket-protocol': 'a' }, []).ok).toBe(false);
  });
});
