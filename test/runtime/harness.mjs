// A tiny test harness for the runtime suite: plain ES modules and node: builtins only, so the same
// file runs on Node, Bun and Deno. Tests run one after another, each bounded in time; output is one
// `ok - name` / `not ok - name: error` line per test and, last, the summary line CI parses.
import { rng } from '../fixtures.mjs';
import process from 'node:process';
import { writeFileSync } from 'node:fs';
import { Buffer } from 'node:buffer';

/** Which runtime runs us, and its version. */
export function detectRuntime() {
  if (globalThis.Bun) return { runtime: 'bun', version: globalThis.Bun.version };
  if (globalThis.Deno) return { runtime: 'deno', version: globalThis.Deno.version.deno };
  if (process.versions && process.versions.node) return { runtime: 'node', version: process.versions.node };
  return { runtime: 'unknown', version: '0' };
}

export const RUNTIME = detectRuntime();

/** An environment variable, or undefined where the environment is unreadable (Deno without --allow-env). */
export function env(name) {
  try {
    return process.env[name];
  } catch {
    return undefined;
  }
}

const tests = [];
const skipped = [];

/**
 * Register a test that cannot run here, with the reason (e.g. no such API in this runtime). It
 * prints `ok - name # SKIP reason` and counts as neither passed nor failed; the report lists it.
 */
export function skip(name, reason) {
  tests.push({ name, skip: reason });
}

/** Register a test. `fn` may be async; it fails when it throws or exceeds `timeout` ms. */
export function test(name, fn, { timeout = 10_000 } = {}) {
  tests.push({ name, fn, timeout });
}

/** Reject after `ms` with a message naming what was awaited. */
export function withTimeout(promise, ms, what) {
  let t;
  const timer = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timer]).finally(() => clearTimeout(t));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A queue of values with a bounded `next()`. */
export class Queue {
  constructor(what = 'a value') {
    this.items = [];
    this.waiters = [];
    this.what = what;
  }
  push(v) {
    const w = this.waiters.shift();
    if (w) w(v);
    else this.items.push(v);
  }
  next(ms = 5000) {
    if (this.items.length > 0) return Promise.resolve(this.items.shift());
    return withTimeout(new Promise((r) => this.waiters.push(r)), ms, this.what);
  }
}

/** A promise with its resolve exposed. */
export function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

// ── assertions (small and explicit: messages must say what differed, on one line) ───────────

export class AssertionError extends Error {}

export function ok(cond, msg) {
  if (!cond) throw new AssertionError(msg ?? 'assertion failed');
}

const show = (v) => {
  if (typeof v === 'string') return v.length > 80 ? JSON.stringify(v.slice(0, 80)) + `… (${v.length} chars)` : JSON.stringify(v);
  if (v instanceof Uint8Array) return `<${v.length} bytes ${Buffer.from(v.subarray(0, 16)).toString('hex')}${v.length > 16 ? '…' : ''}>`;
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
};

export function eq(actual, expected, what = 'value') {
  if (!Object.is(actual, expected)) throw new AssertionError(`${what}: expected ${show(expected)}, got ${show(actual)}`);
}

export function deepEq(actual, expected, what = 'value') {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new AssertionError(`${what}: expected ${e}, got ${a}`);
}

/** Byte equality, reporting the first differing offset. */
export function bytesEq(actual, expected, what = 'bytes') {
  const a = Buffer.from(actual.buffer ?? actual, actual.byteOffset ?? 0, actual.byteLength ?? actual.length);
  const e = Buffer.from(expected.buffer ?? expected, expected.byteOffset ?? 0, expected.byteLength ?? expected.length);
  if (a.length !== e.length) throw new AssertionError(`${what}: expected ${e.length} bytes, got ${a.length}`);
  if (!a.equals(e)) {
    let i = 0;
    while (i < a.length && a[i] === e[i]) i++;
    throw new AssertionError(`${what}: first difference at byte ${i} of ${a.length} (expected 0x${e[i].toString(16)}, got 0x${a[i].toString(16)})`);
  }
}

/** `fn` must throw; returns the error. */
export function throws(fn, what = 'call') {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new AssertionError(`${what}: expected a throw`);
}

// ── deterministic data ───────────────────────────────────────────────────────────────────────

export { rng };


/** `n` reproducible random bytes (32 bits of PRNG per 4 bytes, so 16 MiB is quick). */
export function randomBytes(seed, n) {
  const next = rng(seed);
  const b = Buffer.allocUnsafe(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) b.writeUInt32LE((next() * 4294967296) >>> 0, i);
  for (; i < n; i++) b[i] = (next() * 256) | 0;
  return b;
}

/** A string of exactly `n` printable ASCII bytes. */
export function asciiText(seed, n) {
  const b = randomBytes(seed, n);
  for (let i = 0; i < n; i++) b[i] = 0x20 + (b[i] % 95);
  return b.toString('latin1');
}

/** Highly compressible text of `n` bytes (a repeated sentence with a counter). */
export function compressibleText(n) {
  const parts = [];
  let len = 0;
  for (let i = 0; len < n; i++) {
    const s = `line ${i}: the quick brown fox jumps over the lazy dog. `;
    parts.push(s);
    len += s.length;
  }
  return parts.join('').slice(0, n);
}

export const KiB = 1024;
export const MiB = 1024 * 1024;

export function sizeName(n) {
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  if (n >= KiB && n % KiB === 0) return `${n / KiB} KiB`;
  return `${n} B`;
}

// ── running ──────────────────────────────────────────────────────────────────────────────────

let current = null;
const notes = [];

/** An observation worth reporting (a runtime difference that is not a failure): `# note:` lines at the end. */
export function note(msg) {
  notes.push(msg);
}

function oneLine(err) {
  const msg = err && err.message !== undefined ? `${err.name && err.name !== 'Error' && err.name !== 'AssertionError' ? err.name + ': ' : ''}${err.message}` : String(err);
  return msg.replace(/\s*\n\s*/g, ' | ');
}

/**
 * Run every registered test, print the lines and the summary, write the report, exit. Past
 * `budget` ms (a broken build that makes every test wait for its timeout), the remaining tests
 * fail at once, so the suite stays bounded and every test still gets its line.
 */
export async function run({ teardown, budget = 90_000 } = {}) {
  const started = Date.now();
  const failures = [];
  let passed = 0;
  // An error thrown outside a test's promise chain (a listener, a timer) fails the running test.
  const stray = (err) => {
    if (current) current.stray = current.stray ?? err;
    else {
      failures.push('(outside any test)');
      console.log(`not ok - (outside any test): ${oneLine(err)}`);
    }
  };
  process.on('uncaughtException', stray);
  process.on('unhandledRejection', stray);
  for (const t of tests) {
    if (t.skip) {
      skipped.push({ name: t.name, reason: t.skip });
      console.log(`ok - ${t.name} # SKIP ${t.skip}`);
      continue;
    }
    if (Date.now() - started > budget) {
      failures.push(t.name);
      console.log(`not ok - ${t.name}: not run (the suite's ${budget / 1000} s budget is spent)`);
      continue;
    }
    current = t;
    const t0 = Date.now();
    let error = null;
    try {
      await withTimeout(Promise.resolve().then(t.fn), t.timeout, `test "${t.name}"`);
      if (t.stray) error = t.stray;
    } catch (e) {
      error = e;
    }
    current = null;
    const ms = Date.now() - t0;
    if (error) {
      failures.push(t.name);
      console.log(`not ok - ${t.name}: ${oneLine(error)}${ms >= 500 ? ` (${ms} ms)` : ''}`);
    } else {
      passed++;
      console.log(`ok - ${t.name}${ms >= 500 ? ` (${ms} ms)` : ''}`);
    }
  }
  if (teardown) {
    try {
      await withTimeout(Promise.resolve().then(teardown), 10_000, 'teardown');
    } catch (e) {
      failures.push('teardown');
      console.log(`not ok - teardown: ${oneLine(e)}`);
    }
  }
  const failed = failures.length;
  const internals = env('WASMWS_INTERNALS') ? ` WASMWS_INTERNALS=${env('WASMWS_INTERNALS')}` : '';
  for (const n of new Set(notes)) console.log(`# note: ${n}`);
  if (skipped.length > 0) console.log(`# ${skipped.length} skipped (not counted): ${[...new Set(skipped.map((s) => s.reason))].join('; ')}`);
  console.log(`# ${tests.length} tests in ${((Date.now() - started) / 1000).toFixed(1)} s${internals}`);
  const reportPath = env('WASMWS_RUNTIME_REPORT');
  if (reportPath) {
    try {
      writeFileSync(reportPath, JSON.stringify({ runtime: RUNTIME.runtime, version: RUNTIME.version, passed, failed, failures, skipped, notes: [...new Set(notes)] }, null, 2) + '\n');
    } catch (e) {
      console.log(`# could not write ${reportPath}: ${oneLine(e)}`);
    }
  }
  console.log(`runtime-suite ${RUNTIME.runtime} ${RUNTIME.version}: ${passed} passed, ${failed} failed`);
  // Exit explicitly: a runtime keeping a stray handle alive must not hang CI.
  process.exit(failed === 0 ? 0 : 1);
}
