import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  acceptDeflateResponseClient,
  buildDeflateOffer,
  formatExtensionHeader,
  negotiateDeflateServer,
  parseExtensionHeader,
  zlibWindowBits,
  type PerMessageDeflateOptions,
} from '../src/handshake/extensions.js';

const require = createRequire(import.meta.url);
// ws's package.json "exports" hides lib/, so load its files by path.
const wsLib = join(dirname(require.resolve('ws/package.json')), 'lib');
const WsPMD = require(join(wsLib, 'permessage-deflate.js')) as new (o: object) => {
  accept(c: unknown): Record<string, unknown>;
};
const wsParse = (require(join(wsLib, 'extension.js')) as { parse(h: string): Record<string, unknown[]> }).parse;
const wsFormat = (require(join(wsLib, 'extension.js')) as { format(o: object): string }).format;

const PMD = 'permessage-deflate';
const D15 = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };

function timed(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

describe('parseExtensionHeader', () => {
  it('parses extensions, parameters with and without values, and quoted values', () => {
    expect(parseExtensionHeader('permessage-deflate; client_max_window_bits; server_max_window_bits="10", foo;a=1 ;b')).toEqual([
      { name: PMD, params: { client_max_window_bits: [true], server_max_window_bits: ['10'] } },
      { name: 'foo', params: { a: ['1'], b: [true] } },
    ]);
  });
  it('collects repeated parameters and repeated extensions in order', () => {
    const r = parseExtensionHeader('x; a=1; a=2, x, y');
    expect(r.map((e) => e.name)).toEqual(['x', 'x', 'y']);
    expect(r[0]!.params).toEqual({ a: ['1', '2'] });
  });
  it('unescapes quoted-pair characters', () => {
    expect(parseExtensionHeader('x; a="1\\0"')[0]!.params.a).toEqual(['10']);
  });
  it('lower-cases names', () => {
    expect(parseExtensionHeader('PerMessage-Deflate; Client_Max_Window_Bits')[0]).toEqual({
      name: PMD,
      params: { client_max_window_bits: [true] },
    });
  });
  it('agrees with ws on well-formed headers', () => {
    for (const h of ['a', 'a; b', 'a;b=1, c; d="e"', 'a ; b=1 , c', 'a; b; b=2']) {
      const ours = parseExtensionHeader(h);
      const theirs = wsParse(h);
      const flat = Object.entries(theirs).flatMap(([name, cfgs]) =>
        cfgs.map((p) => ({ name, params: Object.fromEntries(Object.entries(p as object)) })),
      );
      expect(ours.map((e) => ({ name: e.name, params: { ...e.params } }))).toEqual(flat);
    }
  });
  it.each([
    ['an empty header', ''],
    ['only commas', ',,,'],
    ['a leading comma', ', a'],
    ['a trailing comma', 'a,'],
    ['a trailing semicolon', 'a;'],
    ['an empty parameter', 'a;;b'],
    ['a missing value', 'a; b='],
    ['an unterminated quote', 'a; b="1'],
    ['an empty quoted value', 'a; b=""'],
    ['a non-token in quotes', 'a; b="1 2"'],
    ['a dangling escape', 'a; b="1\\'],
    ['whitespace inside a name', 'a b'],
    ['a separator in a name', 'a/b'],
    ['non-ASCII', 'permessage-d\u00e9flate'],
    ['a parameter without extension', '; a'],
    ['two values', 'a; b=1=2'],
  ])('throws SyntaxError on %s', (_, h) => {
    expect(() => parseExtensionHeader(h)).toThrow(SyntaxError);
  });
  it('parses 64 KiB of junk in linear time', () => {
    const inputs = [
      'a;'.repeat(32768),
      'a; b="' + 'c'.repeat(65536),
      'a' + ' '.repeat(65536) + 'b',
      'a; b' + ' '.repeat(65536) + '=',
      ',' + 'x'.repeat(65536),
      'a; b="' + '\\c'.repeat(32768) + '"',
      'x, '.repeat(20000) + 'x',
    ];
    for (const h of inputs) {
      expect(
        timed(() => {
          try {
            parseExtensionHeader(h);
          } catch (e) {
            expect(e).toBeInstanceOf(SyntaxError);
          }
        }),
      ).toBeLessThan(100);
    }
  });
  it('formats back into a header that parses to the same value', () => {
    const exts = parseExtensionHeader('a; b; c=1, d');
    expect(formatExtensionHeader(exts)).toBe('a; b; c=1, d');
    expect(formatExtensionHeader([{ name: 'a', params: { b: ['x y'] } }])).toBe('a; b="x y"');
    expect(wsFormat({ a: [{ b: true, c: '1' }], d: {} })).toBe('a; b; c=1, d');
  });
});

describe('negotiateDeflateServer', () => {
  it('returns null without an offer or without a permessage-deflate offer', () => {
    expect(negotiateDeflateServer(undefined, {})).toBeNull();
    expect(negotiateDeflateServer('x-webkit-deflate-frame', {})).toBeNull();
  });
  it('accepts a bare offer with default parameters', () => {
    expect(negotiateDeflateServer(PMD, {})).toEqual({ params: D15, response: PMD });
  });
  it('accepts a browser offer, dropping the valueless client_max_window_bits', () => {
    expect(negotiateDeflateServer('permessage-deflate; client_max_window_bits', {})).toEqual({ params: D15, response: PMD });
  });
  it('echoes server_no_context_takeover and client_no_context_takeover', () => {
    const r = negotiateDeflateServer('permessage-deflate; server_no_context_takeover; client_no_context_takeover', {});
    expect(r?.response).toBe('permessage-deflate; server_no_context_takeover; client_no_context_takeover');
    expect(r?.params).toEqual({ ...D15, serverNoContextTakeover: true, clientNoContextTakeover: true });
  });
  it('imposes server options the client did not ask for', () => {
    const r = negotiateDeflateServer(PMD, { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 12 });
    expect(r?.response).toBe('permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12');
  });
  it('uses the smaller of the offered and configured server_max_window_bits', () => {
    expect(negotiateDeflateServer('permessage-deflate; server_max_window_bits=10', { serverMaxWindowBits: 12 })?.params.serverMaxWindowBits).toBe(10);
    expect(negotiateDeflateServer('permessage-deflate; server_max_window_bits=13', { serverMaxWindowBits: 11 })?.response).toBe(
      'permessage-deflate; server_max_window_bits=11',
    );
    expect(negotiateDeflateServer('permessage-deflate; server_max_window_bits=9', {})?.response).toBe('permessage-deflate; server_max_window_bits=9');
  });
  it('limits client_max_window_bits only when the client offered it', () => {
    const opts = { clientMaxWindowBits: 10 };
    expect(negotiateDeflateServer('permessage-deflate; client_max_window_bits', opts)?.response).toBe('permessage-deflate; client_max_window_bits=10');
    expect(negotiateDeflateServer('permessage-deflate; client_max_window_bits=9', opts)?.params.clientMaxWindowBits).toBe(9);
    expect(negotiateDeflateServer(PMD, opts)).toBeNull();
    expect(negotiateDeflateServer('permessage-deflate; client_max_window_bits=12', {})?.response).toBe('permessage-deflate; client_max_window_bits=12');
    expect(negotiateDeflateServer('permessage-deflate; client_max_window_bits=12', { clientMaxWindowBits: false })?.response).toBe(PMD);
  });
  it('declines offers the server options forbid', () => {
    expect(negotiateDeflateServer('permessage-deflate; server_no_context_takeover', { serverNoContextTakeover: false })).toBeNull();
    expect(negotiateDeflateServer('permessage-deflate; server_max_window_bits=10', { serverMaxWindowBits: false })).toBeNull();
  });
  it('accepts the first acceptable of several offers', () => {
    const h =
      'permessage-deflate; server_max_window_bits=10; client_max_window_bits=10, ' +
      'permessage-deflate; client_max_window_bits, permessage-deflate';
    expect(negotiateDeflateServer(h, {})?.response).toBe('permessage-deflate; server_max_window_bits=10; client_max_window_bits=10');
    expect(negotiateDeflateServer(h, { serverMaxWindowBits: false })?.response).toBe(PMD);
    expect(negotiateDeflateServer('foo, permessage-deflate; server_no_context_takeover', {})?.params.serverNoContextTakeover).toBe(true);
  });
  it.each([
    ['an unknown parameter', 'permessage-deflate; foo'],
    ['a duplicated parameter', 'permessage-deflate; server_no_context_takeover; server_no_context_takeover'],
    ['a value on server_no_context_takeover', 'permessage-deflate; server_no_context_takeover=1'],
    ['a value on client_no_context_takeover', 'permessage-deflate; client_no_context_takeover="x"'],
    ['server_max_window_bits without value', 'permessage-deflate; server_max_window_bits'],
    ['server_max_window_bits=7', 'permessage-deflate; server_max_window_bits=7'],
    ['server_max_window_bits=16', 'permessage-deflate; server_max_window_bits=16'],
    ['server_max_window_bits=010', 'permessage-deflate; server_max_window_bits=010'],
    ['client_max_window_bits=1.5e1', 'permessage-deflate; client_max_window_bits=1.5e1'],
    ['client_max_window_bits=0x0f', 'permessage-deflate; client_max_window_bits=0x0f'],
  ])('declines an offer with %s and takes the next one', (_, offer) => {
    expect(negotiateDeflateServer(offer, {})).toBeNull();
    expect(negotiateDeflateServer(`${offer}, permessage-deflate`, {})).toEqual({ params: D15, response: PMD });
  });
  it('accepts window bits from 8 to 15 given as tokens or quoted strings', () => {
    for (let b = 8; b <= 15; b++) {
      expect(negotiateDeflateServer(`permessage-deflate; server_max_window_bits="${b}"`, {})?.params.serverMaxWindowBits).toBe(b);
    }
  });
  it('throws SyntaxError on a malformed header (the server answers 400)', () => {
    expect(() => negotiateDeflateServer('permessage-deflate; ', {})).toThrow(SyntaxError);
    expect(() => negotiateDeflateServer('', {})).toThrow(SyntaxError);
  });
  it('maps 8 window bits to 9 for zlib', () => {
    expect(zlibWindowBits(8)).toBe(9);
    expect(zlibWindowBits(12)).toBe(12);
  });

  describe('agrees with ws where ws accepts', () => {
    const cases: [string, PerMessageDeflateOptions][] = [
      [PMD, {}],
      ['permessage-deflate; client_max_window_bits', {}],
      ['permessage-deflate; client_max_window_bits', { clientMaxWindowBits: 10 }],
      ['permessage-deflate; client_max_window_bits=12', {}],
      ['permessage-deflate; server_no_context_takeover', {}],
      ['permessage-deflate; client_no_context_takeover', {}],
      ['permessage-deflate', { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10 }],
      ['permessage-deflate; server_max_window_bits=12', { serverMaxWindowBits: 10 }],
      ['permessage-deflate; client_max_window_bits=12', { clientMaxWindowBits: false }],
    ];
    it.each(cases)('%s with %j', (offer, opts) => {
      const ws = new WsPMD({ ...opts, isServer: true });
      const accepted = ws.accept(wsParse(offer)[PMD]);
      const response = formatExtensionHeader([
        { name: PMD, params: Object.fromEntries(Object.entries(accepted).map(([k, v]) => [k, [v === true ? true : String(v)]])) },
      ]);
      const ours = negotiateDeflateServer(offer, opts);
      expect(ours && parseExtensionHeader(ours.response)[0]!.params).toEqual(parseExtensionHeader(response)[0]!.params);
    });
  });
});

describe('client offer and response validation', () => {
  it('offers client_max_window_bits by default, as ws does', () => {
    expect(buildDeflateOffer()).toBe('permessage-deflate; client_max_window_bits');
    expect(buildDeflateOffer({ clientMaxWindowBits: false })).toBe(PMD);
  });
  it('offers every configured parameter', () => {
    expect(buildDeflateOffer({ serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 11 })).toBe(
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11',
    );
    expect(() => buildDeflateOffer({ serverMaxWindowBits: 16 })).toThrow(RangeError);
  });
  it('round-trips: the server accepts our offer and we accept its answer', () => {
    const opts: PerMessageDeflateOptions[] = [{}, { clientMaxWindowBits: 10 }, { serverNoContextTakeover: true, serverMaxWindowBits: 9 }];
    for (const c of opts) {
      for (const s of opts) {
        const r = negotiateDeflateServer(buildDeflateOffer(c), s);
        if (r) expect(acceptDeflateResponseClient(r.response, c)).toEqual(r.params);
      }
    }
  });
  it('accepts a plain response with default parameters', () => {
    expect(acceptDeflateResponseClient(PMD, {})).toEqual(D15);
    expect(acceptDeflateResponseClient('permessage-deflate; client_max_window_bits=9; server_max_window_bits=10', {})).toEqual({
      ...D15,
      clientMaxWindowBits: 9,
      serverMaxWindowBits: 10,
    });
  });
  it('keeps our own client_max_window_bits when the server does not answer it', () => {
    expect(acceptDeflateResponseClient(PMD, { clientMaxWindowBits: 11 }).clientMaxWindowBits).toBe(11);
  });
  it.each([
    ['another extension', 'x-foo', {}],
    ['two extensions', 'permessage-deflate, permessage-deflate', {}],
    ['an unknown parameter', 'permessage-deflate; foo', {}],
    ['a duplicated parameter', 'permessage-deflate; client_no_context_takeover; client_no_context_takeover', {}],
    ['client_max_window_bits without value', 'permessage-deflate; client_max_window_bits', {}],
    ['client_max_window_bits we did not offer', 'permessage-deflate; client_max_window_bits=10', { clientMaxWindowBits: false }],
    ['client_max_window_bits above ours', 'permessage-deflate; client_max_window_bits=12', { clientMaxWindowBits: 10 }],
    ['server_max_window_bits above ours', 'permessage-deflate; server_max_window_bits=12', { serverMaxWindowBits: 10 }],
    ['no server_max_window_bits although we asked', PMD, { serverMaxWindowBits: 10 }],
    ['no server_no_context_takeover although we asked', PMD, { serverNoContextTakeover: true }],
    ['client_no_context_takeover we refused', 'permessage-deflate; client_no_context_takeover', { clientNoContextTakeover: false }],
    ['window bits out of range', 'permessage-deflate; server_max_window_bits=16', {}],
  ])('rejects a response with %s', (_, h, opts) => {
    expect(() => acceptDeflateResponseClient(h, opts as PerMessageDeflateOptions)).toThrow(Error);
  });
  it('names a parameter the response gives without its value (not an internal `true`)', () => {
    expect(() => acceptDeflateResponseClient('permessage-deflate; client_max_window_bits', {})).toThrow('Parameter "client_max_window_bits" needs a value');
    expect(() => acceptDeflateResponseClient('permessage-deflate; server_max_window_bits', {})).toThrow('Parameter "server_max_window_bits" needs a value');
  });
  it('rejects a malformed response with SyntaxError', () => {
    expect(() => acceptDeflateResponseClient('permessage-deflate;', {})).toThrow(SyntaxError);
  });
});
