// The vocabulary both Autobahn-style suites share (test/conformance.test.ts for the server,
// test/client-conformance.test.ts for the client): close codes, events as Autobahn records them,
// and the reassembly of a peer's frames into those events.
import { createHash } from 'node:crypto';
import { raw, sleep } from './helpers.js';

export const NORMAL = 1000;
export const PROTOCOL_ERROR = 1002;
export const INVALID_PAYLOAD = 1007;

export { sleep };
export const tick = () => new Promise<void>((r) => setImmediate(r));
export const B = (s: string | number[] | Buffer): Buffer => (Buffer.isBuffer(s) ? s : typeof s === 'string' ? Buffer.from(s, 'latin1') : Buffer.from(s));
export const U = (s: string): Buffer => Buffer.from(s, 'utf8');

/** A frame; `key` masks it (client → server frames must be masked, server → client ones must not). */
export function frame(opcode: number, payload: Buffer | string = Buffer.alloc(0), opts: { fin?: boolean; rsv?: number; key?: number[] | null } = {}): Buffer {
  return raw({ opcode, payload: typeof payload === 'string' ? U(payload) : payload, fin: opts.fin, rsv: opts.rsv, key: opts.key ?? null });
}

/** A close frame's payload: no code → empty. */
export function closePayload(code?: number, reason: Buffer | string = Buffer.alloc(0)): Buffer {
  if (code === undefined) return Buffer.alloc(0);
  const r = typeof reason === 'string' ? U(reason) : reason;
  const p = Buffer.alloc(2 + r.length);
  p.writeUInt16BE(code, 0);
  r.copy(p, 2);
  return p;
}

/** An event as Autobahn records it; payloads rendered so that diffs stay readable. */
export type Ev = string;
export function show(b: Buffer): string {
  if (b.length <= 48) return b.toString('hex');
  return `${b.length}B sha1:${createHash('sha1').update(b).digest('hex').slice(0, 12)}`;
}
export const msg = (payload: Buffer | string, binary = false): Ev => `message ${binary ? 'bin' : 'text'} ${show(B(typeof payload === 'string' ? U(payload) : payload))}`;
export const pong = (payload: Buffer | string = ''): Ev => `pong ${show(typeof payload === 'string' ? U(payload) : payload)}`;

/** The fields of a peer frame the events need; `rsv` (3 bits) is reported when non-zero. */
export interface PeerFrame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
  rsv?: number;
}

/** Autobahn's view of a peer's frames: messages reassembled, pings and pongs, up to the close. */
export function eventsOf(frames: PeerFrame[]): { evs: Ev[]; close?: Buffer } {
  const evs: Ev[] = [];
  let parts: Buffer[] | null = null;
  let op = 0;
  for (const f of frames) {
    if (f.opcode === 8) return { evs, close: f.payload };
    if (f.rsv) evs.push(`rsv ${f.rsv} on opcode ${f.opcode}`);
    if (f.opcode === 9) evs.push(`ping ${show(f.payload)}`);
    else if (f.opcode === 10) evs.push(pong(f.payload));
    else if (f.opcode === 1 || f.opcode === 2) {
      if (parts) evs.push('protocol violation: new message inside a fragmented one');
      op = f.opcode;
      parts = [f.payload];
      if (f.fin) {
        evs.push(msg(f.payload, op === 2));
        parts = null;
      }
    } else if (f.opcode === 0) {
      if (!parts) {
        evs.push('protocol violation: continuation without a message');
        continue;
      }
      parts.push(f.payload);
      if (f.fin) {
        evs.push(msg(Buffer.concat(parts), op === 2));
        parts = null;
      }
    } else evs.push(`unknown opcode ${f.opcode}`);
  }
  return { evs };
}

/** Autobahn 4.x: [case, reserved opcode, preceded by a text message and followed by a ping, with payload]. */
export const RESERVED_OPCODE_CASES: [string, number, boolean, boolean][] = [
  ['4.1.1', 3, false, false], ['4.1.2', 4, false, true], ['4.1.3', 5, true, false], ['4.1.4', 6, true, true], ['4.1.5', 7, true, true],
  ['4.2.1', 11, false, false], ['4.2.2', 12, false, true], ['4.2.3', 13, true, false], ['4.2.4', 14, true, true], ['4.2.5', 15, true, true],
];
