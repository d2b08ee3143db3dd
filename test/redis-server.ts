// A real redis-server for tests: on a free loopback port, no persistence, stopped afterwards.
// Tests that need it skip themselves (with a reason) when the binary is missing; .ci/run installs it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { poll, sleep, until } from './helpers.js';

export const HAVE_REDIS = spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).status === 0;

/** A free TCP port on 127.0.0.1 (the kernel picks it; we release it at once). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
  });
}

/** One redis-server process; `stop()` kills it, `start()` runs it again on the same port. */
export class RedisServer {
  proc: ChildProcess | null = null;
  constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<RedisServer> {
    const r = new RedisServer(await freePort());
    await r.start();
    return r;
  }

  /** Start (or restart) and wait until it answers PING (at most 5 s). */
  async start(): Promise<void> {
    const proc = spawn('redis-server', [
      '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--protected-mode', 'no', '--loglevel', 'warning',
    ], { stdio: 'ignore' });
    this.proc = proc;
    const state = await poll(async () => (proc.exitCode !== null ? 'exited' : (await ping(this.port)) && 'up'), {
      timeout: 5000, interval: 25, what: 'redis-server to answer PING',
    }).catch(() => 'late');
    if (state === 'up') return;
    if (state === 'exited') throw new Error(`redis-server exited with ${proc.exitCode}`);
    proc.kill('SIGKILL');
    throw new Error('redis-server did not start within 5 s');
  }

  /**
   * Stall it (SIGSTOP: connections stay up, nothing is answered) and wait until the kernel reports
   * it stopped, so that nothing sent after this returns is processed before SIGCONT.
   */
  async stall(): Promise<void> {
    const p = this.proc!;
    p.kill('SIGSTOP');
    await until(() => {
      const stat = readFileSync(`/proc/${p.pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
    }, { timeout: 2000, what: 'redis-server to stop (state T)' });
  }

  /** Undo stall(). */
  resume(): void {
    this.proc?.kill('SIGCONT');
  }

  /** Kill it (SIGKILL: an outage, not a shutdown) and wait for the exit. */
  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await Promise.race([exited, sleep(3000)]);
  }
}
