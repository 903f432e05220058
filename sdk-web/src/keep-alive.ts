import type { Timers } from './types.js';

/** What the keep-alive asks of its connection. */
export interface KeepAliveHooks {
  /** Send a `ping` frame (the broker answers `pong`, which counts as a frame received). */
  ping(): void;
  /**
   * The broker is gone: abandon the socket. `probeGrace` is the wait in ms when it was a `ping`
   * probe that went unanswered, `undefined` after two intervals of silence.
   */
  dead(probeGrace: number | undefined): void;
}

/** Longest wait for the answer to a probe ping after a late check, in ms (less when the interval is shorter). */
export const PROBE_GRACE_MAX = 5_000;

/** Longest wait for the answer to a probe ping when the page wakes up, in ms (less when the interval is shorter). */
export const WAKE_PROBE_GRACE_MAX = 3_000;

/**
 * Watches a connection for silence. The broker sends `ping` every `interval` ms, so any frame
 * received proves it alive; a check runs every `interval` ms and declares the broker dead after two
 * checks in a row found nothing new (two intervals of silence).
 *
 * Browsers throttle timers in hidden tabs (Chrome: about once a minute) and a suspended laptop
 * fires them late all at once, while socket messages still arrive. A check that fires much later
 * than scheduled therefore proves nothing about the broker: instead of judging from the gap, it
 * sends a `ping` probe and decides after a short grace period whether anything came back.
 *
 * `probe()` asks for that proof now (a page that became visible, a network that came back), and
 * works with an `interval` of 0 too (a broker that sends no pings: no periodic checks).
 *
 * `received()` is on the hot path: it only bumps a counter (no clock read).
 */
export class KeepAlive {
  private frames = 0;
  private framesAtCheck = 0;
  private silentChecks = 0;
  /** Frame count when the probe was sent; `undefined` when not probing. */
  private framesAtProbe: number | undefined;
  private probeGrace = 0;
  private timer: unknown;
  private dueAt = 0;
  private stopped = false;

  constructor(
    private readonly clock: Timers,
    private readonly interval: number,
    private readonly hooks: KeepAliveHooks,
  ) {
    if (interval > 0) this.schedule(interval);
  }

  /** Counts one frame from the broker. */
  received(): void {
    this.frames++;
  }

  /**
   * Sends a `ping` now and declares the broker dead if nothing arrives within `grace` ms. Does
   * nothing while a probe is already waiting for its answer.
   */
  probe(grace: number): void {
    if (this.stopped || this.framesAtProbe !== undefined) return;
    this.clock.clearTimeout(this.timer);
    this.sendProbe(grace);
  }

  stop(): void {
    this.stopped = true;
    this.clock.clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    this.dueAt = this.clock.now() + ms;
    this.timer = this.clock.setTimeout(() => this.check(), ms);
  }

  private check(): void {
    if (this.stopped) return;
    const heard = this.frames !== this.framesAtCheck;
    this.framesAtCheck = this.frames;
    if (this.framesAtProbe !== undefined) {
      const answered = this.frames !== this.framesAtProbe;
      this.framesAtProbe = undefined;
      if (!answered) return this.hooks.dead(this.probeGrace);
      this.silentChecks = 0;
      return this.next();
    }
    if (heard) {
      this.silentChecks = 0;
      return this.next();
    }
    if (this.clock.now() - this.dueAt > this.interval / 2) {
      // Late by more than half an interval: the gap says more about our timers than the broker.
      return this.sendProbe(Math.min(this.interval, PROBE_GRACE_MAX));
    }
    if (++this.silentChecks >= 2) return this.hooks.dead(undefined);
    this.next();
  }

  private next(): void {
    if (this.interval > 0) this.schedule(this.interval);
  }

  private sendProbe(grace: number): void {
    this.framesAtProbe = this.frames;
    this.probeGrace = grace;
    this.hooks.ping();
    this.schedule(grace);
  }
}
