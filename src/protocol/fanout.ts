// One message sent to many connections (broadcast, publish): framed once, and compressed once per
// wire form for connections whose compressor keeps no context between messages (RFC 7692
// §7.1.1.1); connections with context takeover compress it with their own context.
import { Opcode } from './constants.js';
import { encodeFrame } from './frame.js';
import type { MessageCompressor } from './protocol.js';

type Done = (err: Error | null, payload?: Buffer) => void;

/** One compression of a message, awaited by every connection that shares it. */
export interface SharedPayload {
  wait(done: Done): void;
}

/** A message on its way to many connections; each one's Protocol.sendShared picks the wire form. */
export class FanOut {
  readonly payload: Buffer;
  readonly binary: boolean;
  /** false: send it uncompressed everywhere (Bun's `compress: false`). */
  readonly compress: boolean;
  private framed: Buffer | null = null;
  private shared: Map<string, SharedPayload> | null = null;

  constructor(payload: Buffer, binary: boolean, compress: boolean) {
    this.payload = payload;
    this.binary = binary;
    this.compress = compress;
  }

  /** The uncompressed frame, encoded on first use (a server's frames are not masked). */
  frame(): Buffer {
    return (this.framed ??= encodeFrame(this.binary ? Opcode.BINARY : Opcode.TEXT, this.payload));
  }

  /** The compressed payload shared by every compressor with `c.shareKey`, compressed on first use. */
  sharedBy(c: MessageCompressor & { compressShared(data: Buffer, cb: Done): void }, key: string): SharedPayload {
    const map = (this.shared ??= new Map());
    let s = map.get(key);
    if (!s) map.set(key, (s = share(c, this.payload)));
    return s;
  }
}

/** Compress `payload` once (one-shot zlib) for every connection that shares c's key. */
function share(c: { compressShared(data: Buffer, cb: Done): void }, payload: Buffer): SharedPayload {
  let result: [Error | null, Buffer?] | null = null;
  let waiters: Done[] | null = [];
  c.compressShared(payload, (err, out) => {
    result = [err, out];
    const w = waiters!;
    waiters = null;
    for (const done of w) done(err, out);
  });
  return {
    wait: (done) => {
      if (result) process.nextTick(done, result[0], result[1]);
      else waiters!.push(done);
    },
  };
}
