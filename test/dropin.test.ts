// The README's drop-in recipe, run the way a user runs it: `npm pack` this package, a scratch project
// next to `ws`, plain `npm install` (no --legacy-peer-deps), then a `ws` server and client in a child
// `node` of that project. Two spellings of the dependency:
//   - `file:` the packed tarball;
//   - the README's own `npm:wasmws@^0.1.0`, served by a local registry (wasmws is not on the public
//     one) that hands out our tarball as wasmws@0.1.0 and relays every other request upstream.
// `ws` declares `peerOptional bufferutil@^4.0.1`; our alias is version 0.1.0, so npm refuses it with
// ERESOLVE unless `overrides` points that peer at the alias. And `ws` 8.23 prefers Node's own
// `http.websocketMask` / `http.websocketUnmask` when they exist (Node 26), so only where they do not
// does `ws` load and call our functions.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { ensureDist } from './helpers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const WS_VERSION = '8.23.0'; // our devDependency
const OVERRIDES = { bufferutil: '$bufferutil' };

/** The user's environment: no npm_* variables from an enclosing `npm test`, no WS_NO_BUFFER_UTIL. */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'WS_NO_BUFFER_UTIL') env[k] = v;
  return env;
}

interface Run { code: number; out: string }

/** Run a command asynchronously (the local registry lives in this process, so no spawnSync). */
function run(cmd: string, args: string[], cwd: string, timeout = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env: userEnv(), timeout, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, out: `${stdout}\n${stderr}` });
    });
  });
}

const INSTALL = ['install', '--prefer-offline', '--no-audit', '--no-fund'];

// Runs in the scratch project with the runtime under test. `probe`: does loading ws load our module?
// `echo`: count calls into our exports (wrapped before ws is loaded, so ws sees the wrappers whatever
// it does with them) while a ws client and server echo masked binary messages.
const CHILD = String.raw`'use strict';
const http = require('node:http');
const out = {
  node: process.version,
  nodeMask: typeof http.websocketMask === 'function',
  nodeUnmask: typeof http.websocketUnmask === 'function',
  resolved: require.resolve('bufferutil'),
  name: require('bufferutil/package.json').name,
};
function done() { process.stdout.write(JSON.stringify(out) + '\n'); process.exit(0); }
if (process.argv[2] === 'probe') {
  require('ws');
  out.loadedByWs = out.resolved in require.cache;
  done();
}
const bu = require('bufferutil');
const sub = require('bufferutil/bufferutil');
out.sameAsSubpath = bu.mask === sub.mask && bu.unmask === sub.unmask;
out.calls = { mask: 0, unmask: 0 };
for (const k of ['mask', 'unmask']) {
  const f = bu[k];
  bu[k] = function (...a) { out.calls[k]++; return f.apply(this, a); };
}
const { WebSocket, WebSocketServer } = require('ws');
const sizes = [48, 100, 1000, 65536, 100000];
out.sizes = sizes;
const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
wss.on('connection', (s) => s.on('message', (d, isBinary) => s.send(d, { binary: isBinary })));
wss.on('listening', () => {
  const c = new WebSocket('ws://127.0.0.1:' + wss.address().port);
  const sent = [];
  out.echoed = 0;
  c.on('open', () => {
    for (const n of sizes) {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = (i * 31 + n) & 255;
      sent.push(b);
      c.send(b);
    }
  });
  c.on('message', (d) => {
    if (Buffer.compare(d, sent[out.echoed]) === 0) out.echoed++;
    else { out.mismatch = out.echoed; done(); }
    if (out.echoed === sizes.length) { c.terminate(); wss.close(done); }
  });
  c.on('error', (e) => { out.error = String(e); done(); });
});
setTimeout(() => { out.error = 'timed out'; done(); }, 20000).unref();
`;

interface Probe { node: string; nodeMask: boolean; nodeUnmask: boolean; resolved: string; name: string; loadedByWs: boolean }
interface Echo extends Omit<Probe, 'loadedByWs'> {
  sameAsSubpath: boolean;
  calls: { mask: number; unmask: number };
  sizes: number[];
  echoed: number;
  mismatch?: number;
  error?: string;
}

async function child<T>(dir: string, mode: 'probe' | 'echo'): Promise<T> {
  const r = await run(process.execPath, ['dropin-child.cjs', mode], dir, 30_000);
  expect(r.code, r.out).toBe(0);
  return JSON.parse(r.out.trim().split('\n')[0]) as T;
}

/** One file of a .tgz (ustar), as npm pack writes it. */
function fileInTarball(tgz: Buffer, name: string): string {
  const tar = gunzipSync(tgz);
  for (let at = 0; at + 512 <= tar.length; ) {
    const field = (o: number, n: number) => tar.subarray(at + o, at + o + n).toString('latin1').replace(/\0.*$/s, '');
    if (field(0, 100) === '') break;
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const path = (field(345, 155) ? field(345, 155) + '/' : '') + field(0, 100);
    if (path === name) return tar.subarray(at + 512, at + 512 + size).toString('utf8');
    at += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error(`${name} not in the tarball`);
}

/** A registry that knows one package, wasmws@0.1.0 (our tarball), and relays the rest upstream. */
function startRegistry(tgz: Buffer, manifest: Record<string, unknown>, upstream: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    if (req.url === '/wasmws') {
      const dist = {
        tarball: `${url}/wasmws/-/wasmws-0.1.0.tgz`,
        shasum: createHash('sha1').update(tgz).digest('hex'),
        integrity: 'sha512-' + createHash('sha512').update(tgz).digest('base64'),
      };
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ name: 'wasmws', 'dist-tags': { latest: '0.1.0' }, versions: { '0.1.0': { ...manifest, dist } } }));
      return;
    }
    if (req.url === '/wasmws/-/wasmws-0.1.0.tgz') {
      res.end(tgz);
      return;
    }
    fetch(upstream.replace(/\/$/, '') + req.url, { headers: { accept: req.headers.accept ?? '*/*' } })
      .then(async (r) => {
        res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/octet-stream' });
        res.end(Buffer.from(await r.arrayBuffer()));
      })
      .catch((e) => {
        res.writeHead(502);
        res.end(String(e));
      });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
        close: () => new Promise((r) => server.close(() => r())),
      }));
  });
}

describe('the README drop-in recipe, installed and run as a user would', () => {
  let work = '';
  let tgzPath = '';
  let registry: { url: string; close: () => Promise<void> } | undefined;

  beforeAll(async () => {
    ensureDist(join(ROOT, 'dist', 'cjs', 'main.js'));
    work = mkdtempSync(join(tmpdir(), 'wasmws-dropin-'));
    // --ignore-scripts: `prepare` would rebuild dist/ (wasm included) under tests running beside us.
    const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT);
    expect(pack.code, pack.out).toBe(0);
    const filename = (JSON.parse(pack.out.slice(pack.out.indexOf('['), pack.out.lastIndexOf(']') + 1)) as { filename: string }[])[0].filename;
    tgzPath = join(work, filename);
    const manifest = JSON.parse(fileInTarball(readFileSync(tgzPath), 'package/package.json')) as Record<string, unknown>;
    const upstream = (await run('npm', ['config', 'get', 'registry'], work)).out.trim().split('\n')[0] || 'https://registry.npmjs.org/';
    registry = await startRegistry(readFileSync(tgzPath), manifest, upstream);
  }, 120_000);

  afterAll(async () => {
    await registry?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const forms = [
    { name: 'file: the packed tarball', spec: () => `file:${tgzPath}`, args: () => [] as string[] },
    { name: 'README form npm:wasmws@^0.1.0 (local registry)', spec: () => 'npm:wasmws@^0.1.0', args: () => ['--registry', registry!.url] },
  ];

  function project(id: string, spec: string, overrides: boolean): string {
    const dir = join(work, id);
    mkdirSync(dir);
    const pkg: Record<string, unknown> = { name: `scratch-${id}`, version: '1.0.0', private: true, dependencies: { ws: WS_VERSION, bufferutil: spec } };
    if (overrides) pkg.overrides = OVERRIDES;
    writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg, null, 2));
    writeFileSync(join(dir, 'dropin-child.cjs'), CHILD);
    return dir;
  }

  forms.forEach((form, i) => {
    it(`${form.name}: without "overrides", plain npm install fails with ERESOLVE on ws's peerOptional bufferutil`, async () => {
      const dir = project(`plain-${i}`, form.spec(), false);
      const r = await run('npm', [...INSTALL, ...form.args()], dir);
      expect(r.code, r.out).not.toBe(0);
      expect(r.out).toContain('ERESOLVE');
      expect(r.out).toContain(`peerOptional bufferutil@"^4.0.1" from ws@${WS_VERSION}`);
      expect(r.out).toContain('Found: bufferutil@0.1.0');
    }, 60_000);

    it(`${form.name}: with "overrides": {"bufferutil": "$bufferutil"} it installs, and ws calls our code iff Node has no http.websocketMask`, async () => {
      const dir = project(`overrides-${i}`, form.spec(), true);
      const r = await run('npm', [...INSTALL, ...form.args()], dir);
      expect(r.code, r.out).toBe(0);
      const installed = JSON.parse(readFileSync(join(dir, 'node_modules', 'bufferutil', 'package.json'), 'utf8')) as { name: string; version: string };
      expect(installed).toMatchObject({ name: 'wasmws', version: '0.1.0' });
      expect((JSON.parse(readFileSync(join(dir, 'node_modules', 'ws', 'package.json'), 'utf8')) as { version: string }).version).toBe(WS_VERSION);

      const probe = await child<Probe>(dir, 'probe');
      const echo = await child<Echo>(dir, 'echo');
      for (const x of [probe, echo]) {
        expect(x.node).toBe(process.version);
        expect(x.name).toBe('wasmws');
        expect(x.resolved).toBe(join(dir, 'node_modules', 'bufferutil', 'dist', 'cjs', 'main.js'));
        expect(x.nodeUnmask).toBe(x.nodeMask); // Node ships both or neither; ws tests websocketMask
      }
      // require('bufferutil') hands ws the very functions of wasmws/bufferutil.
      expect(echo.sameAsSubpath).toBe(true);
      // ws echoes every message correctly on every runtime, whoever masks.
      expect(echo.error).toBeUndefined();
      expect(echo.mismatch).toBeUndefined();
      expect(echo.echoed).toBe(echo.sizes.length);
      if (!probe.nodeMask) {
        // Node 20–24: ws loads our module and masks (client) and unmasks (server) every message with it.
        expect(probe.loadedByWs).toBe(true);
        expect(echo.calls.mask).toBeGreaterThanOrEqual(echo.sizes.length);
        expect(echo.calls.unmask).toBeGreaterThanOrEqual(echo.sizes.length);
      } else {
        // Node ≥ 26: ws uses Node's own websocketMask/Unmask and never even loads bufferutil.
        expect(probe.loadedByWs).toBe(false);
        expect(echo.calls).toEqual({ mask: 0, unmask: 0 });
      }
    }, 60_000);
  });
});
