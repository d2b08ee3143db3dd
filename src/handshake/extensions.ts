// Sec-WebSocket-Extensions (RFC 6455 §9.1) and permessage-deflate negotiation (RFC 7692 §7).
// Negotiation only: compression itself lives with the connection layer.
import type { ZlibOptions } from 'node:zlib';
import { isToken, isTokenChar } from './upgrade.js';

/** One extension from a Sec-WebSocket-Extensions list; a parameter without a value is `true`. */
export interface ExtensionOffer {
  name: string;
  params: Record<string, (string | true)[]>;
}

/** The extension token of RFC 7692 §7. */
export const PERMESSAGE_DEFLATE = 'permessage-deflate';
/** LZ77 window bounds for *_max_window_bits (RFC 7692 §7.1.2). */
export const MIN_WINDOW_BITS = 8;
export const MAX_WINDOW_BITS = 15;

// Named scanner states for the §9.1 grammar:
//   extension-list = 1#extension; extension = token *( ";" param );
//   param = token [ "=" (token | quoted-string) ]  (a quoted value must itself be a token)
const enum S {
  BeforeName, // start of an extension, OWS allowed
  Name,
  AfterName, // OWS after the name
  BeforeParam, // after ";"
  ParamName,
  AfterParamName,
  BeforeValue, // after "="
  TokenValue,
  QuotedValue,
  QuotedEscape, // after "\" inside quotes
  AfterValue,
}

/** How strictly parseExtensionHeader reads a header. */
export interface ExtensionParseOptions {
  /**
   * The rules of ws's `extension.parse` (our `extension.parse`): names keep their case, whitespace
   * is refused at the very start and end of the value and around "=", and errors carry ws's
   * messages. Default (what our handshakes use): names lower-cased, whitespace allowed there.
   */
  wsRules?: boolean;
}

/** Parses a Sec-WebSocket-Extensions value in one linear scan; throws SyntaxError if malformed. Names are lower-cased. */
export function parseExtensionHeader(value: string, options?: ExtensionParseOptions): ExtensionOffer[] {
  const wsRules = options?.wsRules === true;
  const name_ = (s: string): string => (wsRules ? s : s.toLowerCase());
  const out: ExtensionOffer[] = [];
  let state = S.BeforeName;
  let start = 0;
  let name = '';
  let paramName = '';
  let quoted = '';
  let params: Record<string, (string | true)[]> = Object.create(null);
  const addParam = (v: string | true): void => {
    const list = params[paramName];
    if (list === undefined) params[paramName] = [v];
    else list.push(v);
  };
  const endExtension = (): void => {
    out.push({ name, params });
    params = Object.create(null);
  };
  const fail = (i: number): never => {
    throw new SyntaxError(`Unexpected character at index ${i}${wsRules ? '' : ' of Sec-WebSocket-Extensions'}`);
  };
  const endOfInput = (): never => {
    throw new SyntaxError(wsRules ? 'Unexpected end of input' : 'Unexpected end of Sec-WebSocket-Extensions');
  };

  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const ows = c === 0x20 || c === 0x09;
    const tchar = isTokenChar(c);
    switch (state) {
      case S.BeforeName:
        if (tchar) (start = i), (state = S.Name);
        else if (!ows || (wsRules && i === 0)) fail(i);
        break;
      case S.Name:
      case S.AfterName:
        if (state === S.Name && tchar) break;
        if (state === S.Name) name = name_(value.slice(start, i));
        if (ows) state = S.AfterName;
        else if (c === 0x3b) state = S.BeforeParam;
        else if (c === 0x2c) endExtension(), (state = S.BeforeName);
        else fail(i);
        break;
      case S.BeforeParam:
        if (tchar) (start = i), (state = S.ParamName);
        else if (!ows) fail(i);
        break;
      case S.ParamName:
      case S.AfterParamName:
        if (state === S.ParamName && tchar) break;
        if (wsRules && state === S.AfterParamName && c === 0x3d) fail(i); // "a =1"
        if (state === S.ParamName) paramName = name_(value.slice(start, i));
        if (ows) state = S.AfterParamName;
        else if (c === 0x3d) state = S.BeforeValue;
        else if (c === 0x3b) addParam(true), (state = S.BeforeParam);
        else if (c === 0x2c) addParam(true), endExtension(), (state = S.BeforeName);
        else fail(i);
        break;
      case S.BeforeValue:
        if (tchar) (start = i), (state = S.TokenValue);
        else if (c === 0x22) (quoted = ''), (start = i + 1), (state = S.QuotedValue);
        else if (!ows || wsRules) fail(i); // "a= 1"
        break;
      case S.TokenValue:
        if (tchar) break;
        addParam(value.slice(start, i));
        if (ows) state = S.AfterValue;
        else if (c === 0x3b) state = S.BeforeParam;
        else if (c === 0x2c) endExtension(), (state = S.BeforeName);
        else fail(i);
        break;
      case S.QuotedValue:
        if (tchar) break;
        if (c === 0x5c) (quoted += value.slice(start, i)), (state = S.QuotedEscape);
        else if (c === 0x22) {
          quoted += value.slice(start, i);
          if (quoted.length === 0) fail(i); // "" is not a token
          addParam(quoted);
          state = S.AfterValue;
        } else fail(i);
        break;
      case S.QuotedEscape:
        if (!tchar) fail(i);
        start = i;
        state = S.QuotedValue;
        break;
      case S.AfterValue:
        if (c === 0x3b) state = S.BeforeParam;
        else if (c === 0x2c) endExtension(), (state = S.BeforeName);
        else if (!ows) fail(i);
        break;
    }
  }

  const last = value.charCodeAt(value.length - 1);
  if (wsRules && (last === 0x20 || last === 0x09)) endOfInput();
  switch (state) {
    case S.Name:
      name = name_(value.slice(start));
      endExtension();
      break;
    case S.AfterName:
    case S.AfterValue:
      endExtension();
      break;
    case S.ParamName:
      paramName = name_(value.slice(start));
      addParam(true);
      endExtension();
      break;
    case S.AfterParamName:
      addParam(true);
      endExtension();
      break;
    case S.TokenValue:
      addParam(value.slice(start));
      endExtension();
      break;
    default:
      endOfInput();
  }
  return out;
}

/** Formats extensions back into a header value ("a; p; q=1, b"); values that are not tokens are quoted. */
export function formatExtensionHeader(extensions: ExtensionOffer[]): string {
  return extensions
    .map(({ name, params }) => {
      const parts = [name];
      for (const k of Object.keys(params)) {
        for (const v of params[k]!) {
          if (v === true) parts.push(k);
          else parts.push(isToken(v) ? `${k}=${v}` : `${k}="${v.replace(/["\\]/g, '\\$&')}"`);
        }
      }
      return parts.join('; ');
    })
    .join(', ');
}

/** permessage-deflate configuration, with ws's option names and meanings. */
export interface PerMessageDeflateOptions {
  /** true: ask for (client) / impose (server) server_no_context_takeover; false (server): decline offers that require it. */
  serverNoContextTakeover?: boolean;
  /** true: ask for / impose client_no_context_takeover. */
  clientNoContextTakeover?: boolean;
  /** A number limits the server's window; false (server): decline offers that limit it. */
  serverMaxWindowBits?: number | boolean;
  /** A number limits the client's window; false: never send client_max_window_bits. */
  clientMaxWindowBits?: number | boolean;
  /** Messages smaller than this many bytes are sent uncompressed. */
  threshold?: number;
  /** Concurrent zlib operations allowed. */
  concurrencyLimit?: number;
  zlibDeflateOptions?: ZlibOptions;
  zlibInflateOptions?: ZlibOptions;
}

/** The agreed permessage-deflate parameters; absent window parameters are 15 (RFC 7692 §7.1.2). */
export interface DeflateParams {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits: number;
  clientMaxWindowBits: number;
}

/**
 * windowBits to hand to zlib for a negotiated value. zlib cannot make a raw deflate stream with a
 * 256-byte window and silently uses 9 for 8 (so does ws); we pass 9 explicitly so the choice is visible.
 */
export function zlibWindowBits(bits: number): number {
  return bits === MIN_WINDOW_BITS ? MIN_WINDOW_BITS + 1 : bits;
}

interface DeflateConfig {
  server_no_context_takeover?: true;
  client_no_context_takeover?: true;
  server_max_window_bits?: number;
  client_max_window_bits?: number | true;
}

/** "8".."15" exactly (no sign, no leading zero, no fraction) → number; else undefined. */
function windowBits(v: string | true): number | undefined {
  if (v === true || v.length < 1 || v.length > 2 || v.charCodeAt(0) === 0x30) return undefined;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return undefined;
  }
  const n = Number(v);
  return n >= MIN_WINDOW_BITS && n <= MAX_WINDOW_BITS ? n : undefined;
}

/** The reason for a parameter's bad value; a parameter given without one says so (not `true`). */
function badValue(name: string, v: string | true): string {
  return v === true ? `Parameter "${name}" needs a value` : `Invalid value for parameter "${name}": ${v}`;
}

/**
 * Validates one permessage-deflate parameter set (RFC 7692 §7.1): known names, one value each,
 * values in range. `isOffer` allows client_max_window_bits without a value (§7.1.2.2).
 * Returns a reason string if invalid.
 */
function normalize(params: Record<string, (string | true)[]>, isOffer: boolean): DeflateConfig | string {
  const cfg: DeflateConfig = {};
  for (const k of Object.keys(params)) {
    const values = params[k]!;
    if (values.length !== 1) return `Parameter "${k}" must have only a single value`;
    const v = values[0]!;
    switch (k) {
      case 'server_no_context_takeover':
      case 'client_no_context_takeover':
        if (v !== true) return badValue(k, v);
        cfg[k] = true;
        break;
      case 'server_max_window_bits': {
        const n = windowBits(v);
        if (n === undefined) return badValue(k, v);
        cfg.server_max_window_bits = n;
        break;
      }
      case 'client_max_window_bits': {
        if (v === true && isOffer) {
          cfg.client_max_window_bits = true;
          break;
        }
        const n = windowBits(v);
        if (n === undefined) return badValue(k, v);
        cfg.client_max_window_bits = n;
        break;
      }
      default:
        return `Unknown parameter "${k}"`;
    }
  }
  return cfg;
}

function toParams(cfg: DeflateConfig): DeflateParams {
  return {
    serverNoContextTakeover: cfg.server_no_context_takeover === true,
    clientNoContextTakeover: cfg.client_no_context_takeover === true,
    serverMaxWindowBits: cfg.server_max_window_bits ?? MAX_WINDOW_BITS,
    clientMaxWindowBits: typeof cfg.client_max_window_bits === 'number' ? cfg.client_max_window_bits : MAX_WINDOW_BITS,
  };
}

function formatConfig(cfg: DeflateConfig): string {
  let s = PERMESSAGE_DEFLATE;
  if (cfg.server_no_context_takeover) s += '; server_no_context_takeover';
  if (cfg.client_no_context_takeover) s += '; client_no_context_takeover';
  if (cfg.server_max_window_bits !== undefined) s += `; server_max_window_bits=${cfg.server_max_window_bits}`;
  if (cfg.client_max_window_bits === true) s += '; client_max_window_bits';
  else if (cfg.client_max_window_bits !== undefined) s += `; client_max_window_bits=${cfg.client_max_window_bits}`;
  return s;
}

/**
 * Server side of RFC 7692 §7: accepts the first acceptable permessage-deflate offer and returns the
 * agreed params plus the response header value; null if there is no offer we can accept (continue
 * without compression). Offers with unknown, repeated or out-of-range parameters are skipped.
 * Throws SyntaxError if the header is malformed (answer 400).
 */
export function negotiateDeflateServer(
  offersHeader: string | undefined,
  opts: PerMessageDeflateOptions = {},
): { params: DeflateParams; response: string } | null {
  if (offersHeader === undefined) return null;
  for (const offer of parseExtensionHeader(offersHeader)) {
    if (offer.name !== PERMESSAGE_DEFLATE) continue;
    const o = normalize(offer.params, true);
    if (typeof o === 'string') continue;
    // §7.1.1.1: an offer asking for server_no_context_takeover is refused only if we forbid it.
    if (opts.serverNoContextTakeover === false && o.server_no_context_takeover) continue;
    // §7.1.2.1: we must use at most the offered window; refuse only if we will not limit ours.
    if (o.server_max_window_bits !== undefined && opts.serverMaxWindowBits === false) continue;
    // §7.1.2.2: we may limit the client's window only if it offered client_max_window_bits.
    const wantClientBits = typeof opts.clientMaxWindowBits === 'number' ? opts.clientMaxWindowBits : undefined;
    if (wantClientBits !== undefined && o.client_max_window_bits === undefined) continue;

    const r: DeflateConfig = {};
    if (o.server_no_context_takeover || opts.serverNoContextTakeover) r.server_no_context_takeover = true;
    if (o.client_no_context_takeover || opts.clientNoContextTakeover) r.client_no_context_takeover = true;
    const ourServerBits = typeof opts.serverMaxWindowBits === 'number' ? opts.serverMaxWindowBits : undefined;
    if (o.server_max_window_bits !== undefined || ourServerBits !== undefined) {
      r.server_max_window_bits = Math.min(o.server_max_window_bits ?? MAX_WINDOW_BITS, ourServerBits ?? MAX_WINDOW_BITS);
    }
    if (opts.clientMaxWindowBits !== false) {
      const offered = typeof o.client_max_window_bits === 'number' ? o.client_max_window_bits : undefined;
      if (wantClientBits !== undefined) r.client_max_window_bits = Math.min(wantClientBits, offered ?? MAX_WINDOW_BITS);
      else if (offered !== undefined) r.client_max_window_bits = offered;
    }
    return { params: toParams(r), response: formatConfig(r) };
  }
  return null;
}

/** The client's permessage-deflate offer (RFC 7692 §7.1); by default it advertises client_max_window_bits, as ws does. */
export function buildDeflateOffer(opts: PerMessageDeflateOptions = {}): string {
  const c: DeflateConfig = {};
  if (opts.serverNoContextTakeover) c.server_no_context_takeover = true;
  if (opts.clientNoContextTakeover) c.client_no_context_takeover = true;
  if (typeof opts.serverMaxWindowBits === 'number') c.server_max_window_bits = checkBits(opts.serverMaxWindowBits);
  if (typeof opts.clientMaxWindowBits === 'number') c.client_max_window_bits = checkBits(opts.clientMaxWindowBits);
  else if (opts.clientMaxWindowBits === undefined || opts.clientMaxWindowBits === true) c.client_max_window_bits = true;
  return formatConfig(c);
}

function checkBits(n: number): number {
  if (!Number.isInteger(n) || n < MIN_WINDOW_BITS || n > MAX_WINDOW_BITS) {
    throw new RangeError(`Window bits must be an integer from ${MIN_WINDOW_BITS} to ${MAX_WINDOW_BITS}: ${n}`);
  }
  return n;
}

/**
 * Client side of RFC 7692 §7.1: validates the server's Sec-WebSocket-Extensions against what
 * buildDeflateOffer(opts) offered and returns the agreed params. Throws Error (SyntaxError when
 * malformed) if the server named another extension, repeated one, or used a parameter we did not allow.
 */
export function acceptDeflateResponseClient(responseHeader: string, opts: PerMessageDeflateOptions = {}): DeflateParams {
  const exts = parseExtensionHeader(responseHeader);
  if (exts.length !== 1 || exts[0]!.name !== PERMESSAGE_DEFLATE) {
    throw new Error('Server indicated an extension that was not requested');
  }
  const r = normalize(exts[0]!.params, false);
  if (typeof r === 'string') throw new Error(r);
  // §7.1.1.2: client_no_context_takeover is fine unless we said we would not do it.
  if (opts.clientNoContextTakeover === false && r.client_no_context_takeover) {
    throw new Error('Unexpected parameter "client_no_context_takeover"');
  }
  // §7.1.1.1: the server must honour server_no_context_takeover if we asked for it.
  if (opts.serverNoContextTakeover === true && !r.server_no_context_takeover) {
    throw new Error('Missing parameter "server_no_context_takeover"');
  }
  // §7.1.2.1: server_max_window_bits no larger than we asked for.
  if (typeof opts.serverMaxWindowBits === 'number') {
    if (r.server_max_window_bits === undefined || r.server_max_window_bits > opts.serverMaxWindowBits) {
      throw new Error('Missing or invalid parameter "server_max_window_bits"');
    }
  }
  // §7.1.2.2: client_max_window_bits only if we offered it, and no larger than our value.
  if (r.client_max_window_bits !== undefined) {
    const ours = opts.clientMaxWindowBits;
    if (ours === false || (typeof ours === 'number' && (r.client_max_window_bits as number) > ours)) {
      throw new Error('Unexpected or invalid parameter "client_max_window_bits"');
    }
  } else if (typeof opts.clientMaxWindowBits === 'number') {
    r.client_max_window_bits = opts.clientMaxWindowBits; // we promised to stay within our own offer
  }
  return toParams(r);
}
