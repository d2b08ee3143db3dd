// Fair reading under load (src/node/transport.ts): with many busy connections, a connection whose
// turn's budget is spent stops reading and waits its turn. Whatever is held back and released, every
// byte is processed once and in order, pause()/resume() by the application still hold, and a close
// while held completes. (How fast new connections open under load is a benchmark: bench/accept.mjs.)
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket as WS } from 'ws';
import { WebSocketServer, type WebSocket } from '../src/index.js';
import { nextEvent, until } from './helpers.js';

describe('fair reading under load', () => {
  let wss: WebSocketServer | null = null;
  afterEach(async () => {
    await new Promise<void>((resolve) => (wss ? wss.close(() => resolve()) : resolve()));
    wss = null;
  });

  it('echoes every message of 40 pipelining connections exactly once and in order, with pauses and a close on the way', async () => {
    wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await nextEvent(wss, 'listening');
    const port = (wss.address() as { port: number }).port;
    let serverSide = 0;
    wss.on('connection', (ws: WebSocket) => {
      const id = serverSide++;
      ws.on('message', (d, isBinary) => ws.send(d as Buffer, { binary: isBinary }));
      if (id % 4 === 1) {
        // The application pauses now and then: a held connection stays paused until it resumes.
        let flips = 0;
        const t = setInterval(() => {
          if (ws.readyState !== ws.OPEN) return clearInterval(t);
          if (flips++ > 40) {
            clearInterval(t);
            ws.resume(); // ends resumed
            return;
          }
          if (ws.isPaused) ws.resume();
          else ws.pause();
        }, 7);
        ws.on('close', () => clearInterval(t));
      }
    });
    const N = 40;
    const M = 3000;
    const payload = (i: number) => {
      const b = Buffer.alloc(200, i & 0xff);
      b.writeUInt32BE(i, 0);
      return b;
    };
    const results = await Promise.all(Array.from({ length: N }, async (_, c) => {
      const ws = new WS(`ws://127.0.0.1:${port}/`);
      // Not a timing test (accepting under load is measured by bench/accept.mjs): in a loaded CI
      // run, the last of 40 handshakes can wait seconds behind the first ones' echo traffic.
      await nextEvent(ws, 'open', { timeout: 30_000 });
      const got: number[] = [];
      let bad = 0;
      ws.on('message', (d: Buffer) => {
        const i = d.readUInt32BE(0);
        if (!d.equals(payload(i))) bad++;
        got.push(i);
      });
      const closeAt = c === 7 ? 1500 : M; // one client closes half way
      for (let i = 0; i < closeAt; i++) ws.send(payload(i));
      await until(() => got.length >= closeAt, { timeout: 60_000, interval: 20, what: `client ${c}: ${closeAt} echoes` });
      const closed = nextEvent<[number]>(ws, 'close');
      ws.close(1000);
      const [code] = await closed;
      return { c, got, bad, code, closeAt };
    }));
    for (const r of results) {
      expect(r.bad).toBe(0);
      expect(r.got).toEqual(Array.from({ length: r.closeAt }, (_, i) => i));
      expect(r.code).toBe(1000);
    }
    await until(() => wss!.clients.size === 0, { timeout: 10_000, what: 'server side closed' });
  }, 90_000);
});
