// Command-line parsing for `wasmws serve`: flags, environment (PORT, HOST) and validation.
// Every problem is a UsageError with a one-line message; main() prints it and exits 2.
import { parseArgs } from 'node:util';
import type { CodecBackend } from '../codec/index.js';

export class UsageError extends Error {}

export interface ServeOptions {
  port: number;
  host: string;
  /** A count, or 'auto' (one per core). */
  workers: number | 'auto';
  /** Chat endpoint path (the echo endpoint is always /echo). */
  path: string;
  /** Extra allowed origins; ['*'] allows any. The page's own origin is always allowed. */
  origins: string[];
  maxPayload: number;
  /** Bytes that may wait for a slow client before it is dropped (1008). */
  maxBackpressure: number;
  /** Request headers (and a TLS handshake) must arrive within this many ms: 408 after. */
  headerTimeout: number;
  /** Ping interval in ms; 0 = off. */
  heartbeat: number;
  codec: CodecBackend;
  /** Accept permessage-deflate (RFC 7692) offers. */
  deflate: boolean;
  /** Run the chat across several serve processes through this Redis (redis://host:port). */
  redis?: string;
  /** Lifetime of a node's presence key in Redis, ms (a dead node's users drop out after it). */
  presenceTtl: number;
  /** PEM files: serve over TLS, h2 with HTTP/1.1 fallback on one port (WebSockets over h2 per RFC 8441). */
  tls?: { cert: string; key: string };
}

export type Command = { command: 'help' } | { command: 'version' } | { command: 'serve'; options: ServeOptions };

export const DEFAULTS = {
  port: 8080,
  host: '127.0.0.1',
  // Every core by default: node:cluster workers share the port; chat fans out through the primary.
  workers: 'auto' as number | 'auto',
  path: '/chat',
  // Large enough for conformance suites' 16 MiB messages on /echo; the chat room limits texts itself.
  maxPayload: 64 * 1024 * 1024,
  // The library's default: /echo must take conformance suites' 16 MiB messages back to back (a
  // public chat does well with a few MiB: the Security section).
  maxBackpressure: 64 * 1024 * 1024,
  headerTimeout: 10_000,
  heartbeat: 30_000,
  codec: 'auto' as CodecBackend,
  deflate: false,
  presenceTtl: 15_000,
};

export const HELP = `Usage: wasmws serve [options]

Serve a chat page at /, a chat WebSocket endpoint (subprotocol "chat") and an echo endpoint (/echo).

Options:
  -p, --port <n>           TCP port; 0 picks a free one (default: $PORT or ${DEFAULTS.port})
      --host <addr>        address to bind (default: $HOST or ${DEFAULTS.host}; 0.0.0.0 for all)
  -w, --workers <n|auto>   processes sharing the port (node:cluster); auto = one per core (default: ${DEFAULTS.workers})
      --path <path>        chat endpoint path (default: ${DEFAULTS.path})
      --origin <url>       also accept WebSocket upgrades from this Origin (repeatable; "*" = any).
                           The page's own origin and clients sending no Origin are always accepted.
      --max-payload <n>    largest message accepted, in bytes (default: ${DEFAULTS.maxPayload})
      --max-backpressure <n>
                           bytes that may wait for a slow client before it is dropped with 1008
                           (default: ${DEFAULTS.maxBackpressure})
      --header-timeout <ms>
                           request headers (and a TLS handshake) must arrive within this; 408 after
                           (default: ${DEFAULTS.headerTimeout})
      --heartbeat <ms>     ping clients this often and drop silent ones; 0 = off (default: ${DEFAULTS.heartbeat})
      --codec <name>       frame codec: auto, wasm or ts (default: auto; WASMWS_CODEC overrides auto)
      --deflate            accept permessage-deflate (RFC 7692) offers (default: off; ~250 KiB per
                           connection that uses it)
      --redis <url>        run the chat across every serve process using this Redis (redis://host:port;
                           needs the "redis" package); each worker is one node
      --presence-ttl <ms>  with --redis: a dead node's users drop out within this long and a third (default: ${DEFAULTS.presenceTtl})
      --tls-cert <file>    serve over TLS with this PEM certificate and --tls-key: HTTP/2 with
      --tls-key <file>     HTTP/1.1 fallback on the same port (https://, wss://); WebSockets ride
                           the page's h2 connection (RFC 8441) or upgrade over HTTP/1.1
  -h, --help               show this help
  -v, --version            print the version

Endpoints:
  GET /          the chat page          GET /stats     JSON: workers, connections, users
  WS  /chat      chat (JSON messages)   WS  /echo      echoes every message (load tests; also WS /)

SIGINT/SIGTERM close every connection with 1001 (going away) and exit 0.
`;

function int(name: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw.trim())) throw new UsageError(`--${name} must be a whole number (got "${raw}")`);
  const n = Number(raw);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max} (got ${raw})`);
  return n;
}

/** Parse argv (without node and script) and the environment. Throws UsageError. */
export function parseCli(argv: string[], env: NodeJS.ProcessEnv = process.env): Command {
  let args = argv;
  let command = 'serve';
  if (args.length > 0 && !args[0].startsWith('-')) {
    command = args[0];
    args = args.slice(1);
  }
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: 'string', short: 'p' },
        host: { type: 'string' },
        workers: { type: 'string', short: 'w' },
        path: { type: 'string' },
        origin: { type: 'string', multiple: true },
        'max-payload': { type: 'string' },
        'max-backpressure': { type: 'string' },
        'header-timeout': { type: 'string' },
        heartbeat: { type: 'string' },
        codec: { type: 'string' },
        deflate: { type: 'boolean' },
        redis: { type: 'string' },
        'presence-ttl': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (err) {
    // parseArgs' messages are clear but long; keep their first sentence.
    const msg = String((err as Error).message).split('\n')[0].split('. ')[0].replace(/\.$/, '');
    throw new UsageError(msg);
  }
  const v = parsed.values;
  if (v.help || command === 'help') return { command: 'help' };
  if (v.version || command === 'version') return { command: 'version' };
  if (command !== 'serve') throw new UsageError(`unknown command "${command}" (try "wasmws serve" or "wasmws --help")`);

  const port = int('port', v.port ?? env.PORT ?? String(DEFAULTS.port), 0, 65535);
  const host = (v.host ?? env.HOST ?? DEFAULTS.host).trim();
  if (host === '') throw new UsageError('--host must not be empty');

  let workers: number | 'auto' = DEFAULTS.workers;
  if (v.workers !== undefined) workers = v.workers === 'auto' ? 'auto' : int('workers', v.workers, 1, 256);

  const path = v.path ?? DEFAULTS.path;
  if (!/^\/[A-Za-z0-9._~\-/]*$/.test(path)) throw new UsageError(`--path must start with "/" and use only A-Z a-z 0-9 . _ ~ - / (got "${path}")`);
  if (path === '/echo' || path === '/' || path === '/stats') throw new UsageError(`--path ${path} is reserved`);

  const origins = v.origin ?? [];
  for (const o of origins) {
    if (o === '*') continue;
    let u: URL;
    try {
      u = new URL(o);
    } catch {
      throw new UsageError(`--origin must be a URL like https://example.com or "*" (got "${o}")`);
    }
    if (u.origin === 'null') throw new UsageError(`--origin must be an http(s) origin (got "${o}")`);
  }

  const maxPayload = v['max-payload'] === undefined ? DEFAULTS.maxPayload : int('max-payload', v['max-payload'], 1, 2 ** 31 - 1);
  const maxBackpressure = v['max-backpressure'] === undefined ? DEFAULTS.maxBackpressure : int('max-backpressure', v['max-backpressure'], 1024, 2 ** 53 - 1);
  const headerTimeout = v['header-timeout'] === undefined ? DEFAULTS.headerTimeout : int('header-timeout', v['header-timeout'], 100, 2 ** 31 - 1);
  const heartbeat = v.heartbeat === undefined ? DEFAULTS.heartbeat : int('heartbeat', v.heartbeat, 0, 2 ** 31 - 1);
  const codec = (v.codec ?? DEFAULTS.codec) as CodecBackend;
  if (codec !== 'auto' && codec !== 'wasm' && codec !== 'ts') throw new UsageError(`--codec must be auto, wasm or ts (got "${codec}")`);
  const deflate = v.deflate === true;
  const redis = v.redis;
  if (redis !== undefined) {
    let u: URL | null = null;
    try {
      u = new URL(redis);
    } catch {
      // reported below
    }
    if (!u || (u.protocol !== 'redis:' && u.protocol !== 'rediss:')) throw new UsageError(`--redis must be a URL like redis://127.0.0.1:6379 (got "${redis}")`);
  }
  const presenceTtl = v['presence-ttl'] === undefined ? DEFAULTS.presenceTtl : int('presence-ttl', v['presence-ttl'], 300, 2 ** 31 - 1);
  const options: ServeOptions = { port, host, workers, path, origins, maxPayload, maxBackpressure, headerTimeout, heartbeat, codec, deflate, redis, presenceTtl };
  const [cert, key] = [v['tls-cert'], v['tls-key']];
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together (a PEM certificate and its private key)');
  if (cert !== undefined && key !== undefined) {
    if (cert.trim() === '' || key.trim() === '') throw new UsageError('--tls-cert and --tls-key need file names');
    options.tls = { cert, key };
  }
  return { command: 'serve', options };
}
