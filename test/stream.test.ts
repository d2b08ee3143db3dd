// createWebSocketStream, side by side with ws's: every scenario runs once with ws (client, server
// and stream) and once with ours, records what the stream and the peer saw, and the records must
// be equal — and match what the scenario means (so a shared mistake cannot pass).
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Duplex, DuplexOptions } from 'node:stream';
import { describe, expect, it } from 'vitest';
import * as ours from '../src/index.js';
import { nextEvent, until } from './helpers.js';
import { LIBS, sameAsWs, sleep, withRoutedServer, withServer, type Lib } from './side-by-side.js';

const require = createRequire(import.meta.url);
const wsLib = require('ws');




/** withServer with `onConnection(serverSide)` run for each connection. */
function withServerOn<T>(lib: Lib, onConnection: (ws: any) => void, fn: (url: string) => Promise<T>): Promise<T> {
  return withServer(lib, {}, (url, wss) => {
    wss.on('connection', onConnection);
    return fn(url);
  });
}


/** Record the stream's events, in order, as names. (Error classes differ: ws's RangeError is our ProtocolError.) */
function recordEvents(d: Duplex, log: string[]): void {
  for (const e of ['end', 'finish', 'close', 'error']) {
    d.on(e, (arg?: unknown) => log.push(e === 'error' ? `error:${arg instanceof Error}` : e));
  }
}

const echo = (server: any) => server.on('message', (d: Buffer, bin: boolean) => server.send(d, { binary: bin }));

describe('createWebSocketStream, side by side with ws', () => {
  it('pipes both ways: written chunks go as binary messages (after open), messages are read as chunks', async () => {
    const r = await sameAsWs((lib) => {
      const got: [string, boolean][] = [];
      return withServerOn(
        lib,
        (server) =>
          server.on('message', (d: Buffer, bin: boolean) => {
            got.push([String(d), bin]);
            server.send(`echo ${d}`);
          }),
        async (url) => {
          const client = new lib.WebSocket(url);
          const duplex = lib.createWebSocketStream(client);
          duplex.write('one'); // while CONNECTING: waits for 'open'
          const [chunk] = await nextEvent(duplex, 'data');
          duplex.write(Buffer.from('two'));
          const [chunk2] = await nextEvent(duplex, 'data');
          client.terminate();
          return { got, chunks: [Buffer.isBuffer(chunk), String(chunk), String(chunk2)] };
        },
      );
    });
    expect(r).toEqual({ got: [['one', true], ['two', true]], chunks: [true, 'echo one', 'echo two'] });
  });

  it('decodeStrings: false sends written strings as text messages', async () => {
    const r = await sameAsWs((lib) => {
      let seen: unknown[] = [];
      return withServerOn(
        lib,
        (server) => server.on('message', (d: Buffer, bin: boolean) => (seen = [String(d), bin])),
        async (url) => {
          const client = new lib.WebSocket(url);
          const duplex = lib.createWebSocketStream(client, { decodeStrings: false });
          duplex.write('text');
          await until(() => seen.length > 0);
          client.terminate();
          return seen;
        },
      );
    });
    expect(r).toEqual(['text', false]);
  });

  it('readableObjectMode reads text as strings and binary as Buffers; objectMode is forced off', async () => {
    const r = await sameAsWs((lib) =>
      withServerOn(
        lib,
        (server) => {
          server.send('text');
          server.send(Buffer.from('bin'));
        },
        async (url) => {
          const out: Record<string, unknown> = {};
          for (const options of [{ readableObjectMode: true }, { objectMode: true }, {}] as DuplexOptions[]) {
            const client = new lib.WebSocket(url);
            const duplex = lib.createWebSocketStream(client, options);
            const seen: string[] = [];
            duplex.on('data', (c: unknown) => seen.push(`${typeof c === 'string' ? 'string' : Buffer.isBuffer(c) ? 'buffer' : typeof c}:${c}`));
            await until(() => seen.join('').length >= 'string:textbuffer:bin'.length - 6);
            await sleep(20);
            out[JSON.stringify(options)] = { seen, readableObjectMode: duplex.readableObjectMode, writableObjectMode: duplex.writableObjectMode };
            client.terminate();
          }
          return out;
        },
      ),
    );
    expect(r['{"readableObjectMode":true}']).toEqual({ seen: ['string:text', 'buffer:bin'], readableObjectMode: true, writableObjectMode: false });
    expect(r['{"objectMode":true}'].readableObjectMode).toBe(false);
    expect(r['{}'].seen.every((s: string) => s.startsWith('buffer:'))).toBe(true);
  });

  it("ends the readable side when the WebSocket closes; end() then finishes and closes the stream", async () => {
    const r = await sameAsWs((lib) =>
      withServerOn(
        lib,
        (server) => server.close(1000, 'bye'),
        async (url) => {
          const log: string[] = [];
          const client = new lib.WebSocket(url);
          const duplex = lib.createWebSocketStream(client);
          recordEvents(duplex, log);
          duplex.resume();
          await nextEvent(duplex, 'end');
          await sleep(30);
          const before = [...log]; // 'end' alone: the writable side is still open
          duplex.end();
          await nextEvent(duplex, 'close');
          return { before, after: log, destroyed: duplex.destroyed, readyState: client.readyState };
        },
      ),
    );
    expect(r).toEqual({ before: ['end'], after: ['end', 'finish', 'close'], destroyed: true, readyState: 3 });
  });

  it('end() starts the closing handshake (the peer sees 1005), then finish, end and close', async () => {
    const r = await sameAsWs((lib) => {
      let peer: unknown[] = [];
      return withServerOn(
        lib,
        (server) => server.on('close', (code: number, reason: Buffer) => (peer = [code, String(reason)])),
        async (url) => {
          const log: string[] = [];
          const client = new lib.WebSocket(url);
          const duplex = lib.createWebSocketStream(client);
          recordEvents(duplex, log);
          duplex.resume();
          duplex.end('last'); // while CONNECTING: written and ended after 'open'
          await nextEvent(duplex, 'close');
          await until(() => peer.length > 0);
          return { log, peer, readyState: client.readyState };
        },
      );
    });
    expect(r).toEqual({ log: ['finish', 'end', 'close'], peer: [1005, ''], readyState: 3 });
  });

  it('pauses the WebSocket when the readable buffer is full and resumes it when read', async () => {
    const N = 200;
    const r = await sameAsWs((lib) =>
      withServerOn(
        lib,
        (server) => {
          for (let i = 0; i < N; i++) server.send(Buffer.alloc(1000, i));
        },
        async (url) => {
          const client = new lib.WebSocket(url);
          const duplex = lib.createWebSocketStream(client, { readableHighWaterMark: 4096 });
          let messages = 0;
          client.on('message', () => messages++);
          await until(() => client.isPaused);
          await sleep(50);
          // What was already read from the socket still arrives after pause() (ws: 33 KB here, us: one
          // 64 KiB socket read): bounded by the high-water mark plus one read, not all 200 KB.
          const whilePaused = { isPaused: client.isPaused, buffered: duplex.readableLength <= 4096 + 65536 + 1000, some: messages < N };
          let bytes = 0;
          duplex.on('data', (c: Buffer) => (bytes += c.length));
          await until(() => bytes === N * 1000);
          const after = { isPaused: client.isPaused, messages };
          client.terminate();
          return { whilePaused, after };
        },
      ),
    );
    expect(r).toEqual({ whilePaused: { isPaused: true, buffered: true, some: true }, after: { isPaused: false, messages: N } });
  });

  it('destroy() terminates the WebSocket (the peer sees 1006) and emits only close', async () => {
    const r = await sameAsWs((lib) => {
      let peer: unknown[] = [];
      return withServerOn(
        lib,
        (server) => server.on('close', (code: number) => (peer = [code])),
        async (url) => {
          const log: string[] = [];
          const client = new lib.WebSocket(url);
          await nextEvent(client, 'open');
          const duplex = lib.createWebSocketStream(client);
          recordEvents(duplex, log);
          duplex.destroy();
          await nextEvent(duplex, 'close');
          await until(() => peer.length > 0);
          return { log, peer, readyState: client.readyState };
        },
      );
    });
    expect(r).toEqual({ log: ['close'], peer: [1006], readyState: 3 });
  });

  it('destroy(err) emits that error, then close', async () => {
    const r = await sameAsWs((lib) =>
      withServerOn(lib, echo, async (url) => {
        const client = new lib.WebSocket(url);
        await nextEvent(client, 'open');
        const duplex = lib.createWebSocketStream(client);
        const err = new RangeError('mine');
        const log: string[] = [];
        recordEvents(duplex, log);
        let same = false;
        duplex.once('error', (e) => (same = e === err));
        duplex.destroy(err);
        await nextEvent(duplex, 'close');
        return { log, same };
      }),
    );
    expect(r).toEqual({ log: ['error:true', 'close'], same: true });
  });

  it("an error of the WebSocket destroys the stream with it, without cutting its close frame short", async () => {
    const r = await sameAsWs((lib) => {
      let peer: unknown[] = [];
      return withRoutedServer(
        lib,
        (server, socket) => {
          server.on('close', (code: number) => (peer = [code]));
          // An unmasked text frame holding invalid UTF-8, written on the server's TCP socket: the
          // client fails the connection with 1007.
          socket.write(Buffer.from([0x81, 0x02, 0xff, 0xfe]));
        },
        async (url) => {
          const client = new lib.WebSocket(url);
          const duplex = lib.createWebSocketStream(client);
          const log: string[] = [];
          recordEvents(duplex, log);
          duplex.resume();
          await nextEvent(duplex, 'close');
          await until(() => peer.length > 0);
          return { log, peer };
        },
      );
    });
    expect(r).toEqual({ log: ['error:true', 'close'], peer: [1007] });
  });

  it('a failed handshake errors the stream (end() while connecting waits for it)', async () => {
    const r = await sameAsWs(async (lib) => {
      const probe = new lib.WebSocketServer({ port: 0, host: '127.0.0.1' });
      await nextEvent(probe, 'listening');
      const port = (probe.address() as AddressInfo).port;
      await new Promise((res) => probe.close(res)); // a port nobody listens on
      const client = new lib.WebSocket(`ws://127.0.0.1:${port}`);
      const duplex = lib.createWebSocketStream(client);
      const log: string[] = [];
      let code = '';
      duplex.on('error', (e: NodeJS.ErrnoException) => (code = e.code ?? ''));
      recordEvents(duplex, log);
      duplex.end();
      await nextEvent(duplex, 'close');
      return { log, code, readyState: client.readyState };
    });
    expect(r).toEqual({ log: ['error:true', 'close'], code: 'ECONNREFUSED', readyState: 3 });
  });

  it('an unhandled stream error still throws (re-emitted when the stream has no other listener)', async () => {
    const r = await sameAsWs((lib) =>
      withServerOn(lib, echo, async (url) => {
        const client = new lib.WebSocket(url);
        await nextEvent(client, 'open');
        const duplex = lib.createWebSocketStream(client);
        // Our listener is added after the stream's own, so the stream sees one other listener: no re-emit.
        let count = 0;
        duplex.on('error', () => count++);
        duplex.emit('error', new Error('x'));
        await nextEvent(duplex, 'close');
        // With no listener of ours the error is re-emitted, and throws as an unhandled 'error' does.
        const client2 = new lib.WebSocket(url);
        await nextEvent(client2, 'open');
        const bare = lib.createWebSocketStream(client2);
        const err = new Error('unhandled');
        let thrown: unknown = null;
        try {
          bare.emit('error', err);
        } catch (e) {
          thrown = e;
        }
        await nextEvent(bare, 'close');
        return { count, destroyed: duplex.destroyed, rethrown: thrown === err, bareDestroyed: bare.destroyed };
      }),
    );
    expect(r).toEqual({ count: 1, destroyed: true, rethrown: true, bareDestroyed: true });
  });

  it('is on the default export and the CommonJS-style properties, as in ws', () => {
    expect(ours.default.createWebSocketStream).toBe(ours.createWebSocketStream);
    expect(wsLib.createWebSocketStream).toBe(wsLib.WebSocket.createWebSocketStream);
  });
});
