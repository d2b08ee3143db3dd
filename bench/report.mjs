#!/usr/bin/env node
// The benchmark report: codec + end-to-end echo (+ deflate) + memory, side by side in one run.
//
//   npm run bench:report            (= npm run build && node --expose-gc bench/report.mjs)
//   node --expose-gc bench/report.mjs [--quick] [--codec-full] [--skip codec,echo,memory]
//   node bench/report.mjs --render   re-renders report.md and chart.svg from latest.json
//
// Writes bench/results/latest.json, bench/results/report.md and bench/results/chart.svg (a
// hand-written SVG: echo msgs/s as ratios to ws on a log scale). Needs the build (dist/esm).
import { execSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmtRatio, fmtRate, fmtSize, mdTable, runEnvironment } from './harness.mjs';
import { echoMarkdown, IMPLS, caseLabel } from './echo.mjs';
import { memoryMarkdown } from './memory.mjs';
import { findBun } from './echo-server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const resultsDir = join(here, 'results');
const OURS = 'wasmws';
export const BUN_ENABLE = 'npm install --prefix /tmp/bun @oven/bun-linux-x64';

function parseArgs(argv) {
  const o = { quick: false, codecFull: false, skip: new Set(), render: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') o.quick = true;
    else if (a === '--codec-full') o.codecFull = true;
    else if (a === '--render') o.render = true;
    else if (a === '--skip') for (const s of argv[++i].split(',')) o.skip.add(s);
    else throw new Error(`unknown argument: ${a} (usage: bench/report.mjs [--quick] [--codec-full] [--skip codec,echo,memory,fanout] [--render])`);
  }
  return o;
}

function git(cmd) {
  try { return execSync(`git ${cmd}`, { cwd: here, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { return null; }
}

function environment(o) {
  const { args, ...env } = runEnvironment('bench/report.mjs');
  const bun = findBun();
  const commit = git('rev-parse --short HEAD');
  const dirty = git('status --porcelain -- src assembly');
  return {
    ...env,
    command: process.env.npm_lifecycle_event === 'bench:report' && !args ? 'npm run bench:report' : env.command,
    commit: commit ? `${commit}${dirty ? ' + uncommitted changes in src/' : ''}` : 'unknown',
    quick: o.quick,
    bun: bun ? `${bun.version} (${bun.path})` : 'not installed',
  };
}

// ── targets and losses ──────────────────────────────────────────────────────────────────────

const find = (rows, impl, size, conns) => rows?.find((r) => r.impl === impl && r.size === size && r.conns === conns);
const ratio = (a, b) => (a?.msgsPerSec && b?.msgsPerSec ? a.msgsPerSec / b.msgsPerSec : null);

function targets(data) {
  const e = data.echo?.rows;
  const t = [];
  const add = (target, want, got, better = 'higher') => t.push({ target, want, got, met: got == null ? null : better === 'higher' ? got >= want : got <= want });
  if (e) {
    add('msgs/s vs ws, 16 B × 64 conns (issue 3)', 10, ratio(find(e, OURS, 16, 64), find(e, 'ws', 16, 64)));
    add('msgs/s vs ws, 1 KiB × 64 conns (issue 3)', 5, ratio(find(e, OURS, 1024, 64), find(e, 'ws', 1024, 64)));
    for (const c of [1, 64]) add(`msgs/s vs ws, 64 KiB × ${c} conn${c > 1 ? 's' : ''} (issue 3)`, 1, ratio(find(e, OURS, 65536, c), find(e, 'ws', 65536, c)));
    add('msgs/s vs Bun, 16 B × 64 conns (issue 7)', 0.75, ratio(find(e, OURS, 16, 64), find(e, 'bun', 16, 64)));
    for (const c of [1, 64]) add(`msgs/s vs Bun, 1 KiB × ${c} conn${c > 1 ? 's' : ''} (issue 7)`, 1, ratio(find(e, OURS, 1024, c), find(e, 'bun', 1024, c)));
    for (const [size, c] of [[16, 64], [16, 1000], [1024, 1000]]) add(`msgs/s vs Bun, ${size === 16 ? '16 B' : '1 KiB'} × ${c} conns (issue 14)`, 1, ratio(find(e, OURS, size, c), find(e, 'bun', size, c)));
  }
  const lat = data.echo?.latency;
  if (lat) {
    const us = lat.find((r) => r.impl === OURS);
    const ws = lat.find((r) => r.impl === 'ws');
    add('p99 latency vs ws (issue 7)', 1, us?.p99ms && ws?.p99ms ? us.p99ms / ws.p99ms : null, 'lower');
  }
  const mem = data.memory?.rows;
  if (mem) {
    const us = mem.find((r) => r.impl === OURS && !/deflate/.test(r.compression));
    add('RSS per idle connection vs ws (issue 7)', 0.5, us?.rssRatioToWs ?? null, 'lower');
    add('RSS per idle connection vs ws, settled (issue 14)', 0.75, us?.rssSettledRatioToWs ?? null, 'lower');
  }
  return t;
}

function losses(data) {
  const out = [];
  const e = data.echo?.rows ?? [];
  for (const r of e.filter((x) => x.impl === OURS)) {
    for (const peer of ['ws', 'bun']) {
      const q = ratio(r, find(e, peer, r.size, r.conns));
      if (q != null && q < 1) out.push(`echo ${caseLabel(r)}: ${fmtRate(r.msgsPerSec)} msgs/s is ${fmtRatio(q)} ${peer === 'ws' ? 'ws' : 'Bun'} (${fmtRate(find(e, peer, r.size, r.conns).msgsPerSec)}).`);
    }
  }
  for (const [impl, what] of [['wasmws-wasm', 'the wasm codec forced'], ['wasmws-ts', 'the TS codec forced']]) {
    for (const r of e.filter((x) => x.impl === impl && x.ratioToWs != null && x.ratioToWs < 1)) out.push(`echo ${caseLabel(r)} with ${what}: ${fmtRatio(r.ratioToWs)} ws.`);
  }
  const lat = data.echo?.latency ?? [];
  const us = lat.find((r) => r.impl === OURS);
  for (const peer of ['ws', 'bun']) {
    const p = lat.find((r) => r.impl === peer);
    if (us?.p99ms && p?.p99ms && us.p99ms > p.p99ms) out.push(`p99 latency ${us.p99ms.toFixed(2)} ms vs ${peer === 'ws' ? 'ws' : 'Bun'} ${p.p99ms.toFixed(2)} ms.`);
  }
  for (const r of data.memory?.rows ?? []) {
    if (r.impl !== OURS || r.rssKiBPerConn == null) continue;
    for (const peer of ['ws', 'bun']) {
      const p = data.memory.rows.find((x) => x.impl === peer && x.compression === r.compression);
      if (p?.rssKiBPerConn != null && r.rssKiBPerConn > p.rssKiBPerConn) out.push(`memory (${r.compression}): ${r.rssKiBPerConn.toFixed(1)} KiB RSS per connection vs ${peer === 'ws' ? 'ws' : 'Bun'} ${p.rssKiBPerConn.toFixed(1)} KiB (heap ${r.heapUsedKiBPerConn.toFixed(1)} vs ${p.heapUsedKiBPerConn.toFixed(1)} KiB).`);
    }
  }
  const d = data.echo?.deflate ?? [];
  for (const r of d.filter((x) => x.impl === OURS && x.compression === 'on' && x.msgsPerSec != null)) {
    for (const peer of ['ws', 'bun']) {
      const p = d.find((x) => x.impl === peer && x.size === r.size && x.compression === 'on');
      if (p?.msgsPerSec && r.msgsPerSec < p.msgsPerSec) out.push(`deflate on, ${fmtSize(r.size)} JSON × ${r.conns} conns: ${fmtRate(r.msgsPerSec)} msgs/s vs ${peer === 'ws' ? 'ws' : 'Bun'} ${fmtRate(p.msgsPerSec)}.`);
    }
  }
  return out;
}

// ── chart ───────────────────────────────────────────────────────────────────────────────────

const COLORS = { wasmws: '#1d4ed8', 'wasmws-wasm': '#3b82f6', 'wasmws-ts': '#93c5fd', bun: '#f59e0b', 'ws-nobufferutil': '#9ca3af' };
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Horizontal bars from 1× to each ratio, log-scale x axis; one group per echo case. */
export function chartSvg(data) {
  const rows = data.echo?.rows ?? [];
  const series = IMPLS.filter((i) => i !== 'ws' && rows.some((r) => r.impl === i && r.ratioToWs != null));
  const groups = [];
  for (const r of rows) if (!groups.some((g) => g.size === r.size && g.conns === r.conns)) groups.push({ size: r.size, conns: r.conns });
  const ratios = rows.map((r) => r.ratioToWs).filter((x) => x > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(0.5, ...ratios)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(2, ...ratios)));
  const W = 920, left = 150, right = 70, top = 58, bar = 11, gap = 2, groupGap = 14;
  const plotW = W - left - right;
  const groupH = series.length * (bar + gap) + groupGap;
  const H = top + groups.length * groupH + 40;
  const x = (v) => left + ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotW;
  const s = [];
  s.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="11">`);
  s.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  s.push(`<text x="${left}" y="18" font-size="14" font-weight="600">Echo msgs/s relative to ws + bufferutil (log scale; 1× = ws)</text>`);
  const env = data.env ?? {};
  s.push(`<text x="${left}" y="34" fill="#555">${esc(`${(env.date ?? '').slice(0, 10)} · Node ${env.node ?? '?'} · ${env.cpu ?? '?'} × ${env.cpus ?? '?'} · ${env.command ?? ''}`)}</text>`);
  // legend
  let lx = left;
  for (const impl of series) {
    s.push(`<rect x="${lx}" y="42" width="10" height="10" fill="${COLORS[impl] ?? '#888'}"/><text x="${lx + 14}" y="51">${esc(impl)}</text>`);
    lx += 30 + impl.length * 7.5;
  }
  // grid
  const ticks = [];
  for (let d = lo; d <= hi * 1.0001; d *= 10) for (const m of [1, 2, 5]) if (d * m <= hi * 1.0001) ticks.push(d * m);
  const gridBottom = top + groups.length * groupH - groupGap + 6;
  for (const t of ticks) {
    const major = Math.abs(Math.log10(t) - Math.round(Math.log10(t))) < 1e-9;
    s.push(`<line x1="${x(t).toFixed(1)}" y1="${top - 4}" x2="${x(t).toFixed(1)}" y2="${gridBottom}" stroke="${t === 1 ? '#111' : major ? '#ccc' : '#eee'}" stroke-width="${t === 1 ? 1.5 : 1}"/>`);
    s.push(`<text x="${x(t).toFixed(1)}" y="${gridBottom + 14}" text-anchor="middle" fill="#444">${t >= 1 ? t : t.toPrecision(1)}×</text>`);
  }
  groups.forEach((g, gi) => {
    const gy = top + gi * groupH;
    s.push(`<text x="${left - 8}" y="${gy + (series.length * (bar + gap)) / 2 + 4}" text-anchor="end" font-weight="600">${esc(caseLabel(g))}</text>`);
    series.forEach((impl, si) => {
      const r = rows.find((q) => q.impl === impl && q.size === g.size && q.conns === g.conns);
      const y = gy + si * (bar + gap);
      if (!r || r.ratioToWs == null) {
        s.push(`<text x="${x(1) + 4}" y="${y + bar - 2}" fill="#999">${esc(impl)}: ${r?.note === 'Bun: not installed' ? 'not installed' : 'n/a'}</text>`);
        return;
      }
      const v = Math.min(hi, Math.max(lo, r.ratioToWs));
      const x0 = Math.min(x(1), x(v));
      const w = Math.max(1, Math.abs(x(v) - x(1)));
      s.push(`<rect x="${x0.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${bar}" fill="${COLORS[impl] ?? '#888'}"><title>${esc(`${impl}, ${caseLabel(g)}: ${fmtRate(r.msgsPerSec)} msgs/s = ${fmtRatio(r.ratioToWs)} ws`)}</title></rect>`);
      const tx = r.ratioToWs >= 1 ? x(v) + 3 : x(v) - 3;
      s.push(`<text x="${tx.toFixed(1)}" y="${y + bar - 2}" font-size="9.5" text-anchor="${r.ratioToWs >= 1 ? 'start' : 'end'}" fill="#333">${fmtRatio(r.ratioToWs)}</text>`);
    });
  });
  s.push('</svg>');
  return s.join('\n') + '\n';
}

// ── Markdown ────────────────────────────────────────────────────────────────────────────────

function codecSummary(codec) {
  if (!codec) return null;
  // The codec suite's own Markdown already has its tables; keep them whole.
  return codec.markdown;
}

export function reportMarkdown(data) {
  const env = data.env;
  const md = ['# wasmws benchmark report', ''];
  md.push(`- date: ${env.date}`);
  md.push(`- node: ${env.node} (${env.platform})`);
  md.push(`- cpu: ${env.cpu} × ${env.cpus}; load average at start ${env.loadavg.join(', ')}`);
  md.push(`- command: \`${env.command}\`${env.quick ? ' (quick: short windows, one round, fewer cases — noisier)' : ''}`);
  md.push(`- commit: ${env.commit}`);
  md.push(`- peers: ${Object.values(data.echo?.servers ?? {}).map((s) => s.version ?? (s.notInstalled ? 'Bun: not installed' : s.error)).filter(Boolean).join(', ') || 'n/a'}; ws with bufferutil = the baseline ("ws"), ws-nobufferutil = WS_NO_BUFFER_UTIL=1`);
  md.push(`- Bun: ${env.bun}${env.bun === 'not installed' ? ` — to include it: \`${BUN_ENABLE}\` (found automatically), or set BUN_PATH` : ''}`);
  if (data.echo?.machine) md.push(`- pinning: ${data.echo.machine.taskset}; load client CPU is in the throughput table`);
  md.push('', '![echo msgs/s relative to ws](chart.svg)', '');
  const tg = targets(data);
  if (tg.length) {
    md.push('## Targets', '');
    md.push(mdTable(['target (ours = wasmws, default codec: auto)', 'want', 'measured', ''], tg.map((t) => [t.target, `${t.target.includes('latency') || t.target.includes('RSS') ? '≤' : '≥'} ${t.want}×`, t.got == null ? '–' : fmtRatio(t.got), t.met == null ? 'n/a' : t.met ? 'met' : '**missed**'])), '');
  }
  const lost = losses(data);
  md.push('## Where we lose', '');
  md.push(...(lost.length ? lost.map((l) => `- ${l}`) : ['- nowhere in this run.']), '');
  if (data.echo) md.push('## End-to-end echo', '', data.echo.markdown, '');
  if (data.memory) md.push('## Memory', '', data.memory.markdown, '');
  if (data.fanout) md.push('## Fan-out (topics)', '', data.fanout.markdown, '');
  const codec = codecSummary(data.codec);
  if (codec) md.push('## Codec', '', codec, '');
  md.push('## Reproduce', '', '```sh', 'npm ci', `${BUN_ENABLE}   # optional: Bun rows`, 'npm run bench:report         # full (~12 min); add -- --quick for a ~2 min smoke run', '```', '');
  return md.join('\n');
}

function writeAll(data) {
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, 'latest.json'), JSON.stringify(data, null, 2) + '\n');
  writeFileSync(join(resultsDir, 'report.md'), reportMarkdown(data));
  writeFileSync(join(resultsDir, 'chart.svg'), chartSvg(data));
  console.error('wrote bench/results/latest.json, bench/results/report.md, bench/results/chart.svg');
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const log = (m) => console.error(`[report] ${m}`);
  if (o.render) {
    const data = JSON.parse(readFileSync(join(resultsDir, 'latest.json'), 'utf8'));
    if (data.echo?.rows && data.echo.plan) data.echo.markdown = echoMarkdown(data.echo);
    if (data.memory?.rows && data.memory.plan) data.memory.markdown = memoryMarkdown(data.memory);
    writeAll(data);
    return;
  }
  if (typeof globalThis.gc !== 'function') log('warning: run with `node --expose-gc` so the codec suite can gc() between tasks');
  const data = { env: environment(o) };
  const t0 = performance.now();
  if (!o.skip.has('codec')) {
    log(`codec suite (${o.codecFull ? 'full' : 'quick'})`);
    try {
      const { runCodec } = await import('./codec.mjs');
      const { rows, targets: tg, crossover, markdown } = await runCodec({ quick: !o.codecFull, log });
      data.codec = { quick: !o.codecFull, rows, targets: tg, crossover, markdown };
    } catch (err) {
      // One broken suite must not cost the others: say so in the report and go on.
      log(`codec suite failed: ${err.message}`);
      data.codec = { error: String(err.message ?? err), markdown: `**The codec suite failed in this run:** \`${String(err.message ?? err).split('\n')[0]}\`` };
    }
  }
  if (!o.skip.has('echo')) {
    const { runEcho } = await import('./echo.mjs');
    log(`echo suite (${o.quick ? 'quick' : 'full'})`);
    data.echo = await runEcho({ quick: o.quick, log });
  }
  if (!o.skip.has('memory')) {
    const { runMemory } = await import('./memory.mjs');
    log(`memory suite (${o.quick ? 'quick' : 'full'})`);
    data.memory = await runMemory({ quick: o.quick, log });
  }
  if (!o.skip.has('fanout')) {
    log(`fanout suite (${o.quick ? 'quick' : 'full'})`);
    try {
      const { runFanout } = await import('./fanout.mjs');
      const { rows, versions, markdown } = await runFanout({ quick: o.quick, log });
      data.fanout = { rows, versions, markdown };
    } catch (err) {
      log(`fanout suite failed: ${err.message}`);
      data.fanout = { error: String(err.message ?? err), markdown: `**The fan-out suite failed in this run:** \`${String(err.message ?? err).split('\n')[0]}\`` };
    }
  }
  data.env.seconds = +((performance.now() - t0) / 1000).toFixed(1);
  log(`total ${data.env.seconds} s`);
  writeAll(data);
  console.log(reportMarkdown(data));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
}
