// Optional fields of a welcome's `lim` cross the codec without a codec change.
import { describe, expect, it } from 'vitest';
import { FrameType, decodeFrame, encodeFrame, type WelcomeFrame } from '../src/index.js';

describe('welcome lim', () => {
  it('round-trips pr and pb, and decodes without them', () => {
    const base = { t: FrameType.welcome, v: 1, u: 'u1', ka: 30_000, s: 'secret' } as const;
    const full: WelcomeFrame = { ...base, lim: { mc: 100, mp: 1024, bs: 1000, pr: 10_000, pb: 20_000 } };
    expect((decodeFrame(encodeFrame(full)) as WelcomeFrame).lim).toEqual({ mc: 100, mp: 1024, bs: 1000, pr: 10_000, pb: 20_000 });
    const old: WelcomeFrame = { ...base, lim: { mc: 100, mp: 1024, bs: 1000 } };
    expect((decodeFrame(encodeFrame(old)) as WelcomeFrame).lim).toEqual({ mc: 100, mp: 1024, bs: 1000 });
  });
});
