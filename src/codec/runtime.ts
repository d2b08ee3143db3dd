// Which JavaScript runtime this is, for picking the measured codec table (src/codec/table.ts).
// Read once; no environment variables, no I/O.

/** The runtime as the codec table names it. */
export interface RuntimeId {
  /** `node`, `bun`, `deno`, or `unknown`. */
  name: 'node' | 'bun' | 'deno' | 'unknown';
  /** The runtime's own version (Bun's, not the Node version it reports). */
  version: string;
  major: number;
  /** The JavaScript engine: decides, e.g., whether 64-bit BigInt XOR compiles to machine code. */
  engine: 'v8' | 'jsc' | 'unknown';
}

declare const Bun: { version: string } | undefined;
declare const Deno: { version: { deno: string } } | undefined;

function detect(): RuntimeId {
  const major = (v: string) => Number.parseInt(v, 10) || 0;
  if (typeof Bun !== 'undefined' && Bun && typeof Bun.version === 'string') {
    return { name: 'bun', version: Bun.version, major: major(Bun.version), engine: 'jsc' };
  }
  if (typeof Deno !== 'undefined' && Deno?.version?.deno) {
    return { name: 'deno', version: Deno.version.deno, major: major(Deno.version.deno), engine: 'v8' };
  }
  const versions = typeof process !== 'undefined' ? process.versions : undefined;
  if (versions?.node) {
    return { name: 'node', version: versions.node, major: major(versions.node), engine: versions.v8 ? 'v8' : 'unknown' };
  }
  return { name: 'unknown', version: '', major: 0, engine: 'unknown' };
}

/** This runtime (computed once). */
export const RUNTIME: RuntimeId = detect();

/** The codec table's key for a runtime: `node26`, `bun1`, `deno2`. */
export function runtimeKey(r: RuntimeId = RUNTIME): string {
  return `${r.name}${r.major}`;
}
