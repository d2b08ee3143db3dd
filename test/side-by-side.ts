// ws and wasmws side by side: the same scenario run against each, for tests that require the same
// observable behaviour (compat, stream, surface).
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import * as ours from '../src/index.js';
import { eventually } from './helpers.js';

const require = createRequire(import.meta.url);
const wsLib = require('ws');

export interface Lib {
  name: 'ws' | 'wasmws';
  WebSocket: any;
  WebSocketServer: any;
  createWebSocketStream: any;
}

export const LIBS: [Lib, Lib] = [
  { name: 'ws', WebSocket: wsLib.WebSocket, WebSocketServer: wsLib.WebSocketServer, createWebSocketStream: wsLib.createWebSocketStream },
  { name: 'wasmws', WebSocket: ours.WebSocket, WebSocketServer: ours.WebSocketServer, createWebSocketStream: ours.createWebSocketStream },
];

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Run `scenario` with ws, then with us: the two records (after `normalize`, e.g. ports taken out)
 * must be equal. Returns ws's.
 */
export async function sameAsWs(scenario: (lib: Lib) => Promise<unknown>, normalize: (r: unknown) => unknown = (r) => r): Promise<any> {
  const theirs = normalize(await scenario(LIBS[0]));
  const mine = normalize(await scenario(LIBS[1]));
  expect(mine).toEqual(theirs);
  return theirs;
}

/** A server of `lib` on 127.0.0.1:0 (`options` added); `fn(url, wss)`, then teardown. */
export async function withServer<T>(lib: Lib, options: object, fn: (url: string, wss: any) => Promise<T>): Promise<T> {
  const wss = new lib.WebSocketServer({ port: 0, host: '127.0.0.1', ...options });
  await eventually(wss, 'listening');
  try {
    return await fn(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, wss);
  } finally {
    for (const c of wss.clients) c.terminate();
    await Promise.race([new Promise((r) => wss.close(r)), sleep(2000)]);
  }
}
