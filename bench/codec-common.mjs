// Shared by bench/codec.mjs and bench/codec-table.mjs: frame building, formatting, rounds.
// Plain JS that runs on Node, Bun and Deno.
import { randomFillSync } from 'node:crypto';
import { Buffer } from 'node:buffer';

export const KiB = 1024;
export const MiB = 1024 * KiB;
const OPCODE_BINARY = 0x2;

export function randomBuffer(n) {
  const b = Buffer.alloc(n);
  randomFillSync(b);
  return b;
}

/** A masked client frame (binary, FIN) of `payload`, written at `at`; returns its size. */
export function writeMaskedFrame(out, at, payload, keyBytes) {
  const len = payload.length;
  let p = at;
  out[p++] = 0x80 | OPCODE_BINARY;
  if (len <= 125) out[p++] = 0x80 | len;
  else if (len <= 0xffff) { out[p++] = 0x80 | 126; out.writeUInt16BE(len, p); p += 2; }
  else { out[p++] = 0x80 | 127; out.writeUInt32BE(0, p); out.writeUInt32BE(len, p + 4); p += 8; }
  keyBytes.copy(out, p); p += 4;
  for (let i = 0; i < len; i++) out[p + i] = payload[i] ^ keyBytes[i & 3];
  return p + len - at;
}

/** Header bytes of a masked frame with a payload of `len` bytes. */
export const maskedHeaderSize = (len) => 2 + 4 + (len > 0xffff ? 8 : len > 125 ? 2 : 0);

/** As many whole masked frames of `payloadLen` bytes as fit in `chunkSize` (at least one). */
export function buildChunk(payloadLen, chunkSize = 64 * KiB) {
  const hdr = maskedHeaderSize(payloadLen);
  const frames = Math.max(1, Math.floor(chunkSize / (hdr + payloadLen)));
  const out = Buffer.alloc(frames * (hdr + payloadLen));
  let at = 0;
  const key = Buffer.alloc(4);
  for (let f = 0; f < frames; f++) {
    randomFillSync(key);
    if ((key[0] | key[1] | key[2] | key[3]) === 0) key[0] = 1;
    at += writeMaskedFrame(out, at, randomBuffer(payloadLen), key);
  }
  return { chunk: out, frames, payloadBytes: frames * payloadLen };
}

/** gc between tasks where the runtime offers it (node --expose-gc, Bun.gc). */
export function collectGarbage() {
  if (typeof globalThis.gc === 'function') globalThis.gc();
  else if (typeof globalThis.Bun !== 'undefined') globalThis.Bun.gc(true);
}

/** The runtime running this script, as `node 26.12.1` / `bun 1.4.5` / `deno 2.9.6`. */
export function runtimeName() {
  if (typeof globalThis.Bun !== 'undefined') return `bun ${globalThis.Bun.version}`;
  if (typeof globalThis.Deno !== 'undefined') return `deno ${globalThis.Deno.version.deno}`;
  return `node ${process.versions.node}`;
}

/** Arguments that run `script` in a fresh process of this runtime. */
export function childArgs(script) {
  if (typeof globalThis.Deno !== 'undefined') return ['run', '-A', script];
  if (typeof globalThis.Bun !== 'undefined') return [script];
  return [...process.execArgv.filter((a) => a.startsWith('--expose-gc')), script];
}

/** Per task key, the row of the round whose `metric` is the median; all rounds' values kept. */
export function medianOfRounds(rows, keyOf, metric) {
  const groups = new Map();
  for (const r of rows) {
    const k = keyOf(r);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(r);
  }
  return [...groups.values()].map((g) => {
    const sorted = g.slice().sort((x, y) => x[metric] - y[metric]);
    return { ...sorted[(sorted.length - 1) >> 1], rounds: g.map((r) => r[metric]) };
  });
}

export function fmtBytes(n) {
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  if (n >= KiB && n % KiB === 0) return `${n / KiB} KiB`;
  return `${n} B`;
}
export const fmtNum = (x, d = 2) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(d));
export const fmtNs = (ns) => (ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : ns >= 1e3 ? `${(ns / 1e3).toFixed(1)} µs` : `${ns.toFixed(1)} ns`);
export const fmtRate = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k` : x.toFixed(0));

/** Markdown table from a header row and body rows. */
export function mdTable(head, body) {
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const r of body) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

/** tinybench options: short budgets with --quick. */
export function benchOptions(quick, fast) {
  const setup = () => collectGarbage();
  if (quick) return { time: fast ? 40 : 90, warmupTime: 30, iterations: 8, warmupIterations: 4, subtractTimerOverhead: true, setup };
  return { time: fast ? 80 : 200, warmupTime: 60, iterations: 16, warmupIterations: 8, subtractTimerOverhead: true, setup };
}

/** A finished tinybench task's latency statistics (ms), or throw its error. */
export function latencyOf(task) {
  const r = task.result;
  if (r.state !== 'completed') throw r.error ?? new Error(`${task.name}: ${r.state}`);
  return r.latency;
}
