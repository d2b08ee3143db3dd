// One coarse timer for many idle deadlines (a hashed timer wheel with lazy rescheduling, as Netty's
// HashedWheelTimer or the kernel's): a connection marks activity by copying the wheel's tick
// counter (one field write per read or flush, no timer touched), and the wheel, visiting one slot
// per tick, fires the entries whose deadline has passed and moves the others to their new slot.
// One interval per resolution in the process, running only while it holds entries; it never keeps
// the process alive.

/** What the wheel holds: a connection with an idle timeout. */
export interface WheelEntry {
  /** The tick of the last activity (set it to `wheel.tick`). */
  activeTick: number;
  /** @internal The wheel's bookkeeping: timeout in ticks and the slot the entry is in (-1: none). */
  wheelTicks: number;
  wheelSlot: number;
  /** The deadline passed with no activity; the entry is removed first. */
  onWheelTimeout(): void;
}

const SLOTS = 64;
/**
 * A timeout is checked about this many times per period. It never fires early (activity marks the
 * tick in progress, so a deadline counts one tick more); it fires less than two resolutions late,
 * and the resolution, a power of two, is between 1/11 and 1/6 of the timeout (10 ms at least).
 */
const CHECKS_PER_TIMEOUT = 8;
const MIN_RESOLUTION = 10;
const MAX_RESOLUTION = 1000;

export class TimerWheel {
  /** Advances once per `resolution` ms while the wheel holds entries. */
  tick = 0;
  readonly resolution: number;
  private readonly slots: Set<WheelEntry>[] = Array.from({ length: SLOTS }, () => new Set());
  private size = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(resolution: number) {
    this.resolution = resolution;
  }

  /** Watch `e` for `timeoutMs` of inactivity from now. */
  add(e: WheelEntry, timeoutMs: number): void {
    if (e.wheelSlot >= 0) this.remove(e);
    // +1: activeTick is the tick in progress, up to one resolution old already.
    e.wheelTicks = Math.ceil(timeoutMs / this.resolution) + 1;
    e.activeTick = this.tick;
    this.place(e, this.tick + e.wheelTicks);
    if (this.size++ === 0) this.start();
  }

  remove(e: WheelEntry): void {
    if (e.wheelSlot < 0) return;
    this.slots[e.wheelSlot].delete(e);
    e.wheelSlot = -1;
    if (--this.size === 0) this.stop();
  }

  private place(e: WheelEntry, dueTick: number): void {
    e.wheelSlot = dueTick % SLOTS;
    this.slots[e.wheelSlot].add(e);
  }

  private start(): void {
    this.timer = setInterval(advance, this.resolution, this);
    this.timer.unref?.();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** @internal One tick: visit the slot of the new tick. */
  advance(): void {
    const now = ++this.tick;
    const slot = this.slots[now % SLOTS];
    if (slot.size === 0) return;
    const expired: WheelEntry[] = [];
    for (const e of slot) {
      const due = e.activeTick + e.wheelTicks;
      if (due <= now) expired.push(e);
      else if (due % SLOTS !== now % SLOTS) {
        // Active since it was placed: move it to the slot of its new deadline.
        slot.delete(e);
        this.place(e, due);
      }
      // else: due a whole turn (or more) later, in this same slot: stays.
    }
    for (const e of expired) {
      this.remove(e);
      e.onWheelTimeout();
    }
  }
}

function advance(w: TimerWheel): void {
  w.advance();
}

const wheels = new Map<number, TimerWheel>();

/** The process's wheel for timeouts of about `timeoutMs`. */
export function wheelFor(timeoutMs: number): TimerWheel {
  const r = Math.min(MAX_RESOLUTION, Math.max(MIN_RESOLUTION, 2 ** Math.round(Math.log2(timeoutMs / CHECKS_PER_TIMEOUT))));
  let w = wheels.get(r);
  if (!w) wheels.set(r, (w = new TimerWheel(r)));
  return w;
}
