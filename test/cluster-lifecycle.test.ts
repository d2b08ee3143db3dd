// serveCluster's lifecycle with real forked workers (node:cluster, test/fixtures/cluster-lifecycle.mjs
// on the built package): a start that fails rejects once every worker is gone, a crashed worker is
// replaced with a backoff that grows while crashes repeat, and a worker that ignores shutdown is
// killed after the grace period. Timings are asserted as lower bounds only (timers never fire
// early); every wait is bounded.
import { describe, it, expect, afterEach } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';
import { WebSocket } from '../src/index.js';
import { ensureDist, nextEvent, sleep, until } from './helpers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURE = join(ROOT, 'test', 'fixtures', 'cluster-lifecycle.mjs');

interface Exit { id: number; code: number | null; signal: string | null; t: number }
type Line = Record<string, any>;

interface Primary { proc: ChildProcess; lines: Line[]; next(pred: (l: Line) => boolean, what: string, timeout?: number): Promise<Line> }

const running: ChildProcess[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.exitCode !== null || p.signalCode !== null) continue;
    p.kill('SIGKILL'); // its workers see the IPC channel close and exit
    await Promise.race([nextEvent(p, 'exit', { timeout: 5000 }).catch(() => {}), sleep(5000)]);
  }
});

/** Run the fixture's primary in `mode`; its JSON lines are collected as they come. */
function primary(mode: string, arg?: string | number): Primary {
  ensureDist(join(ROOT, 'dist', 'esm', 'index.js'));
  const proc = spawn(process.execPath, [FIXTURE, mode, ...(arg === undefined ? [] : [String(arg)])], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  running.push(proc);
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const lines: Line[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => lines.push(JSON.parse(l)));
  const next = async (pred: (l: Line) => boolean, what: string, timeout = 15_000): Promise<Line> => {
    await until(() => lines.some(pred) || proc.exitCode !== null, { timeout, what }).catch((err) => {
      throw new Error(`${err.message}; the primary printed ${JSON.stringify(lines)}; stderr:\n${stderr}`);
    });
    const l = lines.find(pred);
    if (!l) throw new Error(`the primary exited (${proc.exitCode}) before ${what}: ${JSON.stringify(lines)}; stderr:\n${stderr}`);
    return l;
  };
  return { proc, lines, next };
}

/** The worker id the cluster's next connection lands on. */
async function workerOf(port: number): Promise<number> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  ws.on('error', () => {});
  try {
    const [data] = await nextEvent<[Buffer]>(ws, 'message');
    return JSON.parse(String(data)).worker;
  } finally {
    ws.terminate();
  }
}

describe('serveCluster: a start that fails', () => {
  it('rejects when a worker dies before listening, once the other worker is stopped too', async () => {
    const p = primary('die-before-listen');
    const r = await p.next((l) => 'rejected' in l || 'ready' in l, 'serveCluster to settle');
    expect(r.rejected).toMatch(/^worker 2 exited \(7\) before listening$/);
    expect(r.running).toBe(0);
    const exits = r.exits as Exit[];
    expect(exits.find((e) => e.id === 2)).toMatchObject({ code: 7 });
    expect(exits.map((e) => e.id).sort()).toEqual([1, 2]); // worker 1 was stopped, not left behind
    await nextEvent(p.proc, 'exit', { timeout: 5000 });
    expect(p.proc.exitCode).toBe(0);
  });

  it("rejects with the worker's own error when worker() throws (EADDRINUSE), and stops every worker", async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    try {
      const port = (taken.address() as net.AddressInfo).port;
      const p = primary('throw-before-listen', port);
      const r = await p.next((l) => 'rejected' in l || 'ready' in l, 'serveCluster to settle');
      expect(r.rejected).toMatch(/EADDRINUSE/);
      expect(r.running).toBe(0);
      expect((r.exits as Exit[]).map((e) => e.id).sort()).toEqual([1, 2]);
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });
});

describe('serveCluster: a worker that crashes after listening', () => {
  it('is replaced, and repeated crashes are spaced out by a growing backoff', async () => {
    const K = 5;
    const p = primary('crash-loop', K);
    const ready = await p.next((l) => 'ready' in l, 'the cluster to listen');
    const r = await p.next((l) => 'crashed' in l, `${K} crashes and their replacements`, 25_000);
    const exits = r.exits as Exit[];
    const respawns = r.respawns as { id: number; t: number }[];
    // Every crash (an uncaught exception: exit code 1) was followed by a new worker…
    expect(exits).toHaveLength(K);
    expect(exits.every((e) => e.code === 1)).toBe(true);
    expect(respawns).toHaveLength(K);
    // (worker 1 crashed first; then each replacement, once it listened)
    expect(exits.map((e) => e.id)).toEqual([1, ...respawns.slice(0, K - 1).map((w) => w.id)]);
    // …after a delay that doubles while crashes repeat (50 ms, 100, 200, 400, 800: lower bounds only).
    const delays = exits.map((e, i) => respawns[i].t - e.t);
    console.log(`serveCluster crash loop: respawn delays ${delays.join(', ')} ms`);
    delays.forEach((d, i) => expect(d, `delay before respawn ${i + 1}: ${delays}`).toBeGreaterThanOrEqual(0.8 * 50 * 2 ** i));
    expect(delays[K - 1]).toBeGreaterThan(4 * 0.8 * 50 * 2 ** (K - 3)); // not a constant delay
    // Two workers listen again, the replacements among them, and the port still serves.
    expect(r.live).toHaveLength(2);
    expect(r.live).toContain(respawns[K - 1].id);
    const seen = new Set<number>();
    for (let i = 0; i < 20 && seen.size < 2; i++) seen.add(await workerOf(ready.port));
    expect([...seen].every((id) => r.live.includes(id))).toBe(true);
    p.proc.stdin!.write('shutdown\n');
    const s = await p.next((l) => 'shutdown' in l, 'the graceful shutdown');
    expect((s.exits as Exit[]).map((e) => e.code)).toEqual([0, 0]);
  }, 40_000);
});

describe('serveCluster: shutdown', () => {
  it('kills a worker that ignores the shutdown after the grace period (shutdownTimeout), and resolves', async () => {
    const T = 300;
    const p = primary('stubborn', T);
    await p.next((l) => 'ready' in l, 'the cluster to listen');
    p.proc.stdin!.write('shutdown\n');
    const s = await p.next((l) => 'shutdown' in l, 'handle.shutdown() to resolve', 15_000);
    const exits = s.exits as Exit[];
    const byId = new Map(exits.map((e) => [e.id, e]));
    expect([...byId.keys()].sort()).toEqual([1, 2]);
    // Worker 1's handler never settled: its hub gave up after shutdownTimeout and exited cleanly.
    expect(byId.get(1)).toMatchObject({ code: 0, signal: null });
    expect(byId.get(1)!.t).toBeGreaterThanOrEqual(T * 0.9);
    // Worker 2 heard nothing and ignored SIGTERM: killed by the primary, after the grace period.
    expect(byId.get(2)).toMatchObject({ signal: 'SIGKILL' });
    expect(byId.get(2)!.t).toBeGreaterThanOrEqual(T);
    expect(byId.get(2)!.t).toBeGreaterThan(byId.get(1)!.t);
    expect(s.ms).toBeGreaterThanOrEqual(byId.get(2)!.t);
  }, 30_000);
});
