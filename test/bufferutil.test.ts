// wasmws/bufferutil: bufferutil's exact semantics, and `ws` itself running on it.
import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mask, unmask } from '../src/bufferutil.js';
import { ensureDist, rng, randomBytes } from './helpers.js';

const require = createRequire(import.meta.url);
const native = require('bufferutil') as { mask: typeof mask; unmask: typeof unmask };
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

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

  it('is the bufferutil that ws loads unless Node has http.websocketMask, and ws round-trips masked traffic', async () => {
    // ws 8.23 (lib/buffer-util.js): `if (http.websocketMask)` use Node's websocketMask/Unmask, else
    // `require('bufferutil')`. Node 26 has them, so there ws never asks for bufferutil at all.
    const nodeMasks = typeof (require('node:http') as { websocketMask?: unknown }).websocketMask === 'function';
    // Load a fresh copy of ws with `require('bufferutil')` resolved to our CommonJS build, and note
    // whether ws asked for it.
    const Module = require('node:module') as { _resolveFilename: (r: string, ...a: unknown[]) => string };
    const ours = join(root, 'dist', 'cjs', 'bufferutil.js');
    ensureDist(ours);
    const wsDir = dirname(require.resolve('ws/package.json'));
    for (const k of Object.keys(require.cache)) if (k.startsWith(wsDir)) delete require.cache[k];
    // Count the calls that reach our module (ws calls it for payloads ≥ 48 / 32 bytes); wrapped
    // before ws loads, so ws gets the wrappers however it holds on to them.
    const mod = require(ours) as { mask: typeof mask; unmask: typeof unmask };
    const calls = { mask: 0, unmask: 0 };
    const [m, u] = [mod.mask, mod.unmask];
    mod.mask = (...a: Parameters<typeof mask>) => { calls.mask++; return m(...a); };
    mod.unmask = (...a: Parameters<typeof unmask>) => { calls.unmask++; return u(...a); };
    let requested = false;
    const orig = Module._resolveFilename;
    Module._resolveFilename = function (request: string, ...rest: unknown[]) {
      if (request !== 'bufferutil') return orig.call(this, request, ...rest);
      requested = true;
      return ours;
    };
    let freshWs: typeof import('ws');
    try {
      freshWs = require(join(wsDir, 'index.js'));
    } finally {
      Module._resolveFilename = orig;
    }
    try {
      const server = new freshWs.WebSocketServer({ port: 0, host: '127.0.0.1' });
      await once(server, 'listening');
      server.on('connection', (s) => s.on('message', (d, isBinary) => s.send(d, { binary: isBinary })));
      const port = (server.address() as { port: number }).port;
      const client = new freshWs.WebSocket(`ws://127.0.0.1:${port}`);
      await once(client, 'open');
      const payload = randomBytes(rng(5), 100_000);
      client.send(payload);
      const [data] = (await once(client, 'message')) as [Buffer];
      expect(data.equals(payload)).toBe(true); // on every runtime, whoever masks
      if (nodeMasks) {
        // Node ≥ 26: ws masks with Node's own functions and never requires bufferutil.
        expect(requested).toBe(false);
        expect(calls).toEqual({ mask: 0, unmask: 0 });
      } else {
        expect(requested).toBe(true);
        expect(calls.mask).toBeGreaterThan(0); // the client masked with our code
        expect(calls.unmask).toBeGreaterThan(0); // the server unmasked with our code
      }
      client.terminate();
      await new Promise((r) => server.close(r));
    } finally {
      mod.mask = m;
      mod.unmask = u;
      for (const k of Object.keys(require.cache)) if (k.startsWith(wsDir)) delete require.cache[k];
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
