import { describe, expect, it } from 'vitest';
import { ErrorCode, FrameType, canonicalFilter, decodeFrame, encodeFrame, filterId, passesFilter } from '../src/index.js';

describe('subscription filters', () => {
  it('canonical form: sorted, deduplicated, empty parts and a no-op la left out', () => {
    expect(canonicalFilter({ l: ['b', 'a', 'b'], la: true, k: ['z', 'y'] })).toEqual({ l: ['a', 'b'], la: true, k: ['y', 'z'] });
    expect(canonicalFilter({ l: ['a'], la: true })).toEqual({ l: ['a'] });
    expect(canonicalFilter({ l: [], k: [] })).toBeUndefined();
    expect(canonicalFilter(undefined)).toBeUndefined();
    expect(filterId(canonicalFilter({ l: ['b', 'a'] }))).toBe(filterId(canonicalFilter({ l: ['a', 'b', 'a'], la: false })));
    expect(filterId(canonicalFilter({ l: ['a', 'b'], la: true }))).not.toBe(filterId(canonicalFilter({ l: ['a', 'b'] })));
  });

  it('refuses bounds with bad_filter', () => {
    for (const f of [{ l: Array(17).fill('x').map((x, i) => x + i) }, { l: [''] }, { l: ['x'.repeat(65)] }, { k: Array.from({ length: 257 }, String) }, { k: ['x'.repeat(257)] }]) {
      expect(() => canonicalFilter(f)).toThrow(expect.objectContaining({ code: ErrorCode.badFilter }));
    }
  });

  it('labels any and all, keys, both', () => {
    expect(passesFilter({ l: ['a', 'b'] }, ['b'], undefined)).toBe(true);
    expect(passesFilter({ l: ['a', 'b'] }, undefined, 'k')).toBe(false);
    expect(passesFilter({ l: ['a', 'b'], la: true }, ['b'], undefined)).toBe(false);
    expect(passesFilter({ l: ['a', 'b'], la: true }, ['c', 'b', 'a'], undefined)).toBe(true);
    expect(passesFilter({ k: ['k'] }, ['a'], 'k')).toBe(true);
    expect(passesFilter({ k: ['k'] }, ['a'], undefined)).toBe(false);
    expect(passesFilter({ l: ['a'], k: ['k'] }, ['a'], 'j')).toBe(false);
  });

  it('subscribe and unsubscribe carry f; its types are checked by the codec', () => {
    const frame = { t: FrameType.subscribe, r: 1, p: 'a.*', f: { l: ['x'], la: true, k: ['k'] } } as const;
    expect(decodeFrame(encodeFrame(frame))).toEqual(frame);
    expect(decodeFrame(encodeFrame({ t: FrameType.unsubscribe, r: 2, p: 'a.*', f: { k: ['k'] } }))).toMatchObject({ f: { k: ['k'] } });
    expect(() => decodeFrame(encodeFrame({ t: FrameType.subscribe, r: 1, p: 'a', f: { l: 'x' } } as never))).toThrow(expect.objectContaining({ code: ErrorCode.badFrame, requestId: 1 }));
    expect(() => decodeFrame(encodeFrame({ t: FrameType.subscribe, r: 1, p: 'a', f: [1] } as never))).toThrow(expect.objectContaining({ code: ErrorCode.badFrame }));
  });
});
