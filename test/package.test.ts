// The package as users load it: the ws-style CommonJS entry and the ESM default export.
import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { once } from 'node:events';
import { join } from 'node:path';
import WebSocketDefault, { WebSocket, WebSocketServer } from '../src/index.js';
import { ensureDist } from './helpers.js';

const require = createRequire(import.meta.url);
const root = new URL('..', import.meta.url).pathname;

describe('package entry points', () => {
  it('ESM: the default export is the WebSocket class with WebSocket.Server, as ws', () => {
    expect(WebSocketDefault).toBe(WebSocket);
    expect(WebSocketDefault.Server).toBe(WebSocketServer);
    expect(WebSocketDefault.WebSocketServer).toBe(WebSocketServer);
  });

  it('CommonJS: require("wasmws") is the WebSocket class with every named export on it, and works end to end', async () => {
    const pkg = require(join(root, 'package.json')) as { main: string; exports: Record<string, { require: { default: string } }> };
    expect(pkg.exports['.'].require.default).toBe(pkg.main);
    ensureDist(join(root, pkg.main));
    const WS = require(join(root, pkg.main));
    expect(typeof WS).toBe('function');
    expect(WS.OPEN).toBe(1);
    for (const name of ['WebSocketServer', 'Server', 'createCodec', 'FrameParser', 'encodeFrame', 'mask', 'unmask']) {
      expect(typeof WS[name], name).toBe('function');
    }
    const wss = new WS.Server({ port: 0, host: '127.0.0.1' });
    await once(wss, 'listening');
    wss.on('connection', (ws: { on: Function; send: Function }) => ws.on('message', (d: Buffer, b: boolean) => ws.send(d, { binary: b })));
    const c = new WS(`ws://127.0.0.1:${wss.address().port}`);
    await once(c, 'open');
    c.send('from require');
    const [data] = await once(c, 'message');
    expect(String(data)).toBe('from require');
    c.terminate();
    await new Promise((r) => wss.close(r));
  });
});
