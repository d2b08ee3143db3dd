// The `wasmws` command as a subprocess (bin/wasmws.js → dist/esm/cli): flags, errors, endpoints,
// --workers 2 fan-out, worker replacement and graceful SIGTERM.
import * as os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as net from 'node:net';
import { WebSocket } from '../src/index.js';
import { cliEnv, ensureDist, poll, within } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'bin', 'wasmws.js');
const built = join(root, 'dist', 'esm', 'cli', 'main.js');

/** The CLI runs compiled code. */
function ensureBuilt(): void {
  ensureDist(built);
}

interface Run {
  proc: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}
const running: ChildProcess[] = [];

function run(args: string[], env: Record<string, string> = {}, command: string[] = [process.execPath, bin]): Run {
  const proc = spawn(command[0], [...command.slice(1), ...args], { cwd: root, env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  running.push(proc);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return { proc, out: () => out, err: () => err, exited };
}

/** Start `serve` and wait for its banner; returns the port it printed. */
async function serve(args: string[], env: Record<string, string> = {}, npmStart = false): Promise<Run & { port: number; base: string }> {
  // `npm start -- <args>` runs the package's start script (`wasmws serve`) with <args> appended.
  const r = npmStart ? run(['start', '--silent', '--', ...args], env, ['npm']) : run(['serve', ...args], env);
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no banner within 15 s\nstdout: ${r.out()}\nstderr: ${r.err()}`)), 15_000);
    const check = () => {
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(r.out());
      if (m && /Press Ctrl\+C/.test(r.out())) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    };
    r.proc.stdout!.on('data', check);
    r.exited.then(({ code }) => reject(new Error(`exited ${code}\n${r.out()}\n${r.err()}`)));
  });
  return { ...r, port, base: `127.0.0.1:${port}` };
}


type Msg = { type: string; [k: string]: any };
class ChatClient {
  readonly ws: WebSocket;
  readonly got: Msg[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<number>;
  constructor(url: string) {
    this.ws = new WebSocket(url, 'chat');
    this.ws.on('message', (d: Buffer) => this.got.push(JSON.parse(d.toString())));
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => this.ws.on('close', (code: number) => resolve(code)));
  }
  lastPresence(): string[] | undefined {
    for (let i = this.got.length - 1; i >= 0; i--) if (this.got[i].type === 'presence') return this.got[i].users;
    return undefined;
  }
  messages(): Msg[] {
    return this.got.filter((m) => m.type === 'message');
  }
}

const noStack = (s: string) => expect(s).not.toMatch(/\n\s+at .+[:(]\d+/);

beforeAll(() => ensureBuilt(), 180_000);
afterAll(() => {
  for (const p of running) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

describe('wasmws CLI', () => {
  it('--help documents every flag and exits 0', async () => {
    const r = run(['--help']);
    expect((await r.exited).code).toBe(0);
    for (const flag of ['--port', '--host', '--workers', '--path', '--origin', '--max-payload', '--heartbeat', '--codec', '--deflate', '--help']) {
      expect(r.out()).toContain(flag);
    }
    const r2 = run(['serve', '--help']);
    expect((await r2.exited).code).toBe(0);
    expect(r2.out()).toContain('Usage: wasmws serve');
  });

  it.each([
    [['serve', '--bogus'], /Unknown option '--bogus'/],
    [['serve', '--port', 'http'], /--port must be a whole number/],
    [['serve', '--port', '70000'], /--port must be between 0 and 65535/],
    [['serve', '--workers', '0'], /--workers must be between 1/],
    [['serve', '--codec', 'rust'], /--codec must be auto, wasm or ts/],
    [['serve', '--path', 'chat'], /--path must start with "\/"/],
    [['serve', '--origin', 'not a url'], /--origin must be a URL/],
    [['launch'], /unknown command "launch"/],
  ])('%j → usage error, exit 2, no stack trace', async (args, message) => {
    const r = run(args as string[]);
    const { code } = await r.exited;
    expect(code).toBe(2);
    expect(r.err()).toMatch(message as RegExp);
    expect(r.err()).toContain('wasmws --help');
    noStack(r.err());
  });

  it('a port in use → clear message, exit 1, no stack trace (1 and 2 workers)', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      for (const workers of ['1', '2']) {
        const r = run(['serve', '--port', String(port), '--workers', workers]);
        const { code } = await within(r.exited, { timeout: 10_000, what: 'exit on EADDRINUSE' });
        expect(code).toBe(1);
        expect(r.err()).toMatch(new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`));
        noStack(r.err());
      }
    } finally {
      blocker.close();
    }
  });

  it('serves page and /echo (PORT/HOST from env); SIGTERM → 1001 to clients, exit 0', async () => {
    const s = await serve([], { PORT: '0', HOST: '127.0.0.1' });
    // Default --workers auto: one per core (a single process on a 1-core machine).
    expect(s.out()).toMatch(new RegExp(`codec (wasm|ts) · permessage-deflate off · ${os.cpus().length} worker`));
    expect(s.out()).toContain(`ws://${s.base}/chat`);
    const page = await fetch(`http://${s.base}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>wasmws chat</title>');

    const echo = new WebSocket(`ws://${s.base}/echo`);
    await new Promise((r, j) => echo.once('open', r).once('error', j));
    const replies: [string, boolean][] = [];
    const two = new Promise<void>((r) => echo.on('message', (d: Buffer, bin: boolean) => { replies.push([d.toString('hex'), bin]); if (replies.length === 2) r(); }));
    echo.send('ping');
    echo.send(Buffer.from([1, 2, 250]));
    await within(two, { timeout: 5000, what: 'echo replies' });
    expect(replies).toEqual([[Buffer.from('ping').toString('hex'), false], ['0102fa', true]]);

    const chat = new ChatClient(`ws://${s.base}/chat`);
    await chat.opened;
    expect(chat.ws.protocol).toBe('chat');
    const echoClosed = new Promise<number>((r) => echo.on('close', (code: number) => r(code)));

    const t0 = Date.now();
    s.proc.kill('SIGTERM');
    expect(await within(chat.closed, { timeout: 5000, what: 'chat close' })).toBe(1001);
    expect(await within(echoClosed, { timeout: 5000, what: 'echo close' })).toBe(1001);
    const { code, signal } = await within(s.exited, { timeout: 5000, what: 'process exit' });
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(5000);
    noStack(s.err());
  });

  it('/echo applies TCP backpressure: a client that sends without reading waits in the kernel, and gets every echo once it reads', async () => {
    const s = await serve(['--port', '0', '--workers', '1']);
    const ws = new WebSocket(`ws://${s.base}/echo`);
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    ws.pause(); // reads nothing for now
    const N = 96;
    const MiB = 1024 * 1024;
    const got: number[] = [];
    let bad = 0;
    const all = new Promise<void>((resolve) => ws.on('message', (d: Buffer) => {
      if (d.length !== MiB || d[0] !== got.length % 256 || d[MiB - 1] !== got.length % 256) bad++;
      got.push(d[0]);
      if (got.length === N) resolve();
    }));
    const closed = new Promise<number>((r) => ws.once('close', (code: number) => r(code)));
    for (let i = 0; i < N; i++) ws.send(Buffer.alloc(MiB, i));
    await new Promise((r) => setTimeout(r, 2000));
    // What the server took is bounded by the kernel's socket buffers both ways plus its 1 MiB mark
    // (tens of MiB at most on loopback); an echo without backpressure reads all 96 MiB, holds what it
    // cannot write (up to --max-backpressure, 64 MiB) and then drops the client.
    expect(ws.readyState).toBe(ws.OPEN);
    expect(ws.bufferedAmount).toBeGreaterThan(48 * MiB);
    ws.resume();
    await within(all, { timeout: 30_000, what: 'every echo' });
    expect(bad).toBe(0);
    ws.close(1000);
    expect(await within(closed, { timeout: 5000, what: 'close' })).toBe(1000);
    s.proc.kill('SIGTERM');
    expect((await within(s.exited, { timeout: 5000, what: 'process exit' })).code).toBe(0);
  });

  it('--deflate negotiates permessage-deflate on /echo and echoes compressed messages', async () => {
    const s = await serve(['--port', '0', '--deflate']);
    expect(s.out()).toContain('permessage-deflate on');
    const echo = new WebSocket(`ws://${s.base}/echo`);
    await new Promise((r, j) => echo.once('open', r).once('error', j));
    expect(echo.extensions).toMatch(/^permessage-deflate/);
    const text = JSON.stringify({ items: Array.from({ length: 200 }, (_, i) => ({ i, name: `item ${i}` })) });
    const reply = new Promise<string>((r) => echo.once('message', (d: Buffer) => r(d.toString())));
    echo.send(text);
    expect(await within(reply, { timeout: 5000, what: 'compressed echo' })).toBe(text);
    s.proc.kill('SIGTERM');
    expect((await within(s.exited, { timeout: 5000, what: 'process exit' })).code).toBe(0);
  });

  it('/chat refuses a message over 16 KiB with 1009 (a chat message is under 7 KiB); /echo still takes --max-payload', async () => {
    const s = await serve(['--port', '0', '--workers', '1']);
    const chat = new ChatClient(`ws://${s.base}/chat`);
    await chat.opened;
    const big = JSON.stringify({ type: 'join', name: 'x'.repeat(20 * 1024) }); // 20 KiB, one frame
    chat.ws.send(big);
    expect(await within(chat.closed, { timeout: 5000, what: 'chat close' })).toBe(1009);
    // The largest valid message still goes through: 1,000 characters that JSON escapes at 6 bytes each.
    const ok = new ChatClient(`ws://${s.base}/chat`);
    await ok.opened;
    ok.ws.send(JSON.stringify({ type: 'join', name: 'ada' }));
    const wire = `{"type":"message","text":"${'\\u20ac'.repeat(1000)}"}`; // 6,032 bytes: '€' × 1,000, escaped
    ok.ws.send(wire);
    const got = await poll(() => ok.messages()[0], { timeout: 5000, what: 'the escaped message' });
    expect(got.text).toBe('€'.repeat(1000));
    const echo = new WebSocket(`ws://${s.base}/echo`);
    await new Promise((r, j) => echo.once('open', r).once('error', j));
    const reply = new Promise<number>((r) => echo.once('message', (d: Buffer) => r(d.length)));
    echo.send(Buffer.alloc(1024 * 1024, 7));
    expect(await within(reply, { timeout: 5000, what: '1 MiB echo' })).toBe(1024 * 1024);
    s.proc.kill('SIGTERM');
    expect((await within(s.exited, { timeout: 5000, what: 'process exit' })).code).toBe(0);
  });

  it('slow or oversized request headers get 408 / 431 within --header-timeout; --max-backpressure drops a client that reads nothing', async () => {
    const s = await serve(['--port', '0', '--workers', '1', '--header-timeout', '400', '--max-backpressure', '65536']);
    /** What the server answers to `bytes` (and when it closed), for a client that sends nothing more. */
    const answer = (bytes: string) => new Promise<{ status: string; ms: number }>((resolve) => {
      const t0 = Date.now();
      const c = net.connect(s.port, '127.0.0.1', () => c.write(bytes));
      let got = '';
      c.on('data', (d) => (got += d));
      c.on('error', () => {});
      c.on('close', () => resolve({ status: got.split('\r\n')[0], ms: Date.now() - t0 }));
    });
    const [slow, silent, huge] = await Promise.all([
      answer('GET /chat HTTP/1.1\r\nHost: x\r\n'), // headers never finished
      answer(''),
      answer(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
    ]);
    expect(slow.status).toBe('HTTP/1.1 408 Request Timeout');
    expect(silent.status).toBe('HTTP/1.1 408 Request Timeout');
    for (const r of [slow, silent]) expect(r.ms).toBeGreaterThanOrEqual(350), expect(r.ms).toBeLessThan(3000);
    expect(huge.status).toBe('HTTP/1.1 431 Request Header Fields Too Large');

    // A client of /echo that reads nothing while it sends: dropped once 64 KiB wait for it.
    const deaf = new WebSocket(`ws://${s.base}/echo`);
    await new Promise((r, j) => deaf.once('open', r).once('error', j));
    (deaf as unknown as { _socket: net.Socket })._socket?.pause?.();
    deaf.pause();
    const closed = new Promise<number>((r) => deaf.once('close', (code: number) => r(code)));
    const chunk = Buffer.alloc(32 * 1024, 1);
    for (let i = 0; i < 400 && deaf.readyState === deaf.OPEN; i++) {
      deaf.send(chunk);
      await new Promise((r) => setTimeout(r, 2));
    }
    expect(await within(closed, { timeout: 10_000, what: 'the deaf client dropped' })).toBe(1006);
    s.proc.kill('SIGTERM');
    expect((await within(s.exited, { timeout: 5000, what: 'process exit' })).code).toBe(0);
  });

  it('--workers 2: every client gets every message, presence and counts aggregated, a dead worker is replaced', async () => {
    const s = await serve(['--port', '0', '--workers', '2', '--heartbeat', '0']);
    expect(s.out()).toMatch(/2 workers \(node:cluster\)/);
    const url = `ws://${s.base}/chat`;
    const stats = async () => (await fetch(`http://${s.base}/stats`)).json() as Promise<any>;
    await poll(async () => (await stats()).workers.length === 2, { timeout: 8000, interval: 50, what: 'both workers report' });

    // Connections are handed out round-robin by the primary: 8 clients land on both workers.
    const N = 8;
    const clients = Array.from({ length: N }, () => new ChatClient(url));
    await Promise.all(clients.map((c) => c.opened));
    clients.forEach((c, i) => c.ws.send(JSON.stringify({ type: 'join', name: `user${i}` })));
    const everyone = clients.map((_, i) => `user${i}`).sort();
    await poll(async () => clients.every((c) => JSON.stringify(c.lastPresence()) === JSON.stringify(everyone)), { timeout: 8000, interval: 50, what: 'aggregated presence at every client' });

    const st = await poll(async () => {
      const v = await stats();
      return v.connections === N && v;
    }, { timeout: 8000, interval: 50, what: 'aggregated connection count' });
    expect(st.workers).toHaveLength(2);
    const perWorker = st.workers.map((w: any) => w.connections.chat);
    expect(perWorker.every((n: number) => n > 0)).toBe(true); // clients really are on both workers
    expect(perWorker.reduce((a: number, b: number) => a + b, 0)).toBe(N);
    expect(st.users).toEqual(everyone);

    clients.forEach((c, i) => c.ws.send(JSON.stringify({ type: 'message', text: `hello from ${i}` })));
    await poll(async () => clients.every((c) => c.messages().length === N), { timeout: 8000, interval: 50, what: 'every message at every client' });
    for (const c of clients) {
      expect(c.messages().map((m) => m.text).sort()).toEqual(clients.map((_, i) => `hello from ${i}`).sort());
    }
    // One order everywhere: messages are relayed through the primary.
    const order = JSON.stringify(clients[0].messages().map((m) => m.text));
    for (const c of clients) expect(JSON.stringify(c.messages().map((m) => m.text))).toBe(order);

    // Kill one worker: its clients drop, the others see them leave, a new worker takes its place.
    const victim = st.workers[0];
    const before = new Set(st.workers.map((w: any) => w.pid));
    process.kill(victim.pid, 'SIGKILL');
    const after = await poll(async () => {
      const v = await stats();
      return v.workers.length === 2 && v.workers.some((w: any) => !before.has(w.pid)) && v;
    }, { timeout: 10_000, interval: 50, what: 'replacement worker' });
    const survivors = after.connections;
    expect(survivors).toBe(N - victim.connections.chat);
    const alive = clients.filter((c) => c.ws.readyState === WebSocket.OPEN);
    expect(alive).toHaveLength(survivors);
    await poll(async () => alive.every((c) => c.lastPresence()?.length === survivors), { timeout: 8000, interval: 50, what: 'presence after the worker died' });
    expect(s.out()).toMatch(/worker \d+ \(pid \d+\) exited \(SIGKILL\)/);

    // Newcomers, some on the replacement worker, see the whole room from their first presence.
    const names = alive.map((c) => c.lastPresence()!).at(0)!;
    const late = Array.from({ length: 4 }, () => new ChatClient(url));
    await Promise.all(late.map((c) => c.opened));
    await poll(async () => late.every((c) => JSON.stringify(c.lastPresence()) === JSON.stringify(names)), { timeout: 8000, interval: 50, what: 'presence on the new worker' });
    late.forEach((c) => c.ws.close());
    await Promise.all(late.map((c) => c.closed));

    // Graceful stop of the whole cluster.
    s.proc.kill('SIGTERM');
    const codes = await within(Promise.all(alive.map((c) => c.closed)), { timeout: 6000, what: 'clients closed' });
    expect(codes.every((c) => c === 1001)).toBe(true);
    expect(await within(s.exited, { timeout: 8000, what: 'primary exit' })).toEqual({ code: 0, signal: null });
    noStack(s.err());
  });
});

/** Whether a process with this pid exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm start under a supervisor (docker, systemd, a CI job signal the npm process)', () => {
  it.each([
    ['SIGTERM', '1'],
    ['SIGINT', '1'],
    ['SIGTERM', '2'],
  ] as const)('%s to the npm process reaches the server (--workers %s): clients get 1001, port released, no process left', async (signal, workers) => {
    const s = await serve(['--port', '0', '--workers', workers], {}, true);
    const serverPid = Number(/pid (\d+)/.exec(s.out())![1]);
    expect(serverPid).not.toBe(s.proc.pid); // the server is npm's child, not npm
    const chat = new ChatClient(`ws://${s.base}/chat`);
    await chat.opened;
    s.proc.kill(signal);
    expect(await within(chat.closed, { timeout: 8000, what: 'chat close' })).toBe(1001);
    await within(s.exited, { timeout: 8000, what: 'npm exit' });
    await poll(async () => !alive(serverPid), { timeout: 8000, interval: 50, what: `server pid ${serverPid} gone` });
    // The port is free again: nothing kept it bound.
    const probe = net.createServer();
    await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(s.port, '127.0.0.1', () => resolve()));
    probe.close();
  });

  it('the server shuts down (1001, exit) when npm itself is killed with SIGKILL and cannot forward anything', async () => {
    const s = await serve(['--port', '0', '--workers', '1'], {}, true);
    const serverPid = Number(/pid (\d+)/.exec(s.out())![1]);
    const chat = new ChatClient(`ws://${s.base}/chat`);
    await chat.opened;
    s.proc.kill('SIGKILL');
    expect(await within(chat.closed, { timeout: 8000, what: 'chat close' })).toBe(1001);
    await poll(async () => !alive(serverPid), { timeout: 8000, interval: 50, what: `server pid ${serverPid} gone` });
  });
});
