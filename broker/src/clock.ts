/**
 * Time as the broker sees it: its clocks, its timers and the scheduler of its per-turn work (the
 * flush, the end of a read turn). Injected (`createBroker({ clock })`), as the SDK's timers are,
 * so a test decides when a rate bucket refills, when a session's resume window ends or when
 * history ages out, without waiting for the real clock.
 */
export interface Clock {
  /** Monotonic milliseconds (`performance.now()`): durations, rates, latency. */
  now(): number;
  /** Milliseconds since the Unix epoch (`Date.now()`): event times, expiry, history age. */
  wall(): number;
  /** A one-shot timer that does not keep the process alive. */
  setTimeout(callback: () => void, ms: number): TimerHandle;
  /** A repeating timer that does not keep the process alive. */
  setInterval(callback: () => void, ms: number): TimerHandle;
  clearTimer(handle: TimerHandle): void;
  /** Runs `callback` once, after the I/O of the current event-loop turn (`setImmediate`). */
  defer(callback: () => void): TimerHandle;
  clearDefer(handle: TimerHandle): void;
}

/** Opaque to the broker: whatever the clock's timers return. */
export type TimerHandle = unknown;

/** The real clock. */
export const systemClock: Clock = {
  now: () => performance.now(),
  wall: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms).unref(),
  setInterval: (callback, ms) => setInterval(callback, ms).unref(),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
  defer: (callback) => setImmediate(callback),
  clearDefer: (handle) => clearImmediate(handle as NodeJS.Immediate),
};
