// `wasmws serve --tls-cert FILE --tls-key FILE` as a subprocess (bin/wasmws.js → dist): the page
// and both WebSocket endpoints over TLS, h2 (RFC 8441 streams) with HTTP/1.1 on the same port.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as http2 from 'node:http2';
import { once } from 'node:events';
import { WebSocket } from '../src/index.js';
import { UsageError, parseCli } from '../src/cli/args.js';
import { cliEnv, ensureDist } from './helpers.js';
import { testCert } from './h2.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'bin', 'wasmws.js');
const running: ChildProcess[] = [];
afterAll(() => {
  for (const p of running) if (p.exitCode === null) p.kill('SIGKILL');
});

function run(args: string[]) {
  const proc = spawn(process.execPath, [bin, ...args], { cwd: root, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  running.push(proc);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { proc, out: () => out, err: () => err, exited };
}

function open(url: string, opts: ConstructorParameters<typeof WebSocket>[2]): Promise<WebSocket> {
  const ws = new WebSocket(url, ['chat'], { rejectUnauthorized: false, ...opts });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

describe('wasmws serve --tls-cert --tls-key', () => {
  it('parses the pair, and refuses one without the other', () => {
    const c = parseCli(['serve', '--tls-cert', 'c.pem', '--tls-key', 'k.pem']);
    expect(c.command === 'serve' && c.options.tls).toEqual({ cert: 'c.pem', key: 'k.pem' });
    expect(() => parseCli(['serve', '--tls-cert', 'c.pem'])).toThrow(UsageError);
    expect(() => parseCli(['serve', '--tls-key', 'k.pem'])).toThrow(/go together/);
  });

  it('serves the page, /chat and /echo over h2 and HTTP/1.1 on one port; says so in the banner', async () => {
    ensureDist(join(root, 'dist', 'esm', 'cli', 'main.js'));
    const { certFile, keyFile } = testCert();
    const r = run(['serve', '-p', '0', '-w', '1', '--heartbeat', '0', '--header-timeout', '500', '--tls-cert', certFile, '--tls-key', keyFile]);
    const port = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no banner within 15 s\n${r.out()}\n${r.err()}`)), 15_000);
      r.proc.stdout!.on('data', () => {
        const m = /listening on https:\/\/127\.0\.0\.1:(\d+)\//.exec(r.out());
        if (m && /Press Ctrl\+C/.test(r.out())) {
          clearTimeout(t);
          resolve(Number(m[1]));
        }
      });
      void r.exited.then((code) => reject(new Error(`exited ${code}\n${r.out()}\n${r.err()}`)));
    });
    expect(r.out()).toContain(`chat       wss://127.0.0.1:${port}/chat`);
    expect(r.out()).toMatch(/tls\s+h2 \+ HTTP\/1\.1 on one port: WebSockets as streams of the page's h2 connection \(RFC 8441\)/);

    // The page over h2.
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    session.on('error', () => {});
    const get = session.request({ ':path': '/' });
    let html = '';
    get.on('data', (d) => (html += d));
    const [headers] = (await once(get, 'response')) as [http2.IncomingHttpHeaders];
    await once(get, 'end');
    expect(headers[':status']).toBe(200);
    expect(html).toContain('wasmws chat');
    expect(session.remoteSettings.enableConnectProtocol).toBe(true);

    // WebSockets on the page's session (given to the client), and over HTTP/1.1.
    const h2ws = await open(`wss://127.0.0.1:${port}/echo`, { http2Session: session });
    const h1ws = await open(`wss://127.0.0.1:${port}/echo`, {});
    expect([h2ws.transport, h1ws.transport]).toEqual(['h2', 'http/1.1']);
    for (const ws of [h2ws, h1ws]) {
      const got = once(ws, 'message');
      ws.send(`echo over ${ws.transport}`);
      expect(String((await got)[0])).toBe(`echo over ${ws.transport}`);
    }
    const chat = await open(`wss://127.0.0.1:${port}/chat`, { http2: true });
    expect([chat.transport, chat.protocol]).toEqual(['h2', 'chat']);

    // HTTP/1.1 over TLS whose headers never end: 408 within --header-timeout (Node's HTTP/2 server
    // sets 60 s for its HTTP/1.1 side unless told otherwise), and a TLS handshake never begun is dropped.
    const tls = await import('node:tls');
    const slow = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    slow.on('error', () => {});
    await once(slow, 'secureConnect');
    const t0 = Date.now();
    slow.write('GET / HTTP/1.1\r\nHost: x\r\n');
    let answer = '';
    slow.on('data', (d) => (answer += d));
    await once(slow, 'close');
    expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
    expect(Date.now() - t0).toBeLessThan(5000);
    const net = await import('node:net');
    const silent = net.connect(port, '127.0.0.1');
    silent.on('error', () => {});
    const s0 = Date.now();
    await once(silent, 'close');
    expect(Date.now() - s0).toBeLessThan(5000);

    // SIGTERM: 1001 to every WebSocket, h2 and HTTP/1.1 alike, then exit 0.
    const codes = Promise.all([h2ws, h1ws, chat].map((ws) => once(ws, 'close').then(([code]) => code)));
    r.proc.kill('SIGTERM');
    expect(await codes).toEqual([1001, 1001, 1001]);
    expect(await r.exited).toBe(0);
    session.destroy();
  }, 60_000);

  it('exits 1 with one line when a file cannot be read', async () => {
    ensureDist(join(root, 'dist', 'esm', 'cli', 'main.js'));
    const r = run(['serve', '-p', '0', '-w', '1', '--tls-cert', '/nonexistent/cert.pem', '--tls-key', '/nonexistent/key.pem']);
    expect(await r.exited).toBe(1);
    expect(r.err().trim()).toBe('wasmws: cannot read --tls-cert /nonexistent/cert.pem: ENOENT');
  }, 20_000);
});
