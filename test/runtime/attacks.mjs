// Hostile bytes over a raw TCP socket (node:net): each must close that connection with the right
// code, and the server must keep serving a fresh client afterwards.
import { Buffer } from 'node:buffer';
import { test, eq, ok, deepEq, sleep, MiB } from './harness.mjs';
import { startServer, openOurs, RawClient, upgradeRequest } from './peers.mjs';

const KEY = [0x37, 0xfa, 0x21, 0x3d];

/** A client frame header (and optional payload) built by hand, masked with KEY when `masked`. */
function frame({ opcode, payload = Buffer.alloc(0), declared, masked = true, fin = true, rsv = 0 }) {
  const len = declared ?? BigInt(payload.length);
  const m = masked ? 0x80 : 0;
  const bytes = [(fin ? 0x80 : 0) | (rsv << 4) | opcode];
  if (declared !== undefined || len > 0xffffn) {
    bytes.push(m | 127);
    for (let i = 7; i >= 0; i--) bytes.push(Number((len >> BigInt(i * 8)) & 0xffn));
  } else if (len > 125n) bytes.push(m | 126, Number(len >> 8n) & 0xff, Number(len) & 0xff);
  else bytes.push(m | Number(len));
  const body = Buffer.from(payload);
  if (masked) {
    bytes.push(...KEY);
    for (let i = 0; i < body.length; i++) body[i] ^= KEY[i & 3];
  }
  return Buffer.concat([Buffer.from(bytes), body]);
}

let shared;
const attackServer = () => (shared ??= startServer({ maxPayload: MiB }));

async function stillServes(url, conns) {
  const peer = await openOurs(url, undefined, { perMessageDeflate: false });
  await conns.next(5000); // its server side, so the next attack's conns.next() is the attacker
  try {
    peer.send('still alive');
    const m = await peer.messages.next(5000);
    eq(m.text, 'still alive', 'echo for a fresh client');
  } finally {
    peer.close(1000);
  }
}

export function attackTests() {
  const cases = [
    ['a 64-bit length of 2^63 − 1 (MSB clear, > 2^53)', () => [frame({ opcode: 2, declared: 2n ** 63n - 1n })], [1009]],
    ['a 64-bit length of 2^64 − 1 (MSB set)', () => [frame({ opcode: 2, declared: 2n ** 64n - 1n })], [1002]],
    ['a 64-bit length of 2^53, header sent one byte at a time', () => [...frame({ opcode: 2, declared: 2n ** 53n })].map((b) => Buffer.from([b])), [1009]],
    ['a 64-bit length of maxPayload + 1 (only the header sent)', () => [frame({ opcode: 2, declared: BigInt(MiB + 1) })], [1009]],
    ['an unmasked client frame', () => [frame({ opcode: 1, payload: Buffer.from('hello'), masked: false })], [1002]],
    ['reserved data opcode 3', () => [frame({ opcode: 3, payload: Buffer.from('x') })], [1002]],
    ['reserved control opcode 0xB', () => [frame({ opcode: 0xb })], [1002]],
    ['RSV1 without permessage-deflate', () => [frame({ opcode: 1, payload: Buffer.from('x'), rsv: 4 })], [1002]],
    ['a 126-byte ping', () => [frame({ opcode: 9, payload: Buffer.alloc(126) })], [1002]],
    ['a continuation frame with no message begun', () => [frame({ opcode: 0, payload: Buffer.from('x') })], [1002]],
    ['invalid UTF-8 in a text frame', () => [frame({ opcode: 1, payload: Buffer.from([0x68, 0xc3, 0x28]) })], [1007]],
  ];
  for (const [name, chunks, codes] of cases) {
    test(`attack: ${name} → close ${codes.join(' or ')}, and the server keeps serving`, async () => {
      const { port, url, conns } = await attackServer();
      const bad = await RawClient.connect(port);
      try {
        ok(/^HTTP\/1\.1 101/.test(bad.response), `handshake: ${bad.response.split('\r\n')[0]}`);
        const conn = await conns.next();
        const parts = chunks();
        for (const p of parts) {
          bad.send(p);
          if (parts.length > 1) await sleep(1);
        }
        await bad.until(() => bad.closeFrame() !== undefined || bad.closed, 5000, 'the server\'s close frame');
        const cf = bad.closeFrame();
        ok(cf, `no close frame before the socket closed (frames: ${bad.frames.map((f) => f.opcode).join(',')})`);
        ok(codes.includes(cf.code), `close code: expected ${codes.join(' or ')}, got ${cf.code}`);
        eq((await conn.waitClosed(5000)).code, cf.code, 'close code reported by the server-side connection');
        await bad.until(() => bad.closed, 5000, 'the server to close the TCP connection');
        await stillServes(url, conns);
      } finally {
        bad.destroy();
      }
    });
  }

  test('attack: a garbage request and a bad Sec-WebSocket-Key get no upgrade, and the server keeps serving', async () => {
    const { port, url, conns } = await attackServer();
    const garbage = await RawClient.connect(port, 'NOT HTTP AT ALL\r\n\r\n');
    await garbage.until(() => garbage.closed || garbage.response !== '', 5000, 'an answer to garbage');
    ok(!/^HTTP\/1\.1 101/.test(garbage.response), `garbage was upgraded: ${garbage.response}`);
    garbage.destroy();
    const badKey = await RawClient.connect(port, 'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n');
    await badKey.until(() => badKey.response !== '' || badKey.closed, 5000, 'an answer to a bad key');
    ok(/^HTTP\/1\.1 400/.test(badKey.response), `bad Sec-WebSocket-Key: expected 400, got ${JSON.stringify(badKey.response.split('\r\n')[0])}`);
    badKey.destroy();
    await stillServes(url, conns);
  });
}

/** Well-formed traffic over raw TCP, split and coalesced in ways a runtime's socket layer may differ on. */
export function rawTcpTests() {
  test('raw TCP: a masked frame sent one byte at a time (one write each) is echoed', async () => {
    const { port, conns } = await attackServer();
    const c = await RawClient.connect(port);
    try {
      await conns.next();
      const bytes = frame({ opcode: 1, payload: Buffer.from('one byte at a time, héllo') });
      for (const b of bytes) {
        c.send(Buffer.from([b]));
        await sleep(1);
      }
      await c.until(() => c.frames.length > 0, 5000, 'the echo');
      eq(c.frames[0].payload.toString(), 'one byte at a time, héllo', 'echo');
    } finally {
      c.destroy();
    }
  });

  test('raw TCP: the upgrade request and two frames in one write (frames arrive as the handshake\'s head)', async () => {
    const { port, conns } = await attackServer();
    const both = Buffer.concat([Buffer.from(upgradeRequest('/')), frame({ opcode: 1, payload: Buffer.from('in the head') }), frame({ opcode: 2, payload: Buffer.from([1, 2, 3]) })]);
    const c = await RawClient.connect(port, both);
    try {
      await conns.next();
      ok(/^HTTP\/1\.1 101/.test(c.response), `handshake: ${c.response.split('\r\n')[0]}`);
      await c.until(() => c.frames.length >= 2, 5000, 'two echoes');
      eq(c.frames[0].payload.toString(), 'in the head', 'first echo');
      deepEq([c.frames[1].opcode, ...c.frames[1].payload], [2, 1, 2, 3], 'second echo');
    } finally {
      c.destroy();
    }
  });

  test('raw TCP: 2000 frames in one write are echoed in order, and a 1 MiB frame in odd-sized pieces', async () => {
    const { port, conns } = await attackServer();
    const c = await RawClient.connect(port);
    try {
      await conns.next();
      const frames = [];
      for (let i = 0; i < 2000; i++) frames.push(frame({ opcode: 1, payload: Buffer.from(`m${i}`) }));
      c.send(Buffer.concat(frames));
      await c.until(() => c.frames.length >= 2000, 5000, '2000 echoes');
      for (let i = 0; i < 2000; i++) eq(c.frames[i].payload.toString(), `m${i}`, `echo ${i}`);
      const big = Buffer.alloc(MiB - 7, 0x61);
      const f = frame({ opcode: 2, payload: big });
      for (let p = 0, i = 0; p < f.length && i < 1000; i++) {
        const n = i < 20 ? 7 : 64 * 1024 + 7;
        c.send(f.subarray(p, p + n));
        p += n;
      }
      await c.until(() => c.frames.length >= 2001, 5000, 'the large echo');
      ok(c.frames[2000].payload.equals(big), 'large echo payload');
    } finally {
      c.destroy();
    }
  });
}

export async function stopAttackServer() {
  if (shared) await (await shared).stop();
}
