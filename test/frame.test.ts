// encodeFrameParts (README: "`encodeFrameParts` returns `[header, payload]` for writev"): the
// header bytes at every length-form boundary, masked and not, checked against RFC 6455 §5.2 byte
// by byte (test/helpers.ts raw(), not our encoder); the parts concatenate to what encodeFrame
// makes; an unmasked payload part is the caller's memory (no copy); and FrameParser reads it back.
import { describe, expect, it } from 'vitest';
import { encodeFrame, encodeFrameParts, FrameParser, Opcode } from '../src/index.js';
import { BACKENDS, raw, randomBytes, rng } from './helpers.js';

const LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 70000];

/** The header RFC 6455 §5.2 prescribes: FIN/RSV1/opcode, MASK bit + shortest length form, key. */
function expectedHeader(opcode: number, length: number, opts: { fin?: boolean; rsv1?: boolean; key?: number[] } = {}): Buffer {
  const frame = raw({ opcode, fin: opts.fin, rsv: opts.rsv1 ? 4 : 0, key: opts.key ?? null, declared: BigInt(length) });
  return frame; // declared length, no payload bytes: exactly the header
}

/** The masking key a masked header carries (its last 4 bytes). */
function keyOf(header: Buffer): number[] {
  return [...header.subarray(header.length - 4)];
}

function unmask(body: Buffer, key: number[]): Buffer {
  const out = Buffer.from(body);
  for (let i = 0; i < out.length; i++) out[i] ^= key[i & 3];
  return out;
}

describe('encodeFrameParts', () => {
  it.each(LENGTHS)('unmasked, %i bytes: the shortest length form (2, 4 or 10 header bytes)', (n) => {
    const payload = randomBytes(rng(n + 1), n);
    const parts = encodeFrameParts(Opcode.BINARY, payload);
    expect(parts).toHaveLength(2);
    const [header, body] = parts;
    expect(header).toEqual(expectedHeader(Opcode.BINARY, n));
    expect(header.length).toBe(n <= 125 ? 2 : n <= 65535 ? 4 : 10);
    // Spelled out at the boundaries, as §5.2 writes them.
    if (n === 0) expect([...header]).toEqual([0x82, 0x00]);
    if (n === 125) expect([...header]).toEqual([0x82, 0x7d]);
    if (n === 126) expect([...header]).toEqual([0x82, 0x7e, 0x00, 0x7e]);
    if (n === 65535) expect([...header]).toEqual([0x82, 0x7e, 0xff, 0xff]);
    if (n === 65536) expect([...header]).toEqual([0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
    expect(body.equals(payload)).toBe(true);
  });

  it.each(LENGTHS)('masked, %i bytes: MASK bit, the length, a key, then the payload masked with it', (n) => {
    const payload = randomBytes(rng(n + 2), n);
    const copy = Buffer.from(payload);
    const [header, body] = encodeFrameParts(Opcode.TEXT, payload, { mask: true });
    expect(header.length).toBe((n <= 125 ? 2 : n <= 65535 ? 4 : 10) + 4);
    const key = keyOf(header);
    expect(header).toEqual(expectedHeader(Opcode.TEXT, n, { key }));
    if (n === 0) expect([...header.subarray(0, 2)]).toEqual([0x81, 0x80]);
    if (n === 125) expect([...header.subarray(0, 2)]).toEqual([0x81, 0xfd]);
    if (n === 126) expect([...header.subarray(0, 4)]).toEqual([0x81, 0xfe, 0x00, 0x7e]);
    if (n === 65535) expect([...header.subarray(0, 4)]).toEqual([0x81, 0xfe, 0xff, 0xff]);
    if (n === 65536) expect([...header.subarray(0, 10)]).toEqual([0x81, 0xff, 0, 0, 0, 0, 0, 1, 0, 0]);
    expect(body.length).toBe(n);
    expect(unmask(body, key).equals(payload)).toBe(true);
    // Masking must not touch the caller's buffer, so the body is a copy.
    expect(payload.equals(copy)).toBe(true);
    if (n > 0) expect(body.buffer === payload.buffer && body.byteOffset === payload.byteOffset).toBe(false);
  });

  it('sets FIN and RSV1 as asked (a first fragment of a compressed message, a continuation)', () => {
    const p = Buffer.from('fragment');
    expect(encodeFrameParts(Opcode.TEXT, p, { fin: false, rsv1: true })[0]).toEqual(expectedHeader(Opcode.TEXT, p.length, { fin: false, rsv1: true }));
    expect(encodeFrameParts(Opcode.CONTINUATION, p)[0][0]).toBe(0x80);
    expect(encodeFrameParts(Opcode.CONTINUATION, p, { fin: false })[0][0]).toBe(0x00);
    const [h] = encodeFrameParts(Opcode.PING, Buffer.alloc(0), { mask: true, rsv1: false });
    expect(h[0]).toBe(0x89);
  });

  it.each(LENGTHS)('unmasked, %i bytes: the parts concatenate to what encodeFrame makes', (n) => {
    const payload = randomBytes(rng(n + 3), n);
    for (const opts of [{}, { fin: false }, { rsv1: true }, { fin: false, rsv1: true }]) {
      expect(Buffer.concat(encodeFrameParts(Opcode.BINARY, payload, opts))).toEqual(encodeFrame(Opcode.BINARY, payload, opts));
    }
  });

  it.each(LENGTHS)('masked, %i bytes: the parts have encodeFrame\'s layout (keys are random: compared unmasked)', (n) => {
    const payload = randomBytes(rng(n + 4), n);
    const parts = Buffer.concat(encodeFrameParts(Opcode.BINARY, payload, { mask: true }));
    const whole = encodeFrame(Opcode.BINARY, payload, { mask: true });
    expect(parts.length).toBe(whole.length);
    const h = parts.length - n;
    expect(parts.subarray(0, h - 4)).toEqual(whole.subarray(0, h - 4)); // all but the key
    expect(unmask(parts.subarray(h), keyOf(parts.subarray(0, h)))).toEqual(unmask(whole.subarray(h), keyOf(whole.subarray(0, h))));
  });

  it('unmasked, the payload part is the caller\'s memory: no copy, for a Buffer and for any Uint8Array view', () => {
    const buf = Buffer.from('zero copy, please');
    const [, body] = encodeFrameParts(Opcode.TEXT, buf);
    expect(body).toBe(buf);
    // A plain Uint8Array view into a larger ArrayBuffer: the part is a Buffer over the same bytes.
    const backing = new ArrayBuffer(64);
    const view = new Uint8Array(backing, 5, 40);
    view.fill(7);
    const [, part] = encodeFrameParts(Opcode.BINARY, view);
    expect(Buffer.isBuffer(part)).toBe(true);
    expect([part.buffer, part.byteOffset, part.byteLength]).toEqual([backing, 5, 40]);
    view[0] = 9; // a write through the caller's view shows in the part
    expect(part[0]).toBe(9);
    const empty = new Uint8Array(0);
    expect(encodeFrameParts(Opcode.BINARY, empty)[1].length).toBe(0);
  });

  describe.each(BACKENDS)('round trip through FrameParser (%s codec)', (_name, codec) => {
    it('server frames (unmasked) read by a client parser, in one push and byte by byte', () => {
      for (const n of LENGTHS) {
        const payload = randomBytes(rng(n + 5), n);
        const wire = Buffer.concat([
          ...encodeFrameParts(Opcode.TEXT, payload.subarray(0, n >> 1), { fin: false }),
          ...encodeFrameParts(Opcode.PING, Buffer.from('in between')),
          ...encodeFrameParts(Opcode.CONTINUATION, payload.subarray(n >> 1)),
        ]);
        for (const chunks of [[wire], n <= 200 ? [...wire].map((b) => Buffer.from([b])) : [wire.subarray(0, 3), wire.subarray(3)]]) {
          const parser = new FrameParser({ role: 'client', maxPayload: 1 << 20, codec });
          const frames = chunks.flatMap((c) => parser.push(Buffer.from(c)));
          expect(frames.map((f) => [f.opcode, f.fin])).toEqual([[Opcode.TEXT, false], [Opcode.PING, true], [Opcode.CONTINUATION, true]]);
          expect(Buffer.concat([frames[0].payload, frames[2].payload]).equals(payload)).toBe(true);
          expect(frames[1].payload.toString()).toBe('in between');
        }
      }
    });

    it('client frames (masked) read by a server parser, with RSV1 where negotiated', () => {
      for (const n of LENGTHS) {
        const payload = randomBytes(rng(n + 6), n);
        const parts = encodeFrameParts(Opcode.BINARY, payload, { mask: true, rsv1: true, codec });
        const parser = new FrameParser({ role: 'server', maxPayload: 1 << 20, codec, allowRsv1: true });
        // The two parts as two writes, as writev would send them.
        const frames = parts.flatMap((p) => parser.push(Buffer.from(p)));
        expect(frames).toHaveLength(1);
        expect(frames[0]).toMatchObject({ opcode: Opcode.BINARY, fin: true, rsv1: true });
        expect(frames[0].payload.equals(payload)).toBe(true);
      }
    });
  });
});
