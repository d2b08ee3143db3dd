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
  // Fair reading holds sockets back through Node's stream handle; off, nothing is held back.
  'test/fair-reading.test.ts',
  'test/transport.test.ts',
];

/**
 * Suites over real TCP sockets: upgraded plain-TCP connections are read and written through their
 * handle (raw I/O, src/node/transport.ts); with WASMWS_RAW_IO=off through the socket's own events
 * and write(), the path of TLS, other Duplexes and other runtimes, which must pass the same cases.
 */
const STREAM_IO_SUITES = ['test/internals.test.ts', 'test/server.test.ts', 'test/stream.test.ts', 'test/compat.test.ts', 'test/fair-reading.test.ts', 'test/transport.test.ts', 'test/topics.test.ts'];

/**
 * Suites with wall-clock or memory assertions (linear-time parsing, decompression bombs, floods,
 * RSS bounds): they run after everything else, one file at a time, so that parallel forks cannot
 * starve them.
 */
const TIMING_SUITES = ['test/hardening.test.ts', 'test/extensions.test.ts', 'test/handshake.test.ts', 'test/deflate.test.ts'];

/**
 * Most suites wait on sockets, timers and child processes far more than they compute, so more
 * forks than cores shortens the run (vitest's default on 2 cores is one).
 */
const IO_WORKERS = 3;

export default defineConfig({
  test: {
    projects: [
      { test: { ...common, name: 'main', include: ['test/**/*.test.ts'], exclude: TIMING_SUITES, maxWorkers: IO_WORKERS } },
      // The same cases with every private runtime API forced off: the public fallbacks must pass them.
      {
        test: {
          ...common, name: 'fallback', include: FALLBACK_SUITES, exclude: TIMING_SUITES, maxWorkers: IO_WORKERS,
          env: { WASMWS_INTERNALS: 'off' },
        },
      },
      {
        test: {
          ...common, name: 'stream-io', include: STREAM_IO_SUITES, exclude: TIMING_SUITES, maxWorkers: IO_WORKERS,
          env: { WASMWS_RAW_IO: 'off' },
        },
      },
      // Raw I/O with Node's buffer per read (a handle without useUserBuffer): the read-side suites.
      {
        test: {
          ...common, name: 'node-read-buffers', include: ['test/server.test.ts', 'test/fair-reading.test.ts'], maxWorkers: IO_WORKERS,
          env: { WASMWS_READ_BUFFER: 'off' },
        },
      },
      // The shared read buffer outside wasm linear memory (where wasm cannot load): the same suites.
      {
        test: {
          ...common, name: 'plain-read-buffer', include: ['test/server.test.ts', 'test/fair-reading.test.ts'], maxWorkers: IO_WORKERS,
          env: { WASMWS_READ_BUFFER: 'plain' },
        },
      },
      { test: { ...common, name: 'timing', include: TIMING_SUITES, maxWorkers: 1, sequence: { groupOrder: 1 } } },
      {
        test: {
          ...common, name: 'timing-fallback', include: TIMING_SUITES.filter((f) => FALLBACK_SUITES.includes(f)), maxWorkers: 1,
          env: { WASMWS_INTERNALS: 'off' }, sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
