import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ErrorCode,
  EventFilter,
  FrameType,
  MAX_KEY_LENGTH,
  MAX_LABELS,
  MAX_LABEL_LENGTH,
  assertEventKey,
  assertEventLabels,
  canonicalFilter,
  compileFilter,
  decodeUntrustedFrame,
  encodeFrame,
  filterId,
  patternOfSubscriptionKey,
  subscriptionKey,
  toWireFilter,
  type SubscribeFrame,
  type SubscriptionFilter,
} from '../src/index.js';

const badFilter = expect.objectContaining({ code: ErrorCode.badFilter });
const badFrame = expect.objectContaining({ code: ErrorCode.badFrame });

/** Whether an event passes `f` (any spelling), written as the documentation says it. */
function reference(f: SubscriptionFilter | undefined, labels: readonly string[] | undefined, key: string | undefined): boolean {
  if (f === undefined) return true;
  // An empty list filters nothing.
  const keyOk = !f.k?.length || (key !== undefined && f.k.includes(key));
  const has = (l: string): boolean => labels !== undefined && labels.includes(l);
  const labelsOk = !f.l?.length || (f.la === true ? f.l.every(has) : f.l.some(has));
  return keyOk && labelsOk;
}

const passes = (f: SubscriptionFilter, labels: string[] | undefined, key: string | undefined): boolean =>
  compileFilter(f)?.passes(labels, key) ?? true;

// Few distinct names, so that filters and events share some.
const name = fc.constantFrom('a', 'b', 'c', 'd', 'k1', 'k2');
const names = fc.option(fc.array(name, { maxLength: 6 }), { nil: undefined });
const wire = fc.record({ l: names, la: fc.option(fc.boolean(), { nil: undefined }), k: names }, { requiredKeys: [] });

describe('subscription filters', () => {
  it('canonical form: sorted, deduplicated, empty parts and a no-op la left out', () => {
    expect(canonicalFilter({ l: ['b', 'a', 'b'], la: true, k: ['z', 'y'] })).toEqual({ l: ['a', 'b'], la: true, k: ['y', 'z'] });
    expect(canonicalFilter({ l: ['a'], la: true })).toEqual({ l: ['a'] });
    expect(canonicalFilter({ l: [], k: [] })).toBeUndefined();
    expect(canonicalFilter(undefined)).toBeUndefined();
    expect(filterId(canonicalFilter({ l: ['b', 'a'] }))).toBe(filterId(canonicalFilter({ l: ['a', 'b', 'a'], la: false })));
    expect(filterId(canonicalFilter({ l: ['a', 'b'], la: true }))).not.toBe(filterId(canonicalFilter({ l: ['a', 'b'] })));
  });

  it('canonical form is a fixed point, and the same for any order or repetition of its parts', () => {
    fc.assert(fc.property(wire, fc.infiniteStream(fc.nat()), (f, seeds) => {
      const c = canonicalFilter(f);
      expect(canonicalFilter(c)).toEqual(c);
      const shuffle = (xs: string[] | undefined): string[] | undefined =>
        xs && [...xs, ...xs.slice(0, 1)].sort(() => (seeds.next().value % 3) - 1);
      expect(filterId(canonicalFilter({ ...f, l: shuffle(f.l), k: shuffle(f.k) }))).toBe(filterId(c));
    }), { numRuns: 500 });
  });

  it('refuses bounds with bad_filter', () => {
    for (const f of [{ l: Array(17).fill('x').map((x, i) => x + i) }, { l: [''] }, { l: ['x'.repeat(65)] }, { k: Array.from({ length: 257 }, String) }, { k: ['x'.repeat(257)] }]) {
      expect(() => canonicalFilter(f)).toThrow(badFilter);
    }
    for (const f of ['x', 1, [], { la: 'yes' }, { l: 'x' }]) expect(() => compileFilter(f as never)).toThrow(badFilter);
  });

  it('labels any and all, keys, both', () => {
    expect(passes({ l: ['a', 'b'] }, ['b'], undefined)).toBe(true);
    expect(passes({ l: ['a', 'b'] }, undefined, 'k')).toBe(false);
    expect(passes({ l: ['a', 'b'], la: true }, ['b'], undefined)).toBe(false);
    expect(passes({ l: ['a', 'b'], la: true }, ['c', 'b', 'a'], undefined)).toBe(true);
    expect(passes({ k: ['k'] }, ['a'], 'k')).toBe(true);
    expect(passes({ k: ['k'] }, ['a'], undefined)).toBe(false);
    expect(passes({ l: ['a'], k: ['k'] }, ['a'], 'j')).toBe(false);
    expect(compileFilter({ l: [], k: [] })).toBeUndefined();
  });

  it('a compiled filter agrees with the documented rule on every event', () => {
    const labels = fc.option(fc.array(name, { maxLength: 5 }), { nil: undefined });
    const key = fc.option(name, { nil: undefined });
    fc.assert(fc.property(wire, labels, key, (f, l, k) => {
      // Compiled from its canonical form, the filter passes what the filter as written does.
      expect(compileFilter(f)?.passes(l, k) ?? true).toBe(reference(f, l, k));
    }), { numRuns: 2000 });
  });

  it('compiles a canonical filter, keeping it as sent on the wire', () => {
    const f = compileFilter({ l: ['b', 'a'], k: ['k'] })!;
    expect(f).toBeInstanceOf(EventFilter);
    expect(f.wire).toEqual({ l: ['a', 'b'], k: ['k'] });
    expect(f.id).toBe(filterId(f.wire));
  });

  it('subscribe and unsubscribe carry f; its types are checked by the (broker\'s) codec', () => {
    const frame: SubscribeFrame = { t: FrameType.subscribe, r: 1, p: 'a.*', f: { l: ['x'], la: true, k: ['k'] } };
    expect(decodeUntrustedFrame(encodeFrame(frame))).toEqual(frame);
    expect(decodeUntrustedFrame(encodeFrame({ t: FrameType.unsubscribe, r: 2, p: 'a.*', f: { k: ['k'] } }))).toMatchObject({ f: { k: ['k'] } });
    expect(() => decodeUntrustedFrame(encodeFrame({ t: FrameType.subscribe, r: 1, p: 'a', f: { l: 'x' } } as never))).toThrow(expect.objectContaining({ code: ErrorCode.badFrame, requestId: 1 }));
    expect(() => decodeUntrustedFrame(encodeFrame({ t: FrameType.subscribe, r: 1, p: 'a', f: [1] } as never))).toThrow(badFrame);
  });
});

describe('the API spelling of a filter', () => {
  it('maps labels, allLabels and keys to l, la and k; none to none', () => {
    expect(toWireFilter(undefined)).toBeUndefined();
    expect(toWireFilter(null)).toBeUndefined();
    expect(canonicalFilter(toWireFilter({ labels: ['b', 'a'], allLabels: true, keys: ['k'] }))).toEqual({ l: ['a', 'b'], la: true, k: ['k'] });
    expect(canonicalFilter(toWireFilter({ keys: ['k'] }))).toEqual({ k: ['k'] });
    expect(canonicalFilter(toWireFilter({}))).toBeUndefined();
    // The encoder leaves the parts not given out of the frame.
    const f = toWireFilter({ labels: ['x'] });
    expect(decodeUntrustedFrame(encodeFrame({ t: FrameType.subscribe, r: 1, p: 'a', f }))).toEqual({ t: FrameType.subscribe, r: 1, p: 'a', f: { l: ['x'] } });
  });

  it('refuses something other than an object with bad_filter', () => {
    for (const f of ['labels', 3, true, ['a']]) expect(() => toWireFilter(f as never)).toThrow(badFilter);
  });
});

describe('subscription identity', () => {
  it('is the pattern alone without a filter, and the pattern with the canonical filter with one', () => {
    expect(subscriptionKey('a.*', undefined)).toBe('a.*');
    expect(subscriptionKey('a.*', compileFilter({ l: ['b', 'a'] }))).toBe(subscriptionKey('a.*', compileFilter({ l: ['a', 'b', 'a'] })));
    expect(subscriptionKey('a.*', compileFilter({ l: ['a'] }))).not.toBe(subscriptionKey('a.*', compileFilter({ k: ['a'] })));
    expect(subscriptionKey('a.*', compileFilter({ l: ['a', 'b'], la: true }))).not.toBe(subscriptionKey('a.*', compileFilter({ l: ['a', 'b'] })));
  });

  it('gives back its pattern, whatever the filter', () => {
    const segment = fc.constantFrom('a', 'b1', '*', 'user_x', '-');
    const pattern = fc.tuple(fc.array(segment, { minLength: 1, maxLength: 4 }), fc.boolean()).map(([s, tail]) => [...s, ...(tail ? ['>'] : [])].join('.'));
    fc.assert(fc.property(pattern, wire, (p, f) => {
      expect(patternOfSubscriptionKey(subscriptionKey(p, compileFilter(f)))).toBe(p);
    }), { numRuns: 500 });
  });
});

describe('event labels and key', () => {
  it(`takes up to ${MAX_LABELS} labels of 1-${MAX_LABEL_LENGTH} characters and a key of 1-${MAX_KEY_LENGTH}`, () => {
    expect(() => assertEventLabels(undefined)).not.toThrow();
    expect(() => assertEventLabels([])).not.toThrow();
    expect(() => assertEventLabels(Array.from({ length: MAX_LABELS }, (_, i) => 'x'.repeat(i === 0 ? MAX_LABEL_LENGTH : 1)))).not.toThrow();
    expect(() => assertEventKey(undefined)).not.toThrow();
    expect(() => assertEventKey('k'.repeat(MAX_KEY_LENGTH))).not.toThrow();
  });

  it('refuses anything else with bad_frame', () => {
    for (const labels of ['a', null, [1], [''], ['x'.repeat(MAX_LABEL_LENGTH + 1)], Array.from({ length: MAX_LABELS + 1 }, String)]) {
      expect(() => assertEventLabels(labels), JSON.stringify(labels)).toThrow(badFrame);
    }
    for (const key of [null, 1, '', 'k'.repeat(MAX_KEY_LENGTH + 1)]) expect(() => assertEventKey(key), String(key)).toThrow(badFrame);
  });

  it('bounds a filter as it bounds an event: a filter can name any label and key an event may carry', () => {
    const labels = Array.from({ length: MAX_LABELS }, (_, i) => `${i}`.padEnd(MAX_LABEL_LENGTH, 'x'));
    const key = 'k'.repeat(MAX_KEY_LENGTH);
    assertEventLabels(labels);
    assertEventKey(key);
    expect(compileFilter({ l: labels, la: true, k: [key] })!.passes(labels, key)).toBe(true);
  });
});
