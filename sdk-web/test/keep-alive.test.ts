import { describe, expect, it } from 'vitest';
import { KeepAlive, PROBE_GRACE_MAX } from '../src/keep-alive.js';
import { ManualClock } from './manual-clock.js';

function setup(interval = 1000): { clock: ManualClock; keepAlive: KeepAlive; pings: number[]; deaths: number[] } {
  const clock = new ManualClock();
  const pings: number[] = [];
  const deaths: number[] = [];
  const start = clock.now();
  const keepAlive = new KeepAlive(clock, interval, {
    ping: () => pings.push(clock.now() - start),
    dead: () => deaths.push(clock.now() - start),
  });
  return { clock, keepAlive, pings, deaths };
}

describe('KeepAlive', () => {
  it('declares the broker dead after two intervals with nothing received', () => {
    const { clock, deaths, pings } = setup();
    clock.advance(1999);
    expect(deaths).toEqual([]);
    clock.advance(1);
    expect(deaths).toEqual([2000]);
    expect(pings).toEqual([]);
    expect(clock.pending()).toEqual([]); // it stops checking once it declared death
  });

  it('any frame received resets the silence', () => {
    const { clock, keepAlive, deaths } = setup();
    for (let i = 0; i < 10; i++) {
      clock.advance(1000);
      keepAlive.received();
    }
    // The last frame came at 10 000, just after a check: the check at 11 000 heard it, those at
    // 12 000 and 13 000 find nothing new: two silent intervals.
    clock.advance(2000);
    expect(deaths).toEqual([]);
    clock.advance(1000);
    expect(deaths).toEqual([13_000]);
  });

  it('a check that fires late probes with a ping instead of judging from the gap, and an answer keeps it alive', () => {
    const { clock, keepAlive, deaths, pings } = setup();
    clock.sleep(60_000); // a hidden tab: the timer fires a minute late, nothing arrived meanwhile
    expect(pings).toEqual([60_000]);
    expect(deaths).toEqual([]);
    keepAlive.received(); // the pong
    clock.advance(1000); // the grace period
    expect(deaths).toEqual([]);
    expect(clock.pending()).toEqual([1000]); // back to normal checks
  });

  it('an unanswered probe means dead once the grace period is over', () => {
    const { clock, deaths, pings } = setup(30_000);
    clock.sleep(90_000);
    expect(pings).toEqual([90_000]);
    clock.advance(PROBE_GRACE_MAX - 1);
    expect(deaths).toEqual([]);
    clock.advance(1);
    expect(deaths).toEqual([90_000 + PROBE_GRACE_MAX]);
  });

  it('a late check does not probe when frames arrived meanwhile (pings are not throttled)', () => {
    const { clock, keepAlive, pings, deaths } = setup();
    keepAlive.received();
    clock.sleep(60_000);
    expect(pings).toEqual([]);
    expect(deaths).toEqual([]);
  });

  it('a late check never declares death without a probe, even after a silent interval', () => {
    const { clock, keepAlive, deaths, pings } = setup();
    clock.advance(1000); // one silent check, on time
    clock.sleep(60_000); // the second fires a minute late: it probes instead of counting
    expect(deaths).toEqual([]);
    expect(pings).toEqual([61_000]);
    keepAlive.received();
    clock.advance(1000);
    clock.sleep(59_000); // late again, after the answer: another probe, not a death
    expect(deaths).toEqual([]);
    expect(pings).toEqual([61_000, 121_000]);
  });

  it('probe() pings now and reports the grace when unanswered; one probe at a time', () => {
    const { clock, keepAlive, deaths, pings } = setup(30_000);
    const reasons: (number | undefined)[] = [];
    const k = new KeepAlive(clock, 30_000, { ping: () => pings.push(-1), dead: (grace) => reasons.push(grace) });
    keepAlive.probe(3000);
    keepAlive.probe(3000);
    expect(pings).toEqual([0]);
    clock.advance(3000);
    expect(deaths).toEqual([3000]);
    k.probe(2000);
    k.received();
    clock.advance(2000);
    expect(reasons).toEqual([]);
    clock.advance(60_000);
    expect(reasons).toEqual([undefined]); // later, plain silence
  });

  it('stop() cancels the checks', () => {
    const { clock, keepAlive, deaths } = setup();
    keepAlive.stop();
    clock.advance(10_000);
    expect(deaths).toEqual([]);
    expect(clock.pending()).toEqual([]);
  });
});
