// Private runtime APIs behind a guard: detected once, and WASMWS_INTERNALS=off forces the public
// fallbacks. The "fallback" vitest project reruns the codec, parser, protocol, deflate and
// conformance suites with WASMWS_INTERNALS=off, so both paths pass the same cases.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runtimeInternals } from '../src/index.js';
import { ensureDist } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const forcedOff = /^(off|0|false|no)$/i.test(process.env.WASMWS_INTERNALS ?? '');

/** runtimeInternals() of a fresh process with this environment (the built package, ESM and CJS). */
function reportIn(env: Record<string, string | undefined>, kind: 'esm' | 'cjs', stderr?: (s: string) => void): unknown {
  const entry = join(root, 'dist', kind, kind === 'esm' ? 'index.js' : 'main.js');
  const code = kind === 'esm'
    ? `import(${JSON.stringify(entry)}).then((m) => console.log(JSON.stringify(m.runtimeInternals())))`
    : `console.log(JSON.stringify(require(${JSON.stringify(entry)}).runtimeInternals()))`;
  const r = spawnSync(process.execPath, ['-e', code], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
  expect(r.status, r.stderr).toBe(0);
  stderr?.(r.stderr);
  return JSON.parse(r.stdout);
}

describe('private runtime APIs behind a guard', () => {
  it(`uses Node's internals here ${forcedOff ? 'not at all (WASMWS_INTERNALS=off)' : '(both detected on Node 20–26)'}`, () => {
    const off = (name: string) => /^(off|0|false|no)$/i.test(process.env[name] ?? '');
    const rawOff = forcedOff || off('WASMWS_RAW_IO');
    expect(runtimeInternals()).toEqual({
      allowed: !forcedOff, bufferSpecies: !forcedOff, zlibSync: !forcedOff, rawSocketIo: !rawOff, sharedReadBuffer: !rawOff && !off('WASMWS_READ_BUFFER'),
    });
  });

  it('WASMWS_INTERNALS=off turns every private API off in a fresh process, ESM and CJS; unset turns them on', () => {
    ensureDist(join(root, 'dist', 'cjs', 'main.js'));
    for (const kind of ['esm', 'cjs'] as const) {
      expect(reportIn({ WASMWS_INTERNALS: 'off' }, kind)).toEqual({ allowed: false, bufferSpecies: false, zlibSync: false, rawSocketIo: false, sharedReadBuffer: false });
      let err = '';
      const env = { WASMWS_INTERNALS: undefined, WASMWS_RAW_IO: undefined, WASMWS_READ_BUFFER: undefined };
      expect(reportIn(env, kind, (e) => (err = e))).toEqual({ allowed: true, bufferSpecies: true, zlibSync: true, rawSocketIo: true, sharedReadBuffer: true });
      expect(err).not.toMatch(/DeprecationWarning|DEP0/); // process.binding is silent by default
    }
  });

  it('raw socket I/O alone is left out with WASMWS_RAW_IO=off, and under --pending-deprecation (where process.binding would warn), without a warning', () => {
    const on = { allowed: true, bufferSpecies: true, zlibSync: true };
    const none = { WASMWS_INTERNALS: undefined, WASMWS_RAW_IO: undefined, WASMWS_READ_BUFFER: undefined };
    expect(reportIn({ ...none, WASMWS_RAW_IO: 'off' }, 'esm')).toEqual({ ...on, rawSocketIo: false, sharedReadBuffer: false });
    expect(reportIn({ ...none, WASMWS_READ_BUFFER: 'off' }, 'esm')).toEqual({ ...on, rawSocketIo: true, sharedReadBuffer: false });
    for (const env of [{ NODE_OPTIONS: '--pending-deprecation' }, { NODE_PENDING_DEPRECATION: '1' }]) {
      let err = '';
      expect(reportIn({ ...none, ...env }, 'esm', (e) => (err = e))).toEqual({ ...on, rawSocketIo: false, sharedReadBuffer: false });
      expect(err).not.toMatch(/DEP0111|process\.binding/);
    }
  });
});
