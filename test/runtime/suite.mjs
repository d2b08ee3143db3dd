// The runtime suite: runs unchanged on Node, Bun and Deno (`node test/runtime/suite.mjs`,
// `bun test/runtime/suite.mjs`, `deno run -A test/runtime/suite.mjs`) against the built package
// (`npm run build` → dist/esm). Not vitest: vitest runs on Node only.
//
// Output: one `ok - name` / `not ok - name: error` line per test, then, last,
// `runtime-suite <runtime> <version>: N passed, M failed`; exit code 0 iff M == 0.
// WASMWS_RUNTIME_REPORT=<path> also writes {runtime, version, passed, failed, failures, skipped,
// notes} there. WASMWS_INTERNALS=off (read by the package) forces its public-API fallbacks.
import { run, test } from './harness.mjs';

let teardown;
try {
  // Loaded dynamically so that a missing or broken build is one failed test, not a crash without
  // the summary line.
  const [{ codecTests }, { serverTests }, { attackTests, rawTcpTests, stopAttackServer }, { stopAllServers }] = await Promise.all([
    import('./codec.mjs'), import('./server.mjs'), import('./attacks.mjs'), import('./peers.mjs'),
  ]);
  codecTests();
  serverTests();
  rawTcpTests();
  attackTests();
  teardown = async () => {
    await stopAttackServer();
    await stopAllServers();
  };
} catch (err) {
  test('load the built package (../../dist/esm/index.js; run `npm run build`)', () => {
    throw err;
  });
}

await run({ teardown });
