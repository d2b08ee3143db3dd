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

/** The events a listener gets, as ws makes them: instances of these classes, `target` the WebSocket. */
class WsEvent {
  constructor(readonly type: string, readonly target: Target) {}
}
// Named as ws names them (code may look at `ev.constructor.name`).
Object.defineProperty(WsEvent, 'name', { value: 'Event' });
class MessageEvent extends WsEvent {
  constructor(type: string, target: Target, readonly data: unknown) {
    super(type, target);
  }
}
class CloseEvent extends WsEvent {
  constructor(type: string, target: Target, readonly code: number, readonly reason: string, readonly wasClean: boolean) {
    super(type, target);
  }
}
class ErrorEvent extends WsEvent {
  readonly message: string;
  constructor(type: string, target: Target, readonly error: Error) {
    super(type, target);
    this.message = error.message;
  }
}

/** addEventListener(type, listener, { once }) as WebSocket implements it. */
export function addEventListener(target: Target, type: string, listener: Listener, opts?: { once?: boolean }): void {
  // A function listener is called with the WebSocket as `this`, as in ws and the browser.
  const call = typeof listener === 'function' ? (ev: WsEvent) => listener.call(target, ev) : (ev: WsEvent) => listener.handleEvent(ev);
  let wrapped: Wrapped;
  if (type === 'message') {
    wrapped = (data: Buffer, isBinary: boolean) => call(new MessageEvent(type, target, isBinary ? data : data.toString()));
  } else if (type === 'close') {
    wrapped = (code: number, reason: Buffer) => call(new CloseEvent(type, target, code, reason.toString(), target._wasClean));
  } else if (type === 'error') {
    wrapped = (error: Error) => call(new ErrorEvent(type, target, error));
  } else if (type === 'open') {
    wrapped = () => call(new WsEvent(type, target));
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
