// Options and behaviours of ws that test/surface.test.ts found missing and that we now have, each
// run side by side with ws where ws has it: the server's WebSocket class option, the client's
// generateMask, finishRequest, URL credentials, ws+unix: URLs, request options passed through to
// http.request, verifyClient headers, 'upgrade' listeners that give up; and ours alone where ws
// has nothing to compare (protocolVersion, wss.path).
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import * as ours from '../src/index.js';
import { FrameParser } from '../src/protocol/parser.js';
import { spawnSync } from 'node:child_process';
import { ensureDist, nextEvent } from './helpers.js';
import { LIBS, sameAsWs, sleep, withServer, type Lib } from './side-by-side.js';

const require = createRequire(import.meta.url);
const wsLib = require('ws');





describe('server options', () => {
  it('WebSocket: connections are instances of the given subclass', async () => {
    const r = await sameAsWs((lib) => {
      class Mine extends lib.WebSocket {
        mine = true;
      }
      return withServer(lib, { WebSocket: Mine }, async (url, wss) => {
        const conn = nextEvent(wss, 'connection');
        const c = new lib.WebSocket(url);
        const [serverSide] = await conn;
        await nextEvent(c, 'open');
        serverSide.send('hi from the subclass');
        const [msg] = await nextEvent(c, 'message');
        c.terminate();
        return { subclass: serverSide instanceof Mine, field: serverSide.mine, base: serverSide instanceof lib.WebSocket, msg: String(msg) };
      });
    });
    expect(r).toEqual({ subclass: true, field: true, base: true, msg: 'hi from the subclass' });
  });

  it('verifyClient(info, cb): headers given to cb(false, …) are written as ws writes them (numbers, lists)', async () => {
    const r = await sameAsWs((lib) =>
      withServer(lib, { verifyClient: (_info: unknown, cb: Function) => cb(false, 403, 'nope', { 'X-Num': 5, 'X-List': ['a', 'b'] }) }, async (url) => {
        const c = new lib.WebSocket(url);
        c.on('error', () => {}); // terminate() while connecting emits one
        const res: http.IncomingMessage = await new Promise((resolve) => c.on('unexpected-response', (_req: unknown, res: http.IncomingMessage) => resolve(res)));
        c.terminate();
        return { status: res.statusCode, num: res.headers['x-num'], list: res.headers['x-list'] };
      }),
    );
    expect(r).toEqual({ status: 403, num: '5', list: 'a,b' });
  });

  it("wss.path is the path option ('' when any path is accepted); ws types it but leaves it unset", () => {
    expect(new ours.WebSocketServer({ noServer: true, path: '/chat' }).path).toBe('/chat');
    expect(new ours.WebSocketServer({ noServer: true }).path).toBe('');
    expect(new wsLib.WebSocketServer({ noServer: true, path: '/chat' }).path).toBeUndefined();
  });
});

/** A raw server that completes any handshake and hands back the client's request and first frame bytes. */
async function rawServer(): Promise<{ port: number; got: Promise<{ req: http.IncomingMessage; bytes: Buffer }>; close: () => Promise<void> }> {
  const server = http.createServer();
  const sockets: net.Socket[] = [];
  const got = new Promise<{ req: http.IncomingMessage; bytes: Buffer }>((resolve) => {
    server.on('upgrade', (req, socket, head) => {
      sockets.push(socket as net.Socket);
      const accept = ours.acceptKey(String(req.headers['sec-websocket-key']));
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      let bytes = Buffer.from(head);
      const check = () => {
        if (bytes.length >= 2 && bytes.length >= 2 + 4 + (bytes[1]! & 0x7f)) resolve({ req, bytes });
      };
      socket.on('data', (d: Buffer) => {
        bytes = Buffer.concat([bytes, d]);
        check();
      });
      check();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    got,
    close: async () => {
      for (const s of sockets) s.destroy(); // upgraded: no longer the HTTP server's to close
      server.closeAllConnections?.();
      await Promise.race([new Promise((r) => server.close(r)), sleep(1000)]);
    },
  };
}

describe('client options', () => {
  it('generateMask fills the masking key of each frame sent', async () => {
    const r = await sameAsWs(async (lib) => {
      const raw = await rawServer();
      try {
        let calls = 0;
        const c = new lib.WebSocket(`ws://127.0.0.1:${raw.port}`, {
          perMessageDeflate: false,
          generateMask: (mask: Buffer) => {
            calls++;
            mask.set([1, 2, 3, 4]);
          },
        });
        await nextEvent(c, 'open');
        c.send('hello');
        const { bytes } = await raw.got;
        c.terminate();
        const frame = new FrameParser({ role: 'server', maxPayload: 1024 }).push(Buffer.from(bytes))[0]!;
        return { key: [...bytes.subarray(2, 6)], payload: String(frame.payload), calls };
      } finally {
        await raw.close();
      }
    });
    expect(r).toEqual({ key: [1, 2, 3, 4], payload: 'hello', calls: 1 });
  });

  it('finishRequest(request, websocket) ends the upgrade request itself, after setting headers', async () => {
    const r = await sameAsWs((lib) =>
      withServer(lib, {}, async (url, wss) => {
        const conn = nextEvent(wss, 'connection');
        let given: unknown = null;
        const c = new lib.WebSocket(url, {
          finishRequest: (req: http.ClientRequest, websocket: unknown) => {
            given = websocket; // called from the constructor, before it returns
            req.setHeader('X-Late', 'set in finishRequest');
            req.end();
          },
        });
        const [, req] = await conn;
        await nextEvent(c, 'open');
        c.terminate();
        return { header: req.headers['x-late'], sawSocket: given === c };
      }),
    );
    expect(r).toEqual({ header: 'set in finishRequest', sawSocket: true });
  });

  it('credentials in the URL become Basic authorization (percent-decoded); the auth request option too', async () => {
    const r = await sameAsWs((lib) =>
      withServer(lib, {}, async (url, wss) => {
        const out: unknown[] = [];
        for (const [u, opts] of [
          [url.replace('ws://', 'ws://us%20er:p%40ss@'), {}],
          [url, { auth: 'opt:ion' }],
        ] as const) {
          const conn = nextEvent(wss, 'connection');
          const c = new lib.WebSocket(u, opts);
          const [, req] = await conn;
          await nextEvent(c, 'open');
          out.push(Buffer.from(String(req.headers.authorization).replace('Basic ', ''), 'base64').toString());
          out.push(c.url.includes('@') ? 'url keeps credentials' : 'url without credentials');
          c.terminate();
        }
        return out;
      }),
    );
    expect(r).toEqual(['us er:p@ss', 'url keeps credentials', 'opt:ion', 'url without credentials']);
  });

  it('ws+unix: URLs connect through a Unix socket (socket path, then ":" and the request path)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wasmws-ipc-'));
    try {
      const r = await sameAsWs(async (lib) => {
        const path = join(dir, `${lib.name}.sock`);
        const server = http.createServer();
        const wss = new lib.WebSocketServer({ server });
        await new Promise<void>((res) => server.listen(path, res));
        const conn = nextEvent(wss, 'connection');
        const c = new lib.WebSocket(`ws+unix://${path}:/chat?x=1`);
        const [serverSide, req] = await conn;
        await nextEvent(c, 'open');
        serverSide.send('over a unix socket');
        const [msg] = await nextEvent(c, 'message');
        c.terminate();
        await Promise.race([new Promise((res) => wss.close(res)), sleep(1000)]);
        server.closeAllConnections?.();
        await Promise.race([new Promise((res) => server.close(res)), sleep(1000)]);
        return { url: req.url, msg: String(msg), wsUrl: c.url === `ws+unix://${path}:/chat?x=1` };
      });
      expect(r).toEqual({ url: '/chat?x=1', msg: 'over a unix socket', wsUrl: true });
      expect(() => new ours.WebSocket('ws+unix:')).toThrow(SyntaxError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('request options reach http.request: createConnection and lookup are called, a ClientRequestArgs object is accepted', async () => {
    const r = await sameAsWs((lib) =>
      withServer(lib, {}, async (url) => {
        const calls: string[] = [];
        const c = new lib.WebSocket(url.replace('127.0.0.1', 'localhost'), {
          createConnection: (opts: net.NetConnectOpts, ...rest: unknown[]) => {
            calls.push('createConnection');
            void rest;
            return net.createConnection({ ...(opts as net.TcpNetConnectOpts), lookup: ((host: string, o: object, cb: Function) => {
              calls.push(`lookup ${host}`);
              cb(null, [{ address: '127.0.0.1', family: 4 }]);
            }) as never });
          },
        } as http.ClientRequestArgs);
        await nextEvent(c, 'open');
        c.terminate();
        return calls;
      }),
    );
    expect(r).toEqual(['createConnection', 'lookup localhost']);
  });

  it("an 'upgrade' listener that terminates: no open, error and close as for any aborted handshake", async () => {
    const r = await sameAsWs((lib) =>
      withServer(lib, {}, async (url) => {
        const c = new lib.WebSocket(url);
        const log: string[] = [];
        c.on('upgrade', () => {
          log.push('upgrade');
          c.terminate();
        });
        c.on('open', () => log.push('open'));
        c.on('error', (e: Error) => log.push(`error ${e.message}`));
        c.on('close', (code: number) => log.push(`close ${code}`));
        await nextEvent(c, 'close');
        await sleep(20);
        return log;
      }),
    );
    expect(r).toEqual(['upgrade', 'error WebSocket was closed before the connection was established', 'close 1006']);
  });

  it('protocolVersion: 13 is accepted; any other version throws RangeError (we speak RFC 6455 only)', () => {
    const c = new ours.WebSocket('ws://127.0.0.1:1', { protocolVersion: 13 });
    c.on('error', () => {});
    c.terminate();
    expect(() => new ours.WebSocket('ws://127.0.0.1:1', { protocolVersion: 8 })).toThrow(RangeError);
    // ws also throws for versions it does not speak (it speaks 8 and 13).
    expect(() => new wsLib.WebSocket('ws://127.0.0.1:1', { protocolVersion: 7 })).toThrow(RangeError);
  });

  it('url is the normalized href (http: → ws:, trailing slash), and a URL object passed in is not modified', () => {
    const u = new URL('http://127.0.0.1:1');
    for (const lib of LIBS) {
      const c = new lib.WebSocket(u);
      c.on('error', () => {});
      expect(c.url, lib.name).toBe('ws://127.0.0.1:1/');
      c.terminate();
    }
    expect(u.protocol).toBe('http:');
  });
});


// Found by a differential audit against ws 8 (each scenario run with ws, then with us; the records
// must be equal): what a program written for ws relies on.
describe('as ws behaves (differential)', () => {
  it.each([0, -1])('maxPayload: %i means no limit, on the server and on the client (a message above both defaults, 100 MiB)', async (maxPayload) => {
    await sameAsWs((lib) => withServer(lib, { maxPayload }, async (url, wss) => {
      wss.on('connection', (s: any) => s.on('message', (d: Buffer, bin: boolean) => s.send(d, { binary: bin })));
      const c = new lib.WebSocket(url, { maxPayload });
      await nextEvent(c, 'open');
      c.send(Buffer.alloc(100 * 1024 * 1024 + 1, 7));
      const [d] = await nextEvent<[Buffer]>(c, 'message');
      c.close();
      return { length: d.length };
    }));
  });

  it('handshakeTimeout: 0 means no deadline', async () => {
    await sameAsWs((lib) => withServer(lib, {}, async (url) => {
      const c = new lib.WebSocket(url, { handshakeTimeout: 0 });
      await nextEvent(c, 'open');
      c.close();
      return { opened: true };
    }));
  });

  it('terminate() after send() or close() in the same tick: the frames leave first', async () => {
    await sameAsWs((lib) => withServer(lib, {}, async (url, wss) => {
      const out: unknown[] = [];
      for (const how of ['send', 'close'] as const) {
        const conn = nextEvent<[any]>(wss, 'connection');
        const c = new lib.WebSocket(url);
        const [s] = await conn;
        await nextEvent(c, 'open');
        const msg = new Promise((r) => c.once('message', (d: Buffer) => r(String(d))));
        const closed = nextEvent<[number]>(c, 'close');
        const cb = new Promise((r) => (how === 'send' ? s.send('kicked', (err: Error | null) => r(err ?? null)) : (s.close(4000), r(null))));
        s.terminate();
        out.push({ how, cb: await cb, code: (await closed)[0], msg: how === 'send' ? await msg : null });
      }
      return out;
    }));
  });

  it("binaryType 'blob': binary messages arrive as a Blob", async () => {
    await sameAsWs((lib) => withServer(lib, {}, async (url, wss) => {
      wss.on('connection', (s: any) => s.send(Buffer.from('blob bytes')));
      const c = new lib.WebSocket(url);
      c.binaryType = 'blob';
      const [d] = await nextEvent<[Blob]>(c, 'message');
      c.close();
      return { blob: d instanceof Blob, text: await d.text(), binaryType: c.binaryType };
    }));
  });

  it('addEventListener: a function listener gets the WebSocket as `this`, and event objects of their own classes', async () => {
    await sameAsWs((lib) => withServer(lib, {}, async (url, wss) => {
      wss.on('connection', (s: any) => {
        s.send('hello');
        s.close(4001, 'bye');
      });
      const c = new lib.WebSocket(url);
      const seen: unknown[] = [];
      const done = new Promise<void>((resolve) => {
        for (const type of ['open', 'message', 'close']) {
          c.addEventListener(type, function (this: unknown, ev: any) {
            seen.push({ type: ev.type, self: this === c, target: ev.target === c, cls: ev.constructor.name, data: ev.data, code: ev.code, reason: ev.reason });
            if (type === 'close') resolve();
          });
        }
      });
      await done;
      return seen;
    }));
  });

  it('close() while CONNECTING aborts the handshake whatever its arguments, and the error comes on a later tick', async () => {
    await sameAsWs((lib) => withServer(lib, {}, async (url) => {
      const c = new lib.WebSocket(url);
      let inCall = true;
      const events: unknown[] = [];
      c.on('error', (e: Error) => events.push({ error: e.message, inCall }));
      const closed = new Promise((r) => c.on('close', (code: number) => r(code)));
      let threw = false;
      try {
        c.close(999, 'x'.repeat(200)); // invalid: ignored, as the connection is not open
      } catch {
        threw = true;
      }
      inCall = false;
      const code = await closed;
      return { threw, events, code, state: c.readyState };
    }));
  });

  it('send(null) sends an empty binary message; sends after close fail with the state named', async () => {
    await sameAsWs((lib) => withServer(lib, {}, async (url, wss) => {
      const got = new Promise((r) => wss.on('connection', (s: any) => s.on('message', (d: Buffer, bin: boolean) => r({ length: d.length, bin }))));
      const c = new lib.WebSocket(url);
      await nextEvent(c, 'open');
      c.send(null);
      const received = await got;
      c.close();
      await nextEvent(c, 'close');
      const err = await new Promise<Error>((r) => c.send('late', r));
      return { received, err: err.message };
    }));
  });

  it('a burst of sends in one tick larger than maxBackpressure all arrive (the limit judges what waits, not what this tick sent)', async () => {
    await sameAsWs((lib) => withServer(lib, { maxBackpressure: 1 << 20 }, async (url, wss) => {
      const conn = nextEvent<[any]>(wss, 'connection');
      const c = new lib.WebSocket(url);
      const [s] = await conn;
      await nextEvent(c, 'open');
      let n = 0;
      const all = new Promise<void>((r) => c.on('message', () => ++n === 8 && r()));
      const cbs: Promise<unknown>[] = [];
      for (let i = 0; i < 8; i++) cbs.push(new Promise((r) => s.send(Buffer.alloc(512 * 1024, i), (e: Error | null) => r(e ?? null))));
      await all;
      const errs = await Promise.all(cbs);
      c.close();
      return { n, errs };
    }));
  });

  it('the client makes a connection of its own for each handshake (no keep-alive pool): retries after a refusal reach the server', async () => {
    await sameAsWs(async (lib) => {
      let tcp = 0;
      const server = http.createServer();
      server.on('connection', () => tcp++);
      // Refused, and the server ends the connection (a keep-alive pool would hand that socket to the retry).
      server.on('upgrade', (_req: http.IncomingMessage, socket: net.Socket) => socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope'));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const outcomes: unknown[] = [];
      try {
        for (let i = 0; i < 3; i++) {
          const c = new lib.WebSocket(url);
          const seen: unknown[] = [];
          c.on('unexpected-response', (_req: unknown, res: http.IncomingMessage) => {
            seen.push(res.statusCode);
            res.resume();
            res.on('end', () => c.close());
          });
          c.on('error', (e: Error) => seen.push(e.message));
          await nextEvent(c, 'close');
          outcomes.push(seen);
        }
        return { outcomes, tcp };
      } finally {
        server.closeAllConnections();
        server.close();
      }
    });
  });
});

describe('client listeners that throw (test/fixtures/throwing-listeners.mjs, in a child: the exception is uncaught)', () => {
  const fixture = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'fixtures', 'throwing-listeners.mjs');
  const dist = join(fixture, '..', '..', '..', 'dist', 'esm', 'index.js');
  const run = (lib: string, kase: string) => {
    ensureDist(dist);
    const r = spawnSync(process.execPath, [fixture, lib, kase], { encoding: 'utf8', timeout: 15_000 });
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { seen: string[]; closed: { code: number; ms: number } | null; readyState: number };
  };
  it("an 'open' listener that throws: the exception is uncaught, and the client still reads (the message, the server's close), as ws", () => {
    const wsOut = run(join(require.resolve('ws'), '..', 'wrapper.mjs'), 'open');
    const out = run(dist, 'open');
    expect(out.seen).toEqual(['open', 'uncaught:open listener bug', 'message hi', 'server got close 1000']);
    expect(out.seen).toEqual(wsOut.seen);
    expect([out.closed?.code, out.readyState]).toEqual([1000, 3]);
  });
  it("a 'message' listener throwing on a message that came with the 101: 1011, and the server's answer is read (no wait for closeTimeout)", () => {
    const out = run(dist, 'head');
    expect(out.seen).toEqual(['open', 'message hi', 'uncaught:message listener bug', 'server got close 1011']);
    expect(out.closed?.code).toBe(1011);
    expect(out.closed!.ms).toBeLessThan(3000); // closeTimeout is 30 s
  });
});
