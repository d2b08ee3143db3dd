// Options, resolved once: every default is named here, and each options object a server or a
// client is given becomes one normalized object (a server's serves all its connections).
import { resolveCodec, type Codec, type CodecBackend } from '../codec/index.js';
import { DEFAULT_MAX_PAYLOAD } from '../protocol/constants.js';
import { wheelFor, type TimerWheel } from './timer-wheel.js';

/** The defaults, named once. */
export const DEFAULTS = {
  /** Largest message (ws's default). */
  maxPayload: DEFAULT_MAX_PAYLOAD,
  /** After our close frame, wait this long for the peer's close and the transport's end (ms). */
  closeTimeout: 30_000,
  /** Close (1001) a connection silent for this long (ms); 0 = off. */
  idleTimeout: 0,
  /** Drop (1008) a peer that lets more than this many bytes pile up. */
  maxBackpressure: 64 * 1024 * 1024,
  /**
   * The server drops a connection whose upgrade has not completed in this long (ms): a bound on
   * slowloris peers, so shorter than the client's, which waits for a busy server.
   */
  serverHandshakeTimeout: 10_000,
  /** The client gives up on an upgrade not answered in this long (ms), over HTTP/1.1 and HTTP/2. */
  clientHandshakeTimeout: 30_000,
  /** Redirects a client follows when followRedirects is on (ws's default). */
  maxRedirects: 10,
  /** Server heartbeat period (ms); 0 = off. */
  heartbeatInterval: 0,
  /**
   * listen() backlog of a server we create (`port`): Node's 511 overflows in a reconnect burst, and a
   * client whose SYN was dropped retries only after 1 s, then 3 s. The kernel caps it at somaxconn.
   */
  backlog: 4096,
} as const;

/** Options for a connection (set by the server or the client). */
export interface ConnectionOptions {
  maxPayload?: number;
  codec?: Codec | CodecBackend;
  /** Wait this long for the peer's close frame / TCP close after ours, then destroy (ms). */
  closeTimeout?: number;
  /** Close (1001) when nothing was received or sent for this long (ms); 0 = off. */
  idleTimeout?: number;
  /** Fail the connection (1008) when more than this many bytes wait to be sent to a slow peer. */
  maxBackpressure?: number;
  autoPong?: boolean;
  skipUTF8Validation?: boolean;
  /** Client only: fills the 4-byte masking key of each frame we send (ws's option; default random from crypto). */
  generateMask?(mask: Buffer): void;
}

/** A connection's options with every default applied. */
export interface ResolvedConnectionOptions {
  readonly maxPayload: number;
  readonly codec: Codec;
  readonly closeTimeout: number;
  readonly idleTimeout: number;
  readonly maxBackpressure: number;
  readonly autoPong: boolean;
  readonly skipUTF8Validation: boolean;
  readonly generateMask: ((mask: Buffer) => void) | undefined;
  /** The timer wheel idle timeouts run on (null when idleTimeout is 0). */
  readonly idleWheel: TimerWheel | null;
}

const resolved = new WeakMap<ConnectionOptions, ResolvedConnectionOptions>();

/** Defaults applied once per options object. */
export function resolveConnectionOptions(o: ConnectionOptions): ResolvedConnectionOptions {
  let r = resolved.get(o);
  if (!r) {
    const idleTimeout = o.idleTimeout ?? DEFAULTS.idleTimeout;
    r = Object.freeze({
      // 0, or anything not above 0 (as in ws, which limits only when maxPayload > 0): no limit but
      // the largest length a JS number holds exactly.
      maxPayload: o.maxPayload === undefined ? DEFAULTS.maxPayload : o.maxPayload > 0 ? o.maxPayload : Number.MAX_SAFE_INTEGER,
      codec: resolveCodec(o.codec),
      closeTimeout: o.closeTimeout ?? DEFAULTS.closeTimeout,
      idleTimeout,
      maxBackpressure: o.maxBackpressure ?? DEFAULTS.maxBackpressure,
      autoPong: o.autoPong !== false,
      skipUTF8Validation: o.skipUTF8Validation === true,
      generateMask: o.generateMask,
      idleWheel: idleTimeout > 0 ? wheelFor(idleTimeout) : null,
    });
    resolved.set(o, r);
  }
  return r;
}
