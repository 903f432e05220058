import { describe, expect, it } from 'vitest';
import { backoffDelay, DEFAULT_BACKOFF } from '../src/backoff.js';

describe('backoffDelay', () => {
  const opts = { initialDelay: 100, maxDelay: 1000, factor: 2 };

  it('is random() times the capped exponential ceiling (full jitter)', () => {
    const half = (): number => 0.5;
    expect([0, 1, 2, 3, 4, 5, 10].map((a) => backoffDelay(a, opts, half))).toEqual([50, 100, 200, 400, 500, 500, 500]);
  });

  it('spans [0, ceiling): random() = 0 gives 0, random() just under 1 stays under the ceiling', () => {
    expect(backoffDelay(3, opts, () => 0)).toBe(0);
    const almostOne = 1 - Number.EPSILON;
    expect(backoffDelay(3, opts, () => almostOne)).toBeLessThan(800);
    expect(backoffDelay(3, opts, () => almostOne)).toBeGreaterThan(799.99);
  });

  it('stays finite for huge attempts and a zero initial delay', () => {
    expect(backoffDelay(5000, opts, () => 0.25)).toBe(250);
    expect(backoffDelay(5000, { ...opts, initialDelay: 0 }, () => 0.25)).toBe(0);
  });

  it('has the documented defaults', () => {
    expect(DEFAULT_BACKOFF).toEqual({ initialDelay: 250, maxDelay: 30_000, factor: 2 });
    expect(backoffDelay(0, DEFAULT_BACKOFF, () => 1)).toBe(250);
    expect(backoffDelay(20, DEFAULT_BACKOFF, () => 1)).toBe(30_000);
  });
});
