// The sans-I/O protocol: bytes in, events and bytes out, no sockets.
import { describe, expect, it } from 'vitest';
import { Protocol, type ProtocolSink } from '../src/protocol/protocol.js';
import { FrameParser, type Frame } from '../src/protocol/parser.js';
import { encodeClosePayload } from '../src/protocol/frame.js';
import { Utf8Validator } from '../src/protocol/utf8.js';
import { BACKENDS, raw } from './helpers.js';

const K = [1, 2, 3, 4];

class Recorder implements ProtocolSink {
  events: [string, ...unknown[]][] = [];
  out: Buffer[] = [];
  onMessage(data: Buffer, isBinary: boolean) { this.events.push(['message', isBinary ? data.toString('hex') : data.toString(), isBinary]); }
  onPing(data: Buffer) { this.events.push(['ping', data.toString()]); }
  onPong(data: Buffer) { this.events.push(['pong', data.toString()]); }
  onClose(code: number, reason: Buffer) { this.events.push(['close', code, reason.toString()]); }
  onError(err: Error) { this.events.push(['error', (err as { code?: number }).code]); }
  p!: Protocol;
  onOutput() { this.out.push(...this.p.out.take()); }
  /** What we sent, parsed as the client would. */
  sent(): Frame[] {
    return new FrameParser({ role: 'client' }).push(Buffer.concat(this.out));
  }
}

describe.each(BACKENDS)('Protocol (%s codec)', (_n, codec) => {
  const make = (maxPayload = 1 << 20) => {
    const rec = new Recorder();
    const p = new Protocol(rec, { role: 'server', maxPayload, codec });
    rec.p = p;
    return { rec, p };
  };

  it('delivers text and binary messages, and reassembles fragments around control frames', () => {
    const { rec, p } = make();
    p.receive(Buffer.concat([
      raw({ opcode: 1, payload: Buffer.from('héllo'), key: K }),
      raw({ opcode: 2, payload: Buffer.from([0, 255]), key: K }),
      raw({ fin: false, opcode: 1, payload: Buffer.from('fr'), key: K }),
      raw({ opcode: 9, payload: Buffer.from('p1'), key: K }),
      raw({ fin: false, opcode: 0, payload: Buffer.from('ag'), key: K }),
      raw({ opcode: 0, payload: Buffer.from('ment'), key: K }),
    ]));
    expect(rec.events).toEqual([
      ['message', 'héllo', false], ['message', '00ff', true], ['ping', 'p1'], ['message', 'fragment', false],
    ]);
  });

  it('answers a ping with a pong carrying the same payload', () => {
    const { rec, p } = make();
    p.receive(raw({ opcode: 9, payload: Buffer.from('are you there'), key: K }));
    const [pong] = rec.sent();
    expect([pong.opcode, pong.payload.toString()]).toEqual([10, 'are you there']);
  });

  it('echoes the peer close code and reports it; later input is discarded', () => {
    const { rec, p } = make();
    p.receive(raw({ opcode: 8, payload: encodeClosePayload(4000, 'done'), key: K }));
    p.receive(raw({ opcode: 1, payload: Buffer.from('late'), key: K }));
    expect(rec.events).toEqual([['close', 4000, 'done']]);
    const [close] = rec.sent();
    expect(close.opcode).toBe(8);
    expect(close.payload.readUInt16BE(0)).toBe(4000);
  });

  it('answers an empty close with an empty close and reports 1005', () => {
    const { rec, p } = make();
    p.receive(raw({ opcode: 8, key: K }));
    expect(rec.events).toEqual([['close', 1005, '']]);
    expect(rec.sent()[0].payload.length).toBe(0);
  });

  const failures: [string, Buffer, number][] = [
    ['invalid UTF-8 in a text message', raw({ opcode: 1, payload: Buffer.from([0xce, 0xba, 0xff]), key: K }), 1007],
    ['a close frame with a 1-byte payload', raw({ opcode: 8, payload: Buffer.from([1]), key: K }), 1002],
    ['a close frame with code 1005', raw({ opcode: 8, payload: Buffer.from([0x03, 0xed]), key: K }), 1002],
    ['a close reason that is not UTF-8', raw({ opcode: 8, payload: Buffer.from([0x03, 0xe8, 0xc0]), key: K }), 1007],
    ['a reserved opcode', raw({ opcode: 5, key: K }), 1002],
    ['a message over maxPayload', raw({ opcode: 2, payload: Buffer.alloc(2000), key: K }), 1009],
  ];
  it.each(failures)('fails with a close frame and the right code on %s', (_n, bytes, code) => {
    const { rec, p } = make(1000);
    p.receive(bytes);
    expect(rec.events.at(-1)).toEqual(['error', code]);
    const close = rec.sent().find((f) => f.opcode === 8)!;
    expect(close.payload.readUInt16BE(0)).toBe(code);
    expect(p.failed).toBe(true);
  });

  it('fails fast (1007) on invalid UTF-8 in the first fragment, before the message ends', () => {
    const { rec, p } = make();
    p.receive(raw({ fin: false, opcode: 1, payload: Buffer.from([0x61, 0xf4, 0x90, 0x80, 0x80]), key: K }));
    expect(rec.events).toEqual([['error', 1007]]);
  });

  it('accepts a code point split across fragments', () => {
    const { rec, p } = make();
    const euro = Buffer.from('€'); // e2 82 ac
    p.receive(raw({ fin: false, opcode: 1, payload: euro.subarray(0, 1), key: K }));
    p.receive(raw({ fin: false, opcode: 0, payload: euro.subarray(1, 2), key: K }));
    p.receive(raw({ opcode: 0, payload: euro.subarray(2), key: K }));
    expect(rec.events).toEqual([['message', '€', false]]);
  });

  it('delivers the frames that preceded a protocol error, then fails', () => {
    const { rec, p } = make();
    p.receive(Buffer.concat([raw({ opcode: 1, payload: Buffer.from('first'), key: K }), raw({ opcode: 1, rsv: 2, key: K })]));
    expect(rec.events).toEqual([['message', 'first', false], ['error', 1002]]);
  });

  it('masks what a client sends and leaves server frames unmasked', () => {
    const rec = new Recorder();
    const client = new Protocol(rec, { role: 'client', maxPayload: 1 << 20, codec });
    rec.p = client;
    client.sendMessage(Buffer.from('hi'), false, false);
    expect(rec.out[0][1] & 0x80).toBe(0x80);
    expect(new FrameParser({ role: 'server' }).push(Buffer.concat(rec.out))[0].payload.toString()).toBe('hi');
  });
});

describe('Utf8Validator', () => {
  it('accepts valid text split at every byte', () => {
    const text = Buffer.from('aé€😀z');
    for (let i = 0; i <= text.length; i++) {
      const v = new Utf8Validator();
      expect(v.push(text.subarray(0, i)) && v.push(text.subarray(i)) && v.end()).toBe(true);
    }
  });
  it('rejects a truncated sequence at the end, overlongs, surrogates and code points above U+10FFFF as soon as they are known', () => {
    const v1 = new Utf8Validator();
    expect(v1.push(Buffer.from([0x61, 0xe2, 0x82]))).toBe(true);
    expect(v1.end()).toBe(false);
    expect(new Utf8Validator().push(Buffer.from([0xc0]))).toBe(false);
    expect(new Utf8Validator().push(Buffer.from([0xed, 0xa0]))).toBe(false);
    expect(new Utf8Validator().push(Buffer.from([0xf4, 0x90]))).toBe(false);
    expect(new Utf8Validator().push(Buffer.from([0xe0, 0x80]))).toBe(false);
  });
});
