// Before → after, side by side in one run: this checkout against another one (a git worktree of the
// base commit, built), for a change that must keep performance.
//
//   node --expose-gc bench/compare.mjs --base /path/to/base-checkout [--rounds 3] [--conns 10000] [--measure 2500] [--memory-only]
//
// Each checkout's own bench/harness.mjs starts its server (bench/echo-server.mjs on its own dist/,
// pinned to one core); the load client is this checkout's (bench/loadgen.mjs, on the other core),
// so both servers get the same load. Throughput: echo of binary messages, 16 B / 1 KiB / 64 KiB ×
// 64 connections, the two servers alternating (order flipped every round); the median of the rounds
// is reported with the after ÷ before ratio. Memory: heap and RSS per idle connection with `--conns`
// connections open, after gc in the server process, once per round per checkout, median.
import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { runLoadgen, openIdle, fileLimit, sleep, mdTable, fmtRate, median } from './harness.mjs';

const KiB = 1024;
const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const here = resolve(fileURLToPath(new URL('..', import.meta.url)));
const baseDir = arg('base');
if (!baseDir || !existsSync(resolve(baseDir, 'dist/esm/index.js'))) {
  console.error('usage: node --expose-gc bench/compare.mjs --base <built checkout> [--rounds 3] [--conns 10000]');
  process.exit(2);
}
const rounds = Number(arg('rounds', 3));
const idleConns = Number(arg('conns', 10_000));
const measureMs = Number(arg('measure', 2500));
const CASES = args.includes('--memory-only') ? [] : [16, KiB, 64 * KiB].map((size) => ({ size, conns: 64 }));

const commitOf = (dir) => {
  try {
    return execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD']).toString().trim();
  } catch {
    return 'unknown';
  }
};
const sides = [
  { name: 'before', dir: resolve(baseDir) },
  { name: 'after', dir: here },
];
for (const s of sides) {
  s.commit = commitOf(s.dir);
  s.harness = await import(pathToFileURL(resolve(s.dir, 'bench/harness.mjs')).href);
  s.echo = new Map();
  s.heap = [];
  s.rss = [];
}
const log = (m) => console.error(`[compare] ${m}`);

for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? sides : [...sides].reverse();
  // Throughput: one server per side, started for the round.
  const servers = [];
  if (CASES.length > 0) for (const s of order) servers.push([s, await s.harness.startServer('wasmws-wasm')]);
  try {
    for (const c of CASES) {
      for (const [s, server] of servers) {
        const r = await runLoadgen({ mode: 'throughput', size: c.size, conns: c.conns, window: 256, maxInflightBytes: 8 * 1024 * 1024, warmupMs: 1000, measureMs, port: server.port, serverPid: server.pid }, measureMs + 60_000);
        const key = `${c.size}×${c.conns}`;
        if (!s.echo.has(key)) s.echo.set(key, []);
        s.echo.get(key).push(r.msgsPerSec);
        log(`r${round + 1} ${s.name} (${s.commit}) ${key}: ${fmtRate(r.msgsPerSec)} msgs/s, server ${r.serverCpu}%`);
      }
    }
  } finally {
    for (const [, server] of servers) await server.stop();
  }
  // Memory per idle connection.
  for (const s of order) {
    const server = await s.harness.startServer('wasmws-wasm', { pin: false });
    const clients = [];
    try {
      const before = await server.ask('mem');
      const perProc = Math.max(1, Math.min(idleConns, fileLimit() - 200));
      for (let left = idleConns; left > 0; left -= perProc) {
        clients.push(await openIdle({ port: server.port, conns: Math.min(perProc, left), deflate: false, touch: false, text: true, size: 2 * KiB }, 120_000));
      }
      const by = Date.now() + 15_000;
      while ((await server.ask('conns')).conns < idleConns && Date.now() < by) await sleep(100);
      const after = await server.ask('mem', 60_000);
      if (after.conns !== idleConns) throw new Error(`server counts ${after.conns} connections, expected ${idleConns}`);
      s.heap.push((after.heapUsed - before.heapUsed) / idleConns);
      s.rss.push((after.rss - before.rss) / idleConns);
      log(`r${round + 1} ${s.name} memory: heap ${(s.heap.at(-1) / KiB).toFixed(2)} KiB/conn, RSS ${(s.rss.at(-1) / KiB).toFixed(2)} KiB/conn`);
    } finally {
      for (const c of clients) await c.stop();
      await server.stop();
    }
  }
}

const [b, a] = sides;
const rows = CASES.map((c) => {
  const key = `${c.size}×${c.conns}`;
  const mb = median(b.echo.get(key));
  const ma = median(a.echo.get(key));
  return [`echo ${c.size >= KiB ? `${c.size / KiB} KiB` : `${c.size} B`} × ${c.conns} (msgs/s)`, fmtRate(mb), fmtRate(ma), (ma / mb).toFixed(2) + '×'];
});
for (const [label, k] of [['heap per idle connection (KiB)', 'heap'], ['RSS per idle connection (KiB)', 'rss']]) {
  const mb = median(b[k]) / KiB;
  const ma = median(a[k]) / KiB;
  rows.push([`${label}, ${idleConns.toLocaleString('en-US')} conns`, mb.toFixed(2), ma.toFixed(2), (ma / mb).toFixed(2) + '×']);
}
console.log(`before = ${b.commit}, after = ${a.commit}; medians of ${rounds} interleaved rounds (node ${process.version})\n`);
console.log(mdTable(['measure', `before (${b.commit})`, `after (${a.commit})`, 'after ÷ before'], rows));
