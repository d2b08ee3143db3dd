// The browser's EventTarget API on a WebSocket (addEventListener, removeEventListener and the
// onopen / onmessage / onclose / onerror properties), as a thin layer over its EventEmitter events.
import type { EventEmitter } from 'node:events';

type Listener = ((ev: any) => void) | { handleEvent(ev: any): void };
type Wrapped = (...args: any[]) => void;
/** What the layer needs of the WebSocket. */
interface Target extends EventEmitter {
  _handlers: Map<string, Map<unknown, Wrapped>> | null;
  readonly _wasClean: boolean;
}

/** addEventListener(type, listener, { once }) as WebSocket implements it. */
export function addEventListener(target: Target, type: string, listener: Listener, opts?: { once?: boolean }): void {
  const call = typeof listener === 'function' ? listener : (ev: any) => listener.handleEvent(ev);
  let wrapped: Wrapped;
  if (type === 'message') {
    wrapped = (data: Buffer, isBinary: boolean) => call({ type, target, data: isBinary ? data : data.toString() });
  } else if (type === 'close') {
    wrapped = (code: number, reason: Buffer) => call({ type, target, code, reason: reason.toString(), wasClean: target._wasClean });
  } else if (type === 'error') {
    wrapped = (error: Error) => call({ type, target, error, message: error.message });
  } else if (type === 'open') {
    wrapped = () => call({ type, target });
  } else return;
  target._handlers ??= new Map();
  let m = target._handlers.get(type);
  if (!m) target._handlers.set(type, (m = new Map()));
  if (m.has(listener)) return;
  m.set(listener, wrapped);
  if (opts?.once) {
    const once = (...args: any[]) => {
      m!.delete(listener);
      wrapped(...args);
    };
    m.set(listener, once);
    target.once(type, once);
  } else target.on(type, wrapped);
}

export function removeEventListener(target: Target, type: string, listener: unknown): void {
  const m = target._handlers?.get(type);
  const w = m?.get(listener);
  if (!w) return;
  m!.delete(listener);
  target.off(type, w);
}

/** Define onopen / onmessage / onclose / onerror on `proto` (a class prototype with addEventListener). */
export function defineEventHandlers(proto: object): void {
  for (const type of ['open', 'message', 'close', 'error'] as const) {
    const key = Symbol(type);
    Object.defineProperty(proto, `on${type}`, {
      configurable: true,
      enumerable: true,
      get(this: any) {
        return this[key] ?? null;
      },
      set(this: any, fn: ((ev: any) => void) | null) {
        if (this[key]) this.removeEventListener(type, this[key]);
        this[key] = typeof fn === 'function' ? fn : null;
        if (this[key]) this.addEventListener(type, this[key]);
      },
    });
  }
}
