// ClusterBroker with real forked workers (serveCluster, 2 workers, one port): every message on
// every worker once and in the same order, binary payloads intact over IPC, workers subscribed at
// the primary only for topics they have subscribers for, and a killed worker's subscriptions dropped.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';
import { WebSocket, WebSocketServer, ClusterHub, ClusterBroker } from '../src/index.js';
import { ensureDist, poll, sleep, until } from './helpers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

interface Client { ws: WebSocket; got: string[]; worker: number }
async function client(url: string): Promise<Client> {
  const ws = new WebSocket(url);
  const got: string[] = [];
  let worker = -1;
  ws.on('message', (d, isBinary) => {
    const s = isBinary ? `bin:${(d as Buffer).toString('hex')}` : d.toString();
    if (worker < 0 && s.startsWith('{"worker"')) worker = JSON.parse(s).worker;
    else got.push(s);
  });
  ws.on('error', () => {});
  await once(ws, 'open');
  await until(() => worker >= 0, { timeout: 5000, what: 'worker id' });
  return { ws, got, get worker() { return worker; } } as Client;
}

describe('ClusterBroker with forked workers', () => {
  let proc: ChildProcess;
  let lines: Interface;
  let port = 0;
  const replies: Record<string, unknown>[] = [];
  const warnings: string[] = [];
  const ask = async (cmd: string): Promise<Record<string, unknown>> => {
    const n = replies.length;
    proc.stdin!.write(cmd + '\n');
    await until(() => replies.length > n, { timeout: 5000, what: cmd });
    return replies[n];
  };
  /** Ask the primary which workers want `topic` until the answer is `want` (IPC is asynchronous). */
  const workersBecome = async (topic: string, want: number[]): Promise<number[]> => {
    let have: number[] = [];
    await poll(async () => JSON.stringify((have = (await ask(`workers ${topic}`)).workers as number[])) === JSON.stringify(want), {
      timeout: 5000, what: `the workers of ${topic}`,
    }).catch(() => {}); // the caller's assertion shows the difference
    return have;
  };

  beforeAll(async () => {
    ensureDist(join(ROOT, 'dist', 'esm', 'index.js'));
    proc = spawn(process.execPath, [join(ROOT, 'test', 'fixtures', 'cluster-topics.mjs')], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
    lines = createInterface({ input: proc.stdout! });
    lines.on('line', (l) => {
      const o = JSON.parse(l);
      if (o.port) port = o.port;
      else if (o.warning) warnings.push(o.warning);
      else replies.push(o);
    });
    await until(() => port > 0, { timeout: 15_000, what: 'cluster start' });
  });
  afterAll(async () => {
    proc.stdin!.end();
    await Promise.race([once(proc, 'exit'), sleep(5000)]);
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });

  /** Connect until both workers have `per` clients on `path` (the kernel/primary spreads them). */
  async function spread(path: string, per: number): Promise<Client[]> {
    const by = new Map<number, Client[]>();
    const extra: Client[] = [];
    for (let i = 0; i < 40 && [...by.values()].filter((l) => l.length >= per).length < 2; i++) {
      const c = await client(`ws://127.0.0.1:${port}${path}`);
      const l = by.get(c.worker) ?? [];
      if (l.length < per) {
        l.push(c);
        by.set(c.worker, l);
      } else extra.push(c);
    }
    for (const c of extra) c.ws.close();
    const all = [...by.values()].flat();
    expect(by.size).toBe(2);
    return all;
  }

  it('delivers every message to every client on both workers once, in the same order', async () => {
    const clients = await spread('/?t=room', 2);
    const total = 4 * 30;
    // Each client publishes 30 messages, all at once (text, and binary every 5th).
    for (let i = 0; i < 30; i++) {
      clients.forEach((c, k) => c.ws.send(`pub:room:${k}-${i}`, { binary: i % 5 === 0 }));
    }
    await until(() => clients.every((c) => c.got.length >= total), { timeout: 10_000, what: 'all messages' });
    await sleep(100);
    const ref = clients[0].got;
    expect(ref.length).toBe(total);
    expect(new Set(ref).size).toBe(total);
    for (const c of clients) expect(c.got).toEqual(ref);
    expect(ref).toContain(`bin:${Buffer.from('0-0').toString('hex')}`);
    // hub.broadcast: binary bytes cross IPC as bytes and reach every client of both workers.
    clients[0].ws.send('hubcast:\u00ff\u0000raw');
    const want = `bin:${Buffer.from('\u00ff\u0000raw').toString('hex')}`;
    await until(() => clients.every((c) => c.got.includes(want)), { timeout: 5000, what: 'hub broadcast' });
    // One Buffer reused for three publishes: the publisher's own subscribers get each as it was.
    for (const c of clients) c.got.length = 0;
    clients[0].ws.send('reuse:room');
    await until(() => clients.every((c) => c.got.length >= 3), { timeout: 5000, what: 'reused-buffer messages' });
    for (const c of clients) expect(c.got).toEqual(['bin:7231', 'bin:7232', 'bin:7233']);
    for (const c of clients) c.ws.close();
  });

  it('a client publishing faster than IPC carries is held back (TCP), not queued in the worker: every message arrives, in order', async () => {
    const [a, b] = await spread('/?t=flood', 1);
    const N = 600;
    const body = 'x'.repeat(64 * 1024);
    // All at once: the client's socket and the kernel pace it; the worker reads as fast as it lets itself.
    for (let i = 0; i < N; i++) a.ws.send(`pub:flood:${i} ${body}`);
    const floods = (c: Client) => c.got.filter((m) => !m.startsWith('{'));
    await until(() => floods(a).length >= N && floods(b).length >= N, { timeout: 60_000, what: 'every flood message on both workers' });
    for (const c of [a, b]) {
      const got = floods(c);
      expect(got.length).toBe(N);
      expect(got.every((m, i) => m.startsWith(`${i} `) && m.length === body.length + String(i).length + 1)).toBe(true);
    }
    // 37.5 MiB went through the publisher's worker; what waited for its IPC channel stayed near
    // the 4 MiB high-water mark (without flow control, most of the flood: it reads faster than IPC carries).
    a.ws.send('stats');
    const stats = await poll(() => a.got.find((m) => m.startsWith('{"maxBacklog"')), { timeout: 5000, what: 'stats' });
    const { maxBacklog } = JSON.parse(stats);
    expect(maxBacklog).toBeGreaterThan(1 << 20);
    expect(maxBacklog).toBeLessThan(12 << 20);
    for (const c of [a, b]) c.ws.close();
  });

  it('a worker that stops reading IPC (SIGSTOP) holds the others only for a while: then they go on, a warning says why, and it gets everything once it reads again', async () => {
    const [a, b] = await spread('/?t=stuck', 1);
    await ask(`stop ${b.worker}`);
    try {
      const N = 300;
      const body = 'y'.repeat(64 * 1024);
      for (let i = 0; i < N; i++) a.ws.send(`pub:stuck:${i} ${body}`);
      const floods = (c: Client) => c.got.filter((m) => !m.startsWith('{'));
      // 18.8 MiB for b's worker is over the 4 MiB mark: everyone waits, then (5 s) no longer for it.
      await until(() => floods(a).length >= N, { timeout: 30_000, what: "the publisher's worker going on" });
      expect(warnings.some((w) => w.includes(`worker ${b.worker} has not read its IPC channel`))).toBe(true);
      expect(floods(a).every((m, i) => m.startsWith(`${i} `))).toBe(true);
    } finally {
      await ask(`cont ${b.worker}`);
    }
    await until(() => b.got.filter((m) => !m.startsWith('{')).length >= 300, { timeout: 30_000, what: 'the stopped worker catching up' });
    expect(b.got.filter((m) => !m.startsWith('{')).every((m, i) => m.startsWith(`${i} `))).toBe(true);
    for (const c of [a, b]) c.ws.close();
  }, 60_000);

  it('a worker is subscribed at the primary only to topics it has subscribers for; a killed worker loses them', async () => {
    const clients = await spread('/', 1);
    const [a, b] = clients;
    // Subscriptions are made by the connection URL, so open new ones with topics on known workers.
    const onWorker = async (w: number, path: string): Promise<Client> => {
      for (let i = 0; i < 20; i++) {
        const c = await client(`ws://127.0.0.1:${port}${path}`);
        if (c.worker === w) return c;
        c.ws.close();
      }
      throw new Error(`no connection landed on worker ${w}`);
    };
    const onlyA = await onWorker(a.worker, '/?t=only-a');
    expect(await workersBecome('only-a', [a.worker])).toEqual([a.worker]);
    const both1 = await onWorker(a.worker, '/?t=both');
    const both2 = await onWorker(b.worker, '/?t=both');
    const pair = [a.worker, b.worker].sort();
    expect(await workersBecome('both', pair)).toEqual(pair);
    expect((await ask('workers nobody')).workers).toEqual([]);
    onlyA.ws.send('unsub:only-a');
    expect(await workersBecome('only-a', [])).toEqual([]);
    // A publish from B's side reaches the subscriber on A through the primary.
    both2.ws.send('pub:both:hello');
    await until(() => both1.got.includes('hello') && both2.got.includes('hello'), { timeout: 5000, what: 'cross-worker' });
    // SIGKILL worker A: the primary drops its subscriptions.
    await ask(`kill ${a.worker}`);
    await until(() => both1.ws.readyState === WebSocket.CLOSED, { timeout: 5000, what: 'worker A gone' });
    expect(await workersBecome('both', [b.worker])).toEqual([b.worker]);
    for (const c of [...clients, onlyA, both1, both2]) c.ws.terminate();
  });
});

describe('ClusterBroker names', () => {
  it('two ClusterBrokers with one name on one hub throw (not a silent replacement); free again after close', async () => {
    const hub = new ClusterHub();
    const a = new ClusterBroker(hub, { name: 'chat' });
    expect(() => new ClusterBroker(hub, { name: 'chat' })).toThrow(/already exists/);
    expect(() => new ClusterBroker(hub)).not.toThrow(); // 'default' is another name
    const wss = new WebSocketServer({ noServer: true, broker: a });
    await new Promise((r) => wss.close(r));
    expect(() => new ClusterBroker(hub, { name: 'chat' })).not.toThrow();
  });
});
