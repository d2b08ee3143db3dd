#!/usr/bin/env node
// The `wasmws` command: runs the compiled CLI (dist/esm/cli/main.js; `npm run build` makes it).
import { existsSync } from 'node:fs';

const main = new URL('../dist/esm/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('wasmws: dist/ is missing; run "npm run build" (npm install does it via "prepare")\n');
  process.exit(1);
}
const { main: run } = await import(main.href);
await run(process.argv.slice(2));
