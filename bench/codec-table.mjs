// The codec table: what `auto` decides from (src/codec/table.ts). Measures, on the runtime running
// it, every primitive for every operation at each size, and writes this runtime's entry into
// bench/results/codec-table.json and regenerates src/codec/table.ts from that file.
//
//   node --expose-gc bench/codec-table.mjs [--quick] [--rounds N] [--with <runtime binary>]...
//   bun bench/codec-table.mjs            deno run -A bench/codec-table.mjs
//
// `npm run bench -- --suite codec` runs it for the running Node first. `--with <binary>` measures
// other runtimes too (each entry is measured by that runtime, in its own processes). Imports the
// BUILT package (../dist/esm): run `npm run build` first; the new table takes effect at the next
// build.
//
// Method: every primitive is measured in a fresh process of its own (JIT feedback from one does
// not skew another), `rounds` times round-robin; a cell is the median over rounds of the tinybench
// median. Each sample repeats the operation on one cache-hot region (≈256 KiB of work).
//   tsKernel   the TS twin's XOR kernels (bytes, Int32Array, BigUint64Array) on a region at byte
//              offset 6 → the lengths where each takes over (written as tsKernel)
//   unmask     in place, region at offset 6 of a JS buffer: ts (with the new kernels), wasm (copy in,
//              SIMD, copy back), native (http.websocketUnmask, where the runtime has it)
//   mask       aligned source → output at the frame header's offset (6, 8 or 14)
//   scanRead   codec.scan of one read of n bytes of 16 B frames: ts vs wasm (the wasm call's fixed cost)
//   scanFrame  codec.scan of a 64 KiB read of frames with n-byte payloads: ts, wasm, native
//              (headers walked in TS, payloads unmasked in place natively from the unmask crossover)
// unmask, mask and scans alternate between two buffers (as reads and encoded frames are new
// buffers each time), so no primitive keeps per-buffer state warm that real calls would not find.
// A backend within 10% of the fastest keeps a size it already holds (select.ts KEEP_WITHIN).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Buffer } from 'node:buffer';
import { Bench } from 'tinybench';
import {
  KiB, MiB, buildChunk, childArgs, benchOptions, latencyOf, medianOfRounds, randomBuffer, runtimeName,
  fmtBytes, fmtNs, mdTable, maskedHeaderSize,
} from './codec-common.mjs';

const SELF = fileURLToPath(import.meta.url);
const ROOT = join(dirname(SELF), '..');
const JSON_PATH = join(ROOT, 'bench', 'results', 'codec-table.json');
const TS_PATH = join(ROOT, 'src', 'codec', 'table.ts');

export const KERNEL_SIZES = [16, 32, 64, 128, 256, 512, KiB, 4 * KiB, 16 * KiB, 64 * KiB];
export const OP_SIZES = [16, 32, 64, 128, 256, 512, KiB, 2 * KiB, 4 * KiB, 16 * KiB, 64 * KiB, MiB];
/** scanRead: reads of this many 16 B frames (22 B each). */
const SCAN_READ_FRAMES = [1, 3, 12, 24, 48, 96, 192, 384, 768];
export const SCAN_FRAME_SIZES = [16, 125, KiB, 4 * KiB, 16 * KiB, 64 * KiB];
/** The TS kernels, on the buffer they last worked on (hit) and alternating between two ArrayBuffers (miss). */
const KERNELS = ['bytes', 'int32', 'bigint64', 'int32 miss', 'bigint64 miss'];
const KEY = 0x3d21fa37;
const REGION_OFFSET = 6;
const WORK_PER_SAMPLE = 256 * KiB;
const ROUNDS = 3;

async function lib() {
  const [ts, wasm, codec, select] = await Promise.all([
    import('../dist/esm/codec/ts.js'), import('../dist/esm/codec/wasm.js'),
    import('../dist/esm/codec/index.js'), import('../dist/esm/codec/select.js'),
  ]);
  return { ts, wasm, codec, select };
}

// ── children ──────────────────────────────────────────────────────────────────────────────────
function addTask(bench, meta, name, fn, m) {
  bench.add(name, fn);
  meta.set(name, m);
}

function collect(bench, meta) {
  return bench.tasks.map((t) => {
    const m = meta.get(t.name);
    const lat = latencyOf(t);
    return { ...m, ns: (lat.p50 * 1e6) / m.reps, rme: lat.rme };
  });
}

/** A region of n bytes at REGION_OFFSET of its own ArrayBuffer (as a payload after its header). */
function region(n, off = REGION_OFFSET) {
  const backing = randomBuffer(n + off + 8);
  return backing.subarray(off, off + n);
}

async function childKernel(kernel, quick) {
  const { ts } = await lib();
  const fn = { bytes: ts.xorBytes, int32: ts.xor32, bigint64: ts.xor64 }[kernel.split(' ')[0]];
  const miss = kernel.endsWith(' miss');
  const bench = new Bench({ ...benchOptions(quick, true), throws: true });
  const meta = new Map();
  for (const n of KERNEL_SIZES) {
    const bufs = [region(n), region(n)];
    const reps = 2 * Math.max(1, Math.floor(WORK_PER_SAMPLE / n / 2));
    const body = miss
      ? () => { for (let i = 0; i < reps; i++) fn(bufs[i & 1], 0, n, KEY); }
      : () => { const b = bufs[0]; for (let i = 0; i < reps; i++) fn(b, 0, n, KEY); };
    addTask(bench, meta, `${kernel} ${n}`, body, { table: 'tsKernel', backend: kernel, bytes: n, reps });
  }
  bench.runSync();
  return collect(bench, meta);
}

async function makeCodec(backend, nativeMin) {
  const { ts, wasm, codec } = await lib();
  if (backend === 'ts') return new ts.TsCodec();
  if (backend === 'wasm') return new wasm.WasmCodec({ maskMin: 0, scanMin: 0 });
  if (backend === 'native') return new codec.NativeCodec({ min: nativeMin });
  throw new Error(`unknown backend ${backend}`);
}

async function childOps(backend, quick) {
  const c = await makeCodec(backend, 0);
  const bench = new Bench({ ...benchOptions(quick, true), throws: true });
  const meta = new Map();
  for (const n of OP_SIZES) {
    const reps = 2 * Math.max(1, Math.floor(WORK_PER_SAMPLE / n / 2));
    // Calls alternate between two buffers, as real ones do (each read, each encoded frame is a
    // new buffer): no primitive gets to keep per-buffer state warm.
    const bufs = [region(n), region(n)];
    addTask(bench, meta, `unmask ${n}`, () => { for (let i = 0; i < reps; i++) c.unmask(bufs[i & 1], 0, n, KEY, 0); }, { table: 'unmask', backend, bytes: n, reps });
    const src = randomBuffer(n);
    const outs = [region(n, maskedHeaderSize(n)), region(n, maskedHeaderSize(n))];
    addTask(bench, meta, `mask ${n}`, () => { for (let i = 0; i < reps; i++) c.mask(src, KEY, outs[i & 1], 0, n); }, { table: 'mask', backend, bytes: n, reps });
  }
  bench.runSync();
  return collect(bench, meta);
}

async function childScan(backend, nativeMin, quick) {
  const c = await makeCodec(backend, nativeMin);
  const bench = new Bench({ ...benchOptions(quick, true), throws: true });
  const meta = new Map();
  const scanTask = (table, bytes, chunk, frames) => {
    // Scans toggle payloads in place; headers stay, so a chunk rescans. Two chunks alternate, as
    // reads do (each read is a new buffer).
    const works = [Buffer.from(chunk), Buffer.from(chunk)];
    const reps = 2 * Math.max(1, Math.floor(WORK_PER_SAMPLE / chunk.length / 2));
    const n = chunk.length;
    addTask(bench, meta, `${table} ${bytes}`, () => {
      for (let i = 0; i < reps; i++) {
        const r = c.scan(works[i & 1], 0, n, 100 * MiB, 0, 0, 0);
        if (r.count !== frames || r.consumed !== n) throw new Error(`${backend} ${table} ${bytes}: ${r.count} frames, ${r.consumed} B`);
      }
    }, { table, backend, bytes, reps });
  };
  if (backend !== 'native') {
    for (const k of SCAN_READ_FRAMES) {
      const { chunk } = buildChunk(16, 22 * k);
      scanTask('scanRead', chunk.length, chunk, k);
    }
  }
  for (const p of SCAN_FRAME_SIZES) {
    const { chunk, frames } = buildChunk(p, 64 * KiB);
    scanTask('scanFrame', p, chunk, frames);
  }
  bench.runSync();
  return collect(bench, meta);
}

async function childMain(argv) {
  const i = argv.indexOf('--child');
  const [kind, backend, arg] = argv.slice(i + 1);
  const quick = argv.includes('--quick');
  let rows;
  if (kind === 'kernel') rows = await childKernel(backend, quick);
  else if (kind === 'ops') rows = await childOps(backend, quick);
  else if (kind === 'scan') rows = await childScan(backend, Number(arg), quick);
  else if (kind === 'probe') {
    const { codec, select } = await lib();
    const { runtimeKey, RUNTIME } = await import('../dist/esm/codec/runtime.js');
    let wasm = true;
    try { new (await lib()).wasm.WasmCodec(); } catch { wasm = false; }
    rows = { key: runtimeKey(RUNTIME), runtime: runtimeName(), native: codec.HAS_NATIVE, wasm, chosen: select.CHOSEN?.key ?? null };
  } else throw new Error(`unknown child kind ${kind}`);
  process.stdout.write(JSON.stringify(rows));
}

// ── parent ────────────────────────────────────────────────────────────────────────────────────
function spawnChild(bin, kind, backend, arg, { quick, env }) {
  const args = [...(bin === process.execPath ? childArgs(SELF) : childArgsFor(bin)), '--child', kind, backend ?? '-', String(arg ?? '-')];
  if (quick) args.push('--quick');
  const r = spawnSync(bin, args, { encoding: 'utf8', maxBuffer: 64 * MiB, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`codec-table child ${kind} ${backend ?? ''} (${bin}) failed with status ${r.status}`);
  return JSON.parse(r.stdout);
}

/** How to run this script with another runtime binary. */
function childArgsFor(bin) {
  if (/(^|\/)deno$/.test(bin)) return ['run', '-A', SELF];
  if (/(^|\/)bun$/.test(bin)) return [SELF];
  return ['--expose-gc', SELF];
}

/**
 * Measure one runtime (`bin`) and return its table entry plus the raw rows. The TS twin's kernel
 * thresholds are measured first, then every other row is measured with those thresholds in force.
 */
export async function measureRuntime(bin = process.execPath, { quick = false, rounds = quick ? 1 : ROUNDS, log = () => {} } = {}) {
  const { select } = await lib();
  const env = {};
  const probe = spawnChild(bin, 'probe', null, null, { quick, env });
  log(`codec table: ${probe.runtime} (key ${probe.key}; native ${probe.native}, wasm ${probe.wasm}), ${rounds} round(s)`);
  const all = [];
  const roundRobin = (jobs) => {
    for (let r = 0; r < rounds; r++) for (const j of jobs) all.push(...spawnChild(bin, ...j, { quick, env }));
  };
  roundRobin(KERNELS.map((k) => ['kernel', k, null]));
  const med = () => medianOfRounds(all, (r) => `${r.table}|${r.backend}|${r.bytes}`, 'ns');
  const rowOf = (rows, table, sizes, backends) => ({
    sizes,
    ns: Object.fromEntries(backends.map((b) => [b, sizes.map((n) => {
      const r = rows.find((x) => x.table === table && x.backend === b && x.bytes === n);
      return r ? round1(r.ns) : null;
    })])),
  });
  const kRow = rowOf(med(), 'tsKernel', KERNEL_SIZES, KERNELS);
  const kMono = select.monotone(kRow); // per-byte costs: iron out noisy samples (select.ts monotone)
  const NEVER = 1 << 30;
  const w32 = Math.max(8, select.crossoverOf(kMono, 'bytes', 'int32') ?? NEVER);
  const w64raw = select.crossoverOf(kMono, 'int32', 'bigint64');
  const w64 = w64raw === null ? null : Math.max(16, w64raw, w32 === NEVER ? 0 : w32);
  // On another buffer: what the bound-buffer dispatch would run, measured with a re-bind per call.
  kRow.ns.miss = KERNEL_SIZES.map((n, i) => kRow.ns[w64 !== null && n >= w64 ? 'bigint64 miss' : 'int32 miss'][i]);
  const bindMin = Math.max(w32, select.crossoverOf(select.monotone(kRow), 'bytes', 'miss') ?? NEVER);
  const tsKernel = { word32Min: w32, word64Min: w64, bindMin };
  env.WASMWS_BENCH_TS_KERNEL = `${w32},${w64 ?? 'none'},${bindMin}`;
  log(`codec table: TS kernels int32 from ${w32} B, bigint64 from ${w64 ?? 'never'}, on another buffer from ${bindMin} B`);

  const backends = ['ts', ...(probe.wasm ? ['wasm'] : []), ...(probe.native ? ['native'] : [])];
  roundRobin(backends.map((b) => ['ops', b, null]));
  let rows = med();
  const unmask = rowOf(rows, 'unmask', OP_SIZES, backends);
  const mask = rowOf(rows, 'mask', OP_SIZES, backends);
  // The native scan unmasks payloads natively from where native overtakes the TS twin per call.
  const nativeMin = probe.native ? select.segmentsOf(unmask, ['ts', 'native'], { monotone: true })?.find((s) => s.backend === 'native')?.from ?? 1 << 30 : 0;
  roundRobin(backends.map((b) => ['scan', b, nativeMin]));
  rows = med();
  const readSizes = SCAN_READ_FRAMES.map((k) => 22 * k);
  const scanBackends = backends.filter((b) => b !== 'native');
  const entry = {
    runtime: probe.runtime,
    measured: `${new Date().toISOString().slice(0, 10)} ${gitCommit()}${quick ? ' (quick)' : ''}`,
    tsKernel,
    unmask,
    mask,
    scanRead: rowOf(rows, 'scanRead', readSizes, scanBackends),
    scanFrame: rowOf(rows, 'scanFrame', SCAN_FRAME_SIZES, backends),
  };
  return { key: probe.key, entry, kernel: kRow, nativeMin, rows: all };
}

const round1 = (x) => Math.round(x * 10) / 10;

function gitCommit() {
  if (process.env.WASMWS_BENCH_COMMIT) return process.env.WASMWS_BENCH_COMMIT;
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'unknown';
}

/** Read bench/results/codec-table.json ({ entries, kernels }). */
export function readTable() {
  if (!existsSync(JSON_PATH)) return { entries: {}, kernels: {} };
  return JSON.parse(readFileSync(JSON_PATH, 'utf8'));
}

/** Merge one measured runtime into the JSON and regenerate src/codec/table.ts from it. */
export function writeTable(measured) {
  const t = readTable();
  t.entries[measured.key] = measured.entry;
  t.kernels ??= {};
  t.kernels[measured.key] = measured.kernel;
  t.entries = Object.fromEntries(Object.entries(t.entries).sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true })));
  t.kernels = Object.fromEntries(Object.entries(t.kernels).sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true })));
  mkdirSync(dirname(JSON_PATH), { recursive: true });
  writeFileSync(JSON_PATH, JSON.stringify({ note: 'median ns per operation; see bench/codec-table.mjs', ...t }, null, 1) + '\n');
  const body = Object.entries(t.entries).map(([k, e]) => `  ${JSON.stringify(k)}: ${JSON.stringify(e)},`).join('\n');
  writeFileSync(TS_PATH, [
    '// Generated by bench/codec-table.mjs from bench/results/codec-table.json — do not edit by hand.',
    '// Regenerate: `npm run bench -- --suite codec` (this runtime) or `node bench/codec-table.mjs --with <binary>`.',
    "import type { TableEntry } from './types.js';",
    '',
    '/** Per runtime (`node26`, `bun1`, …): median ns per operation and size for each backend. */',
    'export const CODEC_TABLE: Record<string, TableEntry> = {',
    body,
    '};',
    '',
  ].join('\n'));
}

/** Markdown: what the entry decides, and its rows. */
export async function tableMarkdown(key, entry) {
  const { select } = await lib();
  const avail = Object.keys(entry.unmask.ns);
  const segs = (row, a = avail, monotone = false) => (select.segmentsOf(row, a, { monotone }) ?? []).map((s) => `${s.backend} from ${fmtBytes(s.from)}`).join(', ');
  const md = [`#### ${key} — ${entry.runtime}, measured ${entry.measured}`, ''];
  const tk = entry.tsKernel;
  md.push(`- TS twin: bytes below ${fmtBytes(tk.word32Min)}, Int32Array words from there${tk.word64Min === null ? '' : `, BigUint64Array words from ${fmtBytes(tk.word64Min)}`}; on a buffer other than the last one, words from ${fmtBytes(tk.bindMin)}`);
  md.push(`- unmask: ${segs(entry.unmask, avail, true)}; mask: ${segs(entry.mask, avail, true)}`);
  const wasmFrom = select.crossoverOf(select.monotone(entry.scanRead), 'ts', 'wasm');
  md.push(`- scan: by first payload ${segs(entry.scanFrame)}; wasm only for reads from ${wasmFrom === null ? 'never' : fmtBytes(wasmFrom)} (below: ${segs(entry.scanFrame, avail.filter((b) => b !== 'wasm'))})`, '');
  for (const [name, row, unit] of [['unmask', entry.unmask, 'B'], ['mask', entry.mask, 'B'], ['scanRead (read of 16 B frames)', entry.scanRead, 'B read'], ['scanFrame (64 KiB read, payload)', entry.scanFrame, 'B payload']]) {
    const bs = Object.keys(row.ns);
    md.push(mdTable([`${name}`, ...bs], row.sizes.map((n, i) => [`${fmtBytes(n)}${unit === 'B' ? '' : ''}`, ...bs.map((b) => {
      const ns = row.ns[b][i];
      if (ns == null) return '—';
      const best = Math.min(...bs.map((x) => row.ns[x][i] ?? Infinity));
      return ns === best ? `**${fmtNs(ns)}**` : fmtNs(ns);
    })])), '');
  }
  return md.join('\n');
}

async function main(argv) {
  const quick = argv.includes('--quick');
  const ri = argv.indexOf('--rounds');
  const rounds = ri >= 0 ? Number(argv[ri + 1]) : quick ? 1 : ROUNDS;
  const bins = [process.execPath];
  for (let i = 0; i < argv.length; i++) if (argv[i] === '--with') bins.push(argv[++i]);
  const log = (m) => console.error(`[codec-table] ${m}`);
  for (const bin of bins) {
    const m = await measureRuntime(bin, { quick, rounds, log });
    writeTable(m);
    console.log(await tableMarkdown(m.key, m.entry));
  }
  console.error('[codec-table] wrote bench/results/codec-table.json and src/codec/table.ts (takes effect at the next build)');
}

if (fileURLToPath(import.meta.url) === process.argv[1]) {
  const run = process.argv.includes('--child') ? childMain(process.argv) : main(process.argv.slice(2));
  run.catch((err) => { console.error(err); process.exit(1); });
}
