import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as layout from '../src/codec/layout.js';
import { AutoCodec, createCodec } from '../src/codec/index.js';
import { WasmCodec, wasmExports, wasmReadBuffer } from '../src/codec/wasm.js';
import { FrameParser, type Frame } from '../src/protocol/parser.js';
import { encodeFrame, encodeClosePayload, decodeClosePayload, headerSize } from '../src/protocol/frame.js';
import { ProtocolError } from '../src/protocol/errors.js';
import {
  ROW_BITS, ROW_KEY, ROW_LENGTH, ROW_OFFSET, SCAN_ERR_LENGTH_MSB, SCAN_ERR_TOO_BIG, SCAN_PARTIAL_HEADER, SCAN_PARTIAL_PAYLOAD,
} from '../src/codec/layout.js';
import { BACKENDS, PIN_BOUND, raw, rng, randomBytes, splitAt } from './helpers.js';

const KEY = [0x37, 0xfa, 0x21, 0x3d];
const keyU32 = (k: number[]) => (k[0] | (k[1] << 8) | (k[2] << 16) | (k[3] << 24)) >>> 0;

function refMask(data: Uint8Array, key: number[], phase = 0): Buffer {
  const out = Buffer.from(data);
  for (let i = 0; i < out.length; i++) out[i] ^= key[(i + phase) & 3];
  return out;
}

function pushAll(p: FrameParser, chunks: Buffer[]): Frame[] {
  const out: Frame[] = [];
  for (const c of chunks) out.push(...p.push(c));
  return out;
}

function errorOf(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ProtocolError) return e;
    throw e;
  }
  throw new Error('expected a ProtocolError');
}

describe('createCodec', () => {
  it('picks wasm for auto where WebAssembly loads, and honours an explicit backend', () => {
    expect(createCodec().backend).toBe('wasm');
    expect(createCodec()).toBeInstanceOf(AutoCodec);
    expect(createCodec({ backend: 'ts' }).backend).toBe('ts');
    expect(createCodec({ backend: 'wasm' }).backend).toBe('wasm');
  });
  it('lets WASMWS_CODEC force the backend that auto picks', () => {
    const prev = process.env.WASMWS_CODEC;
    process.env.WASMWS_CODEC = 'ts';
    try {
      expect(createCodec({ backend: 'auto' }).backend).toBe('ts');
    } finally {
      if (prev === undefined) delete process.env.WASMWS_CODEC;
      else process.env.WASMWS_CODEC = prev;
    }
  });
  it('falls back to the TS twin where WebAssembly is unavailable (node --jitless), from ESM and CJS (and to the native unmask where the runtime has one)', () => {
    // Without wasm, auto scans with what its table says wins among ts and native (where a native
    // unmask exists: node:http on Node ≥ 26, else bufferutil): the same decision in this process.
    const want = new AutoCodec({ wasm: false }).backend;
    const root = new URL('..', import.meta.url).pathname;
    const esm = spawnSync(process.execPath, ['--jitless', '--input-type=module', '-e',
      "import { createCodec, FrameParser, encodeFrame } from './dist/esm/index.js';" +
      "const p = new FrameParser({ role: 'server' });" +
      "console.log(createCodec().backend, p.push(encodeFrame(1, 'héllo', { mask: true }))[0].payload.toString());"],
    { cwd: root, encoding: 'utf8' });
    expect(esm.stdout.trim()).toBe(`${want} héllo`);
    const cjs = spawnSync(process.execPath, ['--jitless', '-e', "console.log(require('./dist/cjs/index.js').createCodec().backend)"], { cwd: root, encoding: 'utf8' });
    expect(cjs.stdout.trim()).toBe(want);
  });

  it('rejects an unknown backend', () => {
    expect(() => createCodec({ backend: 'gpu' as never })).toThrow(/unknown codec backend/);
  });
});

describe.each(BACKENDS)('%s codec', (_name, codec) => {
  describe('unmask and mask', () => {
    it('unmasks in place at every size 0..300, every phase and unaligned offsets', () => {
      const next = rng(1);
      for (let size = 0; size <= 300; size += size < 40 ? 1 : 13) {
        for (let phase = 0; phase < 4; phase++) {
          for (const lead of [0, 1, 3]) {
            const backing = randomBytes(next, size + lead + 2);
            const expected = Buffer.from(backing);
            const region = refMask(backing.subarray(lead, lead + size), KEY, phase);
            region.copy(expected, lead);
            codec.unmask(backing, lead, lead + size, keyU32(KEY), phase);
            expect(backing.equals(expected)).toBe(true);
          }
        }
      }
    });
    it('unmasks a 3 MiB buffer (several wasm slices) exactly', () => {
      const data = randomBytes(rng(2), 3 * 1024 * 1024 + 5);
      const expected = refMask(data, KEY);
      codec.unmask(data, 0, data.length, keyU32(KEY), 0);
      expect(data.equals(expected)).toBe(true);
    });
    it('masks into an output buffer at an offset, leaving the source untouched', () => {
      for (const size of [0, 3, 16, 125, 1000, 70000]) {
        const src = randomBytes(rng(size), size);
        const copy = Buffer.from(src);
        const out = Buffer.alloc(size + 10, 0xaa);
        codec.mask(src, keyU32(KEY), out, 6, size);
        expect(src.equals(copy)).toBe(true);
        expect(out.subarray(6, 6 + size).equals(refMask(src, KEY))).toBe(true);
        expect(out.subarray(0, 6).every((b) => b === 0xaa)).toBe(true);
        expect(out.subarray(6 + size).every((b) => b === 0xaa)).toBe(true);
      }
    });
  });

  describe('FrameParser', () => {
    const server = (o = {}) => new FrameParser({ role: 'server', codec, ...o });
    const client = (o = {}) => new FrameParser({ role: 'client', codec, ...o });

    // RFC 6455 §5.7 examples.
    it('parses the RFC 6455 §5.7 single-frame unmasked text message', () => {
      const [f] = client().push(Buffer.from([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]));
      expect(f).toMatchObject({ fin: true, opcode: 1, rsv1: false });
      expect(f.payload.toString()).toBe('Hello');
    });
    it('parses the RFC 6455 §5.7 single-frame masked text message', () => {
      const bytes = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
      const [f] = server().push(Buffer.from(bytes));
      expect(f.payload.toString()).toBe('Hello');
    });
    it('parses the RFC 6455 §5.7 fragmented unmasked text message', () => {
      const fs = client().push(Buffer.from([0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]));
      expect(fs.map((f) => [f.fin, f.opcode, f.payload.toString()])).toEqual([[false, 1, 'Hel'], [true, 0, 'lo']]);
    });
    it('parses the RFC 6455 §5.7 ping and masked pong', () => {
      const [ping] = client().push(Buffer.from([0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]));
      expect([ping.opcode, ping.payload.toString()]).toEqual([9, 'Hello']);
      const [pong] = server().push(Buffer.from([0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]));
      expect([pong.opcode, pong.payload.toString()]).toEqual([10, 'Hello']);
    });
    it('parses the RFC 6455 §5.7 256-byte (16-bit length) and 64 KiB (64-bit length) binary frames', () => {
      const p256 = randomBytes(rng(3), 256);
      const f256 = Buffer.concat([Buffer.from([0x82, 0x7e, 0x01, 0x00]), p256]);
      expect(client().push(f256)[0].payload.equals(p256)).toBe(true);
      const p64 = randomBytes(rng(4), 65536);
      const f64 = Buffer.concat([Buffer.from([0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]), p64]);
      expect(client().push(f64)[0].payload.equals(p64)).toBe(true);
    });

    it.each([0, 1, 125, 126, 127, 65535, 65536, 70000])('round-trips a %i-byte payload in both directions with the shortest length form', (n) => {
      const payload = randomBytes(rng(n + 7), n);
      const fromClient = encodeFrame(2, payload, { mask: true, codec });
      const fromServer = encodeFrame(2, payload, { codec });
      expect(fromClient.length).toBe(headerSize(n, true) + n);
      expect(fromServer.length).toBe(headerSize(n, false) + n);
      expect(fromServer[1] & 0x7f).toBe(n <= 125 ? n : n <= 65535 ? 126 : 127);
      // push a copy: the parser may unmask its input in place (as ws does)
      expect(server().push(Buffer.from(fromClient))[0].payload.equals(payload)).toBe(true);
      expect(client().push(fromServer)[0].payload.equals(payload)).toBe(true);
      // The same frame split one byte at a time.
      const ones = Array.from({ length: fromClient.length }, (_, i) => Buffer.from(fromClient.subarray(i, i + 1)));
      const got = pushAll(server(), ones);
      expect(got).toHaveLength(1);
      expect(got[0].payload.equals(payload)).toBe(true);
    });

    it('writes the 16-bit length as 2 bytes and the 64-bit length as 8 bytes (the seed tutorial swapped them)', () => {
      const f16 = encodeFrame(2, Buffer.alloc(300));
      expect([...f16.subarray(0, 4)]).toEqual([0x82, 126, 0x01, 0x2c]);
      const f64 = encodeFrame(2, Buffer.alloc(65536));
      expect([...f64.subarray(0, 10)]).toEqual([0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    });

    it('accepts 64-bit lengths of 2^32 and 2^53−1 in a header and buffers only the bytes that arrived', () => {
      for (const declared of [2n ** 32n, 2n ** 53n - 1n]) {
        const p = client({ maxPayload: Number.MAX_SAFE_INTEGER });
        const head = raw({ opcode: 2, declared, form: 64 });
        expect(p.push(Buffer.concat([head, Buffer.alloc(100)]))).toEqual([]);
        expect(p.bufferedBytes).toBe(100);
      }
    });
    it('fails with 1009 on a 64-bit length of 2^53 before buffering any payload', () => {
      const e = errorOf(() => client({ maxPayload: Infinity }).push(raw({ opcode: 2, declared: 2n ** 53n, form: 64 })));
      expect(e.code).toBe(1009);
    });
    it('fails with 1002 on a 64-bit length with the most significant bit set (2^63)', () => {
      const e = errorOf(() => client().push(raw({ opcode: 2, declared: 2n ** 63n, form: 64 })));
      expect(e.code).toBe(1002);
    });
    it('fails with 1009 when a header declares more than maxPayload, whether the header arrives whole or split', () => {
      const head = raw({ opcode: 2, declared: 1001n, key: KEY });
      expect(errorOf(() => server({ maxPayload: 1000 }).push(head)).code).toBe(1009);
      const p = server({ maxPayload: 1000 });
      p.push(head.subarray(0, 3));
      expect(errorOf(() => p.push(head.subarray(3))).code).toBe(1009);
    });
    it('scans a lone header into a table row: every length form, the masking key, and the 1002 / 1009 refusals as statuses', () => {
      const scan = (declared: bigint, form: 7 | 16 | 64, max = Infinity, key: number[] | null = KEY) => {
        const head = raw({ opcode: 2, declared, form, key });
        const r = codec.scan(Buffer.from(head), 0, head.length, max, 0, 0, 0);
        const row = [r.table[ROW_BITS], r.table[ROW_OFFSET], r.table[ROW_LENGTH], r.table[ROW_KEY]];
        return r.status === SCAN_PARTIAL_PAYLOAD ? { length: r.partialLength, row } : { status: r.status, consumed: r.consumed };
      };
      const masked = (hlen: number, length: number) => ({ length, row: [0x82 | 0x8000 | ((length < 126 ? length : length < 65536 ? 126 : 127) << 8), hlen, 0, keyU32(KEY)] });
      expect(scan(125n, 7)).toEqual(masked(6, 125));
      expect(scan(0xffffn, 16)).toEqual(masked(8, 0xffff));
      expect(scan(2n ** 32n + 7n, 64)).toEqual(masked(14, 2 ** 32 + 7));
      expect(scan(2n ** 53n - 1n, 64)).toEqual(masked(14, Number.MAX_SAFE_INTEGER));
      expect(scan(5n, 64)).toEqual({ length: 5, row: [0x82 | 0x8000 | (127 << 8), 14, 0, keyU32(KEY)] });
      expect(scan(300n, 16, Infinity, null)).toEqual({ length: 300, row: [0x82 | (126 << 8), 4, 0, 0] });
      expect(scan(2n ** 53n, 64)).toEqual({ status: SCAN_ERR_TOO_BIG, consumed: 0 });
      expect(scan(2n ** 63n - 1n, 64)).toEqual({ status: SCAN_ERR_TOO_BIG, consumed: 0 });
      expect(scan(2n ** 63n, 64)).toEqual({ status: SCAN_ERR_LENGTH_MSB, consumed: 0 });
      expect(scan(2n ** 64n - 1n, 64)).toEqual({ status: SCAN_ERR_LENGTH_MSB, consumed: 0 });
      expect(scan(1000n, 16, 1000)).toEqual(masked(8, 1000));
      expect(scan(1001n, 16, 1000)).toEqual({ status: SCAN_ERR_TOO_BIG, consumed: 0 });
      expect(scan(1001n, 64, 1000)).toEqual({ status: SCAN_ERR_TOO_BIG, consumed: 0 });
      expect(scan(100n, 7, 99)).toEqual({ status: SCAN_ERR_TOO_BIG, consumed: 0 });
      const cut = raw({ opcode: 2, declared: 70000n, form: 64, key: KEY }).subarray(0, 13);
      expect(codec.scan(Buffer.from(cut), 0, 13, Infinity, 0, 0, 0)).toMatchObject({ status: SCAN_PARTIAL_HEADER, consumed: 0, count: 0 });
    });
    it('decodes a header split at any byte, or arriving a byte at a time, exactly as a whole one (every length form, and the 1002 / 1009 refusals)', () => {
      const body = (n: number) => randomBytes(rng(n), n);
      const cases: [string, Buffer, 'server' | 'client', number, string][] = [
        ['7-bit, masked', raw({ opcode: 2, payload: body(125), key: KEY }), 'server', Infinity, 'frames 1'],
        ['16-bit, masked', raw({ opcode: 2, payload: body(300), key: KEY }), 'server', Infinity, 'frames 1'],
        ['64-bit, unmasked', raw({ opcode: 2, payload: body(70000) }), 'client', Infinity, 'frames 1'],
        ['a 10-byte length in the 64-bit form, masked', raw({ opcode: 1, payload: Buffer.from('0123456789'), form: 64, key: KEY }), 'server', Infinity, 'frames 1'],
        ['a 64-bit length of 2^53', raw({ opcode: 2, declared: 2n ** 53n, form: 64 }), 'client', Infinity, 'error 1009'],
        ['a 64-bit length of 2^63, masked', raw({ opcode: 2, declared: 2n ** 63n, form: 64, key: KEY }), 'server', Infinity, 'error 1002'],
        ['a 16-bit length of maxPayload + 1', raw({ opcode: 2, declared: 1001n, form: 16, key: KEY }), 'server', 1000, 'error 1009'],
        ['a 64-bit length of maxPayload + 1', raw({ opcode: 2, declared: 1001n, form: 64 }), 'client', 1000, 'error 1009'],
      ];
      const outcome = (role: 'server' | 'client', maxPayload: number, chunks: Buffer[]): string[] => {
        const p = new FrameParser({ role, codec, maxPayload });
        try {
          const frames = pushAll(p, chunks);
          return [`frames ${frames.length}`, ...frames.map((f) => `${f.opcode}:${f.payload.toString('hex')}`), `buffered ${p.bufferedBytes}`];
        } catch (e) {
          return [`error ${errorOf(() => { throw e; }).code}`];
        }
      };
      for (const [name, bytes, role, max, want] of cases) {
        const whole = outcome(role, max, [Buffer.from(bytes)]);
        expect(whole[0], name).toBe(want);
        const hlen = Math.min(2 + ((bytes[1] & 0x7f) === 126 ? 2 : (bytes[1] & 0x7f) === 127 ? 8 : 0) + (bytes[1] & 0x80 ? 4 : 0), bytes.length);
        for (let cut = 1; cut <= hlen; cut++) expect(outcome(role, max, splitAt(bytes, [cut])), `${name}, split at ${cut}`).toEqual(whole);
        const bytewise = Array.from({ length: hlen }, (_, i) => i + 1);
        expect(outcome(role, max, splitAt(bytes, bytewise)), `${name}, header a byte at a time`).toEqual(whole);
      }
    });
    it('fails with 1009 when the fragments of one message add up to more than maxPayload', () => {
      const p = server({ maxPayload: 10 });
      p.push(raw({ fin: false, opcode: 1, payload: Buffer.alloc(6), key: KEY }));
      expect(errorOf(() => p.push(raw({ opcode: 0, payload: Buffer.alloc(6), key: KEY }))).code).toBe(1009);
    });

    const ruleCases: [string, Buffer, 'server' | 'client', number][] = [
      ['RSV1 without an extension', raw({ rsv: 4, opcode: 1, key: KEY }), 'server', 1002],
      ['RSV2', raw({ rsv: 2, opcode: 1, key: KEY }), 'server', 1002],
      ['RSV3', raw({ rsv: 1, opcode: 1, key: KEY }), 'server', 1002],
      ['reserved data opcode 3', raw({ opcode: 3, key: KEY }), 'server', 1002],
      ['reserved data opcode 7', raw({ opcode: 7, key: KEY }), 'server', 1002],
      ['reserved control opcode 0xB', raw({ opcode: 0xb, key: KEY }), 'server', 1002],
      ['reserved control opcode 0xF', raw({ opcode: 0xf, key: KEY }), 'server', 1002],
      ['a 126-byte ping', raw({ opcode: 9, payload: Buffer.alloc(126), key: KEY }), 'server', 1002],
      ['a fragmented close', raw({ fin: false, opcode: 8, key: KEY }), 'server', 1002],
      ['an unmasked frame from a client', raw({ opcode: 1, payload: Buffer.from('hi') }), 'server', 1002],
      ['a masked frame from a server', raw({ opcode: 1, payload: Buffer.from('hi'), key: KEY }), 'client', 1002],
      ['a continuation without a started message', raw({ opcode: 0, key: KEY }), 'server', 1002],
      ['a new data frame inside an unfinished message',
        Buffer.concat([raw({ fin: false, opcode: 1, key: KEY }), raw({ opcode: 2, key: KEY })]), 'server', 1002],
    ];
    it.each(ruleCases)('fails with the right close code on %s', (_n, bytes, role, code) => {
      const e = errorOf(() => new FrameParser({ role, codec }).push(bytes));
      expect(e.code).toBe(code);
    });

    it('with validateUtf8, fails with 1007 on the first invalid byte of a text frame still arriving', () => {
      const p = server({ validateUtf8: true });
      const frame = raw({ opcode: 1, payload: Buffer.from([0x61, 0x62, 0xff, 0x63, 0x64, 0x65, 0x66, 0x67]), key: KEY });
      expect(p.push(Buffer.from(frame.subarray(0, 8)))).toEqual([]); // header + "ab": still valid
      expect(errorOf(() => p.push(Buffer.from(frame.subarray(8, 10)))).code).toBe(1007);
    });
    it('with validateUtf8, accepts a code point split across frames and reads, and leaves binary alone', () => {
      const euro = Buffer.from('x€y');
      const bytes = Buffer.concat([
        raw({ fin: false, opcode: 1, payload: euro.subarray(0, 2), key: KEY }),
        raw({ opcode: 2 - 2, payload: euro.subarray(2), key: KEY }),
        raw({ opcode: 2, payload: Buffer.from([0xff]), key: KEY }),
      ]);
      const got = pushAll(server({ validateUtf8: true }), Array.from(bytes, (b) => Buffer.from([b])));
      expect(Buffer.concat(got.slice(0, 2).map((f) => f.payload)).toString()).toBe('x€y');
      expect(got[2].payload[0]).toBe(0xff);
    });

    it('allows RSV1 on the first data frame only when an extension allows it', () => {
      const p = server({ allowRsv1: true });
      expect(p.push(raw({ rsv: 4, fin: false, opcode: 1, key: KEY }))[0].rsv1).toBe(true);
      expect(errorOf(() => p.push(raw({ rsv: 4, opcode: 0, key: KEY }))).code).toBe(1002);
    });

    it('accepts control frames interleaved in a fragmented message', () => {
      const bytes = Buffer.concat([
        raw({ fin: false, opcode: 1, payload: Buffer.from('a'), key: KEY }),
        raw({ opcode: 9, payload: Buffer.from('p'), key: KEY }),
        raw({ opcode: 0, payload: Buffer.from('b'), key: KEY }),
      ]);
      expect(server().push(bytes).map((f) => f.opcode)).toEqual([1, 9, 0]);
    });

    it('returns the frames before an error on the error, then discards all later input', () => {
      const p = server();
      const e = errorOf(() => p.push(Buffer.concat([raw({ opcode: 1, payload: Buffer.from('ok'), key: KEY }), raw({ opcode: 3, key: KEY })])));
      expect((e.frames as Frame[]).map((f) => f.payload.toString())).toEqual(['ok']);
      expect(p.failed).toBe(true);
      expect(p.push(raw({ opcode: 1, payload: Buffer.from('x'), key: KEY }))).toEqual([]);
    });

    it('parse(chunk, sink) delivers the same frames without Frame objects, and those before an error first', () => {
      const p = server();
      const got: string[] = [];
      const sink = { onFrame: (b0: number, payload: Buffer) => got.push(`${b0.toString(16)}:${payload.toString()}`) };
      p.parse(Buffer.concat([raw({ opcode: 1, payload: Buffer.from('a'), key: KEY }), raw({ fin: false, opcode: 2, payload: Buffer.from('b'), key: KEY })]), sink);
      expect(got).toEqual(['81:a', '2:b']);
      expect(() => p.parse(Buffer.concat([raw({ opcode: 0, payload: Buffer.from('c'), key: KEY }), raw({ opcode: 3, key: KEY })]), sink)).toThrow(ProtocolError);
      expect(got).toEqual(['81:a', '2:b', '80:c']);
    });

    it('parse(chunk, sink): a sink that parses another stream from its callback (an in-memory peer) gets both streams whole and in order', () => {
      const outer = server();
      const inner = server();
      const got: string[] = [];
      const innerSink = { onFrame: (_b0: number, payload: Buffer) => got.push(`inner:${payload.toString()}`) };
      const innerBytes = (tag: string) => Buffer.concat([1, 2, 3].map((i) => raw({ opcode: 1, payload: Buffer.from(`${tag}${i}`), key: KEY })));
      const outerSink = {
        onFrame: (_b0: number, payload: Buffer) => {
          got.push(`outer:${payload.toString()}`);
          inner.parse(innerBytes(payload.toString()), innerSink); // nested, with the same codec
        },
      };
      outer.parse(Buffer.concat(['a', 'b'].map((t) => raw({ opcode: 1, payload: Buffer.from(t), key: KEY }))), outerSink);
      expect(got).toEqual(['outer:a', 'inner:a1', 'inner:a2', 'inner:a3', 'outer:b', 'inner:b1', 'inner:b2', 'inner:b3']);
    });

    it('parse(chunk, sink): a callback that throws ends that parser (its later frames never come, not even twice); other parsers go on', () => {
      const p = server();
      const got: string[] = [];
      const sink = {
        onFrame: (_b0: number, payload: Buffer) => {
          got.push(payload.toString());
          if (payload.toString() === 'x') throw new Error('listener failed');
        },
      };
      expect(() => p.parse(Buffer.concat(['x', 'y'].map((t) => raw({ opcode: 1, payload: Buffer.from(t), key: KEY }))), sink)).toThrow('listener failed');
      expect(p.failed).toBe(true);
      p.parse(raw({ opcode: 1, payload: Buffer.from('z'), key: KEY }), sink);
      const q = server();
      q.parse(Buffer.concat(['q1', 'q2'].map((t) => raw({ opcode: 1, payload: Buffer.from(t), key: KEY }))), sink);
      expect(got).toEqual(['x', 'q1', 'q2']);
    });

    it('parse(chunk, sink, transient) keeps no view of the chunk: payloads and frames spread over reads survive the buffer being written over', () => {
      const next = rng(23);
      const big = randomBytes(next, 70000);
      const stream = Buffer.concat([
        raw({ opcode: 2, payload: Buffer.from('first'), key: KEY }),
        raw({ opcode: 2, payload: big, key: [3, 1, 4, 1] }),
        ...Array.from({ length: 40 }, (_, i) => raw({ opcode: 2, payload: Buffer.alloc(i * 7, i), key: KEY })),
        raw({ fin: false, opcode: 1, payload: Buffer.from('frag'), key: KEY }),
        raw({ opcode: 9, payload: Buffer.from('ping'), key: KEY }),
        raw({ opcode: 0, payload: Buffer.from('ment'), key: KEY }),
      ]);
      const expected = server().push(Buffer.from(stream)).map((f) => f.payload.toString('hex'));
      expect(expected).toHaveLength(45);
      // Reads of 1 B to 512 KiB through one scratch buffer, as the shared read buffer is used:
      // memory of its own, and the read buffer in wasm linear memory (parsed in place by the wasm scan).
      const inWasm = wasmReadBuffer()!;
      expect(inWasm.length).toBe(layout.READ_SIZE);
      for (const scratch of [Buffer.alloc(layout.READ_SIZE), inWasm])
      for (const cuts of [[3, 9, 20, 40000, 70030, 70031], Array.from({ length: 30 }, () => (next() * stream.length) | 0)]) {
        const p = server();
        const kept: Buffer[] = [];
        const sink = { onFrame: (_b0: number, payload: Buffer) => kept.push(payload) };
        for (const part of splitAt(stream, cuts)) {
          for (let at = 0; at < part.length; at += scratch.length) {
            const n = part.copy(scratch, 0, at, Math.min(part.length, at + scratch.length));
            p.parse(scratch.subarray(0, n), sink, true);
            scratch.fill(0xee);
          }
        }
        expect(kept.map((b) => b.toString('hex'))).toEqual(expected);
      }
    });

    it('parse(chunk, sink, transient): payloads copied out of many reads of 4-40 KiB stay intact and separate', () => {
      // Regions between Node's pool limit and 32 KiB are slices of shared 64 KiB blocks: no slice
      // may overlap another, whether the payload is whole in a read or reassembled across reads.
      const next = rng(29);
      const payloads = Array.from({ length: 400 }, (_, i) => randomBytes(next, 200 + ((next() * 3000) | 0) + (i % 7 === 0 ? 9000 : 0)));
      const stream = Buffer.concat(payloads.map((payload) => raw({ opcode: 2, payload, key: KEY })));
      const scratch = wasmReadBuffer()!; // the read buffer as raw socket I/O has it
      const p = server();
      const kept: Buffer[] = [];
      const sink = { onFrame: (_b0: number, payload: Buffer) => kept.push(payload) };
      for (let at = 0; at < stream.length;) {
        const n = stream.copy(scratch, 0, at, Math.min(stream.length, at + 4096 + ((next() * 36000) | 0)));
        p.parse(scratch.subarray(0, n), sink, true);
        scratch.fill(0xee);
        at += n;
      }
      expect(kept).toHaveLength(payloads.length);
      // Each intact, after every earlier one was written over (an overlap would show here).
      let intact = 0;
      for (let i = 0; i < kept.length; i++) {
        if (kept[i].equals(payloads[i])) intact++;
        kept[i].fill(0xa5);
      }
      expect(intact).toBe(payloads.length);
    });

    it('parse(chunk, sink, transient): a payload copied out of a read larger than 64 KiB pins at most 64 KiB (or itself)', () => {
      // A full read buffer (512 KiB) of small frames with a few large ones among them: what is copied
      // out is copied in pieces, so a small payload an application keeps does not hold the whole read.
      const next = rng(31);
      const payloads = Array.from({ length: 3000 }, (_, i) => randomBytes(next, i % 500 === 7 ? 70000 + i : (next() * 120) | 0));
      const stream = Buffer.concat(payloads.map((payload) => raw({ opcode: 2, payload, key: KEY })));
      expect(stream.length).toBeGreaterThan(layout.READ_SIZE);
      const scratch = wasmReadBuffer()!;
      const p = server();
      const kept: Buffer[] = [];
      const sink = { onFrame: (_b0: number, payload: Buffer) => kept.push(payload) };
      for (let at = 0; at < stream.length;) {
        const n = stream.copy(scratch, 0, at, Math.min(stream.length, at + scratch.length));
        p.parse(scratch.subarray(0, n), sink, true);
        scratch.fill(0xee);
        at += n;
      }
      expect(kept).toHaveLength(payloads.length);
      expect(kept.every((b, i) => b.equals(payloads[i]))).toBe(true);
      const pinned = kept.map((b) => (b.length === 0 ? 0 : b.buffer.byteLength - Math.max(b.length, PIN_BOUND)));
      expect(Math.max(...pinned)).toBeLessThanOrEqual(0);
    });

    it('keeps a returned payload intact after later pushes', () => {
      const p = server();
      const a = p.push(raw({ opcode: 2, payload: Buffer.alloc(50, 1), key: KEY }))[0].payload;
      const keep = Buffer.from(a);
      for (let i = 0; i < 20; i++) p.push(raw({ opcode: 2, payload: Buffer.alloc(5000, i), key: KEY }));
      expect(a.equals(keep)).toBe(true);
    });

    it('parses thousands of frames in one chunk (more than one scan table)', () => {
      const frames = Array.from({ length: 9000 }, (_, i) => raw({ opcode: 2, payload: Buffer.from([i & 0xff, i >> 8]), key: KEY }));
      const got = server().push(Buffer.concat(frames));
      expect(got).toHaveLength(9000);
      expect(got.every((f, i) => f.payload[0] === (i & 0xff) && f.payload[1] === i >> 8)).toBe(true);
    });

    it('parses a frame larger than one scan slice (1 MiB) pushed whole and in pieces', () => {
      const payload = randomBytes(rng(9), 2.5 * 1024 * 1024);
      const bytes = raw({ opcode: 2, payload, key: KEY });
      expect(server({ maxPayload: 4 << 20 }).push(Buffer.from(bytes))[0].payload.equals(payload)).toBe(true);
      const got = pushAll(server({ maxPayload: 4 << 20 }), splitAt(bytes, [1, 5, 13, 70000, 1 << 20, (1 << 20) + 3]));
      expect(got[0].payload.equals(payload)).toBe(true);
    });

    it('yields the same frames for any split of the stream (chunk-split invariance)', () => {
      const next = rng(11);
      const stream = Buffer.concat([
        raw({ opcode: 1, payload: Buffer.from('héllo'), key: [1, 2, 3, 4] }),
        raw({ fin: false, opcode: 2, payload: randomBytes(next, 300), key: [9, 8, 7, 6] }),
        raw({ opcode: 9, payload: Buffer.from('ping'), key: [0, 0, 0, 0] }),
        raw({ opcode: 0, payload: randomBytes(next, 70000), key: [5, 5, 5, 5], form: 64 }),
        raw({ opcode: 2, payload: Buffer.alloc(0), key: [1, 1, 1, 1], form: 16 }),
        raw({ opcode: 8, payload: encodeClosePayload(1000, 'bye'), key: [4, 3, 2, 1] }),
      ]);
      const whole = server().push(Buffer.from(stream)).map((f) => [f.opcode, f.fin, f.payload.toString('hex')]);
      expect(whole).toHaveLength(6);
      for (let t = 0; t < 60; t++) {
        const cuts = Array.from({ length: 1 + ((next() * 12) | 0) }, () => (next() * stream.length) | 0);
        const got = pushAll(server(), splitAt(stream, cuts)).map((f) => [f.opcode, f.fin, f.payload.toString('hex')]);
        expect(got).toEqual(whole);
      }
    });
  });
});

describe('the read buffer in wasm linear memory', () => {
  it('is fixed memory: it cannot grow, so the view (and a socket handle\'s raw pointer to it) stays valid', () => {
    const view = wasmReadBuffer()!;
    expect(view.byteOffset).toBe(layout.READ_PTR);
    expect(() => wasmExports().memory.grow(1)).toThrow(RangeError);
    expect(view.length).toBe(layout.READ_SIZE); // not detached
    // A scan of a region beyond one slice still parses (the TS twin takes it), memory unchanged.
    const payload = randomBytes(rng(31), 2.5 * 1024 * 1024);
    const bytes = Buffer.from(raw({ opcode: 2, payload, key: KEY }));
    const r = new WasmCodec({ scanMin: 0 }).scan(bytes, 0, bytes.length, 4 << 20, 0, 0, 0);
    expect(r.count).toBe(1);
    expect(r.data.subarray(r.dataOffset + r.table[1], r.dataOffset + r.table[1] + r.table[2]).equals(payload)).toBe(true);
    expect(wasmExports().memory.buffer.byteLength).toBe(layout.MEMORY_PAGES * 65536);
  });

  it('a chunk there is parsed where it lies: the same frames as from a copy, unmasked in place', () => {
    const next = rng(37);
    const payloads = Array.from({ length: 60 }, (_, i) => randomBytes(next, (i * 37) % 900));
    const stream = Buffer.concat(payloads.map((payload) => raw({ opcode: 2, payload, key: [i8(next), 7, 1, 9] })));
    const view = wasmReadBuffer()!;
    stream.copy(view, 0);
    const chunk = view.subarray(0, stream.length);
    // scratch = true would let a chunk elsewhere be answered from the scratch region (DATA_PTR);
    // one in the read buffer is answered from itself: it was never copied.
    const r = new WasmCodec({ scanMin: 0 }).scan(chunk, 0, chunk.length, 1 << 20, 0, 0, 0, true);
    expect(r.count).toBe(payloads.length);
    expect(r.data).toBe(chunk);
    expect(r.dataOffset).toBe(0);
    for (let i = 0; i < r.count; i++) {
      const off = r.dataOffset + r.table[i * 4 + 1];
      expect(r.data.subarray(off, off + r.table[i * 4 + 2]).equals(payloads[i])).toBe(true);
    }
  });
});

const i8 = (next: () => number) => (next() * 256) | 0;

describe('the frame table layout (src/codec/layout.ts)', () => {
  const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
  const fields = layout as unknown as Record<string, number>;
  it('assembly/index.ts declares the same RESULT_* and ROW_* fields with the same values', () => {
    const as = readFileSync(join(ROOT, 'assembly/index.ts'), 'utf8');
    const declared = Object.fromEntries([...as.matchAll(/^const ((?:RESULT|ROW|TABLE)_[A-Z_]+): usize = (\d+);/gm)].map((m) => [m[1], Number(m[2])]));
    const names = Object.keys(fields).filter((k) => /^(RESULT_|ROW_)/.test(k) || k === 'TABLE_PTR');
    expect(Object.keys(declared).sort()).toEqual(names.sort());
    for (const k of names) expect(declared[k], k).toBe(fields[k]);
  });
  it('the TS readers name every row field: a literal offset in a hot loop carries its name, and equals it', () => {
    let named = 0;
    for (const file of ['src/codec/ts.ts', 'src/codec/wasm.ts', 'src/codec/native.ts', 'src/codec/auto.ts', 'src/protocol/parser.ts']) {
      const src = readFileSync(join(ROOT, file), 'utf8');
      expect(src.match(/\b(table|t|u32)\[(row|base)( \+ \d+)?\]/g) ?? [], `${file}: unnamed offsets`).toEqual([]);
      for (const m of src.matchAll(/\[row(?: \+ (\d+))? \/\* (ROW_[A-Z]+) \*\/\]/g)) {
        expect(Number(m[1] ?? 0), `${file}: ${m[0]}`).toBe(fields[m[2]]);
        named++;
      }
    }
    expect(named).toBeGreaterThanOrEqual(8);
  });
});

describe('close payloads', () => {
  it('encodes and decodes a code and a UTF-8 reason', () => {
    expect(decodeClosePayload(encodeClosePayload(4001, 'ünïcode'))).toEqual({ code: 4001, reason: 'ünïcode' });
    expect(decodeClosePayload(Buffer.alloc(0))).toEqual({ code: 1005, reason: '' });
  });
  it('refuses to encode codes that must not be sent and reasons over 123 bytes', () => {
    for (const code of [999, 1004, 1005, 1006, 1015, 2999, 5000]) expect(() => encodeClosePayload(code)).toThrow(RangeError);
    expect(() => encodeClosePayload(1000, 'x'.repeat(124))).toThrow(RangeError);
    expect(encodeClosePayload(1000, 'x'.repeat(123))).toHaveLength(125);
  });
  it('fails with 1002 on a 1-byte payload or an invalid code, 1007 on a non-UTF-8 reason', () => {
    expect(errorOf(() => decodeClosePayload(Buffer.from([3]))).code).toBe(1002);
    expect(errorOf(() => decodeClosePayload(Buffer.from([0x03, 0xec]))).code).toBe(1002); // 1004
    expect(errorOf(() => decodeClosePayload(Buffer.from([0x03, 0xe8, 0xff, 0xfe]))).code).toBe(1007);
  });
});

describe('every backend agrees with the TS twin (randomized differential)', () => {
  const ts = BACKENDS.find(([n]) => n === 'ts')![1];
  const others = BACKENDS.filter(([n]) => n !== 'ts');
  function run(codec: typeof ts, chunks: Buffer[], role: 'server' | 'client', maxPayload: number) {
    const p = new FrameParser({ role, codec, maxPayload });
    const out: string[] = [];
    try {
      for (const c of chunks) for (const f of p.push(Buffer.from(c))) out.push(`${+f.fin}${+f.rsv1}${f.opcode}:${f.payload.toString('hex')}`);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      for (const f of e.frames as Frame[]) out.push(`${+f.fin}${+f.rsv1}${f.opcode}:${f.payload.toString('hex')}`);
      out.push(`error ${e.code} ${e.kind}`);
    }
    return out;
  }
  /** The same, each chunk parsed as transient from one scratch buffer written over after every call. */
  function runTransient(codec: typeof ts, chunks: Buffer[], role: 'server' | 'client', maxPayload: number) {
    const p = new FrameParser({ role, codec, maxPayload });
    const scratch = Buffer.alloc(Math.max(1, ...chunks.map((c) => c.length)));
    const got: [number, Buffer][] = [];
    const sink = { onFrame: (b0: number, payload: Buffer) => got.push([b0, payload]) };
    let error: string | null = null;
    try {
      for (const c of chunks) {
        c.copy(scratch);
        p.parse(scratch.subarray(0, c.length), sink, true);
        scratch.fill(0xee);
      }
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      error = `error ${e.code} ${e.kind}`;
    }
    const out = got.map(([b0, pl]) => `${b0 >> 7}${(b0 >> 6) & 1}${b0 & 0x0f}:${pl.toString('hex')}`);
    if (error) out.push(error);
    return out;
  }
  it('on 400 random frame streams with random splits and random corruption', () => {
    const next = rng(2026);
    let errors = 0;
    for (let t = 0; t < 400; t++) {
      const role = next() < 0.5 ? 'server' : 'client';
      const parts: Buffer[] = [];
      const n = 1 + ((next() * 8) | 0);
      for (let i = 0; i < n; i++) {
        const sizeClass = next();
        const size = sizeClass < 0.6 ? (next() * 130) | 0 : sizeClass < 0.9 ? (next() * 2000) | 0 : (next() * 70000) | 0;
        const opcode = [0, 1, 2, 8, 9, 10][(next() * 6) | 0];
        parts.push(raw({
          fin: next() < 0.8, opcode, payload: randomBytes(next, size),
          key: role === 'server' ? [0, 0, 0, 0].map(() => (next() * 256) | 0) : null,
        }));
      }
      const stream = Buffer.concat(parts);
      const corrupt = next() < 0.4;
      if (corrupt) for (let k = 0; k < 3; k++) stream[(next() * stream.length) | 0] = (next() * 256) | 0;
      const cuts = Array.from({ length: (next() * 6) | 0 }, () => (next() * stream.length) | 0);
      const max = next() < 0.2 ? 1000 : 1 << 20;
      const b = run(ts, splitAt(stream, cuts), role, max);
      for (const [name, codec] of others) {
        const a = run(codec, splitAt(stream, cuts), role, max);
        expect(a, name).toEqual(b);
        // Split invariance across backends as well: the unsplit stream gives the same result.
        expect(run(codec, [stream], role, max), name).toEqual(a);
      }
      // Transient chunks (the shared read buffer) give the same frames with every backend.
      for (const [name, codec] of BACKENDS) expect(runTransient(codec, splitAt(stream, cuts), role, max), `${name} transient`).toEqual(b);
      if (b.length && b[b.length - 1].startsWith('error')) errors++;
    }
    expect(errors).toBeGreaterThan(50); // the generator really exercises the error paths
  });
});
