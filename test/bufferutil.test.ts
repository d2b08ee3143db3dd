// wasmws/bufferutil: bufferutil's exact semantics, and `ws` itself running on it.
import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mask, unmask } from '../src/bufferutil.js';
import { ensureDist, rng, randomBytes } from './helpers.js';

const require = createRequire(import.meta.url);
const native = require('bufferutil') as { mask: typeof mask; unmask: typeof unmask };
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The child of the ws test: counts the calls that reach our module (ws calls it for payloads ≥ 48 /
 * 32 bytes; wrapped before ws loads, so ws gets the wrappers however it holds on to them), then
 * echoes 100 kB through ws's client and server on 127.0.0.1 and prints what it saw as JSON.
 */
const CHILD = `'use strict';
const ours = require(OURS);
const calls = { mask: 0, unmask: 0 };
const [m, u] = [ours.mask, ours.unmask];
ours.mask = (...a) => { calls.mask++; return m(...a); };
ours.unmask = (...a) => { calls.unmask++; return u(...a); };
const nodeMasks = typeof require('node:http').websocketMask === 'function';
const { WebSocket, WebSocketServer } = require('ws');
const payload = require('node:crypto').randomBytes(100000);
const server = new WebSocketServer({ port: 0, host: '127.0.0.1' }, () => {
  const client = new WebSocket('ws://127.0.0.1:' + server.address().port);
  client.on('open', () => client.send(payload));
  client.on('message', (data) => {
    const intact = Buffer.isBuffer(data) && data.equals(payload);
    console.log(JSON.stringify({ nodeMasks, requested: globalThis.bufferutilRequested === true, calls, intact }));
    client.terminate();
    server.close(() => process.exit(0));
  });
});
server.on('connection', (s) => s.on('message', (d, isBinary) => s.send(d, { binary: isBinary })));
setTimeout(() => { console.log(JSON.stringify({ error: 'timed out' })); process.exit(1); }, 15000).unref();
`;

describe('wasmws/bufferutil', () => {
  it('masks exactly like the native bufferutil at every size class, offset and key', () => {
    const next = rng(77);
    for (const size of [0, 1, 3, 7, 31, 48, 63, 64, 125, 255, 256, 1000, 4096, 70000, 1 << 20]) {
      const key = randomBytes(next, 4);
      const src = randomBytes(next, size);
      const offset = (next() * 9) | 0;
      const a = Buffer.alloc(size + offset + 3, 7);
      const b = Buffer.alloc(size + offset + 3, 7);
      mask(src, key, a, offset, size);
      native.mask(src, key, b, offset, size);
      expect(a.equals(b)).toBe(true);
    }
  });

  it('unmasks exactly like the native bufferutil, also on unaligned views', () => {
    const next = rng(78);
    for (const size of [0, 1, 5, 32, 100, 300, 5000, 65536, 300000]) {
      const key = randomBytes(next, 4);
      const backing = randomBytes(next, size + 3);
      const x = Buffer.from(backing).subarray(3);
      const y = Buffer.from(backing).subarray(3);
      unmask(x, key);
      native.unmask(y, key);
      expect(x.equals(y)).toBe(true);
    }
  });

  it('is the bufferutil that ws loads unless Node has http.websocketMask, and ws round-trips masked traffic', () => {
    // ws 8.23 (lib/buffer-util.js): `if (http.websocketMask)` use Node's websocketMask/Unmask, else
    // `require('bufferutil')`. Node 26 has them, so there ws never asks for bufferutil at all.
    // A child process runs a copy of ws from a node_modules where `bufferutil` is our CommonJS build
    // (what an npm alias gives), so that ws finds it by ordinary resolution.
    const ours = join(root, 'dist', 'cjs', 'bufferutil.js');
    ensureDist(ours);
    const dir = mkdtempSync(join(tmpdir(), 'wasmws-bufferutil-'));
    try {
      const modules = join(dir, 'node_modules');
      cpSync(dirname(require.resolve('ws/package.json')), join(modules, 'ws'), { recursive: true });
      mkdirSync(join(modules, 'bufferutil'));
      writeFileSync(join(modules, 'bufferutil', 'package.json'), JSON.stringify({ name: 'bufferutil', main: 'index.js' }));
      // Notes that ws asked for it, then is ours.
      writeFileSync(join(modules, 'bufferutil', 'index.js'), `globalThis.bufferutilRequested = true;\nmodule.exports = require(${JSON.stringify(ours)});\n`);
      writeFileSync(join(dir, 'child.cjs'), CHILD.replace('OURS', JSON.stringify(ours)));
      const env = { ...process.env };
      delete env.WS_NO_BUFFER_UTIL;
      const out = execFileSync(process.execPath, [join(dir, 'child.cjs')], { cwd: dir, env, encoding: 'utf8', timeout: 20_000 });
      const r = JSON.parse(out.trim().split('\n').pop()!) as { nodeMasks: boolean; requested: boolean; calls: { mask: number; unmask: number }; intact: boolean };
      expect(r.intact).toBe(true); // on every runtime, whoever masks
      if (r.nodeMasks) {
        // Node ≥ 26: ws masks with Node's own functions and never requires bufferutil.
        expect(r.requested).toBe(false);
        expect(r.calls).toEqual({ mask: 0, unmask: 0 });
      } else {
        expect(r.requested).toBe(true);
        expect(r.calls.mask).toBeGreaterThan(0); // the client masked with our code
        expect(r.calls.unmask).toBeGreaterThan(0); // the server unmasked with our code
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is exported by the package root too, so "bufferutil": "npm:wasmws" works as an alias', () => {
    // What require('bufferutil') resolves to under the alias: the package's CommonJS main.
    const main = (require(join(root, 'package.json')) as { main: string }).main;
    const pkg = require(join(root, main)) as Record<string, unknown>;
    expect(typeof pkg.mask).toBe('function');
    expect(typeof pkg.unmask).toBe('function');
  });
});
