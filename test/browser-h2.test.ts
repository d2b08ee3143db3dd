// The chat page over HTTPS in Debian's Chromium (headless, playwright-core): served as h2 by
// `wasmws serve --tls-cert --tls-key`, its WebSocket must be an extended CONNECT (RFC 8441) on the
// very h2 connection that served the page; a page from another origin has no such connection and
// must fall back to an HTTP/1.1 upgrade on the same port, and work.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as http from 'node:http';
import type * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { type Browser, type BrowserContext } from 'playwright-core';
import { launchChromium } from './browser.js';
import { startServer, type App } from '../src/cli/serve.js';
import { DEFAULTS } from '../src/cli/args.js';
import type { WebSocket } from '../src/node/websocket.js';
import { testCert } from './h2.js';


interface Seen {
  method: string;
  path: string;
  protocol?: string;
  session: http2.ServerHttp2Session;
}
/** Every h2 stream the server saw, in order. */
const streams: Seen[] = [];
/** Every WebSocket the server accepted: endpoint, transport, the h2 session (if any), Origin. */
const sockets: { endpoint: string; transport: string; session?: http2.ServerHttp2Session; origin?: string }[] = [];

let app: App | null = null;
let browser: Browser | null = null;
let page: http.Server | null = null;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  // The cross-origin page: plain HTTP on another port, opening a WebSocket to the TLS server.
  page = http.createServer((req, res) => {
    const target = decodeURIComponent((req.url ?? '').slice(2));
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><title>waiting</title><script>
      const ws = new WebSocket(${JSON.stringify(target)});
      ws.onopen = () => ws.send('hello across origins');
      ws.onmessage = (e) => { document.title = 'got ' + e.data; };
      ws.onerror = () => { document.title = 'error'; };
    </script>`);
  });
  await new Promise<void>((r) => page!.listen(0, '127.0.0.1', r));
  const pageOrigin = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;

  const { certFile, keyFile } = testCert();
  app = await startServer({ ...DEFAULTS, port: 0, workers: 1, heartbeat: 0, origins: [pageOrigin], tls: { cert: certFile, key: keyFile } });
  const server = app.server as http2.Http2SecureServer;
  server.on('stream', (stream, headers) => {
    streams.push({ method: String(headers[':method']), path: String(headers[':path']), protocol: headers[':protocol'] as string | undefined, session: stream.session! });
  });
  const track = (endpoint: string) => (ws: WebSocket, req: { headers: Record<string, unknown>; stream?: http2.ServerHttp2Stream }) =>
    sockets.push({ endpoint, transport: ws.transport, session: req.stream?.session, origin: req.headers.origin as string | undefined });
  app.chat.on('connection', track('chat'));
  app.echo.on('connection', track('echo'));

  // A fresh profile per launch, the self-signed certificate accepted.
  browser = await launchChromium(['--ignore-certificate-errors']);
}, 60_000);

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await app?.close();
  await new Promise<void>((r) => (page ? page.close(() => r()) : r()));
});

async function context(): Promise<BrowserContext> {
  const c = await browser!.newContext({ ignoreHTTPSErrors: true });
  contexts.push(c);
  return c;
}

describe('Chromium and WebSockets over HTTP/2', () => {
  it("the chat page's WebSocket is an extended CONNECT on the h2 connection that served the page", async () => {
    const p = await (await context()).newPage();
    const response = await p.goto(app!.url);
    expect(app!.url).toMatch(/^https:/);
    await p.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 });

    const get = streams.find((s) => s.method === 'GET' && s.path === '/');
    expect(get, 'the page itself was served over h2').toBeDefined();
    const connect = streams.find((s) => s.method === 'CONNECT');
    expect(connect).toMatchObject({ protocol: 'websocket', path: '/chat' });
    expect(connect!.session).toBe(get!.session);
    const chat = sockets.find((s) => s.endpoint === 'chat')!;
    expect(chat).toMatchObject({ transport: 'h2', origin: new URL(app!.url).origin });
    expect(chat.session).toBe(get!.session);

    // And it works: join, talk, see our own line come back through the room.
    await p.fill('#name', 'h2user');
    await p.click('#join');
    await p.locator('#users li', { hasText: 'h2user' }).waitFor();
    await expect.poll(() => p.isEnabled('#send')).toBe(true);
    await p.fill('#text', 'over one TLS connection');
    await p.click('#send');
    await p.locator('#messages li.message', { hasText: 'over one TLS connection' }).waitFor();
    expect(new Set(streams.map((s) => s.session)).size).toBe(1);
  }, 60_000);

  it('a page from another origin has no h2 connection to reuse: its WebSocket upgrades over HTTP/1.1 and works', async () => {
    const before = streams.length;
    const p = await (await context()).newPage();
    const target = new URL('echo', app!.url).href.replace(/^https:/, 'wss:');
    await p.goto(`http://127.0.0.1:${(page!.address() as AddressInfo).port}/?${encodeURIComponent(target)}`);
    await expect.poll(() => p.title(), { timeout: 10_000 }).toBe('got hello across origins');
    const echo = sockets.find((s) => s.endpoint === 'echo')!;
    expect(echo).toMatchObject({ transport: 'http/1.1', origin: `http://127.0.0.1:${(page!.address() as AddressInfo).port}` });
    expect(echo.session).toBeUndefined();
    expect(streams.slice(before).some((s) => s.method === 'CONNECT')).toBe(false);
  }, 60_000);
});
