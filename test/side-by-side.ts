// ws and wasmws side by side: the same scenario run against each, for tests that require the same
// observable behaviour (compat, stream, surface).
import { createRequire } from 'node:module';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { expect } from 'vitest';
import * as ours from '../src/index.js';
import { nextEvent, sleep, within } from './helpers.js';

export { sleep };

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
  await nextEvent(wss, 'listening');
  try {
    return await fn(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, wss);
  } finally {
    for (const c of wss.clients) c.terminate();
    await Promise.race([new Promise((r) => wss.close(r)), sleep(2000)]);
  }
}

/**
 * A server of `lib` whose upgrades the test routes itself (an http.Server, `noServer` and
 * handleUpgrade): `onConnection(ws, socket)` also gets the TCP socket the test handed over, so that
 * a scenario can play a misbehaving server by writing bytes of its own. Then `fn(url)`, then teardown.
 */
export async function withRoutedServer<T>(lib: Lib, onConnection: (ws: any, socket: Socket) => void, fn: (url: string) => Promise<T>): Promise<T> {
  const wss = new lib.WebSocketServer({ noServer: true });
  const server = http.createServer((_req, res) => res.writeHead(426).end());
  server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    wss.handleUpgrade(req, socket, head, (ws: any) => onConnection(ws, socket));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    return await fn(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    for (const c of wss.clients) c.terminate();
    await Promise.race([new Promise((r) => wss.close(r)), sleep(2000)]);
    server.closeAllConnections();
    await within(new Promise((r) => server.close(r)), { timeout: 2000 }).catch(() => {});
  }
}
