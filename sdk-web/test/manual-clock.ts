import type { Timers } from '../src/types.js';

interface Scheduled {
  at: number;
  callback: () => void;
}

/**
 * Injected timers that only move when the test says so: `advance(ms)` runs every timer that falls
 * due, in order, with `now()` reading each one's due time.
 */
export class ManualClock implements Timers {
  time = 1_000_000;
  private readonly scheduled = new Map<number, Scheduled>();
  private nextId = 1;

  setTimeout = (callback: () => void, ms: number): unknown => {
    const id = this.nextId++;
    this.scheduled.set(id, { at: this.time + ms, callback });
    return id;
  };

  clearTimeout = (handle: unknown): void => {
    this.scheduled.delete(handle as number);
  };

  now = (): number => this.time;

  /** Delays (from now) of the timers still scheduled, soonest first. */
  pending(): number[] {
    return [...this.scheduled.values()].map((s) => s.at - this.time).sort((a, b) => a - b);
  }

  /** Moves time forward by `ms`, running the timers that fall due (late ones too, in order). */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let next: [number, Scheduled] | undefined;
      for (const entry of this.scheduled) if (entry[1].at <= end && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      this.scheduled.delete(next[0]);
      this.time = Math.max(this.time, next[1].at);
      next[1].callback();
    }
    this.time = end;
  }

  /** Jumps time forward without running anything (a suspended machine), then runs what is due. */
  sleep(ms: number): void {
    this.time += ms;
    this.advance(0);
  }
}
