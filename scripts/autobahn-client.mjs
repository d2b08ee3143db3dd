#!/usr/bin/env node
// Autobahn TestSuite client driver: runs our WebSocket client (the built package, dist/esm) against
// Autobahn's "fuzzingserver" (wstest -m fuzzingserver), the standard way to test a client:
//   1. ws://HOST:PORT/getCaseCount               → one text message: the number of cases N
//   2. ws://HOST:PORT/runCase?case=i&agent=AGENT → echo every message with its type, until closed
//   3. ws://HOST:PORT/updateReports?agent=AGENT  → Autobahn writes its reports, then closes
// The client offers permessage-deflate (its default) so that cases 12.x / 13.x run.
//
//   node scripts/autobahn-client.mjs [--url ws://127.0.0.1:9001] [--agent wasmws] [--cases 1-50,60]
//                                    [--timeout 60000] [--max-payload 67108864] [--quiet]
// Environment (flags win): AUTOBAHN_URL, AUTOBAHN_AGENT, AUTOBAHN_CASES, AUTOBAHN_TIMEOUT.
// Exit status: 0 when every selected case ran to its close and the reports were updated; 1 when a
// case could not connect or timed out, or getCaseCount / updateReports failed; 2 on a usage error.
// Whether a case passed is Autobahn's verdict: read its report (reports/clients/index.html).
import { parseArgs } from 'node:util';
import { WebSocket } from '../dist/esm/index.js';

const USAGE = `Usage: node scripts/autobahn-client.mjs [options]

  --url URL           Autobahn fuzzingserver (default ws://127.0.0.1:9001, env AUTOBAHN_URL)
  --agent NAME        agent name in the reports (default wasmws, env AUTOBAHN_AGENT)
  --cases LIST        run only these case numbers, e.g. 1-50 or 1,5,10-20 (env AUTOBAHN_CASES)
  --timeout MS        per-case time limit (default 60000, env AUTOBAHN_TIMEOUT)
  --max-payload BYTES largest message accepted (default 64 MiB, for cases 9.x)
  --quiet             print only the summary
  -h, --help          this text
`;

class UsageError extends Error {}

function parseCases(spec) {
  const out = [];
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new UsageError(`--cases: "${part}" is not a number or a range a-b`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (a < 1 || b < a) throw new UsageError(`--cases: bad range "${part}"`);
    out.push([a, b]);
  }
  if (out.length === 0) throw new UsageError('--cases: empty list');
  return out;
}

function options(argv) {
  let v;
  try {
    ({ values: v } = parseArgs({
      args: argv,
      options: {
        url: { type: 'string' },
        agent: { type: 'string' },
        cases: { type: 'string' },
        timeout: { type: 'string' },
        'max-payload': { type: 'string' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    throw new UsageError(err.message);
  }
  if (v.help) return { help: true };
  const env = process.env;
  const url = (v.url ?? env.AUTOBAHN_URL ?? 'ws://127.0.0.1:9001').replace(/\/+$/, '');
  if (!/^wss?:\/\/[^/]+$/.test(url)) throw new UsageError(`--url must be ws://HOST:PORT (no path): ${url}`);
  const agent = v.agent ?? env.AUTOBAHN_AGENT ?? 'wasmws';
  if (!agent) throw new UsageError('--agent must not be empty');
  const casesSpec = v.cases ?? env.AUTOBAHN_CASES;
  const cases = casesSpec ? parseCases(casesSpec) : null;
  const num = (name, s, dflt, min) => {
    if (s === undefined) return dflt;
    const n = Number(s);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be a whole number ≥ ${min}: ${s}`);
    return n;
  };
  const timeout = num('timeout', v.timeout ?? env.AUTOBAHN_TIMEOUT, 60_000, 100);
  const maxPayload = num('max-payload', v['max-payload'], 64 * 1024 * 1024, 1);
  return { url, agent, cases, timeout, maxPayload, quiet: v.quiet === true };
}

/**
 * One connection, bounded by `ms`: `onOpen(ws)` wires it up; resolves with the close code and what
 * went wrong (handshake error or timeout), never rejects.
 */
function connect(url, opts, ms, onOpen) {
  return new Promise((resolve) => {
    let error = null;
    let opened = false;
    let ws;
    try {
      ws = new WebSocket(url, { maxPayload: opts.maxPayload, perMessageDeflate: true, closeTimeout: 5000 });
    } catch (err) {
      resolve({ code: 1006, error: err.message, timedOut: false });
      return;
    }
    const timer = setTimeout(() => {
      error = `timed out after ${ms} ms`;
      ws.terminate();
      resolve({ code: 1006, error, timedOut: true });
    }, ms);
    ws.on('error', (err) => {
      // A protocol error fails the connection with a close frame: that is part of the case, not a
      // driver failure. Only an error before 'open' (handshake) counts.
      if (!opened) error ??= err.message;
    });
    ws.on('open', () => {
      opened = true;
    });
    ws.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, error: opened ? null : (error ?? 'connection failed'), timedOut: false });
    });
    onOpen(ws);
  });
}

async function main() {
  let o;
  try {
    o = options(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`autobahn-client: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (o.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const log = (s) => process.stdout.write(`${s}\n`);
  const agent = encodeURIComponent(o.agent);

  // 1. How many cases?
  let count = NaN;
  const r = await connect(`${o.url}/getCaseCount`, o, Math.min(o.timeout, 10_000), (ws) => {
    ws.on('message', (data, isBinary) => {
      if (!isBinary) count = Number(String(data).trim());
    });
  });
  if (!Number.isInteger(count) || count < 0) {
    process.stderr.write(`autobahn-client: no case count from ${o.url}/getCaseCount (${r.error ?? `closed ${r.code}`})\n`);
    return 1;
  }

  const selected = [];
  if (o.cases === null) for (let i = 1; i <= count; i++) selected.push(i);
  else {
    const seen = new Set();
    for (const [a, b] of o.cases) for (let i = a; i <= Math.min(b, count); i++) if (!seen.has(i)) seen.add(i), selected.push(i);
  }
  log(`autobahn-client: ${count} cases at ${o.url}, running ${selected.length} as agent "${o.agent}"`);

  // 2. The cases, one at a time (Autobahn runs them sequentially).
  const failed = [];
  const started = Date.now();
  for (const i of selected) {
    const t0 = Date.now();
    const res = await connect(`${o.url}/runCase?case=${i}&agent=${agent}`, o, o.timeout, (ws) => {
      ws.on('message', (data, isBinary) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(data, { binary: isBinary });
      });
    });
    if (res.error) failed.push(`case ${i}: ${res.error}`);
    if (!o.quiet || res.error) log(`case ${i}/${count}: closed ${res.code} in ${Date.now() - t0} ms${res.error ? ` — ${res.error}` : ''}`);
  }

  // 3. Reports.
  const rep = await connect(`${o.url}/updateReports?agent=${agent}`, o, Math.max(o.timeout, 60_000), () => {});
  if (rep.error) failed.push(`updateReports: ${rep.error}`);

  log(`autobahn-client: ran ${selected.length} cases in ${((Date.now() - started) / 1000).toFixed(1)} s; ${failed.length === 0 ? 'reports updated' : `${failed.length} problem(s):`}`);
  for (const f of failed) log(`  ${f}`);
  return failed.length === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`autobahn-client: ${err?.stack ?? err}\n`);
    process.exitCode = 1;
  },
);
