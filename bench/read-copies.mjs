#!/usr/bin/env node
// The two copies a transient read (the shared read buffer) costs, measured in one process with the
// variants interleaved (medians of 9 rounds), on the built dist:
//   1. copying bytes out of the read: Buffer.allocUnsafe + copy (an ArrayBuffer of its own from
//      4 KiB up) against copyIncoming (src/protocol/inpool.ts: slices of 64 KiB blocks up to 32 KiB);
//   2. the wasm batch scan of a read, then the completed frames' region copied out: with the copy
//      back into the chunk (scratch = false), payloads read from linear memory (scratch = true), and
//      the read already in linear memory (the read buffer raw socket I/O uses: no copy in either).
//
//   npm run build && node bench/read-copies.mjs
import { randomBytes } from 'node:crypto';
import { copyIncoming } from '../dist/esm/protocol/inpool.js';
import { WasmCodec, wasmReadBuffer } from '../dist/esm/codec/wasm.js';

const ROUNDS = 9;
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];

/** ns per call of each variant's body, rounds interleaved (order flips every round). */
function race(variants, calls) {
  const out = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 ? Object.keys(variants).reverse() : Object.keys(variants);
    for (const k of order) {
      const body = variants[k];
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < calls; i++) body(i);
      out[k].push(Number(process.hrtime.bigint() - t0) / calls);
    }
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, median(v)]));
}

console.log(`# copies of a transient read (node ${process.version}), ns per call, medians of ${ROUNDS} interleaved rounds\n`);
console.log('| copy out of a read | allocUnsafe + copy | copyIncoming | ratio |\n| ---: | ---: | ---: | ---: |');
const src = Buffer.alloc(65536, 7);
let keep = null; // every 64th copy stays alive a while, as payloads do
for (const n of [1024, 4096, 8192, 16384, 30000, 65536]) {
  const r = race({
    node: (i) => { const b = Buffer.allocUnsafe(n); src.copy(b, 0, 0, n); if ((i & 63) === 0) keep = b; },
    pool: (i) => { const b = copyIncoming(src, 0, n); if ((i & 63) === 0) keep = b; },
  }, Math.floor(1e8 / n));
  console.log(`| ${n} B | ${r.node.toFixed(0)} | ${r.pool.toFixed(0)} | ${(r.node / r.pool).toFixed(2)}× |`);
}
void keep;

console.log('\n| wasm scan + region copy | copy back (scratch off) | from linear memory (scratch on) | read in linear memory | ratio (in memory ÷ copy back) |\n| --- | ---: | ---: | ---: | ---: |');
const codec = new WasmCodec();
const frame = (len) => {
  const h = len < 126 ? Buffer.from([0x82, 0x80 | len]) : Buffer.from([0x82, 0x80 | 126, len >> 8, len & 255]);
  return Buffer.concat([h, randomBytes(4), randomBytes(len)]);
};
for (const [size, read] of [[16, 4096], [1024, 8192], [1024, 65536]]) {
  const stream = Buffer.concat(Array.from({ length: Math.ceil(read / (size + 8)) + 1 }, () => frame(size))).subarray(0, read);
  const plain = Buffer.alloc(read);
  const inMemory = wasmReadBuffer().subarray(0, read);
  const once = (scratch, chunk = plain) => () => {
    stream.copy(chunk);
    const s = codec.scan(chunk, 0, read, 1 << 24, 0, 0, 0, scratch);
    const t = s.table;
    const last = (s.count - 1) * 4;
    const from = t[1];
    const to = t[last + 1] + t[last + 2];
    copyIncoming(s.data, s.dataOffset + from, s.dataOffset + to);
  };
  const r = race({ back: once(false), scratch: once(true), inMemory: once(true, inMemory) }, Math.floor(1e8 / read));
  console.log(`| ${size} B frames, ${read} B read | ${r.back.toFixed(0)} | ${r.scratch.toFixed(0)} | ${r.inMemory.toFixed(0)} | ${(r.back / r.inMemory).toFixed(2)}× |`);
}
