// `extension` and `subprotocol`: ws's header helpers, checked against ws itself on fixed cases and
// on random headers (same result, or the same SyntaxError message).
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { extension, subprotocol } from '../src/index.js';
import { parseExtensionHeader } from '../src/handshake/extensions.js';
import { parseSubprotocols } from '../src/handshake/upgrade.js';
import { rng } from './helpers.js';

const require = createRequire(import.meta.url);
const ws = require('ws') as {
  extension: { parse(h: string): Record<string, Record<string, (string | true)[]>[]>; format(o: object): string };
  subprotocol: { parse(h: string): Set<string> };
};

/** What a call did: its value (plain data, for toEqual) or the error it threw. */
function outcome(fn: () => unknown): unknown {
  try {
    const v = fn();
    if (v instanceof Set) return { set: [...v] };
    return { value: JSON.parse(JSON.stringify(v)), nullProto: Object.getPrototypeOf(v) === null };
  } catch (e) {
    return { error: (e as Error).constructor.name, message: (e as Error).message };
  }
}

/** Random strings over an alphabet dense in the characters the grammars care about. */
function randomHeaders(seed: number, alphabet: string[], n: number, maxLen: number): string[] {
  const next = rng(seed);
  const out: string[] = [];
  for (let k = 0; k < n; k++) {
    let s = '';
    const len = (next() * maxLen) | 0;
    for (let i = 0; i < len; i++) s += alphabet[(next() * alphabet.length) | 0];
    out.push(s);
  }
  return out;
}

describe('extension.parse', () => {
  it.each([
    'permessage-deflate',
    'permessage-deflate; client_max_window_bits',
    'permessage-deflate; client_max_window_bits=10; server_no_context_takeover, permessage-deflate',
    'PerMessage-Deflate; Client_Max_Window_Bits', // case kept, unlike our handshake parser
    'a; b="c"; b=d, e ; f',
    'a; b="\\c\\d"',
    'a , b',
    'a;b;c',
    '__proto__; constructor=1',
  ])('%j: the same object as ws', (h) => {
    expect(outcome(() => extension.parse(h))).toEqual(outcome(() => ws.extension.parse(h)));
  });

  it.each([
    ['', 'Unexpected end of input'],
    [' a', 'Unexpected character at index 0'],
    ['a ', 'Unexpected end of input'],
    ['a; b =1', 'Unexpected character at index 5'],
    ['a; b= 1', 'Unexpected character at index 5'],
    ['a; b=""', 'Unexpected character at index 6'],
    ['a; b="1', 'Unexpected end of input'],
    ['a,,b', 'Unexpected character at index 2'],
    ['a b', 'Unexpected character at index 2'],
    ['a; b="x y"', 'Unexpected character at index 7'],
    ['caf\u00e9', 'Unexpected character at index 3'],
  ])('%j throws SyntaxError %j, as ws does', (h, message) => {
    expect(outcome(() => ws.extension.parse(h))).toEqual({ error: 'SyntaxError', message });
    expect(outcome(() => extension.parse(h))).toEqual({ error: 'SyntaxError', message });
  });

  it('agrees with ws on 20,000 random headers (value or error message)', () => {
    const alphabet = ['a', 'b', 'X', '1', ' ', '\t', ';', ',', '=', '"', '\\', '-', '/', '\u00e9'];
    let parsed = 0;
    for (const h of randomHeaders(7, alphabet, 20_000, 14)) {
      const theirs = outcome(() => ws.extension.parse(h));
      expect(outcome(() => extension.parse(h)), JSON.stringify(h)).toEqual(theirs);
      if (!('error' in (theirs as object))) parsed++;
    }
    expect(parsed).toBeGreaterThan(500); // the alphabet does produce valid headers, not only errors
  });

  it('leaves the lenient handshake parser as it was (names lower-cased, whitespace allowed)', () => {
    expect(parseExtensionHeader(' A; B = "1" ')).toEqual([{ name: 'a', params: { b: ['1'] } }]);
    expect(() => extension.parse(' A; B = "1" ')).toThrow(SyntaxError);
  });
});

describe('extension.format', () => {
  it.each([
    [{ 'permessage-deflate': { client_max_window_bits: true } }],
    [{ 'permessage-deflate': [{ client_max_window_bits: 10, server_no_context_takeover: true }, {}] }],
    [{ a: { b: [true, 'c', 1] }, d: [] }],
    [{ a: { b: 'not a token' } }], // verbatim, no quoting (ws)
    [{ a: { b: [] } }],
    [{}],
  ])('%j: the same string as ws', (o) => {
    expect(extension.format(o as never)).toBe(ws.extension.format(o));
  });

  it('round-trips through parse', () => {
    const h = 'permessage-deflate; client_max_window_bits=10; server_no_context_takeover, x; y';
    expect(extension.format(extension.parse(h))).toBe(h);
  });
});

describe('subprotocol.parse', () => {
  it.each(['chat', 'chat,superchat', 'chat , superchat,\tv2.json', 'Chat,chat'])('%j: the same set as ws', (h) => {
    expect(outcome(() => subprotocol.parse(h))).toEqual(outcome(() => ws.subprotocol.parse(h)));
  });

  it.each([
    ['', 'Unexpected end of input'],
    [' chat', 'Unexpected character at index 0'],
    ['chat ', 'Unexpected end of input'],
    ['a,,b', 'Unexpected character at index 2'],
    ['a b', 'Unexpected character at index 2'],
    ['a,', 'Unexpected end of input'],
    ['chat, chat', 'The "chat" subprotocol is duplicated'],
    ['a,b,a', 'The "a" subprotocol is duplicated'],
    ['"chat"', 'Unexpected character at index 0'],
  ])('%j throws SyntaxError %j, as ws does', (h, message) => {
    expect(outcome(() => ws.subprotocol.parse(h))).toEqual({ error: 'SyntaxError', message });
    expect(outcome(() => subprotocol.parse(h))).toEqual({ error: 'SyntaxError', message });
  });

  it('agrees with ws on 20,000 random headers; the server parser accepts every value ws accepts', () => {
    const alphabet = ['a', 'b', 'B', '.', ' ', '\t', ',', ',', '/', '"'];
    let parsed = 0;
    for (const h of randomHeaders(11, alphabet, 20_000, 10)) {
      const theirs = outcome(() => ws.subprotocol.parse(h));
      expect(outcome(() => subprotocol.parse(h)), JSON.stringify(h)).toEqual(theirs);
      if ('set' in (theirs as object)) {
        parsed++;
        expect([...parseSubprotocols(h)!]).toEqual((theirs as { set: string[] }).set);
      }
    }
    expect(parsed).toBeGreaterThan(500);
  });
});
