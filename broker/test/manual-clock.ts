import type { Clock, TimerHandle } from '../src/clock.js';

/**
 * A clock whose time moves only when the test calls {@link advance}, firing the timers due on the
 * way, earliest first. `defer` stays real.
 */
export class ManualClock implements Clock {
  private time = 0;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; callback: () => void; every?: number }>();

  now(): number {
    return this.time;
  }

  wall(): number {
    return 1_700_000_000_000 + this.time;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    this.timers.set(this.nextId, { at: this.time + ms, callback });
    return this.nextId++;
  }

  setInterval(callback: () => void, ms: number): TimerHandle {
    this.timers.set(this.nextId, { at: this.time + ms, callback, every: Math.max(1, ms) });
    return this.nextId++;
  }

  clearTimer(handle: TimerHandle): void {
    this.timers.delete(handle as number);
  }

  /** Timers set and not yet fired or cleared (what a closed component must leave at 0). */
  get pending(): number {
    return this.timers.size;
  }

  defer(callback: () => void): TimerHandle {
    return setImmediate(callback);
  }

  clearDefer(handle: TimerHandle): void {
    clearImmediate(handle as NodeJS.Immediate);
  }

  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let next: [number, { at: number; callback: () => void; every?: number }] | undefined;
      for (const entry of this.timers) if (entry[1].at <= end && (next === undefined || entry[1].at < next[1].at)) next = entry;
      if (next === undefined) break;
      const [id, timer] = next;
      this.time = timer.at;
      if (timer.every === undefined) this.timers.delete(id);
      else timer.at += timer.every;
      timer.callback();
    }
    this.time = end;
  }
}
