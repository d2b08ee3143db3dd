// The sans-I/O codec on both backends: RFC 6455 §5.7 fixtures, every length boundary, a 1 MiB
// frame, split delivery, protocol errors from the header, and the bufferutil twin against a
// reference XOR written here.
import { Buffer } from 'node:buffer';
import * as pkg from '../../dist/esm/index.js';
import { createCodec, WasmCodec, FrameParser, encodeFrame, headerSize, ProtocolError, mask, unmask } from '../../dist/esm/index.js';
import { test, skip, note, env, RUNTIME, eq, deepEq, ok, bytesEq, throws, randomBytes, rng, sizeName, MiB } from './harness.mjs';

const KEY = [0x37, 0xfa, 0x21, 0x3d];
const keyU32 = (k) => (k[0] | (k[1] << 8) | (k[2] << 16) | (k[3] << 24)) >>> 0;

/** Reference XOR (RFC 6455 §5.3): byte i is XORed with key[(i + phase) mod 4]. */
function refXor(data, key, phase = 0) {
  const out = Buffer.from(data);
  for (let i = 0; i < out.length; i++) out[i] ^= key[(i + phase) & 3];
  return out;
}

/** A frame built byte by byte from §5.2, independently of the encoder under test. */
function rawFrame({ fin = true, opcode, payload = Buffer.alloc(0), key = null, declared }) {
  const len = declared ?? BigInt(payload.length);
  const form = declared !== undefined ? 64 : len <= 125n ? 7 : len <= 0xffffn ? 16 : 64;
  const m = key ? 0x80 : 0;
  const bytes = [(fin ? 0x80 : 0) | opcode];
  if (form === 7) bytes.push(m | Number(len));
  else if (form === 16) bytes.push(m | 126, Number(len >> 8n) & 0xff, Number(len) & 0xff);
  else {
    bytes.push(m | 127);
    for (let i = 7; i >= 0; i--) bytes.push(Number((len >> BigInt(i * 8)) & 0xffn));
  }
  if (key) bytes.push(...key);
  return Buffer.concat([Buffer.from(bytes), key ? refXor(payload, key) : Buffer.from(payload)]);
}

function pushAll(parser, chunks) {
  const out = [];
  for (const c of chunks) out.push(...parser.push(c));
  return out;
}

/** Fresh copies (the parser may unmask its input in place). */
const bytewise = (buf) => Array.from({ length: buf.length }, (_, i) => Buffer.from(buf.subarray(i, i + 1)));

/** Pseudo-random chunks of 1..maxChunk bytes, the first cuts inside the header. */
function randomChunks(buf, seed, maxChunk) {
  const next = rng(seed);
  const out = [];
  let p = 0;
  for (let i = 0; p < buf.length && i < buf.length; i++) {
    const n = i < 6 ? 1 + (i % 3) : 1 + Math.floor(next() * maxChunk);
    out.push(Buffer.from(buf.subarray(p, p + n)));
    p += n;
  }
  return out;
}

function protocolError(fn, what) {
  const e = throws(fn, what);
  ok(e instanceof ProtocolError, `${what}: expected a ProtocolError, got ${e && e.name}: ${e && e.message}`);
  return e;
}

export function codecTests() {
  const { runtimeInternals } = pkg;
  if (typeof runtimeInternals !== 'function') skip('internals: runtimeInternals() says which private APIs run', 'this build does not export runtimeInternals()');
  else {
    test(`internals: runtimeInternals() says which private APIs run (WASMWS_INTERNALS=${env('WASMWS_INTERNALS') ?? 'unset'})`, () => {
      const r = runtimeInternals();
      note(`${RUNTIME.runtime} ${RUNTIME.version} internals: ${JSON.stringify(r)}`);
      const off = /^(off|0|false|no)$/i.test(env('WASMWS_INTERNALS') ?? '');
      eq(r.allowed, !off, 'allowed');
      if (off) deepEq([r.bufferSpecies, r.zlibSync], [false, false], 'WASMWS_INTERNALS=off: every fallback forced');
    });
  }

  test('codec: createCodec picks wasm for auto and honours both explicit backends', () => {
    eq(createCodec().backend, 'wasm', 'auto backend');
    eq(createCodec({ backend: 'wasm' }).backend, 'wasm', 'wasm backend');
    eq(createCodec({ backend: 'ts' }).backend, 'ts', 'ts backend');
    eq(new WasmCodec({ maskMin: 0, scanMin: 0 }).backend, 'wasm', 'WasmCodec backend');
  });

  const backends = [
    ['wasm', new WasmCodec({ maskMin: 0, scanMin: 0 })],
    ['ts', createCodec({ backend: 'ts' })],
  ];

  for (const [name, codec] of backends) {
    const server = (o = {}) => new FrameParser({ role: 'server', codec, ...o });
    const client = (o = {}) => new FrameParser({ role: 'client', codec, ...o });
    const t = (title, fn, opts) => test(`codec ${name}: ${title}`, fn, opts);

    t('codec.unmask / codec.mask match the reference XOR (sizes 0..300, 4 phases, unaligned; 3 MiB)', () => {
      for (let size = 0; size <= 300; size += size < 40 ? 1 : 13) {
        for (let phase = 0; phase < 4; phase++) {
          for (const lead of [0, 1, 3]) {
            const backing = randomBytes(size * 16 + phase * 4 + lead, size + lead + 2);
            const expected = Buffer.from(backing);
            refXor(backing.subarray(lead, lead + size), KEY, phase).copy(expected, lead);
            codec.unmask(backing, lead, lead + size, keyU32(KEY), phase);
            bytesEq(backing, expected, `unmask size ${size} phase ${phase} lead ${lead}`);
          }
        }
        const src = randomBytes(size + 99, size);
        const copy = Buffer.from(src);
        const out = Buffer.alloc(size + 10, 0xaa);
        codec.mask(src, keyU32(KEY), out, 6, size);
        bytesEq(src, copy, `mask source untouched (size ${size})`);
        bytesEq(out.subarray(6, 6 + size), refXor(src, KEY), `mask output (size ${size})`);
        ok(out.subarray(0, 6).every((b) => b === 0xaa) && out.subarray(6 + size).every((b) => b === 0xaa), `mask wrote outside its range (size ${size})`);
      }
      const big = randomBytes(3, 3 * MiB + 5);
      const expected = refXor(big, KEY);
      codec.unmask(big, 0, big.length, keyU32(KEY), 0);
      bytesEq(big, expected, 'unmask 3 MiB');
    });

    // RFC 6455 §5.7 examples.
    t('RFC 6455 §5.7 single-frame unmasked text "Hello"', () => {
      const bytes = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
      const fs = client().push(Buffer.from(bytes));
      eq(fs.length, 1, 'frames');
      deepEq([fs[0].fin, fs[0].opcode, fs[0].rsv1, fs[0].payload.toString()], [true, 1, false, 'Hello'], 'frame');
      bytesEq(encodeFrame(1, 'Hello', { codec }), Buffer.from(bytes), 'our encoding');
      deepEq(pushAll(client(), bytewise(Buffer.from(bytes))).map((f) => f.payload.toString()), ['Hello'], 'byte at a time');
    });
    t('RFC 6455 §5.7 single-frame masked text "Hello" (key 37 fa 21 3d)', () => {
      const bytes = Buffer.from([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
      bytesEq(rawFrame({ opcode: 1, payload: Buffer.from('Hello'), key: KEY }), bytes, 'reference builder');
      const fs = server().push(Buffer.from(bytes));
      deepEq(fs.map((f) => [f.fin, f.opcode, f.payload.toString()]), [[true, 1, 'Hello']], 'frames');
      deepEq(pushAll(server(), bytewise(bytes)).map((f) => f.payload.toString()), ['Hello'], 'byte at a time');
      // A server parser refuses it unmasked, a client parser refuses it masked (§5.1).
      eq(protocolError(() => client().push(Buffer.from(bytes)), 'masked frame to a client').code, 1002, 'client parser code');
    });
    t('RFC 6455 §5.7 fragmented unmasked text "Hel" + "lo"', () => {
      const bytes = Buffer.from([0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
      const expected = [[false, 1, 'Hel'], [true, 0, 'lo']];
      deepEq(client().push(Buffer.from(bytes)).map((f) => [f.fin, f.opcode, f.payload.toString()]), expected, 'frames');
      deepEq(pushAll(client(), bytewise(bytes)).map((f) => [f.fin, f.opcode, f.payload.toString()]), expected, 'byte at a time');
      bytesEq(Buffer.concat([encodeFrame(1, 'Hel', { fin: false, codec }), encodeFrame(0, 'lo', { codec })]), bytes, 'our encoding');
    });
    t('RFC 6455 §5.7 unmasked ping "Hello" and masked pong "Hello"', () => {
      const ping = Buffer.from([0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
      const pong = Buffer.from([0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
      deepEq(client().push(Buffer.from(ping)).map((f) => [f.opcode, f.payload.toString()]), [[9, 'Hello']], 'ping');
      deepEq(server().push(Buffer.from(pong)).map((f) => [f.opcode, f.payload.toString()]), [[10, 'Hello']], 'pong');
      bytesEq(encodeFrame(9, 'Hello', { codec }), ping, 'our ping encoding');
      // Our masked pong, whatever its random key, parses back to "Hello".
      const ours = encodeFrame(10, 'Hello', { mask: true, codec });
      eq(ours.length, pong.length, 'masked pong length');
      deepEq([ours[0], ours[1]], [0x8a, 0x85], 'masked pong header');
      deepEq(server().push(ours).map((f) => [f.opcode, f.payload.toString()]), [[10, 'Hello']], 'our masked pong');
    });
    t('RFC 6455 §5.7 256-byte (7e 01 00) and 65536-byte (7f 00 00 00 00 00 01 00 00) binary frames', () => {
      const p256 = randomBytes(256, 256);
      const f256 = Buffer.concat([Buffer.from([0x82, 0x7e, 0x01, 0x00]), p256]);
      bytesEq(client().push(Buffer.from(f256))[0].payload, p256, '256-byte payload');
      bytesEq(encodeFrame(2, p256, { codec }), f256, '256-byte encoding');
      const p64 = randomBytes(65536, 65536);
      const f64 = Buffer.concat([Buffer.from([0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]), p64]);
      bytesEq(client().push(Buffer.from(f64))[0].payload, p64, '65536-byte payload');
      bytesEq(encodeFrame(2, p64, { codec }), f64, '65536-byte encoding');
    });

    for (const n of [0, 1, 125, 126, 127, 65535, 65536]) {
      t(`length boundary ${n}: encode → parse, masked and unmasked, whole and split`, () => {
        const payload = randomBytes(n + 7, n);
        const masked = encodeFrame(2, payload, { mask: true, codec });
        const plain = encodeFrame(2, payload, { codec });
        eq(masked.length, headerSize(n, true) + n, 'masked frame size');
        eq(plain.length, headerSize(n, false) + n, 'unmasked frame size');
        eq(headerSize(n, false), n <= 125 ? 2 : n <= 65535 ? 4 : 10, 'header size (shortest form)');
        eq(plain[1] & 0x7f, n <= 125 ? n : n <= 65535 ? 126 : 127, 'length form');
        eq(masked[1] & 0x80, 0x80, 'mask bit');
        eq(plain[1] & 0x80, 0, 'no mask bit');
        bytesEq(plain.subarray(plain.length - n), payload, 'unmasked payload verbatim');
        const key = [...masked.subarray(headerSize(n, true) - 4, headerSize(n, true))];
        bytesEq(masked.subarray(headerSize(n, true)), refXor(payload, key), 'masked payload = reference XOR with its key');
        const one = (frames, what) => {
          eq(frames.length, 1, `${what}: frames`);
          bytesEq(frames[0].payload, payload, `${what}: payload`);
          deepEq([frames[0].fin, frames[0].opcode], [true, 2], `${what}: fin/opcode`);
        };
        one(server().push(Buffer.from(masked)), 'masked, whole');
        one(client().push(Buffer.from(plain)), 'unmasked, whole');
        if (n <= 1024) {
          one(pushAll(server(), bytewise(masked)), 'masked, byte at a time');
          one(pushAll(client(), bytewise(plain)), 'unmasked, byte at a time');
        } else {
          one(pushAll(server(), randomChunks(masked, n, 3000)), 'masked, random chunks');
          one(pushAll(client(), randomChunks(plain, n + 1, 3000)), 'unmasked, random chunks');
        }
        // Header split at every position, then the rest at once.
        for (let cut = 1; cut < headerSize(n, true); cut++) {
          one(pushAll(server(), [Buffer.from(masked.subarray(0, cut)), Buffer.from(masked.subarray(cut))]), `header cut at ${cut}`);
        }
      });
    }

    t('a 1 MiB frame, masked and unmasked, whole and in random chunks', () => {
      const payload = randomBytes(1, MiB);
      const masked = encodeFrame(2, payload, { mask: true, codec });
      const plain = encodeFrame(2, payload, { codec });
      bytesEq(server().push(Buffer.from(masked))[0].payload, payload, 'masked, whole');
      bytesEq(client().push(Buffer.from(plain))[0].payload, payload, 'unmasked, whole');
      const m = pushAll(server(), randomChunks(masked, 5, 64 * 1024));
      eq(m.length, 1, 'masked chunked: frames');
      bytesEq(m[0].payload, payload, 'masked, chunked');
      const p = pushAll(client(), randomChunks(plain, 6, 64 * 1024));
      eq(p.length, 1, 'unmasked chunked: frames');
      bytesEq(p[0].payload, payload, 'unmasked, chunked');
      const text = encodeFrame(1, 'é'.repeat(MiB / 2), { mask: true, codec });
      eq(server().push(text)[0].payload.toString(), 'é'.repeat(MiB / 2), '1 MiB of UTF-8 text');
    });

    t('1000 small frames in one chunk, and payloads stay valid after later pushes', () => {
      const frames = [];
      for (let i = 0; i < 1000; i++) frames.push(encodeFrame(i % 2 ? 2 : 1, `msg ${i}`, { mask: true, codec }));
      const p = server();
      const got = p.push(Buffer.concat(frames));
      eq(got.length, 1000, 'frames');
      const later = p.push(Buffer.concat(frames.slice(0, 10)));
      eq(later.length, 10, 'frames of the second push');
      for (let i = 0; i < 1000; i++) eq(got[i].payload.toString(), `msg ${i}`, `frame ${i}`);
    });

    t('header errors: 2^63 → 1002, 2^53 → 1009, > maxPayload → 1009, unmasked to server → 1002, opcode 3 → 1002', () => {
      eq(protocolError(() => client().push(rawFrame({ opcode: 2, declared: 2n ** 63n })), '2^63').code, 1002, '2^63');
      eq(protocolError(() => client({ maxPayload: Infinity }).push(rawFrame({ opcode: 2, declared: 2n ** 53n })), '2^53').code, 1009, '2^53');
      const head = rawFrame({ opcode: 2, declared: 1001n, key: KEY });
      eq(protocolError(() => server({ maxPayload: 1000 }).push(head), 'maxPayload+1').code, 1009, 'maxPayload + 1');
      const split = server({ maxPayload: 1000 });
      split.push(head.subarray(0, 3));
      eq(protocolError(() => split.push(head.subarray(3)), 'maxPayload+1 split').code, 1009, 'maxPayload + 1, split header');
      eq(protocolError(() => server().push(rawFrame({ opcode: 1, payload: Buffer.from('x') })), 'unmasked').code, 1002, 'unmasked frame to a server');
      eq(protocolError(() => server().push(rawFrame({ opcode: 3, key: KEY })), 'opcode 3').code, 1002, 'opcode 3');
    });
  }

  // The bufferutil twin (package root exports), against the reference XOR.
  test('bufferutil twin: mask(source, mask, output, offset, length) and unmask(buffer, mask) match the reference XOR', () => {
    const keys = [Buffer.from(KEY), Buffer.from([0, 0, 0, 0]), Buffer.from([0xff, 0x01, 0x80, 0x7f])];
    const sizes = [0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 125, 126, 127, 255, 256, 1000, 1023, 1024, 1025, 2047, 2048, 2049, 4096, 65535, 65536, 70000, MiB + 3];
    for (const k of keys) {
      const key = [...k];
      for (const n of sizes) {
        const src = randomBytes(n + key[0], n);
        const copy = Buffer.from(src);
        for (const offset of [0, 3]) {
          const out = Buffer.alloc(n + offset + 4, 0x5a);
          mask(src, k, out, offset, n);
          bytesEq(src, copy, `mask left its source alone (${n} B)`);
          bytesEq(out.subarray(offset, offset + n), refXor(src, key), `mask ${sizeName(n)} at offset ${offset}`);
          ok(out.subarray(0, offset).every((b) => b === 0x5a) && out.subarray(offset + n).every((b) => b === 0x5a), `mask wrote outside [${offset}, ${offset + n})`);
        }
        const buf = Buffer.from(src);
        unmask(buf, k);
        bytesEq(buf, refXor(src, key), `unmask ${sizeName(n)}`);
        // An unaligned view into a larger buffer.
        const backing = Buffer.concat([Buffer.from([1]), src, Buffer.from([2])]);
        const view = backing.subarray(1, 1 + n);
        unmask(view, k);
        bytesEq(view, refXor(src, key), `unmask unaligned ${sizeName(n)}`);
        deepEq([backing[0], backing[n + 1]], [1, 2], `unmask unaligned ${sizeName(n)} stayed in its view`);
      }
    }
    // A mask given as a view at an odd offset, and a Uint8Array (not a Buffer) source.
    const km = Buffer.from([9, 0x37, 0xfa, 0x21, 0x3d]).subarray(1);
    const src = new Uint8Array(randomBytes(77, 5000));
    const out = new Uint8Array(5000);
    mask(src, km, out, 0, 5000);
    bytesEq(out, refXor(src, KEY), 'Uint8Array source with a mask view');
  });
}
