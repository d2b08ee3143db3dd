// `wasmws serve --redis`: the chat across two serve processes (one of them with two workers) and
// one real redis-server: messages everywhere in one order, presence across nodes, and a node killed
// with SIGKILL drops out of presence when its key expires.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';
import { WebSocket } from '../src/index.js';
import { HAVE_REDIS, RedisServer } from './redis-server.js';
import { cliEnv, ensureDist, sleep, until } from './helpers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'wasmws.js');
const TTL = 1000;

interface Serve { proc: ChildProcess; port: number; out: () => string }
async function serve(redisUrl: string, workers: number): Promise<Serve> {
  const proc = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--workers', String(workers), '--heartbeat', '0', '--redis', redisUrl, '--presence-ttl', String(TTL)], {
    cwd: ROOT, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  await until(() => /Press Ctrl\+C/.test(out) || proc.exitCode !== null, { timeout: 15_000, what: 'banner' });
  const m = /listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
  if (!m) throw new Error(`serve did not start:\n${out}`);
  return { proc, port: Number(m[1]), out: () => out };
}

interface Chatter { ws: WebSocket; messages: string[]; presence: string[][] }
async function chatter(port: number, name: string): Promise<Chatter> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/chat`, ['chat']);
  const c: Chatter = { ws, messages: [], presence: [] };
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    if (m.type === 'message') c.messages.push(`${m.name}:${m.text}`);
    else if (m.type === 'presence') c.presence.push(m.users);
  });
  ws.on('error', () => {});
  await once(ws, 'open');
  ws.send(JSON.stringify({ type: 'join', name }));
  return c;
}
const lastPresence = (c: Chatter) => c.presence[c.presence.length - 1] ?? [];

describe.skipIf(!HAVE_REDIS)('wasmws serve --redis', () => {
  let redis: RedisServer;
  const procs: ChildProcess[] = [];
  beforeAll(async () => {
    ensureDist(join(ROOT, 'dist', 'esm', 'cli', 'main.js'));
    redis = await RedisServer.start();
  });
  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await redis?.stop();
  });

  it('runs one chat across two serve processes; a node killed with SIGKILL leaves presence', async () => {
    const [a, b] = await Promise.all([serve(redis.url, 2), serve(redis.url, 1)]);
    procs.push(a.proc, b.proc);
    expect(a.out()).toMatch(/redis {6}127\.0\.0\.1:\d+/);
    const ada = await chatter(a.port, 'ada');
    const amy = await chatter(a.port, 'amy');
    const bob = await chatter(b.port, 'bob');
    const all = [ada, amy, bob];
    const everyone = ['ada', 'amy', 'bob'];
    await until(() => all.every((c) => JSON.stringify(lastPresence(c)) === JSON.stringify(everyone)), { timeout: 5000, what: 'presence on both nodes' });
    // Everyone talks at once; every client sees every message once, in the same order.
    for (let i = 0; i < 20; i++) for (const [c, n] of [[ada, 'ada'], [amy, 'amy'], [bob, 'bob']] as const) c.ws.send(JSON.stringify({ type: 'message', text: `${n}${i}` }));
    await until(() => all.every((c) => c.messages.length >= 60), { timeout: 10_000, what: 'all messages' });
    await sleep(100);
    for (const c of all) {
      expect(c.messages.length).toBe(60);
      expect(c.messages).toEqual(ada.messages);
    }
    expect(new Set(ada.messages).size).toBe(60);
    // SIGKILL node B: no goodbye; its presence key expires after the TTL and node A's users see bob leave.
    const killedAt = Date.now();
    b.proc.kill('SIGKILL');
    await until(() => [ada, amy].every((c) => JSON.stringify(lastPresence(c)) === JSON.stringify(['ada', 'amy'])), { timeout: TTL * 4, what: 'bob gone' });
    const took = Date.now() - killedAt;
    expect(took).toBeLessThan(TTL * 4); // expiry (≤ TTL) + the next refresh (TTL / 3), with room for a loaded machine
    // Node A still chats.
    ada.ws.send(JSON.stringify({ type: 'message', text: 'still here' }));
    await until(() => amy.messages.includes('ada:still here'), { timeout: 5000, what: 'after the kill' });
    for (const c of [ada, amy]) c.ws.close();
    const exited = once(a.proc, 'exit');
    a.proc.kill('SIGTERM');
    await Promise.race([exited, sleep(5000)]);
    expect(a.proc.exitCode).toBe(0);
  }, 30_000);

  it('a Redis outage is one line per worker on stderr, each naming its worker, and so is the recovery', async () => {
    const own = await RedisServer.start();
    const a = await serve(own.url, 2);
    procs.push(a.proc);
    try {
      const tagged = (what: RegExp) => new Set([...a.out().matchAll(new RegExp(`wasmws \\(worker (\\d+), pid \\d+\\): ${what.source}`, 'g'))].map((m) => m[1]));
      await own.stop();
      await until(() => tagged(/Redis unavailable/).size === 2, { timeout: 10_000, what: 'one outage line from each worker' });
      await own.start();
      await until(() => tagged(/Redis is back/).size === 2, { timeout: 10_000, what: 'one recovery line from each worker' });
      expect([...tagged(/Redis unavailable/)].sort()).toEqual([...tagged(/Redis is back/)].sort());
      expect(a.out().match(/Redis unavailable/g)!.length).toBe(2); // once per worker, not per reconnect attempt
    } finally {
      const exited = once(a.proc, 'exit');
      a.proc.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      await own.stop();
    }
  }, 40_000);

  it('exits 1 with a one-line message when Redis is unreachable', async () => {
    const proc = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--workers', '1', '--redis', 'redis://127.0.0.1:1'], { cwd: ROOT, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(proc);
    let err = '';
    proc.stderr!.on('data', (d) => (err += d));
    const [code] = (await Promise.race([once(proc, 'exit'), sleep(10_000).then(() => [null])])) as [number | null];
    expect(code).toBe(1);
    expect(err).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
    expect(err).not.toMatch(/\n\s+at /); // no stack trace
  });
});
