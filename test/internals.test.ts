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
function reportIn(env: Record<string, string | undefined>, kind: 'esm' | 'cjs'): unknown {
  const entry = join(root, 'dist', kind, kind === 'esm' ? 'index.js' : 'main.js');
  const code = kind === 'esm'
    ? `import(${JSON.stringify(entry)}).then((m) => console.log(JSON.stringify(m.runtimeInternals())))`
    : `console.log(JSON.stringify(require(${JSON.stringify(entry)}).runtimeInternals()))`;
  const r = spawnSync(process.execPath, ['-e', code], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

describe('private runtime APIs behind a guard', () => {
  it(`uses Node's internals here ${forcedOff ? 'not at all (WASMWS_INTERNALS=off)' : '(both detected on Node 20–26)'}`, () => {
    expect(runtimeInternals()).toEqual({ allowed: !forcedOff, bufferSpecies: !forcedOff, zlibSync: !forcedOff });
  });

  it('WASMWS_INTERNALS=off turns every private API off in a fresh process, ESM and CJS; unset turns them on', () => {
    ensureDist(join(root, 'dist', 'cjs', 'main.js'));
    for (const kind of ['esm', 'cjs'] as const) {
      expect(reportIn({ WASMWS_INTERNALS: 'off' }, kind)).toEqual({ allowed: false, bufferSpecies: false, zlibSync: false });
      expect(reportIn({ WASMWS_INTERNALS: undefined }, kind)).toEqual({ allowed: true, bufferSpecies: true, zlibSync: true });
    }
  });
});
