import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Socket tests bind 127.0.0.1 ports; files run in parallel forks, each test file on its own ports.
    pool: 'forks',
  },
});
