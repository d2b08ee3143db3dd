// Where a publish goes beyond this process. A WebSocketServer owns its topics (which local
// sockets want what) and hands every publish to one Broker; the broker decides when the local
// subscribers get it (at once, or when the message comes back from the cluster primary or Redis,
// so that every process delivers in the same order) and carries it to the other processes.
//
//   wss.publish ─▶ broker.publish ─▶ (primary | Redis) ─▶ broker ─▶ sink.deliver ─▶ local subscribers
//
// The server tells the broker which topics have local subscribers (subscribe on the first,
// unsubscribe after the last), so a process only receives what somebody here wants.
import type { WebSocket } from '../node/websocket.js';

/** What a broker delivers into: the topics of one WebSocketServer. */
export interface BrokerSink {
  /** Frame once and send to this process's subscribers of `topic` (but `except`); returns how many. */
  deliver(topic: string, payload: Buffer, binary: boolean, compress: boolean, except: WebSocket | null): number;
  /** Local subscribers of `topic`. */
  subscriberCount(topic: string): number;
}

/** Published message flags, as carried in brokers' binary headers. */
export const FLAG_BINARY = 1;
export const FLAG_NO_COMPRESS = 2;

/** The small interface every broker implements. */
export interface Broker {
  /** Called by the server that uses this broker (one server per broker). */
  attach(sink: BrokerSink): void;
  /** The server closed: stop delivering into it. */
  detach(sink: BrokerSink): void;
  /** `topic` got its first local subscriber. */
  subscribe(topic: string): void;
  /** `topic` lost its last local subscriber. */
  unsubscribe(topic: string): void;
  /**
   * Publish to every subscriber everywhere (but `except`, a local socket). The broker calls
   * sink.deliver for the local ones, now or when the message comes back. Returns the number of
   * local recipients (at the time of the call).
   */
  publish(topic: string, payload: Buffer, binary: boolean, compress: boolean, except: WebSocket | null): number;
  /**
   * Optional flow control: true while the broker holds more than it should (its channel to the
   * other processes is behind). The server then stops reading from a connection that publishes
   * from its 'message' handler, until `onceDrained`'s callback runs, so a fast publisher is held
   * back by TCP instead of filling memory.
   */
  readonly congested?: boolean;
  /** Call `fn` once the broker is no longer congested (at once if it is not). */
  onceDrained?(fn: () => void): void;
}

/** The default broker: this process only, delivered at once. */
export class LocalBroker implements Broker {
  private sink: BrokerSink | null = null;

  attach(sink: BrokerSink): void {
    if (this.sink && this.sink !== sink) throw new Error('This broker already serves another WebSocketServer');
    this.sink = sink;
  }

  detach(sink: BrokerSink): void {
    if (this.sink === sink) this.sink = null;
  }

  subscribe(): void {}
  unsubscribe(): void {}

  publish(topic: string, payload: Buffer, binary: boolean, compress: boolean, except: WebSocket | null): number {
    return this.sink ? this.sink.deliver(topic, payload, binary, compress, except) : 0;
  }
}

/**
 * @internal Call every drain waiter (Broker#onceDrained); one that throws does not keep the others
 * waiting (the exception goes on up on the next tick, as a listener's would).
 */
export function callEach(fns: (() => void)[]): void {
  for (const fn of fns) {
    try {
      fn();
    } catch (err) {
      process.nextTick(() => {
        throw err;
      });
    }
  }
}

/**
 * Attach/detach bookkeeping shared by the brokers: one sink at a time, a second attach is an error.
 * @internal
 */
export function attachOnce(current: BrokerSink | null, sink: BrokerSink): BrokerSink {
  if (current && current !== sink) throw new Error('This broker already serves another WebSocketServer');
  return sink;
}
