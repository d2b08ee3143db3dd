// Codec suite: mask/unmask throughput per primitive and size, and "chunk → frames" (one 64 KiB socket
// read of masked client frames parsed into frames) for our FrameParser on the allocation-free
// parse(sink) path vs ws's Receiver. With a full run (not --quick) it first measures the codec table
// that `auto` decides from (bench/codec-table.mjs) for this runtime and writes it.
//
//   npm run bench -- --suite codec          (via bench/run.mjs)
//   node --expose-gc bench/codec.mjs --chunks [--quick] [--rounds N]    chunk → frames only, printed
//
// Imports the BUILT package (../dist/esm), so `npm run build` must run first (`npm run bench` does).
// Works against older builds too (rows for primitives a build lacks are left out).
//
// Method notes (also written into codec.md):
// - Every primitive (and every parser) is measured in its own fresh process (`--child`), so JIT
//   type feedback from one primitive's calls into shared code does not skew another's numbers.
// - Every tinybench sample is one call of a task that repeats the operation `reps` times on the
//   same buffer (≈256 KiB of work per sample, at least once), so the timer's cost (~50 ns) is
//   negligible even for 16 B. ns/op = median sample / reps; GB/s = bytes / ns/op (1 GB = 1e9 B).
// - Buffers are fresh `Buffer.alloc` (byteOffset 0, 4-byte aligned) and stay cache-hot: this
//   measures the XOR kernels and per-call overhead, not memory bandwidth.
// - chunk → frames: FrameParser and ws's Receiver unmask the chunk IN PLACE, so a pristine copy of
//   the chunk is restored into the same work buffer in tinybench's `beforeEach` hook, which is NOT
//   timed — same for every parser. Each sample = one parse/write of one chunk; the frames delivered
//   are counted every sample and the task throws if the count is wrong.
// - ws's Receiver uses the runtime's own unmask where it has one (node:http websocketUnmask,
//   Node ≥ 26), else bufferutil: "ws Receiver" is that default. "ws js" is ws's pure-JS path
//   (WS_NO_BUFFER_UTIL=1, and on Node ≥ 26 with http.websocketMask hidden while ws loads).
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { randomFillSync } from 'node:crypto';
import { Bench } from 'tinybench';
import {
  KiB, MiB, buildChunk, benchOptions, latencyOf, medianOfRounds, randomBuffer, fmtBytes, fmtNum, fmtNs, fmtRate, mdTable,
} from './codec-common.mjs';

import * as codecLib from '../dist/esm/codec/index.js';
import { WasmCodec, wasmExports } from '../dist/esm/codec/wasm.js';
import { TsCodec, mask as tsMask, unmask as tsUnmask } from '../dist/esm/codec/ts.js';
import { DATA_PTR } from '../dist/esm/codec/layout.js';
import { FrameParser } from '../dist/esm/protocol/parser.js';
import * as ours from '../dist/esm/bufferutil.js';

export { buildChunk, fmtBytes, mdTable };
const require = createRequire(import.meta.url);
const http = require('node:http');

export const SIZES = [16, 125, KiB, 16 * KiB, 64 * KiB, MiB];
const WORK_PER_SAMPLE = 256 * KiB;
const ROUNDS = 3;
const KEY = 0x12345678; // little-endian u32 ⇔ mask bytes 78 56 34 12
const MASK_BYTES = Buffer.from([0x78, 0x56, 0x34, 0x12]);

/** Node ≥ 26: ws uses node:http's unmask by default, and so can our native backend. */
const HTTP_NATIVE = typeof http.websocketUnmask === 'function';
const HAS_NATIVE = codecLib.HAS_NATIVE === true;
const HAS_AUTO = typeof codecLib.AutoCodec === 'function';

export const BACKENDS = [
  'wasm (in wasm memory)',
  'wasm (JS buffer)',
  'wasm (JS buffer, maskMin 0)',
  'ts',
  ...(HAS_NATIVE ? ['native (min 0)'] : []),
  ...(HAS_AUTO ? ['auto'] : []),
  'ws js',
  ...(HTTP_NATIVE ? ['node:http'] : []),
  'bufferutil',
  'wasmws/bufferutil',
];
export const PARSERS = [
  ...(HAS_AUTO ? ['FrameParser auto'] : []),
  'FrameParser wasm',
  'FrameParser ts',
  ...(HAS_NATIVE ? ['FrameParser native'] : []),
  'ws Receiver',
  'ws Receiver (ws js)',
];
const BASELINE_PARSER = 'ws Receiver';
const WS_DEFAULT_PRIMITIVE = HTTP_NATIVE ? 'node:http websocketUnmask' : 'bufferutil';

// ── ws, twice: its pure-JS buffer-util path and its default (native unmask or bufferutil) ──────
// ws's package "exports" hide lib/, so its files are required by path. buffer-util decides once, at
// first require, which unmask to use; a second module instance is loaded for the JS path.
const wsDir = dirname(require.resolve('ws/package.json'));
const wsLib = join(wsDir, 'lib') + '/';
function loadWs(jsOnly) {
  for (const k of Object.keys(require.cache)) if (k.startsWith(wsLib)) delete require.cache[k];
  const prev = process.env.WS_NO_BUFFER_UTIL;
  const saved = { mask: http.websocketMask, unmask: http.websocketUnmask };
  if (jsOnly) {
    process.env.WS_NO_BUFFER_UTIL = '1';
    http.websocketMask = undefined;
    http.websocketUnmask = undefined;
  } else delete process.env.WS_NO_BUFFER_UTIL;
  try {
    return { bu: require(wsLib + 'buffer-util.js'), Receiver: require(wsLib + 'receiver.js') };
  } finally {
    if (prev === undefined) delete process.env.WS_NO_BUFFER_UTIL;
    else process.env.WS_NO_BUFFER_UTIL = prev;
    if (HTTP_NATIVE) {
      http.websocketMask = saved.mask;
      http.websocketUnmask = saved.unmask;
    }
    for (const k of Object.keys(require.cache)) if (k.startsWith(wsLib)) delete require.cache[k];
  }
}
const wsJs = loadWs(true);
const wsDefault = loadWs(false);
const bufferutil = require('bufferutil');
// Make sure each instance really is the path its rows claim.
if (wsJs.bu.unmask.name !== '_unmask' || wsJs.bu.mask.name !== '_mask') throw new Error('ws js path not isolated');
if (wsDefault.bu.unmask.name === '_unmask') throw new Error(`ws did not load ${WS_DEFAULT_PRIMITIVE}`);
if (!/native code/.test(bufferutil.unmask.toString())) throw new Error('bufferutil fell back to JS');

/** The fresh codec table for children (set by runCodec after measuring it), else the built one. */
function autoCodec() {
  const json = process.env.WASMWS_BENCH_AUTO_TABLE;
  if (!json) return codecLib.createCodec({ backend: 'auto' });
  const { key, entry } = JSON.parse(json);
  return new codecLib.AutoCodec({ table: { key, entry, exact: true } });
}

/** One mask/unmask task body for (backend, op, n); returns a function doing `reps` operations. */
function makeOp(backend, op, n, reps, env) {
  const buf = randomBuffer(n);
  const out = Buffer.alloc(n);
  const { ex, scratch } = env;
  switch (backend) {
    case 'wasm (in wasm memory)': {
      randomFillSync(scratch.view, 0, n);
      if (op === 'unmask') return () => { for (let i = 0; i < reps; i++) ex.unmask(DATA_PTR, n, KEY, 0); };
      // mask: DATA_PTR → a separate 64-byte-aligned output region in linear memory.
      const dst = DATA_PTR + Math.ceil(n / 64) * 64;
      return () => { for (let i = 0; i < reps; i++) ex.maskTo(DATA_PTR, dst, n, KEY, 0); };
    }
    case 'wasm (JS buffer)':
    case 'wasm (JS buffer, maskMin 0)':
    case 'native (min 0)':
    case 'auto': {
      const c = env.codecs[backend];
      return op === 'unmask'
        ? () => { for (let i = 0; i < reps; i++) c.unmask(buf, 0, n, KEY, 0); }
        : () => { for (let i = 0; i < reps; i++) c.mask(buf, KEY, out, 0, n); };
    }
    case 'ts':
      return op === 'unmask'
        ? () => { for (let i = 0; i < reps; i++) tsUnmask(buf, 0, n, KEY, 0); }
        : () => { for (let i = 0; i < reps; i++) tsMask(buf, KEY, out, 0, n); };
    case 'ws js':
    case 'node:http':
    case 'bufferutil':
    case 'wasmws/bufferutil': {
      const m = backend === 'ws js' ? wsJs.bu : backend === 'bufferutil' ? bufferutil : backend === 'node:http'
        ? { unmask: http.websocketUnmask, mask: http.websocketMask } : ours;
      const um = m.unmask, mk = m.mask;
      return op === 'unmask'
        ? () => { for (let i = 0; i < reps; i++) um(buf, MASK_BYTES); }
        : () => { for (let i = 0; i < reps; i++) mk(buf, MASK_BYTES, out, 0, n); };
    }
  }
  throw new Error(`unknown backend ${backend}`);
}

function makeEnv() {
  const codecs = {
    'wasm (JS buffer)': new WasmCodec(),
    'wasm (JS buffer, maskMin 0)': new WasmCodec({ maskMin: 0 }),
    ...(HAS_NATIVE ? { 'native (min 0)': new codecLib.NativeCodec({ min: 0 }) } : {}),
    ...(HAS_AUTO ? { auto: autoCodec() } : {}),
  };
  const ex = wasmExports();
  // Reserve the largest region once (2 × 1 MiB for in-memory mask) so linear memory never grows
  // during the run (growth would detach the scratch view).
  const scratch = codecs['wasm (JS buffer)'].scratch(2 * MiB + 64);
  return { codecs, ex, scratch };
}

/** Check once that every backend computes the same bytes (a benchmark of a wrong kernel is useless). */
function verifyKernels(env) {
  for (const n of [16, 125, 1000, 70000]) {
    const src = randomBuffer(n);
    const want = Buffer.alloc(n);
    for (let i = 0; i < n; i++) want[i] = src[i] ^ MASK_BYTES[i & 3];
    const check = (name, got) => { if (!want.equals(got)) throw new Error(`${name} computes wrong bytes at ${n}`); };
    for (const [name, c] of [...Object.entries(env.codecs), ['ts', new TsCodec()]]) {
      const a = Buffer.from(src); c.unmask(a, 0, n, KEY, 0); check(`${name}.unmask`, a);
      const o = Buffer.alloc(n); c.mask(src, KEY, o, 0, n); check(`${name}.mask`, o);
    }
    const mods = [['ws js', wsJs.bu], ['bufferutil', bufferutil], ['wasmws/bufferutil', ours]];
    if (HTTP_NATIVE) mods.push(['node:http', { unmask: http.websocketUnmask, mask: http.websocketMask }]);
    for (const [name, m] of mods) {
      const a = Buffer.from(src); m.unmask(a, MASK_BYTES); check(`${name}.unmask`, a);
      const o = Buffer.alloc(n); m.mask(src, MASK_BYTES, o, 0, n); check(`${name}.mask`, o);
    }
    const s = env.scratch;
    src.copy(s.view, 0);
    env.ex.unmask(DATA_PTR, n, KEY, 0);
    check('wasm in memory', s.view.subarray(0, n));
  }
}

// ── chunk → frames ────────────────────────────────────────────────────────────────────────────
export const CHUNK_CASES = [
  { label: '16 B frames', payload: 16 },
  { label: '1 KiB frames', payload: KiB },
  { label: '64 KiB frame', payload: 64 * KiB }, // one frame per chunk: chunk = 65 550 B
  // Not a target; shows the fixed cost per read (a quiet connection reads one small frame at a time).
  // 256 separate 22 B reads per sample, so the timer's cost does not dominate.
  { label: '1 × 16 B frame per read', payload: 16, chunkSize: 22, reads: 256 },
];

function parserCodec(name) {
  if (name === 'FrameParser auto') return autoCodec();
  if (name === 'FrameParser wasm') return new WasmCodec();
  if (name === 'FrameParser native') return new codecLib.NativeCodec();
  return new TsCodec();
}

/** A parse task: `fn(work)` parses `work` once and returns the number of frames/messages delivered. */
function makeParser(name) {
  if (name.startsWith('FrameParser')) {
    // The allocation-free path the Protocol uses: frames go to a sink, no Frame objects.
    const parser = new FrameParser({ role: 'server', codec: parserCodec(name) });
    let frames = 0;
    const sink = { onFrame() { frames++; } };
    return (work) => { const before = frames; parser.parse(work, sink); return frames - before; };
  }
  const { Receiver } = name === 'ws Receiver (ws js)' ? wsJs : wsDefault;
  // As ws's WebSocketServer constructs it (server defaults from lib/websocket-server.js).
  const receiver = new Receiver({
    allowSynchronousEvents: true,
    binaryType: 'nodebuffer',
    extensions: {},
    isServer: true,
    maxBufferedChunks: 256 * 1024,
    maxFragments: 16 * 1024,
    maxPayload: 100 * MiB,
    skipUTF8Validation: false,
  });
  let messages = 0;
  receiver.on('message', () => { messages++; });
  receiver.on('error', (err) => { throw err; });
  // ws's socketOnData calls receiver.write(chunk) (the Writable path), so do we.
  return (work) => { const before = messages; receiver.write(work); return messages - before; };
}

function verifyParsers() {
  for (const c of CHUNK_CASES) {
    const { chunk, frames } = buildChunk(c.payload);
    const ref = [];
    const p = new FrameParser({ role: 'server', codec: new TsCodec() });
    for (const f of p.push(Buffer.from(chunk))) ref.push(Buffer.from(f.payload));
    if (ref.length !== frames) throw new Error('reference parse failed');
    for (const name of PARSERS.filter((x) => x.startsWith('FrameParser'))) {
      const got = [];
      new FrameParser({ role: 'server', codec: parserCodec(name) }).parse(Buffer.from(chunk), { onFrame: (_b0, pl) => got.push(Buffer.from(pl)) });
      if (got.length !== frames || got.some((f, i) => !f.equals(ref[i]))) throw new Error(`${name} payloads differ (${c.label})`);
    }
    for (const w of [wsJs, wsDefault]) {
      const r = new w.Receiver({ isServer: true, maxPayload: 100 * MiB, binaryType: 'nodebuffer', extensions: {} });
      const msgs = [];
      r.on('message', (d) => msgs.push(Buffer.from(d)));
      r.write(Buffer.from(chunk));
      if (msgs.length !== frames || msgs.some((d, i) => !d.equals(ref[i]))) throw new Error(`ws Receiver payloads differ (${c.label})`);
    }
  }
}

// ── running ───────────────────────────────────────────────────────────────────────────────────
/** Run all mask/unmask tasks for `backends` × `sizes`; returns long-format rows. */
function runKernels(backends, sizes, quick, env) {
  const bench = new Bench({ name: 'kernel', ...benchOptions(quick, false), throws: true });
  const meta = new Map();
  for (const op of ['unmask', 'mask']) {
    for (const n of sizes) {
      const reps = Math.max(1, Math.floor(WORK_PER_SAMPLE / n));
      for (const backend of backends) {
        const name = `${op} ${n} ${backend}`;
        bench.add(name, makeOp(backend, op, n, reps, env), { async: false });
        meta.set(name, { op, bytes: n, backend, reps });
      }
    }
  }
  bench.runSync();
  return bench.tasks.map((t) => {
    const m = meta.get(t.name);
    const lat = latencyOf(t);
    const ns = (lat.p50 * 1e6) / m.reps;
    return {
      suite: 'kernel', op: m.op, bytes: m.bytes, backend: m.backend, reps: m.reps,
      nsPerOp: ns, nsPerOpMean: (lat.mean * 1e6) / m.reps, rmePct: lat.rme, samples: lat.samplesCount,
      gbps: m.bytes / ns,
    };
  });
}

function runChunks(parsers, quick) {
  const bench = new Bench({ name: 'chunk → frames', ...benchOptions(quick, false), throws: true });
  const meta = new Map();
  for (const c of CHUNK_CASES) {
    const { chunk, frames, payloadBytes } = buildChunk(c.payload, c.chunkSize);
    const reads = c.reads ?? 1;
    for (const p of parsers) {
      const works = Array.from({ length: reads }, () => Buffer.alloc(chunk.length));
      const parse = makeParser(p);
      const name = `${c.label} ${p}`;
      bench.add(name, () => {
        let got = 0;
        for (let i = 0; i < reads; i++) got += parse(works[i]);
        if (got !== frames * reads) throw new Error(`${name}: delivered ${got} frames, expected ${frames * reads}`);
      }, { async: false, beforeEach: () => { for (let i = 0; i < reads; i++) chunk.copy(works[i]); } });
      meta.set(name, { label: c.label, payload: c.payload, parser: p, frames: frames * reads, payloadBytes: payloadBytes * reads, chunkBytes: chunk.length, reads });
    }
  }
  bench.runSync();
  return bench.tasks.map((t) => {
    const m = meta.get(t.name);
    const lat = latencyOf(t);
    const s = lat.p50 / 1e3; // seconds per sample (`reads` chunks)
    return {
      suite: 'chunk', case: m.label, payload: m.payload, backend: m.parser, framesPerChunk: m.frames / m.reads, chunkBytes: m.chunkBytes,
      usPerChunk: (lat.p50 * 1e3) / m.reads, usPerChunkMean: (lat.mean * 1e3) / m.reads, rmePct: lat.rme, samples: lat.samplesCount,
      framesPerSec: m.frames / s, payloadMBps: m.payloadBytes / s / 1e6,
    };
  });
}

function addRatios(rows) {
  for (const r of rows) {
    const base = rows.find((b) => b.case === r.case && b.backend === BASELINE_PARSER);
    r.vsWsReceiver = base.usPerChunk / r.usPerChunk;
  }
  return rows;
}

// ── isolation: every backend runs in its own fresh process ──────────────────────────────────
const SELF = fileURLToPath(import.meta.url);
function child(kind, backend, quick, env) {
  const args = [...process.execArgv.filter((a) => a.startsWith('--expose-gc')), SELF, '--child', kind, backend];
  if (quick) args.push('--quick');
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 64 * MiB, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`bench child ${kind} "${backend}" failed (status ${r.status})`);
  return JSON.parse(r.stdout);
}

async function childMain(argv) {
  const [kind, backend] = argv.slice(argv.indexOf('--child') + 1);
  const quick = argv.includes('--quick');
  let rows;
  if (kind === 'kernel') rows = runKernels([backend], SIZES, quick, makeEnv());
  else if (kind === 'chunk') rows = runChunks([backend], quick);
  else throw new Error(`unknown child kind ${kind}`);
  process.stdout.write(JSON.stringify(rows));
}

/** The targets from the issues, checked against the rows. */
function targets(kernel, chunk) {
  const out = [];
  const k = (backend, op, bytes) => kernel.find((r) => r.backend === backend && r.op === op && r.bytes === bytes);
  const ts64 = k('ts', 'unmask', 64 * KiB);
  if (ts64) out.push({ target: 'TS twin unmask @ 64 KiB (GB/s, issue 14)', want: 10, ratio: ts64.gbps, met: ts64.gbps >= 10, unit: 'GB/s' });
  const c = (backend, cs) => chunk.find((r) => r.backend === backend && r.case === cs);
  for (const [cs, want] of [['16 B frames', 8], ['1 KiB frames', 4], ['64 KiB frame', 1]]) {
    for (const p of PARSERS.filter((x) => x.startsWith('FrameParser'))) {
      const ratio = c(p, cs).vsWsReceiver;
      out.push({ target: `chunk→frames ${cs}: ${p} vs ws Receiver (${WS_DEFAULT_PRIMITIVE})`, want, ratio, met: ratio >= want });
    }
  }
  return out;
}

const kernelCell = (r) => `${fmtNum(r.gbps)} GB/s (${fmtNs(r.nsPerOp)})`;

function kernelTable(rows, backends) {
  const keys = [...new Set(rows.map((r) => `${r.op}|${r.bytes}`))];
  const body = keys.map((key) => {
    const [op, bytes] = key.split('|');
    const cells = backends.map((b) => {
      const r = rows.find((x) => x.op === op && x.bytes === Number(bytes) && x.backend === b);
      return r ? kernelCell(r) : '—';
    });
    return [`${op} ${fmtBytes(Number(bytes))}`, ...cells];
  });
  return mdTable(['op / size', ...backends], body);
}

export function chunkTable(rows, parsers = PARSERS) {
  const body = CHUNK_CASES.map((c) => {
    const cells = parsers.map((p) => {
      const r = rows.find((x) => x.case === c.label && x.backend === p);
      if (!r) return '—';
      const range = r.rounds && r.rounds.length > 1 ? ` (rounds ${fmtNs(Math.min(...r.rounds) * 1e3)}–${fmtNs(Math.max(...r.rounds) * 1e3)})` : '';
      return `${fmtRate(r.framesPerSec)} frames/s · ${fmtNs(r.usPerChunk * 1e3)}/chunk${range} · **${r.vsWsReceiver.toFixed(2)}×**`;
    });
    const r0 = rows.find((x) => x.case === c.label);
    return [`${c.label} (${r0.framesPerChunk}/chunk, ${r0.chunkBytes} B)`, ...cells];
  });
  return mdTable(['chunk of masked frames', ...parsers], body);
}

/** chunk → frames only: every parser in its own process, `rounds` round-robin; median per cell. */
export async function runChunkSuite({ quick = false, rounds = quick ? 1 : ROUNDS, log = () => {}, env = {} } = {}) {
  verifyParsers();
  const runs = [];
  for (let round = 1; round <= rounds; round++) {
    log(`chunk → frames round ${round}/${rounds}: ${PARSERS.length} parsers, one process each`);
    for (const p of PARSERS) runs.push(...child('chunk', p, quick, env));
  }
  return addRatios(medianOfRounds(runs, (r) => `${r.case}|${r.backend}`, 'usPerChunk'));
}

/**
 * Run the codec suite. Returns `{ rows, markdown, targets, table }`: `rows` long-format (one per
 * task), `markdown` the tables and target check, printed and saved by run.mjs. Unless `table` is
 * false (default: only in a full run), measures and writes this runtime's codec table first.
 */
export async function runCodec({ quick = false, log = () => {}, table = !quick } = {}) {
  let measured = null;
  const childEnv = {};
  if (table) {
    const { measureRuntime, writeTable, tableMarkdown } = await import('./codec-table.mjs');
    measured = await measureRuntime(process.execPath, { quick, log });
    writeTable(measured);
    measured.markdown = await tableMarkdown(measured.key, measured.entry);
    // This run's auto rows decide from the table just measured (the build has the previous one).
    const tk = measured.entry.tsKernel;
    childEnv.WASMWS_BENCH_TS_KERNEL = `${tk.word32Min},${tk.word64Min ?? 'none'},${tk.bindMin}`;
    childEnv.WASMWS_BENCH_AUTO_TABLE = JSON.stringify({ key: measured.key, entry: measured.entry });
  }
  const env = makeEnv();
  verifyKernels(env);
  verifyParsers();
  const rounds = quick ? 1 : ROUNDS;
  const kernelRuns = [];
  for (let round = 1; round <= rounds; round++) {
    log(`codec round ${round}/${rounds}: mask/unmask, ${BACKENDS.length} primitives × ${SIZES.length} sizes × 2 ops, one process each`);
    for (const backend of BACKENDS) kernelRuns.push(...child('kernel', backend, quick, childEnv));
  }
  const kernel = medianOfRounds(kernelRuns, (r) => `${r.op}|${r.bytes}|${r.backend}`, 'nsPerOp');
  const chunk = await runChunkSuite({ quick, rounds, log, env: childEnv });
  const tgt = targets(kernel, chunk);
  const auto = HAS_AUTO ? (measured ? new codecLib.AutoCodec({ table: { key: measured.key, entry: measured.entry, exact: true } }) : codecLib.createCodec()).describe() : null;
  if (auto && measured) {
    // This process's TS twin was built with the previous table; the children ran the measured one.
    const tk = measured.entry.tsKernel;
    auto.tsKernel = { int32From: tk.word32Min, bigint64From: tk.word64Min, otherBufferFrom: tk.bindMin };
  }

  const md = [];
  if (auto) {
    const segs = (s) => s.map((x) => `${x.backend} from ${fmtBytes(x.from)}`).join(', ');
    md.push('### what `auto` runs here', '', `- table: ${measured ? `${measured.key} (measured by this run)` : auto.table ?? 'none (fixed defaults)'}`,
      `- unmask: ${segs(auto.unmask)}; mask: ${segs(auto.mask)}; scan (by first payload): ${segs(auto.scan)}; wasm scans reads from ${auto.scanWasmFromRead == null ? 'never' : fmtBytes(auto.scanWasmFromRead)}`,
      `- TS twin kernels: Int32Array words from ${auto.tsKernel.int32From ?? 'never'} B, BigUint64Array from ${auto.tsKernel.bigint64From ?? 'never'} B (on another buffer from ${auto.tsKernel.otherBufferFrom ?? 'never'} B); native unmask: ${auto.native ? 'yes' : 'no'}`, '');
  }
  md.push('### mask / unmask — median, GB/s (ns/op)', '', kernelTable(kernel, BACKENDS), '');
  md.push(`### chunk → frames — one 64 KiB read of masked binary client frames; median; ratio vs ws Receiver (${WS_DEFAULT_PRIMITIVE})`, '', chunkTable(chunk), '');
  md.push('### targets', '', mdTable(['target', 'want', 'measured', ''], tgt.map((t) => [t.target, `≥ ${t.want}${t.unit ? ` ${t.unit}` : '×'}`, `${t.ratio.toFixed(2)}${t.unit ? ` ${t.unit}` : '×'}`, t.met ? 'met' : '**MISSED**'])), '');
  if (measured) md.push('### the codec table measured by this run (bench/results/codec-table.json → src/codec/table.ts)', '', measured.markdown, '');
  md.push('Method: each mask/unmask sample repeats the op on one cache-hot, 4-byte-aligned buffer (≈256 KiB of work per sample); ' +
    'ns/op = median sample / repetitions; GB/s = bytes / ns. Every primitive (and every parser) runs in its own fresh process; a full run round-robins all processes ' + ROUNDS + '× and reports, per cell, the round with the median value (chunk cells show the range over rounds). "wasm (in wasm memory)" unmasks in place at DATA_PTR (mask: maskTo into a second region); ' +
    '"wasm (JS buffer)" copies in and out (TS below WASM_MASK_MIN); "native" is node:http websocketUnmask/websocketMask through our NativeCodec; "node:http" calls them directly; "auto" is createCodec(). "ws js" is ws\'s buffer-util loaded with WS_NO_BUFFER_UTIL=1 (and node:http\'s unmask hidden). ' +
    'chunk → frames: a pristine chunk is restored into one work buffer before every sample in an untimed tinybench beforeEach hook (same for every parser, as all ' +
    'unmask in place); FrameParser.parse(chunk, sink) (the allocation-free path the Protocol uses) vs Receiver.write (as ws\'s socketOnData), Receiver built with ws server defaults; frames/messages counted every ' +
    'sample, a wrong count throws. FrameParser yields frames only (no message assembly / events); the Receiver also assembles messages and emits events.');
  return { rows: [...kernel, ...chunk], targets: tgt, crossover: auto, table: measured && { key: measured.key, entry: measured.entry }, markdown: md.join('\n') };
}

async function chunksMain(argv) {
  const quick = argv.includes('--quick');
  const ri = argv.indexOf('--rounds');
  const rounds = ri >= 0 ? Number(argv[ri + 1]) : quick ? 1 : ROUNDS;
  const rows = await runChunkSuite({ quick, rounds, log: (m) => console.error(`[codec] ${m}`) });
  console.log(`chunk → frames, ${process.version}, ws Receiver with ${WS_DEFAULT_PRIMITIVE}, ${rounds} round(s), build ${fileURLToPath(new URL('../dist', import.meta.url))}\n`);
  console.log(chunkTable(rows));
  const out = argv[argv.indexOf('--json') + 1];
  if (argv.includes('--json')) (await import('node:fs')).writeFileSync(out, JSON.stringify(rows, null, 1));
}

if (fileURLToPath(import.meta.url) === process.argv[1]) {
  const main = process.argv.includes('--child') ? childMain(process.argv) : process.argv.includes('--chunks') ? chunksMain(process.argv) : null;
  if (!main) { console.error('usage: node --expose-gc bench/codec.mjs --chunks [--quick] [--rounds N] [--json out.json]  (full suite: npm run bench -- --suite codec)'); process.exit(2); }
  main.catch((err) => { console.error(err); process.exit(1); });
}
