// From the measured table (src/codec/table.ts) to decisions: which entry describes this runtime,
// and which primitive wins an operation at each size among those available here.
import type { BackendName, MeasuredRow, Segment, TableEntry } from './types.js';
import { CODEC_TABLE } from './table.js';
import { RUNTIME, runtimeKey, type RuntimeId } from './runtime.js';
import { readEnv } from '../env.js';

/** The entry that describes a runtime, and its key; null when nothing measured comes close. */
export interface ChosenEntry {
  key: string;
  entry: TableEntry;
  /** The entry was measured on this very runtime and major version. */
  exact: boolean;
}

/**
 * The table entry for a runtime: its own (`node26`), else the same runtime's nearest older major,
 * else its nearest newer one, else the newest entry of a runtime on the same engine (Deno → Node's).
 */
export function tableEntry(r: RuntimeId = RUNTIME, table: Record<string, TableEntry> = CODEC_TABLE): ChosenEntry | null {
  const own = runtimeKey(r);
  if (table[own]) return { key: own, entry: table[own], exact: true };
  const parsed = Object.keys(table).map((key) => {
    const m = /^([a-z]+)(\d+)$/.exec(key);
    return m ? { key, name: m[1], major: Number(m[2]) } : null;
  }).filter((x): x is { key: string; name: string; major: number } => x !== null);
  const same = parsed.filter((p) => p.name === r.name).sort((a, b) => a.major - b.major);
  const older = same.filter((p) => p.major <= r.major).pop();
  const pick = older ?? same[0];
  if (pick) return { key: pick.key, entry: table[pick.key], exact: false };
  const engineOf = (name: string) => (name === 'bun' ? 'jsc' : name === 'node' || name === 'deno' ? 'v8' : 'unknown');
  if (r.engine !== 'unknown') {
    const kin = parsed.filter((p) => engineOf(p.name) === r.engine).sort((a, b) => a.major - b.major).pop();
    if (kin) return { key: kin.key, entry: table[kin.key], exact: false };
  }
  return null;
}

/** This runtime's entry (computed once). */
export const CHOSEN: ChosenEntry | null = tableEntry();

/**
 * The TS twin's kernel thresholds here; unmeasured: the Int32 kernel from 64 B (512 B on another buffer), never BigInt64.
 * WASMWS_BENCH_TS_KERNEL="<int32 from>,<bigint64 from|none>,<bind from>" overrides them, for bench/codec-table.mjs,
 * which measures the twin with the thresholds it is about to write into the table.
 */
export const TS_KERNEL: TableEntry['tsKernel'] = benchKernel() ?? CHOSEN?.entry.tsKernel ?? { word32Min: 64, word64Min: null, bindMin: 512 };

function benchKernel(): TableEntry['tsKernel'] | null {
  const v = readEnv('WASMWS_BENCH_TS_KERNEL');
  const m = v ? /^(\d+),(\d+|none),(\d+)$/.exec(v) : null;
  return m ? { word32Min: Number(m[1]), word64Min: m[2] === 'none' ? null : Number(m[2]), bindMin: Number(m[3]) } : null;
}

/** Within this factor of the fastest, the backend already running keeps the size (noise is not a switch). */
export const KEEP_WITHIN = 1.1;

/**
 * The fastest available backend at index i of a row, or null if none of them was measured there;
 * `keep` (the previous size's winner) stays if it is within KEEP_WITHIN of the fastest.
 */
function winnerAt(row: MeasuredRow, i: number, available: readonly BackendName[], keep: BackendName | null): BackendName | null {
  let best: BackendName | null = null;
  let bestNs = Infinity;
  for (const b of available) {
    const ns = row.ns[b]?.[i];
    if (typeof ns === 'number' && ns < bestNs) {
      bestNs = ns;
      best = b;
    }
  }
  if (keep !== null && best !== keep) {
    const ns = row.ns[keep]?.[i];
    if (typeof ns === 'number' && ns <= bestNs * KEEP_WITHIN) return keep;
  }
  return best;
}

/**
 * For per-byte operations (unmask, mask): a size never costs a backend more than a larger size
 * does, so each cell becomes the minimum of itself and every larger size's cell (a running minimum
 * from the right), which irons out a sample a noisy machine slowed down.
 */
export function monotone(row: MeasuredRow): MeasuredRow {
  const ns: MeasuredRow['ns'] = {};
  for (const [b, cells] of Object.entries(row.ns) as [BackendName, (number | null)[]][]) {
    const out = cells.slice();
    let min = Infinity;
    for (let i = out.length - 1; i >= 0; i--) {
      const v = out[i];
      if (typeof v !== 'number') continue;
      min = Math.min(min, v);
      out[i] = min;
    }
    ns[b] = out;
  }
  return { sizes: row.sizes, ns };
}

/** The row with `backend`'s cells at sizes below `min` left out (as if not measured there). */
export function withoutBelow(row: MeasuredRow, backend: BackendName, min: number): MeasuredRow {
  const cells = row.ns[backend];
  if (!cells) return row;
  return { sizes: row.sizes, ns: { ...row.ns, [backend]: cells.map((v, i) => (row.sizes[i] < min ? null : v)) } };
}

/**
 * Segments of a row among `available`: at each measured size the fastest backend (the previous
 * one while it is within KEEP_WITHIN of the fastest); where the winner changes between two measured
 * sizes, the switch is at their geometric mean; `monotone` for per-byte operations (see monotone).
 * Null if the row measured none of the available backends.
 */
export function segmentsOf(row: MeasuredRow | undefined, available: readonly BackendName[], opts: { monotone?: boolean } = {}): Segment[] | null {
  if (!row) return null;
  if (opts.monotone) row = monotone(row);
  const out: Segment[] = [];
  let prevSize = 0;
  for (let i = 0; i < row.sizes.length; i++) {
    const w = winnerAt(row, i, available, out.length ? out[out.length - 1].backend : null);
    if (w === null) continue;
    const size = row.sizes[i];
    if (out.length === 0) out.push({ from: 0, backend: w });
    else if (out[out.length - 1].backend !== w) out.push({ from: Math.round(Math.sqrt(prevSize * size)), backend: w });
    prevSize = size;
  }
  return out.length ? out : null;
}

/**
 * The smallest read from which `wasm` stays at least as fast as `ts` in a row (the switch at the
 * geometric mean of the last losing and the first winning size); null if wasm never wins.
 */
export function crossoverOf(row: MeasuredRow | undefined, from: BackendName, to: BackendName): number | null {
  if (!row) return null;
  const a = row.ns[from], b = row.ns[to];
  if (!a || !b) return null;
  let at: number | null = null;
  for (let i = row.sizes.length - 1; i >= 0; i--) {
    const x = a[i], y = b[i];
    if (typeof x !== 'number' || typeof y !== 'number') continue;
    if (y <= x) at = i;
    else break;
  }
  if (at === null) return null;
  return at === 0 ? 0 : Math.round(Math.sqrt(row.sizes[at - 1] * row.sizes[at]));
}

/** The backend of the segment that holds n. */
export function backendAt(segments: readonly Segment[], n: number): BackendName {
  let b = segments[0].backend;
  for (let i = 1; i < segments.length && n >= segments[i].from; i++) b = segments[i].backend;
  return b;
}
