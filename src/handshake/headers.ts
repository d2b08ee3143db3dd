// ws's header helpers, `extension` (Sec-WebSocket-Extensions) and `subprotocol`
// (Sec-WebSocket-Protocol), with ws's shapes, rules and error messages, on our own scanners.
import { parseExtensionHeader } from './extensions.js';
import { scanSubprotocols } from './upgrade.js';

/** A parameter value as `extension.parse` returns it: `true` for a parameter without a value. */
export type ExtensionParamValue = string | true;
/** The parameters of one extension offer: every value of each parameter, in order. */
export type ExtensionParams = Record<string, ExtensionParamValue[]>;
/** `extension.parse`'s result: each extension name → its offers (one parameter map each), in order. */
export type ParsedExtensions = Record<string, ExtensionParams[]>;

/** What `extension.format` takes: a value or a list of values per parameter, one or more offers per extension. */
export type FormatParams = Record<string, unknown>;
export type FormatExtensions = Record<string, FormatParams | FormatParams[]>;

/**
 * Parses a Sec-WebSocket-Extensions value as ws's `extension.parse` does: a null-prototype object
 * from extension name (case kept) to its offers. Throws SyntaxError ("Unexpected character at index
 * N", "Unexpected end of input") when the value does not follow RFC 6455 §9.1.
 */
function parseExtensions(header: string): ParsedExtensions {
  const offers: ParsedExtensions = Object.create(null);
  for (const { name, params } of parseExtensionHeader(header, { wsRules: true })) {
    const list = offers[name];
    if (list === undefined) offers[name] = [params];
    else list.push(params);
  }
  return offers;
}

/**
 * Builds a Sec-WebSocket-Extensions value as ws's `extension.format` does: offers joined with ", ",
 * parameters with "; ", `true` as a bare name and any other value as `name=value`, verbatim (no
 * quoting). A parameter or extension given a single value stands for a list of one.
 */
function formatExtensions(extensions: FormatExtensions): string {
  const list = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);
  const offer = (name: string, params: FormatParams): string => {
    const parts = [name];
    for (const k of Object.keys(params)) {
      parts.push(list(params[k]).map((v) => (v === true ? k : `${k}=${v}`)).join('; '));
    }
    return parts.join('; ');
  };
  return Object.keys(extensions)
    .map((name) => list(extensions[name]!).map((params) => offer(name, params)).join(', '))
    .join(', ');
}

/**
 * Parses a Sec-WebSocket-Protocol value as ws's `subprotocol.parse` does: the set of names, in
 * order. Throws SyntaxError on a malformed value or a duplicated name.
 */
function parseSubprotocol(header: string): Set<string> {
  const r = scanSubprotocols(header, true);
  if (typeof r === 'string') throw new SyntaxError(r);
  return r;
}

/** ws's `extension` module: `parse` and `format` of Sec-WebSocket-Extensions. */
export const extension: { parse(header: string): ParsedExtensions; format(extensions: FormatExtensions): string } = {
  parse: parseExtensions,
  format: formatExtensions,
};

/** ws's `subprotocol` module: `parse` of Sec-WebSocket-Protocol. */
export const subprotocol: { parse(header: string): Set<string> } = { parse: parseSubprotocol };
