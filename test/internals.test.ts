// Private runtime APIs behind a guard: detected once, and WASMWS_INTERNALS=off forces the public
// fallbacks. The "fallback" vitest project reruns the codec, parser, protocol, deflate and
// conformance suites with WASMWS_INTERNALS=off, so both paths pass the same cases.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventEmitter, once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { runtimeInternals, WebSocket, WebSocketServer } from '../src/index.js';
import { ensureDist, until } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const forcedOff = /^(off|0|false|no)$/i.test(process.env.WASMWS_INTERNALS ?? '');

/** runtimeInternals() of a fresh process with this environment (the built package, ESM and CJS). */
function reportIn(env: Record<string, string | undefined>, kind: 'esm' | 'cjs'): unknown {
  const entry = join(root, 'dist', kind, kind === 'esm' ? 'index.js' : 'main.js');
  const code = kind === 'esm'
    ? `import(${JSON.stringify(entry)}).then((m) => console.log(JSON.stringify(m.runtimeInternals())))`
    : `console.log(JSON.stringify(require(${JSON.stringify(entry)}).runtimeInternals()))`;
  const r = spawnSync(process.execPath, ['-e', code], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

describe('private runtime APIs behind a guard', () => {
  it(`uses Node's internals here ${forcedOff ? 'not at all (WASMWS_INTERNALS=off)' : '(both detected on Node 20–26)'}`, () => {
    expect(runtimeInternals()).toEqual({ allowed: !forcedOff, bufferSpecies: !forcedOff, zlibSync: !forcedOff, compactEvents: !forcedOff });
  });

  it('WASMWS_INTERNALS=off turns every private API off in a fresh process, ESM and CJS; unset turns them on', () => {
    ensureDist(join(root, 'dist', 'cjs', 'main.js'));
    for (const kind of ['esm', 'cjs'] as const) {
      expect(reportIn({ WASMWS_INTERNALS: 'off' }, kind)).toEqual({ allowed: false, bufferSpecies: false, zlibSync: false, compactEvents: false });
      expect(reportIn({ WASMWS_INTERNALS: undefined }, kind)).toEqual({ allowed: true, bufferSpecies: true, zlibSync: true, compactEvents: true });
    }
  });
});

describe('a WebSocket\'s listener store (compact where runtimeInternals().compactEvents)', () => {
  /** The same sequence through the public EventEmitter API, as a transcript. */
  function transcript(e: EventEmitter): string {
    const log: string[] = [];
    const a = (x?: unknown) => log.push(`a${x}`);
    const b = (x?: unknown) => log.push(`b${x}`);
    e.on('newListener', (n) => log.push(`new:${String(n)}`));
    e.on('removeListener', (n) => log.push(`rm:${String(n)}`));
    e.on('message', a);
    e.once('message', b);
    e.prependOnceListener('pong', b);
    e.on('close', a);
    log.push(`count ${e.listenerCount('message')} ${e.listenerCount('toString')} ${e.listenerCount('__proto__')}`);
    log.push(`names ${e.eventNames().map(String).join(',')}`);
    log.push(`emit ${e.emit('message', 1)} ${e.emit('message', 2)} ${e.emit('pong', 3)} ${e.emit('pong', 4)} ${e.emit('constructor')}`);
    e.off('message', a);
    log.push(`names ${e.eventNames().map(String).join(',')} ${e.emit('message', 5)}`);
    e.on('error', (err: Error) => log.push(`error ${err.message}`));
    e.emit('error', new Error('x'));
    e.removeAllListeners();
    log.push(`end ${e.eventNames().length} ${e.emit('close', 6)}`);
    return log.join(';');
  }
  it('behaves exactly as a plain EventEmitter (server side and client side)', async () => {
    const want = transcript(new EventEmitter());
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await once(wss, 'listening');
    const serverSide = once(wss, 'connection');
    const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
    try {
      expect(transcript(client)).toBe(want); // as constructed, before any listener of ours
      const [ws] = (await serverSide) as [WebSocket];
      expect(transcript(ws)).toBe(want);
      await once(client, 'open');
      const got: string[] = [];
      ws.on('message', (m) => got.push(String(m)));
      client.send('after');
      await until(() => got.length === 1);
      expect(got).toEqual(['after']);
    } finally {
      client.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    }
  });
});
