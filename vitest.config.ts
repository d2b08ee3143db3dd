import { defineConfig } from 'vitest/config';

const common = {
  testTimeout: 30_000,
  hookTimeout: 30_000,
  // Socket tests bind 127.0.0.1 ports; files run in parallel forks, each test file on its own ports.
  pool: 'forks' as const,
};

/**
 * Suites whose code paths depend on a private runtime API (src/internals.ts): payload views
 * (codec, protocol, interop) and on-the-spot zlib (deflate). The conformance suites take the same
 * parser paths as codec/protocol at 15× the cost, so they run once, in `main`.
 */
const FALLBACK_SUITES = [
  'test/internals.test.ts',
  'test/codec.test.ts',
  'test/protocol.test.ts',
  'test/deflate.test.ts',
  'test/interop.test.ts',
];

export default defineConfig({
  test: {
    projects: [
      { test: { ...common, name: 'main', include: ['test/**/*.test.ts'] } },
      // The same cases with every private runtime API forced off: the public fallbacks must pass them.
      { test: { ...common, name: 'fallback', include: FALLBACK_SUITES, env: { WASMWS_INTERNALS: 'off' } } },
    ],
  },
});
