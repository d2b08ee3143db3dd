#!/usr/bin/env node
// A/B of builds or settings at one echo point: many short interleaved rounds, medians and ratios.
// For a change whose effect is smaller than this machine's round-to-round noise (a shared VM moves
// single rounds by ±15%), where bench/compare.mjs's three fixed cases take too long per round.
//
//   node bench/ab.mjs [--size 1024] [--conns 64] [--rounds 8] [--measure 2000] [--window 256]
//                     label=IMPL[:DIST][:ENV=VALUE...] ...
//
// Each side is a server (bench/echo-server.mjs --impl IMPL, pinned to one core) started once and
// kept for every round; DIST is another build's dist/esm/index.js (WASMWS_DIST), ENV=VALUE sets the
// server's environment (e.g. WASMWS_INTERNALS=off). The load generator (bench/loadgen.mjs, the other
// core) echoes binary messages; the order of the sides flips every round. The first side is the
// reference of the ratios. Examples:
//   node bench/ab.mjs --conns 1000 --size 16 before=wasmws-wasm:/tmp/before/dist/esm/index.js after=wasmws-wasm bun=bun
//   node bench/ab.mjs fair=wasmws-wasm nofair=wasmws-wasm:WASMWS_INTERNALS=off
import { startServer, runLoadgen, median } from './harness.mjs';

const args = process.argv.slice(2);
const opt = { size: 1024, conns: 64, rounds: 8, measure: 2000, window: 256 };
const specs = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a.startsWith('--')) {
    const k = a.slice(2);
    if (!(k in opt)) throw new Error(`unknown option ${a}`);
    opt[k] = Number(args[++i]);
  } else specs.push(a);
}
if (specs.length < 2) {
  console.error('usage: node bench/ab.mjs [--size N] [--conns N] [--rounds N] [--measure ms] label=IMPL[:DIST][:ENV=VALUE...] label=... (at least two)');
  process.exit(2);
}

const sides = [];
try {
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    if (eq < 1) throw new Error(`side "${spec}": want label=IMPL[:DIST][:ENV=VALUE...]`);
    const [impl, ...rest] = spec.slice(eq + 1).split(':');
    const env = {};
    for (const r of rest) {
      const e = r.indexOf('=');
      if (e > 0) env[r.slice(0, e)] = r.slice(e + 1);
      else env.WASMWS_DIST = r;
    }
    const saved = { ...process.env };
    Object.assign(process.env, env); // the server inherits it
    try {
      sides.push({ label: spec.slice(0, eq), impl, env, server: await startServer(impl), rates: [] });
    } finally {
      process.env = saved;
    }
  }
  for (let round = 0; round < opt.rounds; round++) {
    const order = round % 2 === 0 ? sides : [...sides].reverse();
    for (const s of order) {
      const r = await runLoadgen({
        mode: 'throughput', size: opt.size, conns: opt.conns, window: opt.window, maxInflightBytes: 8 * 1024 * 1024,
        warmupMs: 500, measureMs: opt.measure, port: s.server.port, serverPid: s.server.pid,
      }, opt.measure + 60_000);
      s.rates.push(r.msgsPerSec);
      console.error(`[ab] r${round + 1} ${s.label}: ${r.msgsPerSec} msgs/s, server ${r.serverCpu}%, client ${r.clientCpu}%`);
    }
  }
} finally {
  for (const s of sides) await s.server.stop();
}

const ref = median(sides[0].rates);
console.log(`echo ${opt.size} B × ${opt.conns} conns, ${opt.window} in flight, medians of ${opt.rounds} interleaved rounds of ${opt.measure} ms (node ${process.version})\n`);
console.log(`| side | setting | msgs/s (median) | ÷ ${sides[0].label} | rounds |`);
console.log('| --- | --- | ---: | ---: | --- |');
for (const s of sides) {
  const setting = [s.impl, ...Object.entries(s.env).map(([k, v]) => `${k}=${v}`)].join(' ');
  console.log(`| ${s.label} | ${setting} | ${Math.round(median(s.rates))} | ${(median(s.rates) / ref).toFixed(2)}× | ${s.rates.join(', ')} |`);
}
