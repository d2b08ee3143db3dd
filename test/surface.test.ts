// The public surface of ws 8 against ours, so that a missing piece fails CI:
//   (a) every export of require('ws') (and of its ESM wrapper) exists on require('wasmws') and on our
//       ESM entry, with the same typeof;
//   (b) every property and method of ws's WebSocket / WebSocketServer prototypes (and instances) and
//       every static exists on ours with the same typeof;
//   (c) code written against @types/ws (test/fixtures/ws-surface.ts) type-checks against wasmws, and
//       ws's option types have no key we lack;
//   (d) every event ws emits, in a real-socket scenario run with ws and then with us, is emitted by
//       us with the same argument shapes.
// What ws has and we do not is listed below, each with the reason; an entry that stops being true
// fails the test too, so the lists only shrink.
import { createRequire } from 'node:module';
import { EventEmitter } from 'node:events';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import * as oursEsm from '../src/index.js';
import { ensureDist, nextEvent, until } from './helpers.js';
import { LIBS, sameAsWs as sameRecords, sleep, withRoutedServer, withServer, type Lib } from './side-by-side.js';

const require = createRequire(import.meta.url);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const wsCjs = require('ws');

// ── allow-lists: ws's surface we do not have, and why ───────────────────────────────────────

/** Exports of require('ws') that wasmws does not have. */
const MISSING_EXPORTS: Record<string, string> = {
  // ws's own internals, exported but documented nowhere (not in ws's doc/ws.md, not in @types/ws):
  // the frame reader and writer and the deflate extension object that its WebSocket plugs together.
  // Our equivalents have other shapes and are exported under their own names (FrameParser,
  // encodeFrame, Protocol); a class named like ws's with another API would mislead.
  PerMessageDeflate: "ws's internal permessage-deflate object (offer/accept/compress with ws's callbacks); undocumented, untyped",
  Receiver: "ws's internal frame reader (a Writable emitting 'message'…); ours is FrameParser / Protocol",
  Sender: "ws's internal frame writer bound to a socket; ours is encodeFrame / Protocol",
};

/** Prototype members of ws's classes that ours do not have. */
const MISSING_MEMBERS: Record<string, string> = {
  'WebSocket#setSocket': "@private in ws (its server and client call it); ours hand a handshake result to WebSocket#_open",
  'WebSocket#emitClose': "@private in ws (its socket and receiver call it); ours emits 'close' when the Protocol reaches CLOSED",
  'WebSocketServer#completeUpgrade': '@private in ws (the second half of its handleUpgrade); ours is internal to handleUpgrade',
};

/** Members whose typeof differs, on the instance named. */
const DIFFERENT_TYPEOF: Record<string, string> = {
  // ws leaves `url` unset on a server-side connection although @types/ws types it `string`; ours is ''.
  'server-side WebSocket#url': "ws: undefined; ours: '' (the type says string)",
};

/**
 * Lines of test/fixtures/ws-surface.ts, marked `// gap: <id>`, that type-check against @types/ws
 * but not against us, because we do not do what the line asks.
 */
const TYPE_GAPS: Record<string, string> = {
  'send-number-array':
    "ws.send([1, 2, 3]) sends the bytes 1, 2, 3 in ws (Buffer.from(array)); our send() takes arrays as Buffer[] to concatenate (src/data.ts), so number arrays are not typed",
  'send-blob': 'ws 8.18+ sends a Blob (read asynchronously, later sends wait for it); we do not read Blobs',
  'send-object':
    "ws sends any object Buffer.from() takes (valueOf(), Symbol.toPrimitive); our send() throws TypeError for objects that are not bytes",
};

/**
 * Where the same scenario gives different events in ws and here, on purpose. (d) asserts each side,
 * so that aligning one fails the test until the entry goes.
 */
const EVENT_DIFFERENCES = {
  'protocol-error':
    "A peer's protocol error (invalid UTF-8 here). ws: 'error' is an Error with code 'WS_ERR_INVALID_UTF8' and ws's " +
    "message, then 'close' (1006, '') because ws stops reading and never sees the peer's close frame; it sends close " +
    "1007 with no reason. Us: 'error' is our ProtocolError, whose `code` is the close code (1007: the codec's documented " +
    "API), then 'close' (1007) with the code we sent, and our close frame carries the reason text.",
};

/** Keys of @types/ws's option interfaces that ours lack (checked by tsc, both ways). */
const MISSING_OPTIONS: Record<'ClientOptions' | 'ServerOptions' | 'PerMessageDeflateOptions', Record<string, string>> = {
  ClientOptions: {
    allowSynchronousEvents:
      'false makes ws emit one message per tick; we always emit as frames are parsed (ws\'s default, true)',
    maxBufferedChunks:
      "bounds ws's list of buffered socket chunks; we keep no such list (partial frames are copied into one buffer bounded by maxPayload)",
    maxFragments:
      "bounds ws's list of fragment Buffers; our reassembly copies fragments into one buffer, so memory follows bytes (maxPayload), not fragments",
  },
  ServerOptions: {
    allowSynchronousEvents: 'as for ClientOptions',
    maxBufferedChunks: 'as for ClientOptions',
    maxFragments: 'as for ClientOptions',
  },
  PerMessageDeflateOptions: {},
};

/** Keys both have whose ws type is not assignable to ours. */
const INCOMPATIBLE_OPTIONS: Record<'ClientOptions' | 'ServerOptions' | 'PerMessageDeflateOptions', Record<string, string>> = {
  // These two name each library's own WebSocket class: nominally different by nature.
  ClientOptions: {
    finishRequest: "its second parameter is ws's WebSocket class vs ours",
    perMessageDeflate: 'through zlibDeflateOptions (below)',
  },
  ServerOptions: {
    WebSocket: "ws's WebSocket class vs ours",
    perMessageDeflate: 'through zlibDeflateOptions (below)',
  },
  PerMessageDeflateOptions: {
    zlibDeflateOptions: "@types/ws allows dictionary: Buffer[], which zlib rejects at run time (in ws too); ours is zlib's ZlibOptions",
  },
};

// ── (a) exports ───────────────────────────────────────────────────────────────────────────

function loadCjs(): any {
  const main = join(ROOT, 'dist', 'cjs', 'main.js');
  ensureDist(main);
  return require(main);
}

describe('(a) the exports of ws', () => {
  const wsKeys = Object.keys(wsCjs);

  it("require('ws') has the keys we expect to compare (the list is ws's, read at run time)", () => {
    expect(wsKeys).toEqual(expect.arrayContaining(['createWebSocketStream', 'extension', 'subprotocol', 'Server', 'WebSocket', 'WebSocketServer']));
  });

  it.each(['CommonJS require("wasmws")', 'ESM default export'])('%s has every key of require("ws") with the same typeof', (which) => {
    const ours = which.startsWith('CommonJS') ? loadCjs() : oursEsm.default;
    expect(typeof ours).toBe(typeof wsCjs);
    const missing = wsKeys.filter((k) => !(k in ours));
    expect(missing.sort()).toEqual(Object.keys(MISSING_EXPORTS).sort());
    for (const k of wsKeys) {
      if (k in MISSING_EXPORTS) continue;
      expect(typeof ours[k], k).toBe(typeof wsCjs[k]);
    }
    // The same identities as ws: the default export is the class, with the server under two names.
    expect(ours.WebSocket).toBe(ours);
    expect(ours.Server).toBe(ours.WebSocketServer);
    for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) expect(ours[k], k).toBe(wsCjs[k]);
  });

  it("our ESM named exports cover ws's ESM wrapper (import { … } from 'ws')", async () => {
    const wsEsm = await import('ws');
    const named = Object.keys(wsEsm).filter((k) => k !== 'default');
    expect(named).toContain('createWebSocketStream');
    const missing = named.filter((k) => !(k in oursEsm));
    expect(missing.sort()).toEqual(Object.keys(MISSING_EXPORTS).sort());
    for (const k of named) if (!(k in MISSING_EXPORTS)) expect(typeof (oursEsm as any)[k], k).toBe(typeof (wsEsm as any)[k]);
    expect(typeof wsEsm.default).toBe(typeof oursEsm.default);
  });

  it('CommonJS and ESM give the same functions', () => {
    const cjs = loadCjs();
    for (const k of ['createWebSocketStream', 'extension', 'subprotocol']) {
      expect(typeof cjs[k], k).toBe(typeof wsCjs[k]);
      expect(Object.keys(cjs[k] ?? {}).sort(), k).toEqual(Object.keys(wsCjs[k]).sort());
      expect(Object.keys((oursEsm.default as any)[k]).sort(), k).toEqual(Object.keys(wsCjs[k]).sort());
    }
  });
});

// ── (b) members ───────────────────────────────────────────────────────────────────────────

/** Own property names along the prototype chain, stopping at EventEmitter (whose members both inherit). */
function chainNames(proto: object): string[] {
  const out = new Set<string>();
  for (let p: object | null = proto; p && p !== EventEmitter.prototype && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const k of Object.getOwnPropertyNames(p)) if (k !== 'constructor') out.add(k);
  }
  return [...out];
}




/** A server of `lib` on 127.0.0.1:0 and a connected client of `lib`; both sides, then teardown. */
function connected<T>(lib: Lib, fn: (client: any, serverSide: any, wss: any) => Promise<T>): Promise<T> {
  return withServer(lib, {}, async (url, wss) => {
    const conn = nextEvent(wss, 'connection');
    const client = new lib.WebSocket(url);
    const [[serverSide]] = await Promise.all([conn, nextEvent(client, 'open')]);
    try {
      return await fn(client, serverSide, wss);
    } finally {
      client.terminate();
    }
  });
}

describe('(b) the members of WebSocket and WebSocketServer', () => {
  it('every member of ws.WebSocket.prototype is on our client-side and server-side connections, with the same typeof', async () => {
    const names = chainNames(wsCjs.WebSocket.prototype);
    expect(names).toEqual(expect.arrayContaining(['send', 'ping', 'pong', 'close', 'terminate', 'readyState', 'binaryType', 'isPaused']));
    const kinds = async (lib: Lib) =>
      connected(lib, async (client, serverSide) => {
        const out: Record<string, string> = {};
        for (const [label, obj] of [['client-side', client], ['server-side', serverSide]] as const) {
          for (const k of names) out[`${label} WebSocket#${k}`] = k in obj ? typeof obj[k] : 'missing';
        }
        return out;
      });
    const theirs = await kinds(LIBS[0]);
    const mine = await kinds(LIBS[1]);
    const missing: string[] = [];
    const differing: string[] = [];
    for (const key of Object.keys(theirs)) {
      const member = key.replace(/^\S+ /, '');
      if (mine[key] === 'missing') {
        if (!missing.includes(member)) missing.push(member);
      } else if (mine[key] !== theirs[key]) differing.push(key);
    }
    expect(missing.sort()).toEqual(Object.keys(MISSING_MEMBERS).filter((k) => k.startsWith('WebSocket#')).sort());
    expect(differing.sort()).toEqual(Object.keys(DIFFERENT_TYPEOF).sort());
  });

  it('every member of ws.WebSocketServer.prototype and public instance property is on ours, with the same typeof', () => {
    const theirs = new wsCjs.WebSocketServer({ noServer: true });
    const mine = new oursEsm.WebSocketServer({ noServer: true });
    const names = [...chainNames(wsCjs.WebSocketServer.prototype), ...Object.keys(theirs).filter((k) => !k.startsWith('_'))];
    expect(names).toEqual(expect.arrayContaining(['address', 'close', 'handleUpgrade', 'shouldHandle', 'clients', 'options']));
    const missing = names.filter((k) => !(k in mine)).map((k) => `WebSocketServer#${k}`);
    expect(missing.sort()).toEqual(Object.keys(MISSING_MEMBERS).filter((k) => k.startsWith('WebSocketServer#')).sort());
    for (const k of names) if (k in mine) expect(typeof (mine as any)[k], k).toBe(typeof theirs[k]);
  });

  it('every static of ws.WebSocket and ws.WebSocketServer is on ours, with the same typeof and constant values', () => {
    const statics = (f: Function) => Object.getOwnPropertyNames(f).filter((k) => !['length', 'name', 'prototype'].includes(k));
    for (const [theirs, mine] of [
      [wsCjs.WebSocket, oursEsm.default],
      [wsCjs.WebSocket, loadCjs()],
      [wsCjs.WebSocketServer, oursEsm.WebSocketServer],
    ] as const) {
      for (const k of statics(theirs)) {
        if (k in MISSING_EXPORTS) continue;
        expect(typeof (mine as any)[k], k).toBe(typeof (theirs as any)[k]);
        if (typeof (theirs as any)[k] === 'number') expect((mine as any)[k], k).toBe((theirs as any)[k]);
      }
    }
    for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) {
      expect((new oursEsm.WebSocket(null) as any)[k], k).toBe(wsCjs.WebSocket.prototype[k]);
    }
  });
});

// ── (c) types ─────────────────────────────────────────────────────────────────────────────

const TSC = join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');
const FIXTURE = join(ROOT, 'test', 'fixtures', 'ws-surface.ts');
const CJS_FIXTURE = join(ROOT, 'test', 'fixtures', 'ws-surface-cjs.cts');

/** Run tsc --noEmit on `files` with `paths`; the diagnostics as "file(line,col): error TSxxxx: …" lines. */
function typecheck(files: string[], paths: Record<string, string[]>): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'wasmws-types-'));
  try {
    const config = join(dir, 'tsconfig.json');
    writeFileSync(
      config,
      JSON.stringify({
        compilerOptions: {
          strict: true,
          target: 'ES2022',
          module: 'nodenext',
          moduleResolution: 'nodenext',
          esModuleInterop: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules', '@types')],
          paths,
        },
        files,
      }),
    );
    try {
      execFileSync(process.execPath, [TSC, '-p', config, '--pretty', 'false'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
      return [];
    } catch (e) {
      const out = String((e as { stdout?: string }).stdout ?? '') + String((e as { stderr?: string }).stderr ?? '');
      if (!out.includes('error TS')) throw e;
      // Diagnostics start a line with a file name; continuation lines (elaborations) are indented.
      return out.split('\n').filter((l) => /error TS\d+/.test(l) && !l.startsWith(' '));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The `// gap: <id>` marker on each line of the fixture, by line number. */
function gapMarkers(): Map<number, string> {
  const lines = require('node:fs').readFileSync(FIXTURE, 'utf8').split('\n') as string[];
  const out = new Map<number, string>();
  lines.forEach((l, i) => {
    const m = /\/\/ gap: ([\w-]+)/.exec(l);
    if (m) out.set(i + 1, m[1]!);
  });
  return out;
}

describe('(c) the types: code written against @types/ws', () => {
  const WS_TYPES = join(ROOT, 'node_modules', '@types', 'ws', 'index.d.ts');

  it('the fixtures are valid ws code: they type-check against @types/ws itself', () => {
    expect(typecheck([FIXTURE, CJS_FIXTURE], { wasmws: [WS_TYPES] })).toEqual([]);
  }, 120_000);

  it('the CommonJS fixture type-checks against our built dist/cjs/main.d.ts (require("wasmws") is a type and a namespace too)', () => {
    ensureDist(join(ROOT, 'dist', 'cjs', 'main.js'));
    expect(typecheck([CJS_FIXTURE], { wasmws: [join(ROOT, 'dist', 'cjs', 'main.d.ts')] })).toEqual([]);
  }, 120_000);

  it.each([
    ['src/index.ts', join(ROOT, 'src', 'index.ts')],
    ['the built dist/esm/index.d.ts', join(ROOT, 'dist', 'esm', 'index.d.ts')],
  ])('and against wasmws (%s), except the listed gaps; every option key of @types/ws exists in ours', (_, entry) => {
    if (entry.includes('dist')) ensureDist(join(ROOT, 'dist', 'esm', 'index.js'));
    // Option interfaces, key by key: a generated file asks tsc whether the keys we lack (or type
    // differently) are exactly the allow-listed ones, in both directions.
    const dir = mkdtempSync(join(tmpdir(), 'wasmws-options-'));
    const optionsFile = join(dir, 'options.ts');
    const union = (keys: string[]) => (keys.length ? keys.map((k) => JSON.stringify(k)).join(' | ') : 'never');
    const lines = [
      "import type * as Ws from 'ws';",
      "import type * as Ours from 'wasmws';",
      'type Missing<A, B> = Exclude<keyof A, keyof B>;',
      'type Incompatible<A, B> = { [K in keyof A & keyof B]-?: Exclude<A[K], undefined> extends Exclude<B[K], undefined> ? never : K }[keyof A & keyof B];',
    ];
    // Both directions, so that tsc names the offending keys: actual ⊆ listed, listed ⊆ actual.
    for (const name of ['ClientOptions', 'ServerOptions', 'PerMessageDeflateOptions'] as const) {
      for (const [what, list] of [['Missing', MISSING_OPTIONS], ['Incompatible', INCOMPATIBLE_OPTIONS]] as const) {
        const actual = `${what}<Ws.${name}, Ours.${name}>`;
        const listed = union(Object.keys(list[name]));
        const v = `${what}${name}`;
        lines.push(`declare const ${v}Actual: ${actual};`, `export const ${v}NotListed: ${listed} = ${v}Actual;`);
        lines.push(`declare const ${v}Listed: ${listed};`, `export const ${v}Stale: ${actual} = ${v}Listed;`);
      }
    }
    writeFileSync(optionsFile, lines.join('\n') + '\n');
    let diagnostics: string[];
    try {
      diagnostics = typecheck([FIXTURE, optionsFile], { wasmws: [entry], ws: [WS_TYPES] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const markers = gapMarkers();
    const unexpected: string[] = [];
    const hit = new Set<string>();
    for (const d of diagnostics) {
      const m = /ws-surface\.ts\((\d+),\d+\)/.exec(d);
      const id = m ? markers.get(Number(m[1])) : undefined;
      if (id && id in TYPE_GAPS) hit.add(id);
      else unexpected.push(d.replace(dir, '<generated>'));
    }
    expect(unexpected).toEqual([]);
    // Every listed gap is still a gap (remove the entry, and the marker, once it type-checks).
    expect([...hit].sort()).toEqual(Object.keys(TYPE_GAPS).sort());
  }, 120_000);
});

// ── (d) events ────────────────────────────────────────────────────────────────────────────

/**
 * An event argument as a comparable string: its kind (Buffer, IncomingMessage, …) and the parts
 * that must match (text, status, method). Error messages are compared where ws and we say the
 * same thing (handshake and system errors).
 */
function shape(v: unknown, lib: Lib): string {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  if (Buffer.isBuffer(v)) return `Buffer(${JSON.stringify(v.toString('latin1'))})`;
  if (v instanceof ArrayBuffer) return `ArrayBuffer(${JSON.stringify(Buffer.from(v).toString('latin1'))})`;
  if (Array.isArray(v)) return `[${v.map((x) => shape(x, lib)).join(', ')}]`;
  if (typeof v === 'string') return JSON.stringify(v.replace(/^(Sec-WebSocket-Accept: ).*$/, '$1<accept>'));
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v instanceof lib.WebSocket) return 'WebSocket';
  if (v instanceof http.IncomingMessage) return `IncomingMessage(${v.statusCode ?? `${v.method} ${v.url}`})`;
  if (v instanceof http.ClientRequest) return `ClientRequest(${v.method} ${v.path})`;
  if (v instanceof Error) {
    const code = (v as NodeJS.ErrnoException).code;
    return typeof code === 'string' && !code.startsWith('WS_ERR') ? `Error(${code})` : `Error(${v.message})`;
  }
  if (v instanceof Duplex) return 'Duplex';
  if (typeof v === 'object' && 'type' in v && 'target' in v) {
    // A browser-style event (ws's are classes with getters): its fields, with data shaped.
    const e = v as Record<string, unknown>;
    const fields = ['type', 'data', 'code', 'reason', 'wasClean', 'message', 'error'].filter((k) => k in e);
    return `Event(${fields.map((k) => `${k}=${shape(e[k], lib)}`).join(', ')}; target=${shape(e.target, lib)})`;
  }
  return typeof v;
}

const WS_EVENTS = ['open', 'message', 'close', 'error', 'ping', 'pong', 'upgrade', 'unexpected-response', 'redirect'];
const SERVER_EVENTS = ['connection', 'listening', 'error', 'close', 'headers', 'wsClientError'];

/** Record `events` of `emitter` into `log` as "name(shape, …)". */
function record(emitter: NodeJS.EventEmitter, events: string[], log: string[], lib: Lib, prefix = ''): void {
  for (const e of events) emitter.on(e, (...args: unknown[]) => log.push(`${prefix}${e}(${args.map((a) => shape(a, lib)).join(', ')})`));
}

/** Ports (ephemeral, different in each run) renamed :P1, :P2, … in order of appearance. */
function withoutPorts(record: unknown): any {
  const ports = new Map<string, string>();
  const json = JSON.stringify(record, (_k, v) => (v === undefined ? '<undefined>' : v));
  const renamed = json.replace(/127\.0\.0\.1:(\d+)/g, (_m, p: string) => {
    if (!ports.has(p)) ports.set(p, `P${ports.size + 1}`);
    return `127.0.0.1:${ports.get(p)}`;
  });
  return JSON.parse(renamed, (_k, v) => (v === '<undefined>' ? undefined : v));
}

/** Run `scenario` with ws, then with us: the records (ports aside) must be equal. Returns ws's. */
const sameAsWs = (scenario: (lib: Lib) => Promise<unknown>): Promise<any> => sameRecords(scenario, withoutPorts);

/** A plain HTTP server on 127.0.0.1:0 answering with `handler`; its port. */
async function httpServer(handler: http.RequestListener): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

/** Close an HTTP server and its sockets, bounded. */
async function closeHttp(server: http.Server): Promise<void> {
  server.closeAllConnections?.();
  await Promise.race([new Promise((r) => server.close(r)), sleep(1000)]);
}

/** Every event of every scenario below, so that the test can say none was left unexercised. */
const exercised = { client: new Set<string>(), server: new Set<string>() };
function noteEvents(log: string[], which: 'client' | 'server', prefix = ''): void {
  for (const l of log) if (l.startsWith(prefix)) exercised[which].add(l.slice(prefix.length).replace(/\(.*$/, ''));
}

describe('(d) events, side by side with ws (same scenario, same argument shapes)', () => {
  it('a connection: upgrade, open, message (text, binary), ping, pong, close; connection, headers, listening, close', async () => {
    const r = await sameAsWs(async (lib) => {
      const client: string[] = [];
      const server: string[] = [];
      const wss = new lib.WebSocketServer({ port: 0, host: '127.0.0.1' });
      record(wss, SERVER_EVENTS, server, lib);
      await nextEvent(wss, 'listening');
      wss.on('connection', (conn: any) => {
        record(conn, ['message', 'ping', 'pong', 'close', 'error'], server, lib, 'conn.');
        conn.send('text');
        conn.send(Buffer.from('bin'));
        conn.ping('server-ping');
        conn.on('message', (d: Buffer) => {
          if (String(d) === 'please close') conn.close(4000, 'bye');
        });
      });
      const ws = new lib.WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}/path?q`);
      record(ws, WS_EVENTS, client, lib);
      ws.on('ping', () => ws.ping('client-ping')); // after our automatic pong: the server sees pong, then ping
      ws.on('pong', () => ws.send('please close'));
      await nextEvent(ws, 'close');
      await until(() => server.some((l) => l.startsWith('conn.close')));
      wss.close();
      await nextEvent(wss, 'close');
      return { client, server, url: ws.url, readyState: ws.readyState };
    });
    expect(r.client).toEqual([
      'upgrade(IncomingMessage(101))',
      'open()',
      'message(Buffer("text"), false)',
      'message(Buffer("bin"), true)',
      'ping(Buffer("server-ping"))',
      'pong(Buffer("client-ping"))',
      'close(4000, Buffer("bye"))',
    ]);
    expect(r.server).toEqual([
      'listening()',
      'headers(["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: <accept>"], IncomingMessage(GET /path?q))',
      'connection(WebSocket, IncomingMessage(GET /path?q))',
      'conn.pong(Buffer("server-ping"))',
      'conn.ping(Buffer("client-ping"))',
      'conn.message(Buffer("please close"), false)',
      'conn.close(4000, Buffer("bye"))',
      'close()',
    ]);
    noteEvents(r.client, 'client');
    noteEvents(r.server.filter((l: string) => !l.startsWith('conn.')), 'server');
  });

  it('binaryType and the browser-style events (onopen, onmessage, addEventListener, onclose)', async () => {
    const r = await sameAsWs(async (lib) =>
      connected(lib, async (client, serverSide) => {
        const log: string[] = [];
        for (const bt of ['arraybuffer', 'fragments', 'nodebuffer']) {
          client.binaryType = bt;
          serverSide.send(Buffer.from(bt));
          const [data, isBinary] = await nextEvent(client, 'message');
          log.push(`${bt}: ${shape(data, lib)} ${isBinary}`);
        }
        client.onmessage = (ev: unknown) => log.push(`onmessage ${shape(ev, lib)}`);
        client.addEventListener('message', (ev: unknown) => log.push(`listener ${shape(ev, lib)}`), { once: true });
        serverSide.send('text');
        serverSide.send(Buffer.from('bin'));
        await until(() => log.filter((l) => l.startsWith('onmessage')).length === 2);
        client.onclose = (ev: unknown) => log.push(`onclose ${shape(ev, lib)}`);
        serverSide.close(1000, 'done');
        await until(() => log.some((l) => l.startsWith('onclose')));
        return log;
      }),
    );
    expect(r).toEqual([
      'arraybuffer: ArrayBuffer("arraybuffer") true',
      'fragments: [Buffer("fragments")] true',
      'nodebuffer: Buffer("nodebuffer") true',
      'onmessage Event(type="message", data="text"; target=WebSocket)',
      'listener Event(type="message", data="text"; target=WebSocket)',
      'onmessage Event(type="message", data=Buffer("bin"); target=WebSocket)',
      'onclose Event(type="close", code=1000, reason="done", wasClean=true; target=WebSocket)',
    ]);
  });

  it("a refused handshake: unexpected-response (request, response), or error then close when nobody listens", async () => {
    const { server, port } = await httpServer((_req, res) => res.writeHead(403).end('no'));
    try {
      const r = await sameAsWs(async (lib) => {
        const out: Record<string, string[]> = {};
        for (const listen of [true, false]) {
          const log: string[] = [];
          const ws = new lib.WebSocket(`ws://127.0.0.1:${port}/x`);
          // Recording 'unexpected-response' is listening to it: only in the first run.
          record(ws, listen ? WS_EVENTS : WS_EVENTS.filter((e) => e !== 'unexpected-response'), log, lib);
          if (listen) ws.on('unexpected-response', () => ws.close());
          await nextEvent(ws, 'close');
          out[listen ? 'listened' : 'not listened'] = log;
        }
        return out;
      });
      expect(r).toEqual({
        listened: [
          'unexpected-response(ClientRequest(GET /x), IncomingMessage(403))',
          'error(Error(WebSocket was closed before the connection was established))',
          'close(1006, Buffer(""))',
        ],
        'not listened': ['error(Error(Unexpected server response: 403))', 'close(1006, Buffer(""))'],
      });
      for (const log of Object.values(r) as string[][]) noteEvents(log, 'client');
    } finally {
      await closeHttp(server);
    }
  });

  it('a refused connection: error (ECONNREFUSED) then close 1006', async () => {
    const { server, port } = await httpServer(() => {});
    await closeHttp(server); // a port nobody listens on now
    const r = await sameAsWs(async (lib) => {
      const log: string[] = [];
      const ws = new lib.WebSocket(`ws://127.0.0.1:${port}`);
      record(ws, WS_EVENTS, log, lib);
      await nextEvent(ws, 'close');
      return { log, readyState: ws.readyState };
    });
    expect(r).toEqual({ log: ['error(Error(ECONNREFUSED))', 'close(1006, Buffer(""))'], readyState: 3 });
  });

  it("followRedirects: redirect (url, request) for each hop, credentials dropped across hosts unless someone listens", async () => {
    const r = await sameAsWs(async (lib) => {
      const wss = new lib.WebSocketServer({ port: 0, host: '127.0.0.1' });
      await nextEvent(wss, 'listening');
      const target = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/target`;
      const seen: Record<string, unknown>[] = [];
      wss.on('connection', (_c: unknown, req: http.IncomingMessage) => {
        const { authorization, cookie, 'x-keep': keep } = req.headers;
        seen.push({ url: req.url, authorization, cookie, keep });
      });
      // Two hops: /a → /b on the same host, then /b → the WebSocket server on another port.
      const { server, port } = await httpServer((req, res) => {
        res.writeHead(302, { Location: req.url === '/a' ? '/b' : target }).end();
      });
      const out: Record<string, unknown> = {};
      try {
        for (const listen of [false, true]) {
          const log: string[] = [];
          const ws = new lib.WebSocket(`ws://127.0.0.1:${port}/a`, {
            followRedirects: true,
            headers: { Authorization: 'Bearer t', Cookie: 'c=1', 'X-Keep': 'k' },
          });
          // Recording 'redirect' is listening to it: only in the second run.
          record(ws, listen ? WS_EVENTS : WS_EVENTS.filter((e) => e !== 'redirect'), log, lib);
          await nextEvent(ws, 'open');
          await until(() => seen.length > 0);
          out[listen ? 'listened' : 'not listened'] = { log: [...log], url: ws.url, seen: seen.pop() };
          ws.terminate();
        }
        const log: string[] = [];
        const ws = new lib.WebSocket(`ws://127.0.0.1:${port}/a`, { followRedirects: true, maxRedirects: 1 });
        record(ws, WS_EVENTS, log, lib);
        await nextEvent(ws, 'close');
        out['maxRedirects: 1'] = log;
      } finally {
        await closeHttp(server);
        for (const c of wss.clients) c.terminate();
        await Promise.race([new Promise((res) => wss.close(res)), sleep(2000)]);
      }
      return { target, first: `ws://127.0.0.1:${port}/a`, out };
    });
    // P1 is the WebSocket server's port, P2 the redirecting HTTP server's.
    expect(r.target).toBe('ws://127.0.0.1:P1/target');
    expect(r.first).toBe('ws://127.0.0.1:P2/a');
    const hops = ['redirect("ws://127.0.0.1:P2/b", ClientRequest(GET /b))', 'redirect("ws://127.0.0.1:P1/target", ClientRequest(GET /target))'];
    expect(r.out['not listened']).toEqual({
      log: ['upgrade(IncomingMessage(101))', 'open()'],
      url: r.target,
      seen: { url: '/target', authorization: undefined, cookie: undefined, keep: 'k' },
    });
    expect(r.out.listened).toEqual({
      log: [...hops, 'upgrade(IncomingMessage(101))', 'open()'],
      url: r.target,
      seen: { url: '/target', authorization: 'Bearer t', cookie: 'c=1', keep: 'k' },
    });
    expect(r.out['maxRedirects: 1']).toEqual([hops[0], 'error(Error(Maximum redirects exceeded))', 'close(1006, Buffer(""))']);
    noteEvents(r.out.listened.log, 'client');
  });

  it("the server's error: listening on a port in use", async () => {
    const { server, port } = await httpServer(() => {});
    try {
      const r = await sameAsWs(async (lib) => {
        const log: string[] = [];
        const wss = new lib.WebSocketServer({ port, host: '127.0.0.1' });
        record(wss, SERVER_EVENTS, log, lib);
        await until(() => log.length > 0);
        return log;
      });
      expect(r).toEqual(['error(Error(EADDRINUSE))']);
      noteEvents(r, 'server');
    } finally {
      await closeHttp(server);
    }
  });

  it.each([
    ['a bad key', { 'Sec-WebSocket-Key': 'short' }, 'GET', 'Missing or invalid Sec-WebSocket-Key header'],
    ['a bad version', { 'Sec-WebSocket-Version': 'x' }, 'GET', 'Missing or invalid Sec-WebSocket-Version header'],
    ['a bad subprotocol list', { 'Sec-WebSocket-Protocol': 'a,,b' }, 'GET', 'Invalid Sec-WebSocket-Protocol header'],
    ['a bad Upgrade header', { Upgrade: 'h2c' }, 'GET', 'Invalid Upgrade header'],
    ['POST', {}, 'POST', 'Invalid HTTP method'],
  ])("wsClientError (error, socket, request) for %s; the listener answers, not the server", async (_, headers, method, message) => {
    const r = await sameAsWs(async (lib) => {
      const log: string[] = [];
      const wss = new lib.WebSocketServer({ port: 0, host: '127.0.0.1' });
      await nextEvent(wss, 'listening');
      record(wss, SERVER_EVENTS.filter((e) => e !== 'listening'), log, lib);
      wss.on('wsClientError', (_err: Error, socket: Duplex) => setTimeout(() => socket.end('HTTP/1.1 418 Teapot\r\n\r\n'), 50));
      const sock = net.connect((wss.address() as AddressInfo).port, '127.0.0.1');
      const all = { Host: '127.0.0.1', Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13', ...headers };
      sock.write(`${method} / HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
      let response = '';
      sock.on('data', (d) => (response += d));
      await nextEvent(sock, 'close');
      wss.close();
      return { log, response };
    });
    expect(r).toEqual({ log: [`wsClientError(Error(${message}), Duplex, IncomingMessage(${method} /))`], response: 'HTTP/1.1 418 Teapot\r\n\r\n' });
    noteEvents(r.log, 'server');
  });

  it('send and ping take what ws takes: a number goes as text, ping(cb) calls back', async () => {
    const r = await sameAsWs(async (lib) =>
      connected(lib, async (client, serverSide) => {
        const got: string[] = [];
        serverSide.on('message', (d: Buffer, isBinary: boolean) => got.push(`${d} ${isBinary}`));
        client.send(42);
        let pinged = 'no';
        client.ping((err?: Error) => (pinged = `called ${err ?? 'without error'}`));
        await until(() => got.length === 1 && pinged !== 'no');
        return { got, pinged };
      }),
    );
    expect(r).toEqual({ got: ['42 false'], pinged: 'called without error' });
  });

  it(`a peer's protocol error: error then close, with the listed difference (${Object.keys(EVENT_DIFFERENCES)})`, async () => {
    const run = async (lib: Lib) => {
      let peer: unknown[] = [];
      const log: string[] = [];
      await withRoutedServer(
        lib,
        (conn, socket) => {
          conn.on('close', (code: number, reason: Buffer) => (peer = [code, String(reason)]));
          // Written on the server's TCP socket: an unmasked text frame, invalid UTF-8.
          socket.write(Buffer.from([0x81, 0x02, 0xff, 0xfe]));
        },
        async (url) => {
          const ws = new lib.WebSocket(url);
          ws.on('error', (e: Error & { code?: unknown }) => log.push(`error(${e.constructor.name}, ${JSON.stringify(e.code)}, ${e.message})`));
          ws.on('close', (code: number, reason: Buffer) => log.push(`close(${code}, ${JSON.stringify(String(reason))})`));
          await nextEvent(ws, 'close');
          await until(() => peer.length > 0);
        },
      );
      return { log, peer };
    };
    expect(await run(LIBS[0])).toEqual({
      log: ['error(Error, "WS_ERR_INVALID_UTF8", Invalid WebSocket frame: invalid UTF-8 sequence)', 'close(1006, "")'],
      peer: [1007, ''],
    });
    expect(await run(LIBS[1])).toEqual({
      log: ['error(ProtocolError, 1007, text message is not valid UTF-8)', 'close(1007, "")'],
      peer: [1007, 'text message is not valid UTF-8'],
    });
  });

  it("every event ws emits was exercised above, on both sides", () => {
    // Scenarios above ran in this file's order (vitest runs a file's tests sequentially).
    expect([...exercised.client].sort()).toEqual([...WS_EVENTS].sort());
    expect([...exercised.server].sort()).toEqual([...SERVER_EVENTS].sort());
  });
});
