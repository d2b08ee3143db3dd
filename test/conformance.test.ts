// A re-creation of the Autobahn TestSuite "fuzzingclient" cases 1.* – 13.* against our echo server.
//
// Each case follows crossbario/autobahn-testsuite autobahntestsuite/case/caseX_Y.py: the frames it
// sends (and how the bytes are chopped on the wire), the `expected` outcomes (OK / NON-STRICT) and
// `expectedClose = {closedByMe, closeCode, requireClean}`. A case passes here only with Autobahn's
// "OK" verdict for both behaviour and close behaviour:
//  - received events (messages reassembled, pongs) equal expected[OK] exactly; NON-STRICT fails;
//  - closedByMe: the client starts the closing handshake once the events match (or the case sends its
//    own close); the server must answer with a code in closeCode (or an empty close frame);
//  - !closedByMe: the server must fail the connection itself within 1 s (Autobahn's killAfter(1)),
//    with a code in closeCode (a close frame without a code, or a TCP drop, is also accepted there);
//  - requireClean: the server's close frame arrives, then the server drops TCP (RFC 6455 §7.1.1: the
//    server closes the TCP connection first). We check that the server drops TCP in every case.
// Waits Autobahn takes as 1 s are shortened (Autobahn's timings are upper bounds for a local echo).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as zlib from 'node:zlib';
import { createHash, randomBytes as cryptoRandom } from 'node:crypto';
import { B, RESERVED_OPCODE_CASES, INVALID_PAYLOAD, NORMAL, PROTOCOL_ERROR, U, closePayload, eventsOf, frame, msg, pong, sleep, tick, type Ev } from './autobahn.js';
import type { WebSocketServer } from '../src/node/server.js';
import { RawClient, raw, rng, startServer, stopServer, upgradeRequest } from './helpers.js';

// ── plumbing ──────────────────────────────────────────────────────────────────────────────

/** A client frame, masked with a fresh random key as a client must (§5.3). */
const cframe = (opcode: number, payload: Buffer | string = Buffer.alloc(0), opts: { fin?: boolean; rsv?: number } = {}): Buffer =>
  frame(opcode, payload, { ...opts, key: [...cryptoRandom(4)] });
const closeFrame = (code?: number, reason: Buffer | string = Buffer.alloc(0)): Buffer => cframe(8, closePayload(code, reason));

interface Expectation {
  ok: Ev[];
  nonStrict?: Ev[];
  close: { byMe: boolean; codes: number[]; clean: boolean };
  /** The case sends its own close (Autobahn's suppressClose): the client does not add one. */
  suppressClose?: boolean;
  /** Autobahn reports the outcome as INFORMATIONAL: OK and NON-STRICT both pass. */
  informational?: boolean;
}

interface Ctx {
  c: RawClient;
  /** Pseudo events recorded by the case itself (Autobahn's ("timeout", "A") marks). */
  marks: Ev[];
  send(...frames: Buffer[]): void;
  /** Frames written one TCP write each, with a turn of the event loop between (Autobahn sync=True). */
  sendSync(...frames: Buffer[]): Promise<void>;
  /** Bytes written in chops of `size` octets, one write each (Autobahn chopsize). */
  chop(bytes: Buffer, size: number): Promise<void>;
  /** Is the connection still OPEN from the client's side (no close frame seen, TCP up)? */
  open(): boolean;
}

let plainPort = 0;

function serverCloseCode(payload: Buffer): number | undefined {
  return payload.length >= 2 ? payload.readUInt16BE(0) : undefined;
}

/** Run one Autobahn case against a fresh connection and assert Autobahn's OK verdict. */
async function runCase(exp: Expectation, run: (t: Ctx) => Promise<void> | void, port = plainPort): Promise<void> {
  const c = await RawClient.connect(port);
  expect(c.response).toMatch(/^HTTP\/1\.1 101/);
  let clientSentClose = false;
  const t: Ctx = {
    c,
    marks: [],
    send: (...fs) => c.send(Buffer.concat(fs)),
    sendSync: async (...fs) => {
      for (const f of fs) {
        c.send(f);
        await tick();
      }
    },
    chop: async (bytes, size) => {
      for (let i = 0; i < bytes.length; i += size) {
        c.send(Buffer.from(bytes.subarray(i, i + size)));
        await tick();
      }
    },
    open: () => !c.closed && !c.frames.some((f) => f.opcode === 8),
  };
  const outcome = (): 'OK' | 'NON-STRICT' | 'FAILED' => {
    const got = [...t.marks, ...eventsOf(c.frames).evs];
    if (JSON.stringify(got) === JSON.stringify(exp.ok)) return 'OK';
    if (exp.nonStrict && JSON.stringify(got) === JSON.stringify(exp.nonStrict)) return 'NON-STRICT';
    return 'FAILED';
  };
  const hasClose = () => c.frames.some((f) => f.opcode === 8);
  try {
    await run(t);
    if (exp.close.byMe) {
      if (!exp.suppressClose) {
        // finishWhenDone: close as soon as the events match; else Autobahn's closeAfter timer.
        await c.until(() => outcome() === 'OK' || c.closed || hasClose(), { timeout: 1500 }).catch(() => {});
        if (!c.closed && !hasClose()) {
          c.send(closeFrame(exp.close.codes[0]));
          clientSentClose = true;
        }
      } else clientSentClose = true;
    }
    // Wait for the server's close frame (answering it as Autobahn does), then for the server to drop TCP.
    await c.until(() => c.closed || hasClose(), { timeout: 1000 }).catch(() => {});
    if (hasClose() && !clientSentClose && !c.closed) {
      const code = serverCloseCode(c.frames.find((f) => f.opcode === 8)!.payload);
      c.send(closeFrame(code));
    }
    await c.until(() => c.closed, { timeout: 1000 }).catch(() => {});
  } finally {
    if (!c.closed) c.socket.destroy();
  }
  const { evs, close } = eventsOf(c.frames);
  const received = [...t.marks, ...evs];
  // Behaviour.
  const verdict = outcome();
  if (exp.informational) expect(['OK', 'NON-STRICT'], `events: ${JSON.stringify(received)}`).toContain(verdict);
  else expect({ verdict, received }).toEqual({ verdict: 'OK', received: exp.ok });
  // Close behaviour.
  expect(c.closed, 'the server must drop the TCP connection after the closing handshake').toBe(true);
  if (!exp.close.byMe) {
    // "closedByMe": false — the server fails the connection (close frame or TCP drop) by itself.
    expect(clientSentClose).toBe(false);
  }
  if (exp.close.clean || close) {
    if (exp.close.clean) expect(close, 'a clean close needs the server\'s close frame').toBeDefined();
    const code = serverCloseCode(close!);
    if (code !== undefined) expect(exp.close.codes, `server close code ${code}`).toContain(code);
    if (close!.length === 1) throw new Error('server sent a 1-byte close payload');
  }
}

// Expectation shorthands.
const echoClean = (...ok: Ev[]): Expectation => ({ ok, close: { byMe: true, codes: [NORMAL], clean: true } });
const failWith = (code: number, ok: Ev[] = [], nonStrict?: Ev[]): Expectation => ({ ok, nonStrict, close: { byMe: false, codes: [code], clean: false } });

let plainServer: WebSocketServer;
beforeAll(async () => {
  const s = await startServer();
  plainServer = s.wss;
  plainPort = s.port;
  s.wss.on('connection', (ws) => ws.on('message', (d, isBinary) => ws.send(d as Buffer, { binary: isBinary })));
});
afterAll(async () => {
  await stopServer(plainServer);
});

// ── 1 Framing ─────────────────────────────────────────────────────────────────────────────

describe('1 framing', () => {
  const sizes: [string, number, number][] = [
    ['1', 0, 0], ['2', 125, 0], ['3', 126, 0], ['4', 127, 0], ['5', 128, 0], ['6', 65535, 0], ['7', 65536, 0], ['8', 65536, 997],
  ];
  for (const [n, len, chop] of sizes) {
    it(`1.1.${n} text ${len} bytes${chop ? ` in chops of ${chop}` : ''}`, async () => {
      const p = Buffer.alloc(len, '*');
      await runCase(echoClean(msg(p)), async (t) => (chop ? t.chop(cframe(1, p), chop) : t.send(cframe(1, p))));
    });
    it(`1.2.${n} binary ${len} bytes${chop ? ` in chops of ${chop}` : ''}`, async () => {
      const p = Buffer.alloc(len, 0xfe);
      await runCase(echoClean(msg(p, true)), async (t) => (chop ? t.chop(cframe(2, p), chop) : t.send(cframe(2, p))));
    });
  }
});

// ── 2 Pings/Pongs ─────────────────────────────────────────────────────────────────────────

describe('2 pings and pongs', () => {
  it('2.1 ping without payload', () => runCase(echoClean(pong()), (t) => t.send(cframe(9))));
  it('2.2 ping with small text payload', () => runCase(echoClean(pong('Hello, world!')), (t) => t.send(cframe(9, 'Hello, world!'))));
  const bin = B([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]);
  it('2.3 ping with small binary payload', () => runCase(echoClean(pong(bin)), (t) => t.send(cframe(9, bin))));
  const p125 = Buffer.alloc(125, 0xfe);
  it('2.4 ping with 125-byte payload', () => runCase(echoClean(pong(p125)), (t) => t.send(cframe(9, p125))));
  it('2.5 ping with 126-byte payload fails 1002', () => runCase(failWith(PROTOCOL_ERROR), (t) => t.send(cframe(9, Buffer.alloc(126, 0xfe)))));
  it('2.6 ping with 125-byte payload in octet-wise chops', () => runCase(echoClean(pong(p125)), (t) => t.chop(cframe(9, p125), 1)));
  it('2.7 unsolicited pong without payload', () => runCase(echoClean(), (t) => t.send(cframe(10))));
  it('2.8 unsolicited pong with payload', () => runCase(echoClean(), (t) => t.send(cframe(10, 'unsolicited pong payload'))));
  it('2.9 unsolicited pong, then ping', () =>
    runCase(echoClean(pong('ping payload')), (t) => t.send(cframe(10, 'unsolicited pong payload'), cframe(9, 'ping payload'))));
  const ten = Array.from({ length: 10 }, (_, i) => `payload-${i}`);
  it('2.10 ten pings', () => runCase(echoClean(...ten.map((p) => pong(p))), (t) => t.send(...ten.map((p) => cframe(9, p)))));
  it('2.11 ten pings in octet-wise chops', () =>
    runCase(echoClean(...ten.map((p) => pong(p))), async (t) => {
      for (const p of ten) await t.chop(cframe(9, p), 1);
    }));
});

// ── 3 Reserved bits ───────────────────────────────────────────────────────────────────────

describe('3 reserved bits', () => {
  const hello = 'Hello, world!';
  it('3.1 text with RSV = 1', () => runCase(failWith(PROTOCOL_ERROR), (t) => t.send(cframe(1, hello, { rsv: 1 }))));
  it('3.2 text, text with RSV = 2, ping', () =>
    runCase(failWith(PROTOCOL_ERROR, [msg(hello)], []), (t) => t.send(cframe(1, hello), cframe(1, hello, { rsv: 2 }), cframe(9))));
  it('3.3 text, text with RSV = 3, ping (sync)', () =>
    runCase(failWith(PROTOCOL_ERROR, [msg(hello)], []), (t) => t.sendSync(cframe(1, hello), cframe(1, hello, { rsv: 3 }), cframe(9))));
  it('3.4 text, text with RSV = 4, ping (sync)', () =>
    runCase(failWith(PROTOCOL_ERROR, [msg(hello)], []), (t) => t.sendSync(cframe(1, hello), cframe(1, hello, { rsv: 4 }), cframe(9))));
  it('3.5 binary with RSV = 5', () =>
    runCase(failWith(PROTOCOL_ERROR), (t) => t.send(cframe(2, B([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]), { rsv: 5 }))));
  it('3.6 ping with RSV = 6', () => runCase(failWith(PROTOCOL_ERROR), (t) => t.send(cframe(9, hello, { rsv: 6 }))));
  it('3.7 close with RSV = 7', () => runCase(failWith(PROTOCOL_ERROR), (t) => t.send(raw({ opcode: 8, rsv: 7, key: [1, 2, 3, 4] }))));
});

// ── 4 Opcodes ─────────────────────────────────────────────────────────────────────────────

describe('4 reserved opcodes', () => {
  const hello = 'Hello, world!';
  for (const [name, op, around, withPayload] of RESERVED_OPCODE_CASES) {
    it(`${name} opcode ${op}${around ? ' after a text message, then ping' : ''}`, () => {
      const bad = cframe(op, withPayload ? 'reserved opcode payload' : '');
      if (!around) return runCase(failWith(PROTOCOL_ERROR), (t) => t.send(bad));
      return runCase(failWith(PROTOCOL_ERROR, [msg(hello)], []), (t) => t.send(cframe(1, hello), bad, cframe(9)));
    });
  }
});

// ── 5 Fragmentation ───────────────────────────────────────────────────────────────────────

describe('5 fragmentation', () => {
  type Mode = 'one' | 'frames' | 'octets';
  async function sendAll(t: Ctx, frames: Buffer[], mode: Mode) {
    if (mode === 'one') t.send(...frames);
    else if (mode === 'frames') await t.sendSync(...frames);
    else for (const f of frames) await t.chop(f, 1);
  }
  it('5.1 ping in 2 fragments', () =>
    runCase(failWith(PROTOCOL_ERROR), (t) => t.send(cframe(9, 'fragment1', { fin: false }), cframe(0, 'fragment2'))));
  it('5.2 pong in 2 fragments', () =>
    runCase(failWith(PROTOCOL_ERROR), (t) => t.send(cframe(10, 'fragment1', { fin: false }), cframe(0, 'fragment2'))));
  const modes: [string, Mode][] = [['', 'one'], [' (frame-wise chops)', 'frames'], [' (octet-wise chops)', 'octets']];
  modes.forEach(([label, mode], i) => {
    it(`5.${3 + i} text in 2 fragments${label}`, () =>
      runCase(echoClean(msg('fragment1fragment2')), (t) => sendAll(t, [cframe(1, 'fragment1', { fin: false }), cframe(0, 'fragment2')], mode)));
    it(`5.${6 + i} text in 2 fragments with a ping between${label}`, () =>
      runCase(echoClean(pong('pongme!'), msg('fragment1fragment2')), (t) =>
        sendAll(t, [cframe(1, 'fragment1', { fin: false }), cframe(9, 'pongme!'), cframe(0, 'fragment2')], mode)));
    it(`5.${9 + i} continuation (FIN) with nothing to continue, then text in 2 fragments${label}`, () =>
      runCase(failWith(PROTOCOL_ERROR), (t) =>
        sendAll(t, [cframe(0, 'fragment1'), cframe(1, 'fragment2', { fin: false }), cframe(0, 'fragment3')], mode)));
    it(`5.${12 + i} continuation (no FIN) with nothing to continue, then text in 2 fragments${label}`, () =>
      runCase(failWith(PROTOCOL_ERROR), (t) =>
        sendAll(t, [cframe(0, 'fragment1', { fin: false }), cframe(1, 'fragment2', { fin: false }), cframe(0, 'fragment3')], mode)));
  });
  it('5.15 text in 2 fragments, then a continuation with nothing to continue, then text', () =>
    runCase(failWith(PROTOCOL_ERROR, [msg('fragment1fragment2')], []), (t) =>
      t.send(cframe(1, 'fragment1', { fin: false }), cframe(0, 'fragment2'), cframe(0, 'fragment3', { fin: false }), cframe(1, 'fragment4'))));
  it('5.16 2x (continuation no FIN, text in 2 fragments)', () =>
    runCase(failWith(PROTOCOL_ERROR), (t) => {
      const one = [cframe(0, 'fragment1', { fin: false }), cframe(1, 'fragment2', { fin: false }), cframe(0, 'fragment3')];
      t.send(...one, ...one.map((f) => Buffer.from(f)));
    }));
  it('5.17 2x (continuation FIN, text in 2 fragments)', () =>
    runCase(failWith(PROTOCOL_ERROR), (t) => {
      const one = [cframe(0, 'fragment1'), cframe(1, 'fragment2', { fin: false }), cframe(0, 'fragment3')];
      t.send(...one, ...one.map((f) => Buffer.from(f)));
    }));
  it('5.18 text in 2 fragments, both with the text opcode', () =>
    runCase(failWith(PROTOCOL_ERROR), (t) => t.send(cframe(1, 'fragment1', { fin: false }), cframe(1, 'fragment2'))));
  const frags = ['fragment1', 'fragment2', 'fragment3', 'fragment4', 'fragment5'];
  const pings = ['pongme 1!', 'pongme 2!'];
  for (const [name, sync] of [['5.19', false], ['5.20', true]] as const) {
    it(`${name} fragmented text with pings and a pause${sync ? ' (sync)' : ''}`, () =>
      runCase(echoClean(pong(pings[0]), pong(pings[1]), msg(frags.join(''))), async (t) => {
        const go = (...fs: Buffer[]) => (sync ? t.sendSync(...fs) : t.send(...fs));
        await go(cframe(1, frags[0], { fin: false }), cframe(0, frags[1], { fin: false }), cframe(9, pings[0]));
        // "The peer immediately answers the first Ping before it has received the last text fragment."
        await t.c.until(() => t.c.frames.some((f) => f.opcode === 10), { timeout: 1000 });
        await sleep(100);
        await go(cframe(0, frags[2], { fin: false }), cframe(0, frags[3], { fin: false }), cframe(9, pings[1]), cframe(0, frags[4]));
      }));
  }
});

// ── 6 UTF-8 handling ──────────────────────────────────────────────────────────────────────

describe('6 UTF-8', () => {
  it('6.1.1 empty text message', () => runCase(echoClean(msg('')), (t) => t.send(cframe(1))));
  it('6.1.2 text message of 3 empty fragments', () =>
    runCase(echoClean(msg('')), (t) => t.send(cframe(1, '', { fin: false }), cframe(0, '', { fin: false }), cframe(0, ''))));
  it('6.1.3 empty, non-empty, empty fragments', () =>
    runCase(echoClean(msg('middle frame payload')), (t) =>
      t.send(cframe(1, '', { fin: false }), cframe(0, 'middle frame payload', { fin: false }), cframe(0, ''))));

  const hello = U('Hello-µ@ßöäüàá-UTF-8!!');
  it('6.2.1 valid UTF-8 in one fragment', () => runCase(echoClean(msg(hello)), (t) => t.send(cframe(1, hello))));
  it('6.2.2 valid UTF-8 in 2 fragments split on a code point boundary', () =>
    runCase(echoClean(msg(hello)), (t) => t.send(cframe(1, U('Hello-µ@ßöä'), { fin: false }), cframe(0, U('üàá-UTF-8!!')))));
  const oneOctetFrames = (p: Buffer) => Array.from(p, (b, i) => cframe(i === 0 ? 1 : 0, B([b]), { fin: i === p.length - 1 }));
  it('6.2.3 valid UTF-8 in 1-octet fragments', () => runCase(echoClean(msg(hello)), (t) => t.send(...oneOctetFrames(hello))));
  const kosme = B('\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5');
  it('6.2.4 valid UTF-8 (κόσμε) in 1-octet fragments', () => runCase(echoClean(msg(kosme)), (t) => t.send(...oneOctetFrames(kosme))));

  const bad = Buffer.concat([kosme, B('\xed\xa0\x80'), B('\x65\x64\x69\x74\x65\x64')]);
  it('6.3.1 invalid UTF-8 (surrogate) in one fragment', () => runCase(failWith(INVALID_PAYLOAD), (t) => t.send(cframe(1, bad))));
  it('6.3.2 invalid UTF-8 in 1-octet fragments', () => runCase(failWith(INVALID_PAYLOAD), (t) => t.send(...oneOctetFrames(bad))));

  // 6.4.x fail fast: OK = [timeout A] (closed after part 2), NON-STRICT = [timeout A, timeout B].
  const P1 = kosme;
  const P2 = B('\xf4\x90\x80\x80');
  const P3 = B('\x65\x64\x69\x74\x65\x64');
  const PAYLOAD = Buffer.concat([P1, P2, P3]);
  const WAIT = 300;
  async function threeParts(t: Ctx, parts: [Buffer, Buffer, Buffer]) {
    t.send(parts[0]);
    await sleep(WAIT);
    if (!t.open()) return;
    t.marks.push('timeout A');
    t.send(parts[1]);
    await sleep(WAIT);
    if (!t.open()) return;
    t.marks.push('timeout B');
    t.send(parts[2]);
  }
  const failFast = failWith(INVALID_PAYLOAD, ['timeout A'], ['timeout A', 'timeout B']);
  it('6.4.1 fail fast: 3 frames, the 2nd makes the text invalid (0x110000)', () =>
    runCase(failFast, (t) => threeParts(t, [cframe(1, P1, { fin: false }), cframe(0, P2, { fin: false }), cframe(0, P3)])));
  it('6.4.2 fail fast: 3 frames, the 2nd is the single invalid octet', () =>
    runCase(failFast, (t) =>
      threeParts(t, [cframe(1, PAYLOAD.subarray(0, 12), { fin: false }), cframe(0, PAYLOAD.subarray(12, 13), { fin: false }), cframe(0, PAYLOAD.subarray(13))])));
  // 6.4.3 / 6.4.4: one frame, its bytes sent in 3 chops (the server must validate a frame's payload as it arrives).
  const whole = cframe(1, PAYLOAD);
  const hdr = whole.length - PAYLOAD.length;
  it('6.4.3 fail fast: one frame in 3 chops, the 2nd chop makes it invalid', () =>
    runCase(failFast, (t) =>
      threeParts(t, [whole.subarray(0, hdr + 11), whole.subarray(hdr + 11, hdr + 15), whole.subarray(hdr + 15)])));
  it('6.4.4 fail fast: one frame in 3 chops, the 2nd chop is the single invalid octet', () =>
    runCase(failFast, (t) =>
      threeParts(t, [whole.subarray(0, hdr + 12), whole.subarray(hdr + 12, hdr + 13), whole.subarray(hdr + 13)])));

  // 6.5 – 6.23: Markus Kuhn's UTF-8 decoder test, one text frame each (case6_x_x.py).
  const seqs: [string, [boolean, string][]][] = [];
  seqs.push(['Some valid UTF-8 sequences', [[true, 'hello\x24world'], [true, 'hello\xC2\xA2world'], [true, 'hello\xE2\x82\xACworld'], [true, 'hello\xF0\xA4\xAD\xA2world'], [true, kosme.toString('latin1')]]]);
  {
    const vss = kosme.toString('latin1');
    const ends = new Set([2, 5, 7, 9, 11]); // code point boundaries of κόσμε
    seqs.push(['All prefixes of a valid UTF-8 string', Array.from({ length: vss.length }, (_, i) => [ends.has(i + 1), vss.slice(0, i + 1)] as [boolean, string])]);
  }
  seqs.push(['First possible sequence of a certain length', [[true, '\x00'], [true, '\xc2\x80'], [true, '\xe0\xa0\x80'], [true, '\xf0\x90\x80\x80']]]);
  seqs.push(['First possible sequence length 5/6', [[false, '\xf8\x88\x80\x80\x80'], [false, '\xfc\x84\x80\x80\x80\x80']]]);
  seqs.push(['Last possible sequence of a certain length', [[true, '\x7f'], [true, '\xdf\xbf'], [true, '\xef\xbf\xbf'], [true, '\xf4\x8f\xbf\xbf']]]);
  seqs.push(['Last possible sequence length 4/5/6', [[false, '\xf7\xbf\xbf\xbf'], [false, '\xfb\xbf\xbf\xbf\xbf'], [false, '\xfd\xbf\xbf\xbf\xbf\xbf']]]);
  seqs.push(['Other boundary conditions', [[true, '\xed\x9f\xbf'], [true, '\xee\x80\x80'], [true, '\xef\xbf\xbd'], [true, '\xf4\x8f\xbf\xbf'], [false, '\xf4\x90\x80\x80']]]);
  {
    let s = '';
    for (let i = 0x80; i < 0xbf; i++) s += String.fromCharCode(i);
    seqs.push(['Unexpected continuation bytes', [[false, '\x80'], [false, '\xbf'], [false, '\x80\xbf'], [false, '\x80\xbf\x80'], [false, '\x80\xbf\x80\xbf'], [false, '\x80\xbf\x80\xbf\x80'], [false, '\x80\xbf\x80\xbf\x80\xbf'], [false, s]]]);
  }
  {
    const out: [boolean, string][] = [];
    for (const [a, b] of [[0xc0, 0xdf], [0xe0, 0xef], [0xf0, 0xf7], [0xf8, 0xfb], [0xfc, 0xfd]]) {
      let s = '';
      for (let i = a; i < b; i++) s += String.fromCharCode(i) + ' ';
      out.push([false, s]);
    }
    seqs.push(['Lonely start characters', out]);
  }
  const k = ['\xc0', '\xe0\x80', '\xf0\x80\x80', '\xf8\x80\x80\x80', '\xfc\x80\x80\x80\x80', '\xdf', '\xef\xbf', '\xf7\xbf\xbf', '\xfb\xbf\xbf\xbf', '\xfd\xbf\xbf\xbf\xbf'];
  seqs.push(['Sequences with last continuation byte missing', k.map((x) => [false, x] as [boolean, string])]);
  seqs.push(['Concatenation of incomplete sequences', [[false, k.join('')]]]);
  seqs.push(['Impossible bytes', [[false, '\xfe'], [false, '\xff'], [false, '\xfe\xfe\xff\xff']]]);
  seqs.push(['Overlong ASCII', [[false, '\xc0\xaf'], [false, '\xe0\x80\xaf'], [false, '\xf0\x80\x80\xaf'], [false, '\xf8\x80\x80\x80\xaf'], [false, '\xfc\x80\x80\x80\x80\xaf']]]);
  seqs.push(['Maximum overlong sequences', [[false, '\xc1\xbf'], [false, '\xe0\x9f\xbf'], [false, '\xf0\x8f\xbf\xbf'], [false, '\xf8\x87\xbf\xbf\xbf'], [false, '\xfc\x83\xbf\xbf\xbf\xbf']]]);
  seqs.push(['Overlong NUL', [[false, '\xc0\x80'], [false, '\xe0\x80\x80'], [false, '\xf0\x80\x80\x80'], [false, '\xf8\x80\x80\x80\x80'], [false, '\xfc\x80\x80\x80\x80\x80']]]);
  seqs.push(['Single UTF-16 surrogates', ['\xed\xa0\x80', '\xed\xad\xbf', '\xed\xae\x80', '\xed\xaf\xbf', '\xed\xb0\x80', '\xed\xbe\x80', '\xed\xbf\xbf'].map((x) => [false, x] as [boolean, string])]);
  seqs.push(['Paired UTF-16 surrogates', ['\xed\xa0\x80\xed\xb0\x80', '\xed\xa0\x80\xed\xbf\xbf', '\xed\xad\xbf\xed\xb0\x80', '\xed\xad\xbf\xed\xbf\xbf', '\xed\xae\x80\xed\xb0\x80', '\xed\xae\x80\xed\xbf\xbf', '\xed\xaf\xbf\xed\xb0\x80', '\xed\xaf\xbf\xed\xbf\xbf'].map((x) => [false, x] as [boolean, string])]);
  {
    const out: [boolean, string][] = [[true, '\xef\xbf\xbe'], [true, '\xef\xbf\xbf']];
    for (const z1 of ['\xf0', '\xf1', '\xf2', '\xf3', '\xf4']) {
      for (const z2 of ['\x8f', '\x9f', '\xaf', '\xbf']) {
        if (z1 === '\xf4' && z2 !== '\x8f') continue;
        for (const z3 of ['\xbe', '\xbf']) {
          const zz = z1 + z2 + '\xbf' + z3;
          if (zz !== '\xf0\x8f\xbf\xbe' && zz !== '\xf0\x8f\xbf\xbf') out.push([true, zz]);
        }
      }
    }
    seqs.push(['Non-character code points (valid UTF-8)', out]);
  }
  seqs.push(['Unicode specials', ['\xef\xbf\xb9', '\xef\xbf\xba', '\xef\xbf\xbb', '\xef\xbf\xbc', '\xef\xbf\xbd', '\xef\xbf\xbe', '\xef\xbf\xbf'].map((x) => [true, x] as [boolean, string])]);

  seqs.forEach(([title, list], gi) => {
    describe(`6.${gi + 5} ${title}`, () => {
      list.forEach(([valid, s], j) => {
        const p = B(s);
        it(`6.${gi + 5}.${j + 1} ${valid ? 'valid' : 'invalid'} ${p.toString('hex').slice(0, 40)}`, () =>
          runCase(valid ? echoClean(msg(p)) : failWith(INVALID_PAYLOAD), (t) => t.send(cframe(1, p))));
      });
    });
  });
});

// ── 7 Close handling ──────────────────────────────────────────────────────────────────────

describe('7 close handling', () => {
  const byMe = (codes: number[], clean: boolean, ok: Ev[] = []): Expectation => ({ ok, close: { byMe: true, codes, clean }, suppressClose: true });
  it('7.1.1 text message, then close', () =>
    runCase(byMe([NORMAL], true, [msg('Hello World!')]), (t) => t.send(cframe(1, 'Hello World!'), closeFrame(NORMAL))));
  it('7.1.2 two close frames', () => runCase(byMe([NORMAL], true), (t) => t.send(closeFrame(NORMAL), cframe(8))));
  it('7.1.3 close, then ping (no pong)', () => runCase(byMe([NORMAL], true), (t) => t.send(closeFrame(NORMAL), cframe(9))));
  it('7.1.4 close, then text (no echo)', () => runCase(byMe([NORMAL], true), (t) => t.send(closeFrame(NORMAL), cframe(1, 'Hello World!'))));
  it('7.1.5 fragment, close, fragment', () =>
    runCase(byMe([NORMAL], true), (t) => t.send(cframe(1, 'fragment1', { fin: false }), closeFrame(NORMAL), cframe(0, 'fragment2'))));
  it('7.1.6 256 KiB text, small text, close, ping (informational)', () => {
    const big = Buffer.alloc(256 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = 'BAsd7&jh23'.charCodeAt(i % 10);
    return runCase({ ...byMe([NORMAL], true, [msg(big), msg('Hello World!')]), nonStrict: [], informational: true }, (t) =>
      t.send(cframe(1, big), cframe(1, 'Hello World!'), closeFrame(NORMAL), cframe(9)));
  });
  it('7.3.1 close with empty payload', () => runCase(byMe([NORMAL], true), (t) => t.send(cframe(8))));
  it('7.3.2 close with 1-byte payload', () => runCase(byMe([PROTOCOL_ERROR], false), (t) => t.send(cframe(8, 'a'))));
  it('7.3.3 close with code 1000', () => runCase(byMe([NORMAL], true), (t) => t.send(closeFrame(NORMAL))));
  it('7.3.4 close with code and reason', () => runCase(byMe([NORMAL], true), (t) => t.send(closeFrame(NORMAL, 'Hello World!'))));
  it('7.3.5 close with code and 123-byte reason', () => runCase(byMe([NORMAL], true), (t) => t.send(closeFrame(NORMAL, '*'.repeat(123)))));
  it('7.3.6 close with code and 124-byte reason (126-byte payload)', () =>
    runCase(byMe([PROTOCOL_ERROR], false), (t) => t.send(closeFrame(NORMAL, '*'.repeat(124)))));
  it('7.5.1 close with invalid UTF-8 reason', () =>
    runCase(byMe([PROTOCOL_ERROR, INVALID_PAYLOAD], false), (t) =>
      t.send(closeFrame(NORMAL, B('\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64')))));
  [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999].forEach((code, i) => {
    it(`7.7.${i + 1} close with valid code ${code}`, () => runCase(byMe([NORMAL, code], true), (t) => t.send(closeFrame(code))));
  });
  [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999].forEach((code, i) => {
    it(`7.9.${i + 1} close with invalid code ${code}`, () => runCase(byMe([PROTOCOL_ERROR], false), (t) => t.send(closeFrame(code))));
  });
  // Not in the current Autobahn lists (7.9.x once held 1012–1015): RFC 6455's IANA registry now has
  // 1012–1014 as valid, 1015 must never be sent. Echo or 1000 for the former, 1002 for the latter.
  [1012, 1013, 1014].forEach((code) => {
    it(`7.x close with registered code ${code} (not in Autobahn's lists)`, () => runCase(byMe([NORMAL, code], true), (t) => t.send(closeFrame(code))));
  });
  it('7.x close with code 1015 (not in Autobahn\'s lists)', () => runCase(byMe([PROTOCOL_ERROR], false), (t) => t.send(closeFrame(1015))));
  it('7.13.1 close with code 5000 (informational)', () =>
    runCase({ ...byMe([NORMAL, 5000, PROTOCOL_ERROR], false), informational: true }, (t) => t.send(closeFrame(5000))));
  it('7.13.2 close with code 65535 (informational)', () =>
    runCase({ ...byMe([NORMAL, 65535, PROTOCOL_ERROR], false), informational: true }, (t) => t.send(closeFrame(65535))));
});

// ── 9 Limits/Performance (reduced sizes) ──────────────────────────────────────────────────

describe('9 limits and performance (reduced)', () => {
  const MiB = 1024 * 1024;
  const text = (n: number) => Buffer.alloc(n, '*');
  const bin = (n: number) => Buffer.alloc(n, 0xfe);
  const sizes: [number, number][] = [[1, 64 * 1024], [2, 256 * 1024], [3, MiB], [4, 4 * MiB], [6, 16 * MiB]];
  for (const [i, n] of sizes) {
    it(`9.1.${i} text message of ${n} bytes`, () => runCase(echoClean(msg(text(n))), (t) => t.send(cframe(1, text(n)))));
    if (n < 16 * MiB) it(`9.2.${i} binary message of ${n} bytes`, () => runCase(echoClean(msg(bin(n), true)), (t) => t.send(cframe(2, bin(n)))));
  }
  function fragmented(op: number, p: Buffer, size: number): Buffer[] {
    const out: Buffer[] = [];
    for (let i = 0; i < p.length; i += size) out.push(cframe(i === 0 ? op : 0, p.subarray(i, i + size), { fin: i + size >= p.length }));
    return out;
  }
  const frags: [number, number][] = [[1, 64], [5, 4096], [7, 64 * 1024], [8, MiB]];
  for (const [i, size] of frags) {
    it(`9.3.${i} 4 MiB text in fragments of ${size}`, () => runCase(echoClean(msg(text(4 * MiB))), (t) => t.send(...fragmented(1, text(4 * MiB), size))));
    it(`9.4.${i} 4 MiB binary in fragments of ${size}`, () =>
      runCase(echoClean(msg(bin(4 * MiB), true)), (t) => t.send(...fragmented(2, bin(4 * MiB), size))));
  }
  for (const [i, chop] of [[1, 64], [6, 2048]] as const) {
    it(`9.5.${i} 1 MiB text in chops of ${chop}`, () =>
      runCase(echoClean(msg(text(MiB))), (t) => {
        const f = cframe(1, text(MiB));
        for (let o = 0; o < f.length; o += chop) t.c.send(Buffer.from(f.subarray(o, o + chop)));
      }));
    it(`9.6.${i} 1 MiB binary in chops of ${chop}`, () =>
      runCase(echoClean(msg(bin(MiB), true)), (t) => {
        const f = cframe(2, bin(MiB));
        for (let o = 0; o < f.length; o += chop) t.c.send(Buffer.from(f.subarray(o, o + chop)));
      }));
  }
  [0, 16, 64, 256, 1024, 4096].forEach((n, i) => {
    for (const [grp, op] of [[7, 1], [8, 2]] as const) {
      it(`9.${grp}.${i + 1} 200 round trips of ${op === 1 ? 'text' : 'binary'} messages of ${n} bytes`, async () => {
        const p = op === 1 ? text(n) : bin(n);
        const N = 200;
        await runCase(echoClean(...Array.from({ length: N }, () => msg(p, op === 2))), async (t) => {
          for (let j = 0; j < N; j++) {
            const have = t.c.frames.length;
            t.send(cframe(op, p));
            await t.c.until(() => t.c.frames.length > have, { timeout: 1000 });
          }
        });
      });
    }
  });
});

// ── 10 Misc ───────────────────────────────────────────────────────────────────────────────

describe('10 misc', () => {
  it('10.1.1 65536-byte text auto-fragmented into 1300-byte frames', () => {
    const p = Buffer.alloc(65536, '*');
    return runCase(echoClean(msg(p)), (t) => {
      const fs: Buffer[] = [];
      for (let i = 0; i < p.length; i += 1300) fs.push(cframe(i === 0 ? 1 : 0, p.subarray(i, i + 1300), { fin: i + 1300 >= p.length }));
      expect(fs.length).toBe(51);
      t.send(...fs);
    });
  });
});

// ── 12 / 13 permessage-deflate ────────────────────────────────────────────────────────────

/** A permessage-deflate client doing what Autobahn's does: its offers, sync-flush deflate, auto-fragmentation. */
class DeflateClient {
  c!: RawClient;
  response = '';
  params = { serverNoCtx: false, clientNoCtx: false, serverBits: 15, clientBits: 15 };
  private deflater: zlib.DeflateRaw | null = null;
  private inflater: zlib.InflateRaw | null = null;
  private next = 0; // index in c.frames of the next unread frame

  static async connect(port: number, offer: string): Promise<DeflateClient> {
    const d = new DeflateClient();
    // Its frame parser accepts RSV1 on data frames (FrameParser's allowRsv1), as a client that
    // offers permessage-deflate must once it is negotiated (the response is checked below).
    d.c = await RawClient.connect(port, upgradeRequest('/', { 'Sec-WebSocket-Extensions': offer }), { allowRsv1: true });
    const m = /\r\nSec-WebSocket-Extensions:\s*([^\r]*)/i.exec(d.c.response);
    d.response = m ? m[1].trim() : '';
    if (d.response) {
      const [name, ...params] = d.response.split(';').map((s) => s.trim());
      if (name !== 'permessage-deflate') throw new Error(`unexpected extension ${d.response}`);
      for (const p of params) {
        const [k, v] = p.split('=').map((s) => s.trim());
        if (k === 'server_no_context_takeover' && v === undefined) d.params.serverNoCtx = true;
        else if (k === 'client_no_context_takeover' && v === undefined) d.params.clientNoCtx = true;
        else if (k === 'server_max_window_bits' && /^(8|9|1[0-5])$/.test(v ?? '')) d.params.serverBits = Number(v);
        else if (k === 'client_max_window_bits' && /^(8|9|1[0-5])$/.test(v ?? '')) d.params.clientBits = Number(v);
        else throw new Error(`invalid permessage-deflate response parameter ${p}`);
      }
    }
    return d;
  }

  private static run(z: zlib.DeflateRaw | zlib.InflateRaw, data: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const out: Buffer[] = [];
      const onData = (b: Buffer) => out.push(b);
      const onError = (e: Error) => reject(e);
      z.on('data', onData);
      z.once('error', onError);
      z.write(data);
      z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        z.off('data', onData);
        z.off('error', onError);
        resolve(Buffer.concat(out));
      });
    });
  }

  async send(data: Buffer, binary: boolean, fragSize: number): Promise<void> {
    if (!this.deflater || this.params.clientNoCtx) {
      this.deflater?.close();
      this.deflater = zlib.createDeflateRaw({ windowBits: Math.max(9, this.params.clientBits) });
    }
    let payload = await DeflateClient.run(this.deflater, data);
    if (payload.length >= 4 && payload.subarray(-4).equals(B([0, 0, 0xff, 0xff]))) payload = payload.subarray(0, -4);
    const op = binary ? 2 : 1;
    const frames: Buffer[] = [];
    if (fragSize === 0 || payload.length <= fragSize) frames.push(raw({ opcode: op, rsv: 4, payload, key: [...cryptoRandom(4)] }));
    else {
      for (let i = 0; i < payload.length; i += fragSize) {
        frames.push(raw({ opcode: i === 0 ? op : 0, rsv: i === 0 ? 4 : 0, fin: i + fragSize >= payload.length, payload: payload.subarray(i, i + fragSize), key: [...cryptoRandom(4)] }));
      }
    }
    this.c.send(Buffer.concat(frames));
  }

  /** The next whole message from the server, inflated. */
  async receive(ms = 3000): Promise<{ data: Buffer; binary: boolean }> {
    const c = this.c;
    let end = -1;
    await c.until(() => {
      for (let i = this.next; i < c.frames.length; i++) {
        const f = c.frames[i];
        if (f.opcode === 8) throw new Error(`server closed: ${f.payload.length >= 2 ? f.payload.readUInt16BE(0) : ''}`);
        if (f.opcode < 8 && f.fin) {
          end = i;
          return true;
        }
      }
      return c.closed;
    }, { timeout: ms });
    if (end < 0) throw new Error('connection closed before the echo');
    const fs = c.frames.slice(this.next, end + 1).filter((f) => f.opcode < 8);
    this.next = end + 1;
    const first = fs[0];
    if (first.opcode !== 1 && first.opcode !== 2) throw new Error(`message starts with opcode ${first.opcode}`);
    if (fs.slice(1).some((f) => f.opcode !== 0 || f.rsv1)) throw new Error('bad continuation frames');
    if (fs.some((f) => f.rsv2 || f.rsv3)) throw new Error('RSV2/RSV3 set');
    let data = Buffer.concat(fs.map((f) => f.payload));
    if (first.rsv1) {
      if (!this.inflater || this.params.serverNoCtx) {
        // A fresh inflater per message under server_no_context_takeover catches a server that keeps its context.
        this.inflater?.close();
        // Exactly the negotiated window, as Autobahn's zlib.decompressobj(-server_max_window_bits) (8 included).
        this.inflater = zlib.createInflateRaw({ windowBits: this.params.serverBits });
      }
      data = await DeflateClient.run(this.inflater, Buffer.concat([data, B([0, 0, 0xff, 0xff])]));
    }
    return { data, binary: first.opcode === 2 };
  }

  /** Client-initiated close (closedByMe, requireClean): the server answers 1000 and drops TCP. */
  async close(): Promise<void> {
    this.c.send(closeFrame(NORMAL));
    await this.c.until(() => this.c.closed, { timeout: 1000 }).catch(() => {});
    if (!this.c.closed) this.c.socket.destroy();
    this.deflater?.close();
    this.inflater?.close();
  }
}

/** Deterministic stand-ins for Autobahn's test data files. */
function testData(): Record<string, { data: Buffer; binary: boolean }> {
  const r = rng(7);
  const words = ['Habe', 'nun', 'ach!', 'Philosophie', 'Juristerei', 'und', 'Medizin', 'Und', 'leider', 'auch', 'Theologie', 'durchaus', 'studiert', 'mit', 'heißem', 'Bemühn', 'Da', 'steh', 'ich', 'nun', 'ich', 'armer', 'Tor', 'Und', 'bin', 'so', 'klug', 'als', 'wie', 'zuvor', 'Größe', 'Übel'];
  let faust = '';
  while (faust.length < 200_000) faust += words[(r() * words.length) | 0] + (r() < 0.1 ? '\n' : ' ');
  const lena = Buffer.alloc(262_144 + 1078);
  for (let i = 0; i < lena.length; i++) lena[i] = (Math.sin(i / 512) * 60 + Math.cos((i % 512) / 37) * 50 + 128 + r() * 20) & 0xff;
  const pdf: Buffer[] = [];
  let pdfLen = 0;
  while (pdfLen < 300_000) {
    const part = r() < 0.5 ? U(`${(r() * 1000) | 0} 0 obj << /Type /Page /Length ${(r() * 9999) | 0} >> stream\n`) : Buffer.from(Array.from({ length: 512 }, () => (r() * 256) | 0));
    pdf.push(part);
    pdfLen += part.length;
  }
  const json = U(JSON.stringify(Array.from({ length: 2500 }, (_, i) => ({ id: i, name: `user${(r() * 1e6) | 0}`, active: r() < 0.5, score: Math.round(r() * 1e4) / 100, tags: ['alpha', 'beta', 'gamma'].slice(0, 1 + ((r() * 3) | 0)) }))));
  let html = '<!DOCTYPE html><html><head><title>data1</title></head><body>\n';
  while (html.length < 250_000) html += `<div class="row r${(r() * 50) | 0}"><a href="/item/${(r() * 1e5) | 0}">Item ${(r() * 1e5) | 0}</a><span>${'lorem ipsum dolor sit amet '.repeat(1 + ((r() * 3) | 0))}</span></div>\n`;
  html += '</body></html>';
  return {
    gutenberg_faust: { data: U(faust), binary: true },
    lena512: { data: lena, binary: true },
    ooms: { data: Buffer.concat(pdf), binary: true },
    json_data1: { data: json, binary: false },
    html_data1: { data: U(html), binary: false },
  };
}

// (payload length, auto-fragment size), as MSG_SIZES in case12_x_x.py.
const MSG_SIZES: [number, number][] = [
  [16, 0], [64, 0], [256, 0], [1024, 0], [4096, 0], [8192, 0], [16384, 0], [32768, 0], [65536, 0], [131072, 0],
  [8192, 256], [16384, 256], [32768, 256], [65536, 256], [131072, 256], [131072, 1024], [131072, 4096], [131072, 32768],
];
/** Autobahn sends 1000 messages per case; we send fewer (≤ 256 KiB in all, at least 3). */
const countFor = (len: number) => Math.max(3, Math.min(25, Math.floor((256 * 1024) / len)));

/** Autobahn's PerMessageDeflateOffer.getExtensionString (acceptNoContextTakeover and acceptMaxWindowBits default true). */
function offer(requestNoContextTakeover: boolean, requestMaxWindowBits: number): string {
  let s = 'permessage-deflate; client_no_context_takeover; client_max_window_bits';
  if (requestNoContextTakeover) s += '; server_no_context_takeover';
  if (requestMaxWindowBits !== 0) s += `; server_max_window_bits=${requestMaxWindowBits}`;
  return s;
}

async function compressedEcho(port: number, offerHeader: string, td: { data: Buffer; binary: boolean }, len: number, frag: number, requested: { noCtx: boolean; bits: number }) {
  const d = await DeflateClient.connect(port, offerHeader);
  expect(d.c.response).toMatch(/^HTTP\/1\.1 101/);
  expect(d.response, 'the server must accept permessage-deflate').toMatch(/^permessage-deflate/);
  // RFC 7692 §7.1.1.1 / §7.1.2.1: what the client asked of the server must be granted.
  if (requested.noCtx) expect(d.params.serverNoCtx).toBe(true);
  if (requested.bits) expect(d.params.serverBits).toBeLessThanOrEqual(requested.bits);
  let ptr = 0;
  const n = countFor(len);
  try {
    for (let i = 0; i < n; i++) {
      // sendOne: consecutive slices of the test data, wrapping around.
      let m: Buffer;
      const to = (ptr + len) % td.data.length;
      m = to > ptr ? td.data.subarray(ptr, to) : Buffer.concat([td.data.subarray(ptr), td.data.subarray(0, to)]);
      ptr = to;
      await d.send(m, td.binary, frag);
      const echo = await d.receive();
      expect(echo.binary, `message ${i}: type`).toBe(td.binary);
      expect(echo.data.length, `message ${i}: length`).toBe(len);
      expect(createHash('sha1').update(echo.data).digest('hex'), `message ${i}: content`).toBe(createHash('sha1').update(m).digest('hex'));
    }
  } finally {
    await d.close();
  }
  const close = d.c.frames.find((f) => f.opcode === 8);
  expect(close, 'server close frame').toBeDefined();
  if (close!.payload.length >= 2) expect(close!.payload.readUInt16BE(0)).toBe(NORMAL);
  expect(d.c.closed, 'the server must drop TCP after the closing handshake').toBe(true);
}

describe('12 / 13 permessage-deflate', () => {
  let pmd: { wss: WebSocketServer; port: number };
  let pmd2: { wss: WebSocketServer; port: number };
  const DATA = testData();
  beforeAll(async () => {
    const echo = (wss: WebSocketServer) =>
      wss.on('connection', (ws) => ws.on('message', (d, isBinary) => ws.send(d as Buffer, { binary: isBinary })));
    pmd = await startServer({ perMessageDeflate: true });
    echo(pmd.wss);
    pmd2 = await startServer({ perMessageDeflate: { serverNoContextTakeover: true, clientMaxWindowBits: 9, threshold: 0 } });
    echo(pmd2.wss);
  });
  afterAll(async () => {
    await Promise.all([stopServer(pmd.wss), stopServer(pmd2.wss)]);
  });

  Object.entries(DATA).forEach(([name, td], j) => {
    describe(`12.${j + 1} ${name} (${td.binary ? 'binary' : 'text'})`, () => {
      MSG_SIZES.forEach(([len, frag], i) => {
        it(`12.${j + 1}.${i + 1} ${countFor(len)} messages of ${len} bytes, auto-fragment ${frag}`, () =>
          compressedEcho(pmd.port, offer(false, 0), td, len, frag, { noCtx: false, bits: 0 }));
      });
    });
  });

  const DEFLATE_PARAMS: [boolean, number][][] = [
    [[false, 0]], [[true, 0]], [[false, 8]], [[false, 15]], [[true, 8]], [[true, 15]], [[true, 8], [true, 0], [false, 0]],
  ];
  DEFLATE_PARAMS.forEach((offers, j) => {
    const header = offers.map(([nc, bits]) => offer(nc, bits)).join(', ');
    describe(`13.${j + 1} json_data1, client offers ${JSON.stringify(offers)}`, () => {
      MSG_SIZES.forEach(([len, frag], i) => {
        it(`13.${j + 1}.${i + 1} ${countFor(len)} messages of ${len} bytes, auto-fragment ${frag}`, () =>
          compressedEcho(pmd.port, header, DATA.json_data1, len, frag, { noCtx: offers[0][0], bits: offers[0][1] }));
      });
    });
    // The same offers against a server configured with serverNoContextTakeover, clientMaxWindowBits 9, threshold 0.
    it(`13.${j + 1}.x (server: serverNoContextTakeover, clientMaxWindowBits 9, threshold 0) all sizes`, async () => {
      for (const [len, frag] of MSG_SIZES) {
        await compressedEcho(pmd2.port, header, DATA.json_data1, len, frag, { noCtx: true, bits: offers[0][1] });
      }
    });
  });
});
