// The idle-timeout wheel: deadlines fire after the timeout of inactivity (never early, at most two
// resolutions late),
// activity postpones them, removal cancels, and the wheel's interval runs only while it holds entries.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TimerWheel, wheelFor, type WheelEntry } from '../src/node/timer-wheel.js';

function entry(fired: number[], id: number, clock: () => number): WheelEntry {
  return { activeTick: 0, wheelTicks: 0, wheelSlot: -1, onWheelTimeout: () => fired.push(id, clock()) };
}

describe('TimerWheel', () => {
  let t0 = 0;
  const now = () => Date.now() - t0;
  beforeEach(() => {
    vi.useFakeTimers();
    t0 = Date.now();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('fires an inactive entry once, between the timeout and an eighth of it plus one resolution later', () => {
    const w = wheelFor(800); // resolution 100 ms
    expect(w.resolution).toBe(128);
    const fired: number[] = [];
    w.add(entry(fired, 1, now), 800);
    vi.advanceTimersByTime(799);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(800 / 8 + w.resolution);
    expect(fired[0]).toBe(1);
    expect(fired[1]).toBeGreaterThanOrEqual(800);
    vi.advanceTimersByTime(5000);
    expect(fired.length).toBe(2); // once
  });

  it('postpones the deadline while the entry is active, and fires after it goes quiet', () => {
    const w = new TimerWheel(10);
    const fired: number[] = [];
    const e = entry(fired, 7, now);
    w.add(e, 100);
    for (let i = 0; i < 50; i++) {
      vi.advanceTimersByTime(20);
      e.activeTick = w.tick; // activity every 20 ms for 1 s
    }
    expect(fired).toEqual([]);
    const quiet = now();
    vi.advanceTimersByTime(150);
    expect(fired[0]).toBe(7);
    expect(fired[1] - quiet).toBeGreaterThanOrEqual(100);
    expect(fired[1] - quiet).toBeLessThanOrEqual(120);
  });

  it('handles timeouts longer than one turn of the wheel', () => {
    const w = new TimerWheel(10); // 64 slots: one turn is 640 ms
    const fired: number[] = [];
    w.add(entry(fired, 1, now), 5000);
    vi.advanceTimersByTime(4990);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(30);
    expect(fired[0]).toBe(1);
  });

  it('cancels on remove, and keeps no interval while empty', () => {
    const w = new TimerWheel(10);
    const fired: number[] = [];
    const a = entry(fired, 1, now);
    const b = entry(fired, 2, now);
    const timers = vi.getTimerCount();
    w.add(a, 50);
    w.add(b, 50);
    expect(vi.getTimerCount()).toBe(timers + 1); // one interval for both
    w.remove(a);
    vi.advanceTimersByTime(100);
    expect(fired.filter((_, i) => i % 2 === 0)).toEqual([2]);
    expect(vi.getTimerCount()).toBe(timers); // b fired and left: the wheel stopped
  });

  it('fires ten thousand entries due in the same tick', () => {
    const w = new TimerWheel(10);
    const fired: number[] = [];
    for (let i = 0; i < 10_000; i++) w.add(entry(fired, i, now), 200);
    vi.advanceTimersByTime(220);
    expect(fired.length / 2).toBe(10_000);
  });
});
