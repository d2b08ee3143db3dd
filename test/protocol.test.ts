// The sans-I/O protocol: bytes in, events and bytes out, no sockets.
import { describe, expect, it } from 'vitest';
import { Protocol, State, type MessageCompressor, type ProtocolSink } from '../src/protocol/protocol.js';
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
  onError(err: Error) { this.events.push(['error', (err as { code?: number }).code]); }
  onEnd() { this.events.push(['end']); }
  onAbort() { this.events.push(['abort']); }
  onClosed() { this.events.push(['closed', this.p.closeCode, this.p.closeReason.toString(), this.p.wasClean]); }
  p!: Protocol;
  onOutput() { this.out.push(...this.p.out.take()); }
  /** What we sent, parsed as the client would. */
  sent(): Frame[] {
    return new FrameParser({ role: 'client' }).push(Buffer.concat(this.out));
  }
}

describe.each(BACKENDS)('Protocol (%s codec)', (_n, codec) => {
  const make = (maxPayload = 1 << 20, extra: { endWithCloseFrame?: boolean } = {}) => {
    const rec = new Recorder();
    const p = new Protocol(rec, { role: 'server', maxPayload, codec, ...extra });
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

  it('a message listener that throws: the exception goes up, the connection fails with 1011 and later input is discarded', () => {
    const { rec, p } = make();
    let thrown = 0;
    const errors: string[] = [];
    rec.onError = (err: Error) => { errors.push(err.message); };
    const onMessage = rec.onMessage.bind(rec);
    rec.onMessage = (data: Buffer, isBinary: boolean) => {
      onMessage(data, isBinary);
      if (data.toString() === 'boom') {
        thrown++;
        throw new Error('listener bug');
      }
    };
    const two = Buffer.concat(['boom', 'after'].map((t) => raw({ opcode: 1, payload: Buffer.from(t), key: K })));
    expect(() => p.receive(two)).toThrow('listener bug');
    p.receive(raw({ opcode: 1, payload: Buffer.from('later'), key: K }));
    expect(thrown).toBe(1);
    expect(rec.events.filter((e) => e[0] === 'message')).toEqual([['message', 'boom', false]]);
    expect([p.state, p.failed, p.closeCode]).toEqual([State.CLOSING, true, 1011]);
    const [close] = rec.sent();
    expect([close.opcode, close.payload.readUInt16BE(0), close.payload.length]).toEqual([8, 1011, 2]); // no detail for the peer
    expect(errors).toEqual(['an application listener threw (1011 sent to the peer)']); // but a message for us
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
    // The echo is queued, then the transport is asked to end our half (§7.1.1).
    expect(rec.events).toEqual([['end']]);
    expect([p.state, p.closeCode, p.closeReason.toString(), p.closeSent, p.closeReceived]).toEqual([State.CLOSING, 4000, 'done', true, true]);
    const [close] = rec.sent();
    expect(close.opcode).toBe(8);
    expect(close.payload.readUInt16BE(0)).toBe(4000);
    p.connectionLost();
    expect(rec.events.at(-1)).toEqual(['closed', 4000, 'done', true]);
    expect(p.state).toBe(State.CLOSED);
  });

  it.each([
    ['a reserved opcode', raw({ opcode: 3, payload: Buffer.alloc(0), key: K })],
    ['an unmasked frame', raw({ opcode: 1, payload: Buffer.from('x') })],
    ['a 64-bit length with its top bit set', Buffer.from([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4])],
    ['invalid UTF-8 text', raw({ opcode: 1, payload: Buffer.from([0xc3, 0x28]), key: K })],
  ])('bytes behind the peer\'s close in the same read (%s) are discarded, not judged: a clean 1000', (_what, trailer) => {
    const { rec, p } = make();
    p.receive(Buffer.concat([raw({ opcode: 8, payload: encodeClosePayload(1000, ''), key: K }), trailer]));
    expect(rec.events).toEqual([['end']]); // no error
    expect([p.failed, p.closeCode]).toEqual([false, 1000]);
    const frames = rec.sent();
    expect(frames.map((f) => [f.opcode, f.payload.readUInt16BE(0)])).toEqual([[8, 1000]]);
    p.connectionLost();
    expect(rec.events.at(-1)).toEqual(['closed', 1000, '', true]);
  });

  it('answers an empty close with an empty close and reports 1005', () => {
    const { rec, p } = make();
    p.receive(raw({ opcode: 8, key: K }));
    expect(rec.events).toEqual([['end']]);
    expect(p.closeCode).toBe(1005);
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
    expect(rec.events.slice(-2)).toEqual([['end'], ['error', code]]);
    const close = rec.sent().find((f) => f.opcode === 8)!;
    expect(close.payload.readUInt16BE(0)).toBe(code);
    expect([p.failed, p.state, p.closeCode]).toEqual([true, State.CLOSING, code]);
    p.connectionLost();
    expect(rec.events.at(-1)).toEqual(['closed', code, '', false]);
  });

  it('fails fast (1007) on invalid UTF-8 in the first fragment, before the message ends', () => {
    const { rec, p } = make();
    p.receive(raw({ fin: false, opcode: 1, payload: Buffer.from([0x61, 0xf4, 0x90, 0x80, 0x80]), key: K }));
    expect(rec.events).toEqual([['end'], ['error', 1007]]);
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
    expect(rec.events).toEqual([['message', 'first', false], ['end'], ['error', 1002]]);
  });

  // ── the state machine: OPEN → CLOSING → CLOSED, and the facts it reports ──

  it('closes cleanly when we start the closing handshake: CLOSING until the peer answers, end after its close', () => {
    const { rec, p } = make();
    expect(p.state).toBe(State.OPEN);
    p.close(1000, 'bye');
    expect([p.state, p.closeSent, rec.events]).toEqual([State.CLOSING, true, []]);
    const [ours] = rec.sent();
    expect([ours.opcode, ours.payload.readUInt16BE(0), ours.payload.subarray(2).toString()]).toEqual([8, 1000, 'bye']);
    p.close(1001); // a second close sends nothing
    expect(rec.sent()).toHaveLength(1);
    p.receive(raw({ opcode: 8, payload: encodeClosePayload(1000, 'ok'), key: K }));
    expect(rec.events).toEqual([['end']]);
    expect(rec.sent()).toHaveLength(1); // no second close frame
    p.connectionLost();
    expect(rec.events).toEqual([['end'], ['closed', 1000, 'ok', true]]);
  });

  it('over HTTP/2 (endWithCloseFrame) ends our half with our close frame, and stays CLOSING for the peer\'s', () => {
    const { rec, p } = make(1 << 20, { endWithCloseFrame: true });
    p.close(1000);
    expect(rec.events).toEqual([['end']]);
    p.receive(raw({ opcode: 8, payload: encodeClosePayload(1000), key: K }));
    expect([rec.events, p.closeReceived]).toEqual([[['end']], true]); // onEnd once
  });

  it('rejects sends once closing, and throws for a close payload it cannot encode before any state changes', () => {
    const { p } = make();
    expect(() => p.close(1000, 'x'.repeat(124))).toThrow();
    expect(p.state).toBe(State.OPEN);
    p.close(1000);
    let err: Error | null | undefined;
    p.sendMessage(Buffer.from('late'), false, false, (e) => { err = e; });
    return new Promise<void>((resolve) => setImmediate(() => {
      expect(err?.message).toMatch(/not open/);
      resolve();
    }));
  });

  it('reports 1006 when the transport closes without a close frame, and discards input after EOF', () => {
    const { rec, p } = make();
    p.receiveEof();
    expect([p.state, rec.events]).toEqual([State.CLOSING, [['end']]]);
    p.receive(raw({ opcode: 1, payload: Buffer.from('after eof'), key: K }));
    p.connectionLost();
    expect(rec.events).toEqual([['end'], ['closed', 1006, '', false]]);
    p.connectionLost(); // once
    expect(rec.events).toHaveLength(2);
  });

  it('abort() drops the transport with the code from the error table, unless the peer\'s close code is known', () => {
    const a = make();
    a.p.sendMessage(Buffer.from('queued'), false, false);
    a.p.abort('backpressure', 'too slow');
    expect([a.rec.events, a.p.out.bytes, a.p.state]).toEqual([[['abort']], 0, State.CLOSING]);
    a.p.connectionLost();
    expect(a.rec.events.at(-1)).toEqual(['closed', 1008, 'too slow', false]);

    const b = make();
    b.p.receive(raw({ opcode: 8, payload: encodeClosePayload(4001, 'peer'), key: K }));
    b.p.abort('close_timeout');
    b.p.connectionLost();
    expect(b.rec.events.at(-1)).toEqual(['closed', 4001, 'peer', false]);

    const c = make();
    c.p.close(1000);
    c.p.abort('close_timeout'); // the peer never answered
    c.p.connectionLost();
    expect(c.rec.events.at(-1)).toEqual(['closed', 1006, '', false]);
  });

  it('fail(kind) sends the close code of its kind; an unknown error is 1011 with no detail', () => {
    const a = make();
    a.p.fail('too_big', 'message too big');
    const [close] = a.rec.sent();
    expect([close.payload.readUInt16BE(0), close.payload.subarray(2).toString(), a.p.closeCode]).toEqual([1009, 'message too big', 1009]);
    const b = make();
    b.p.fail(new Error('secret internal detail'));
    const [close2] = b.rec.sent();
    expect([close2.payload.readUInt16BE(0), close2.payload.length, b.p.closeCode]).toEqual([1011, 2, 1011]);
  });

  it('delivers the message being inflated, and the frames behind it, before CLOSED when the transport closes meanwhile', async () => {
    const rec = new Recorder();
    let finish: ((err: Error | null, out?: Buffer) => void) | null = null;
    const compressor: MessageCompressor = {
      threshold: 0,
      decompress: (_data, cb) => { finish = cb; },
      compress: (data, cb) => setImmediate(cb, null, data),
      release: () => {},
    };
    const p = new Protocol(rec, { role: 'server', maxPayload: 1 << 20, codec });
    rec.p = p;
    p.setCompressor(compressor);
    p.receive(Buffer.concat([
      raw({ opcode: 1, rsv: 4, payload: Buffer.from('compressed'), key: K }),
      raw({ opcode: 8, payload: encodeClosePayload(1000, 'after'), key: K }),
    ]));
    p.connectionLost();
    expect([p.state, rec.events]).toEqual([State.CLOSING, []]);
    finish!(null, Buffer.from('inflated'));
    expect(rec.events).toEqual([['message', 'inflated', false], ['end'], ['closed', 1000, 'after', true]]);
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

describe('Protocol over a socket, as the README drives it', () => {
  it('echoes for a ws client and closes cleanly, with nothing but receive / receiveEof / connectionLost and the sink', async () => {
    const net = await import('node:net');
    const { default: WS } = await import('ws');
    const { acceptKey } = await import('../src/handshake/upgrade.js');
    const { createCodec } = await import('../src/codec/index.js');
    let closed!: (v: [number, boolean]) => void;
    const serverClosed = new Promise<[number, boolean]>((r) => { closed = r; });
    const server = net.createServer((sock) => {
      let hs = '';
      const onHs = (b: Buffer) => {
        hs += b.toString('latin1');
        const i = hs.indexOf('\r\n\r\n');
        if (i < 0) return;
        sock.off('data', onHs);
        const key = /sec-websocket-key: *(.*)\r\n/i.exec(hs)![1];
        sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`);
        const p: Protocol = new Protocol({
          onMessage: (data, isBinary) => p.sendMessage(data, isBinary, false),
          onPing() {}, onPong() {}, onError() {}, onAbort: () => sock.destroy(),
          onOutput: () => { for (const b of p.out.take()) sock.write(b); },
          onEnd: () => sock.end(), onClosed: () => closed([p.closeCode, p.wasClean]),
        }, { role: 'server', maxPayload: 1 << 20, codec: createCodec() });
        sock.on('data', (b: Buffer) => p.receive(b)).on('end', () => p.receiveEof()).on('close', () => p.connectionLost());
      };
      sock.on('data', onHs);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const c = new WS(`ws://127.0.0.1:${(server.address() as { port: number }).port}`);
    const echoed = new Promise<string>((r) => c.once('message', (d) => r(String(d))));
    c.on('open', () => c.send('hi'));
    expect(await echoed).toBe('hi');
    const clientClosed = new Promise<number>((r) => c.once('close', (code) => r(code)));
    c.close(1000, 'bye');
    expect(await clientClosed).toBe(1000);
    expect(await serverClosed).toEqual([1000, true]);
    server.close();
  });
});
