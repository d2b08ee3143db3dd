// The one conversion of user data to bytes, for every send path (send, broadcast, publish, the
// cluster hub): a Buffer[] is the concatenation of its pieces, as in ws.

import { Buffer } from 'node:buffer';

/** What a message may be given as (ws's `Data`). */
export type Data = string | Buffer | ArrayBuffer | ArrayBufferView | Buffer[];

const EMPTY = Buffer.alloc(0);

/** The bytes of `data`, without a copy where a view will do. */
export function toBuffer(data: Data | number | undefined): Buffer {
  if (data === undefined) return EMPTY;
  if (Buffer.isBuffer(data)) return data;
  if (typeof data === 'string') return Buffer.from(data);
  if (typeof data === 'number') return Buffer.from(String(data));
  if (Array.isArray(data)) {
    // An array of byte values is those bytes (as Buffer.from and ws take it); an array of
    // buffers is their concatenation.
    if (typeof (data as unknown[])[0] === 'number') return Buffer.from(data as unknown as number[]);
    return data.length === 1 ? toBuffer(data[0]) : Buffer.concat(data.map((d) => toBuffer(d)));
  }
  if (data instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && data instanceof SharedArrayBuffer)) {
    return Buffer.from(data as ArrayBuffer);
  }
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError('data must be a string, Buffer, ArrayBuffer, ArrayBufferView or an array of Buffers');
}
