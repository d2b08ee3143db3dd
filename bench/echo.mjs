// End-to-end echo suite: msgs/s, CPU and latency of echo servers driven by the raw-socket client.
// `export async function runEcho({ quick, log })` → { rows, latency, deflate, servers, markdown }.
//
// Imports nothing from the package itself: the servers (bench/echo-server.mjs) load ../dist/esm,
// so `npm run build` must run first (`npm run bench` does).
//
// Method (also written into the Markdown):
// - Every server runs in its own process pinned to one core (taskset), the load client
//   (bench/loadgen.mjs) in another process pinned to another core. One process per implementation,
//   started once and reused by every case; all are started before measuring and idle when not
//   under test.
// - Throughput: for each (payload size, connections) case, every implementation in turn, in
//   alternating order over ROUNDS rounds (this is often a shared VM whose speed drifts); each cell
//   keeps its best round. Every connection keeps a window of messages in flight (pre-masked binary
//   frames; refilled when half drained); msgs/s = echoed messages counted in the measurement window
//   after a warm-up. Server CPU% = utime+stime of the server process over the window (100% = one
//   core); client CPU% likewise for the load client.
// - Latency: 64 connections × 100 msg/s of 1 KiB (6,400 msg/s in total, far below any server's
//   capacity); each round trip timed by the client (send time FIFO per connection); percentiles
//   over the messages sent in the measurement window.
// - Deflate: the same echo with a 1 KiB / 16 KiB JSON text message, permessage-deflate off vs on
//   (the client offers client_no_context_takeover and sends each message pre-compressed; the
//   server inflates every message and deflates every echo).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { findBun, IMPLS } from './echo-server.mjs';
import { startServer, runLoadgen, machine, mdTable, fmtSize, fmtRate, fmtRatio, HAS_TASKSET } from './harness.mjs';

export { IMPLS };
export const BASELINE = 'ws';
export const SIZES = [16, 1024, 64 * 1024];
const KiB = 1024;

/** Cases and time budgets. A full run is ~8 min; --quick ~1 min. */
export function plan(quick) {
  const cases = [];
  for (const size of SIZES) for (const conns of [1, 64, 1000]) {
    if (quick && conns === 1000 && size !== 16) continue;
    cases.push({ size, conns });
  }
  return {
    cases,
    rounds: quick ? 1 : 2,
    warmupMs: quick ? 300 : 1000,
    measureMs: quick ? 1000 : 2500,
    window: 256, // messages in flight per connection, capped to 8 MiB in flight in total
    maxInflightBytes: 8 * 1024 * 1024,
    latency: { conns: 64, rate: 100, size: KiB, warmupMs: quick ? 500 : 1000, measureMs: quick ? 2000 : 5000 },
    deflate: { impls: ['wasmws', 'ws', 'bun'], sizes: quick ? [KiB] : [KiB, 16 * KiB], conns: 64 },
  };
}

/** Starts every server that can start; bun → { notInstalled } when absent. */
async function startAll(impls, deflate, log) {
  const servers = {};
  for (const impl of impls) {
    try {
      servers[impl] = await startServer(impl, { deflate });
      log(`echo: started ${impl}${deflate ? ' (deflate)' : ''} on port ${servers[impl].port} (pid ${servers[impl].pid}, ${servers[impl].info.version})`);
    } catch (err) {
      servers[impl] = { notInstalled: !!err.notInstalled, error: String(err.message ?? err) };
      log(`echo: ${impl}${deflate ? ' (deflate)' : ''}: ${servers[impl].error}`);
    }
  }
  return servers;
}

async function stopAll(servers) {
  await Promise.all(Object.values(servers).map((s) => s.stop?.()));
}

function unavailableRow(base, s) {
  return { ...base, msgsPerSec: null, note: s.notInstalled ? 'Bun: not installed' : `failed: ${s.error}` };
}

/** One loadgen run against a live server; a failure becomes a row with a note, not a thrown error. */
async function measure(server, o, log) {
  const budget = (o.warmupMs ?? 0) + (o.measureMs ?? 0) + 60_000;
  try {
    return await runLoadgen({ ...o, port: server.port, serverPid: server.pid }, budget);
  } catch (err) {
    log(`echo: ${server.impl} ${JSON.stringify(o)}: ${err.message}`);
    return { error: String(err.message ?? err) };
  }
}

export async function runEcho({ quick = false, log = () => {} } = {}) {
  if (!existsSync(new URL('../dist/esm/index.js', import.meta.url))) throw new Error('dist/esm missing: run `npm run build` first');
  const p = plan(quick);
  const bun = findBun();
  log(`echo: bun ${bun ? `${bun.version} at ${bun.path}` : 'not installed'}; taskset ${HAS_TASKSET ? 'yes' : 'no'}`);
  const t0 = performance.now();
  const mach = machine();

  // ── throughput matrix ──
  const servers = await startAll(IMPLS, false, log);
  const best = new Map(); // `${impl}|${size}|${conns}` → row
  const rounds = [];
  const latency = [];
  try {
    for (let round = 0; round < p.rounds; round++) {
      const order = round % 2 === 0 ? IMPLS : [...IMPLS].reverse();
      for (const c of p.cases) {
        for (const impl of order) {
          const base = { impl, size: c.size, conns: c.conns };
          const s = servers[impl];
          const key = `${impl}|${c.size}|${c.conns}`;
          if (!s.port) { best.set(key, unavailableRow(base, s)); continue; }
          if (s.exited) { best.set(key, { ...base, msgsPerSec: null, note: 'server exited' }); continue; }
          const r = await measure(s, { mode: 'throughput', size: c.size, conns: c.conns, window: p.window, maxInflightBytes: p.maxInflightBytes, warmupMs: p.warmupMs, measureMs: p.measureMs }, log);
          const row = r.error
            ? { ...base, msgsPerSec: null, note: r.error }
            : { ...base, msgsPerSec: r.msgsPerSec, serverCpu: r.serverCpu, clientCpu: r.clientCpu, msgsPerServerCpuSec: r.serverCpu ? Math.round(r.msgsPerSec / (r.serverCpu / 100)) : null, window: r.window, frameBytes: r.frameBytes, seconds: r.seconds, errors: r.errors, closedConns: r.closedConns, round: round + 1 };
          rounds.push(row);
          const prev = best.get(key);
          if (!prev || (row.msgsPerSec ?? -1) > (prev.msgsPerSec ?? -1)) best.set(key, row);
          log(`echo r${round + 1}: ${impl.padEnd(15)} ${fmtSize(c.size).padStart(6)} × ${String(c.conns).padStart(4)} conns: ${row.msgsPerSec == null ? row.note : `${fmtRate(row.msgsPerSec)} msgs/s  server ${row.serverCpu}%  client ${row.clientCpu}%`}`);
        }
      }
    }

    // ── latency at a fixed moderate rate ──
    for (const impl of IMPLS) {
      const s = servers[impl];
      const base = { impl, conns: p.latency.conns, ratePerConn: p.latency.rate, size: p.latency.size };
      if (!s.port) { latency.push({ ...base, note: s.notInstalled ? 'Bun: not installed' : `failed: ${s.error}` }); continue; }
      const r = await measure(s, { mode: 'latency', ...p.latency }, log);
      const row = r.error ? { ...base, note: r.error } : { ...base, p50ms: r.p50ms, p90ms: r.p90ms, p99ms: r.p99ms, maxMs: r.maxMs, samples: r.samples, achievedPerSec: r.ratePerSec, serverCpu: r.serverCpu, clientCpu: r.clientCpu, lost: r.lost };
      latency.push(row);
      log(`echo latency: ${impl.padEnd(15)} p50 ${row.p50ms} ms  p99 ${row.p99ms} ms  (${row.samples} samples, server ${row.serverCpu}%)`);
    }
  } finally {
    await stopAll(servers);
  }

  // ── deflate: text echo with compression off vs on ──
  const deflate = [];
  const dImpls = p.deflate.impls;
  const plain = await startAll(dImpls, false, log);
  const compressed = await startAll(dImpls, true, log);
  try {
    for (const size of p.deflate.sizes) {
      for (const impl of dImpls) {
        for (const on of [false, true]) {
          const s = (on ? compressed : plain)[impl];
          const base = { impl, size, conns: p.deflate.conns, compression: on ? 'on' : 'off' };
          if (!s.port) { deflate.push(unavailableRow(base, s)); continue; }
          const r = await measure(s, { mode: 'throughput', size, conns: p.deflate.conns, text: true, deflate: on, window: 64, maxInflightBytes: p.maxInflightBytes, warmupMs: p.warmupMs, measureMs: p.measureMs }, log);
          const row = r.error ? { ...base, msgsPerSec: null, note: r.error } : { ...base, msgsPerSec: r.msgsPerSec, serverCpu: r.serverCpu, clientCpu: r.clientCpu, wireBytesPerMsg: r.frameBytes };
          deflate.push(row);
          log(`echo deflate: ${impl.padEnd(12)} ${fmtSize(size)} ${base.compression.padEnd(3)}: ${row.msgsPerSec == null ? row.note : `${fmtRate(row.msgsPerSec)} msgs/s  server ${row.serverCpu}%  (${row.wireBytesPerMsg} B on the wire)`}`);
        }
      }
    }
  } finally {
    await stopAll(plain);
    await stopAll(compressed);
  }

  const rows = addRatios([...best.values()]);
  const serverInfo = Object.fromEntries(Object.entries(servers).map(([k, s]) => [k, s.info ?? { error: s.error, notInstalled: s.notInstalled }]));
  const result = {
    plan: p,
    machine: mach,
    bun: bun ?? null,
    servers: serverInfo,
    seconds: +((performance.now() - t0) / 1000).toFixed(1),
    rows,
    rounds,
    latency,
    deflate,
  };
  result.markdown = echoMarkdown(result);
  return result;
}

/** ratioToWs on every row: msgs/s over ws (with bufferutil) for the same case. */
function addRatios(rows) {
  for (const r of rows) {
    const ws = rows.find((x) => x.impl === BASELINE && x.size === r.size && x.conns === r.conns);
    r.ratioToWs = r.msgsPerSec != null && ws?.msgsPerSec ? +(r.msgsPerSec / ws.msgsPerSec).toFixed(3) : null;
  }
  return rows.sort((a, b) => a.size - b.size || a.conns - b.conns || IMPLS.indexOf(a.impl) - IMPLS.indexOf(b.impl));
}

export function caseLabel(r) {
  return `${fmtSize(r.size)} × ${r.conns} conn${r.conns === 1 ? '' : 's'}`;
}

function cases(rows) {
  const seen = new Map();
  for (const r of rows) seen.set(`${r.size}|${r.conns}`, { size: r.size, conns: r.conns });
  return [...seen.values()];
}

const cellOf = (rows, impl, c) => rows.find((r) => r.impl === impl && r.size === c.size && r.conns === c.conns);
const notInstalled = (r) => (r?.note === 'Bun: not installed' ? 'not installed' : '–');

export function echoMarkdown(res) {
  const { rows, latency, deflate } = res;
  const md = [];
  const cs = cases(rows);
  md.push('### echo throughput — msgs/s (server CPU%), best of ' + res.plan.rounds + ' round' + (res.plan.rounds > 1 ? 's' : ''), '');
  md.push(mdTable(['case', ...IMPLS, 'client CPU% (max)'], cs.map((c) => {
    const cells = IMPLS.map((impl) => {
      const r = cellOf(rows, impl, c);
      return r?.msgsPerSec != null ? `${fmtRate(r.msgsPerSec)} (${r.serverCpu ?? '?'}%)` : notInstalled(r);
    });
    const client = Math.max(...IMPLS.map((impl) => cellOf(rows, impl, c)?.clientCpu ?? 0));
    return [caseLabel(c), ...cells, `${client}%`];
  })), '');
  md.push(`### echo throughput — ratio to ${BASELINE} (with bufferutil)`, '');
  const others = IMPLS.filter((i) => i !== BASELINE);
  md.push(mdTable(['case', ...others], cs.map((c) => [caseLabel(c), ...others.map((impl) => {
    const r = cellOf(rows, impl, c);
    return r?.ratioToWs != null ? fmtRatio(r.ratioToWs) : notInstalled(r);
  })])), '');
  md.push('### echo efficiency — msgs per server CPU-second (msgs/s ÷ server CPU share)', '');
  md.push(mdTable(['case', ...IMPLS], cs.map((c) => [caseLabel(c), ...IMPLS.map((impl) => {
    const r = cellOf(rows, impl, c);
    return r?.msgsPerServerCpuSec ? fmtRate(r.msgsPerServerCpuSec) : notInstalled(r);
  })])), '');
  const L = res.plan.latency;
  md.push(`### latency — ${L.conns} connections × ${L.rate} msg/s of ${fmtSize(L.size)} (round trip, ms)`, '');
  md.push(mdTable(['server', 'p50', 'p90', 'p99', 'max', 'msgs/s achieved', 'server CPU%'], latency.map((r) =>
    r.p50ms == null ? [r.impl, r.note === 'Bun: not installed' ? 'not installed' : (r.note ?? '–'), '', '', '', '', ''] : [r.impl, r.p50ms.toFixed(3), r.p90ms.toFixed(3), r.p99ms.toFixed(3), r.maxMs.toFixed(2), fmtRate(r.achievedPerSec), `${r.serverCpu}%`])), '');
  if (deflate.length) {
    md.push(`### permessage-deflate — JSON text echo, ${res.plan.deflate.conns} connections, msgs/s (server CPU%)`, '');
    const body = [];
    for (const size of res.plan.deflate.sizes) for (const impl of res.plan.deflate.impls) {
      const off = deflate.find((r) => r.impl === impl && r.size === size && r.compression === 'off');
      const on = deflate.find((r) => r.impl === impl && r.size === size && r.compression === 'on');
      const cell = (r) => (r?.msgsPerSec != null ? `${fmtRate(r.msgsPerSec)} (${r.serverCpu}%)` : notInstalled(r));
      body.push([`${impl}, ${fmtSize(size)}`, cell(off), cell(on), on?.msgsPerSec && off?.msgsPerSec ? fmtRatio(on.msgsPerSec / off.msgsPerSec) : '–', on?.wireBytesPerMsg ? `${off?.wireBytesPerMsg ?? '?'} → ${on.wireBytesPerMsg}` : '–']);
    }
    md.push(mdTable(['server, message', 'compression off', 'compression on', 'on ÷ off', 'client frame bytes'], body), '');
  }
  const m = res.machine;
  md.push(`Method: each server in its own process${HAS_TASKSET ? ` (${m.taskset})` : ''}; raw-socket load client (bench/loadgen.mjs) in one process: pre-masked binary frames, ` +
    `${res.plan.window} messages in flight per connection (capped at ${res.plan.maxInflightBytes / 1024 / 1024} MiB in flight in total), refilled at half; ` +
    `${res.plan.warmupMs} ms warm-up, ${res.plan.measureMs} ms measured per cell; CPU% = process utime+stime over the window (100% = one core). ` +
    `Load average at the start: ${m.loadavg.join(', ')} on ${m.cpus} CPUs.`);
  return md.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // Standalone: node bench/echo.mjs [--quick]
  runEcho({ quick: process.argv.includes('--quick'), log: (m) => console.error(m) }).then((r) => {
    console.log(r.markdown);
    process.exit(0);
  }, (err) => { console.error(err); process.exit(1); });
}
