#!/usr/bin/env node
// User and kernel CPU time per echoed message, for one server under the echo load generator: where
// a gap to another server is (our JavaScript and allocations, or the syscalls and the kernel's
// loopback TCP path). Reads the server's utime/stime from /proc/<pid>/stat around a throughput run
// (bench/loadgen.mjs, the same load as bench/ab.mjs), and its read/write syscall counts from
// /proc/<pid>/io (read(2)/write(2) family only: Bun's recv/send do not show there). Linux only.
//
//   node bench/cpu-split.mjs IMPL [--size 1024] [--conns 1000] [--measure 4000]
//   e.g. for i in wasmws bun wasmws bun; do node bench/cpu-split.mjs $i; done
import { readFileSync } from 'node:fs';
import { startServer, runLoadgen } from './harness.mjs';

const args = process.argv.slice(2);
const impl = args[0];
const opt = { size: 1024, conns: 1000, measure: 4000 };
for (let i = 1; i < args.length; i += 2) {
  const k = args[i].replace(/^--/, '');
  if (!(k in opt)) throw new Error(`unknown option ${args[i]}`);
  opt[k] = Number(args[i + 1]);
}
if (!impl) {
  console.error('usage: node bench/cpu-split.mjs IMPL [--size N] [--conns N] [--measure ms]');
  process.exit(2);
}
const TICK = 100; // USER_HZ: /proc/<pid>/stat counts in 1/100 s on Linux

const s = await startServer(impl);
try {
  const stat = () => {
    const f = readFileSync(`/proc/${s.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return { user: +f[11] / TICK, sys: +f[12] / TICK };
  };
  const io = () => Object.fromEntries(readFileSync(`/proc/${s.pid}/io`, 'utf8').trim().split('\n').map((l) => l.split(': ')).map(([k, v]) => [k, +v]));
  const warmupMs = 1000;
  const run = runLoadgen({
    mode: 'throughput', size: opt.size, conns: opt.conns, window: 256, maxInflightBytes: 8 * 1024 * 1024,
    warmupMs, measureMs: opt.measure, port: s.port, serverPid: s.pid,
  }, opt.measure + 60_000);
  // Sample over the measured part only: after the connections and the warm-up (bounded waits).
  await new Promise((r) => setTimeout(r, 1500 + warmupMs));
  const c0 = stat(), io0 = io(), t0 = performance.now();
  await new Promise((r) => setTimeout(r, Math.max(1000, opt.measure - 1500)));
  const c1 = stat(), io1 = io(), secs = (performance.now() - t0) / 1000;
  const r = await run;
  const msgs = r.msgsPerSec * secs;
  const us = (x) => ((x * 1e6) / msgs).toFixed(2);
  console.log(JSON.stringify({
    impl, size: opt.size, conns: opt.conns, msgsPerSec: r.msgsPerSec,
    userUsPerMsg: +us(c1.user - c0.user), sysUsPerMsg: +us(c1.sys - c0.sys),
    readsPerMsg: +((io1.syscr - io0.syscr) / msgs).toFixed(3), writesPerMsg: +((io1.syscw - io0.syscw) / msgs).toFixed(3),
  }));
} finally {
  await s.stop();
}
