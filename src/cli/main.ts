// Entry point of the `wasmws` command (bin/wasmws.js). Usage errors exit 2, start failures
// (port in use, …) exit 1, both with a one-line message and no stack trace.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HELP, UsageError, parseCli } from './args.js';
import { runServe } from './serve.js';

function version(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      if (pkg.name === 'wasmws') return pkg.version;
    } catch {
      // not here: keep walking up
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  let cmd;
  try {
    cmd = parseCli(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`wasmws: ${err.message}\nRun "wasmws --help" for usage.\n`);
    process.exit(2);
  }
  if (cmd.command === 'help') {
    process.stdout.write(HELP);
    return;
  }
  if (cmd.command === 'version') {
    process.stdout.write(`wasmws ${version()}\n`);
    return;
  }
  try {
    await runServe(cmd.options);
  } catch (err) {
    process.stderr.write(`wasmws: ${(err as Error)?.message ?? String(err)}\n`);
    process.exit(1);
  }
}
