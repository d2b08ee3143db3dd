#!/usr/bin/env node
// Benchmark runner: `node --expose-gc bench/run.mjs [--suite codec|echo|memory|all] [--quick]`.
// (`npm run bench:report` — bench/report.mjs — runs the same suites into one report and chart.)
// Benchmarks import the built package (dist/esm); `npm run bench` builds first.
// Each suite prints one report and writes bench/results/<suite>.json and <suite>.md.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runEnvironment } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const resultsDir = join(here, 'results');

function parseArgs(argv) {
  const opts = { suite: 'all', quick: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') opts.quick = true;
    else if (a === '--suite') opts.suite = argv[++i];
    else if (a.startsWith('--suite=')) opts.suite = a.slice('--suite='.length);
    else if (a === '-h' || a === '--help') {
      console.log('usage: node --expose-gc bench/run.mjs [--suite codec|echo|memory|all] [--quick]');
      process.exit(0);
    } else throw new Error(`unknown argument: ${a}`);
  }
  if (!['codec', 'echo', 'memory', 'all'].includes(opts.suite)) throw new Error(`--suite must be codec, echo, memory or all (got ${opts.suite})`);
  return opts;
}

function environment(opts) {
  const { args: _args, loadavg: _load, ...env } = runEnvironment('bench/run.mjs');
  return { ...env, quick: opts.quick, gc: typeof globalThis.gc === 'function' };
}

function header(env, title) {
  return [
    `## ${title}`,
    '',
    `- date: ${env.date}`,
    `- node: ${env.node} (${env.platform})`,
    `- cpu: ${env.cpu} × ${env.cpus}`,
    `- command: \`${env.command}\`${env.quick ? ' (quick: short time budgets, noisier)' : ''}`,
    '',
  ].join('\n');
}

function save(name, env, result, title) {
  mkdirSync(resultsDir, { recursive: true });
  const md = `${header(env, title)}\n${result.markdown}\n`;
  writeFileSync(join(resultsDir, `${name}.md`), md);
  const { markdown, ...data } = result;
  writeFileSync(join(resultsDir, `${name}.json`), JSON.stringify({ env, ...data }, null, 2) + '\n');
  console.log(`\n${md}`);
  console.log(`wrote bench/results/${name}.md and bench/results/${name}.json`);
}

/** Markdown for a suite that returns only rows (e.g. echo): one table, columns from the keys. */
function rowsMarkdown(rows) {
  if (!rows.length) return '(no rows)';
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : String(v ?? ''));
  return [`| ${keys.join(' | ')} |`, `| ${keys.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${keys.map((k) => cell(r[k])).join(' | ')} |`)].join('\n');
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const env = environment(opts);
  if (!env.gc) console.warn('warning: run with `node --expose-gc` so gc() runs between tasks');
  const log = (m) => console.error(`[bench] ${m}`);
  const started = performance.now();

  if (opts.suite === 'codec' || opts.suite === 'all') {
    const { runCodec } = await import('./codec.mjs');
    const t0 = performance.now();
    const result = await runCodec({ quick: opts.quick, log });
    log(`codec suite: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    save('codec', env, result, 'wasmws codec benchmarks');
  }

  // ── echo suite hook ──
  // bench/echo.mjs (written separately) exports `async function runEcho(opts)` returning rows
  // (plain objects) — or `{ rows, markdown }`. Skipped when the file does not exist yet.
  if (opts.suite === 'echo' || opts.suite === 'all') {
    const echoPath = join(here, 'echo.mjs');
    if (!existsSync(echoPath)) {
      log('echo suite: bench/echo.mjs not found, skipped');
    } else {
      const { runEcho } = await import(pathToFileURL(echoPath).href);
      const t0 = performance.now();
      const out = await runEcho({ quick: opts.quick, log });
      const result = Array.isArray(out) ? { rows: out, markdown: rowsMarkdown(out) } : { ...out, markdown: out.markdown ?? rowsMarkdown(out.rows) };
      log(`echo suite: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      save('echo', env, result, 'wasmws echo benchmarks');
    }
  }
  // ── memory suite: server RSS / heap per idle connection (bench/memory.mjs) ──
  if (opts.suite === 'memory' || opts.suite === 'all') {
    const { runMemory } = await import('./memory.mjs');
    const t0 = performance.now();
    const result = await runMemory({ quick: opts.quick, log });
    log(`memory suite: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    save('memory', env, result, 'wasmws memory per idle connection');
  }
  log(`total: ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
