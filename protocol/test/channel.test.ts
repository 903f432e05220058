import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  CrierError,
  MAX_CHANNEL_LENGTH,
  assertChannel,
  assertPattern,
  channelProblem,
  isWildcard,
  matchPattern,
} from '../src/index.js';

describe('channel names', () => {
  it.each([
    'user',
    'user.created',
    'cluster.node.joined',
    'a-b_c.D9',
    'x'.repeat(MAX_CHANNEL_LENGTH),
  ])('accepts %j', (name) => {
    expect(channelProblem(name, false)).toBeUndefined();
    expect(() => assertChannel(name)).not.toThrow();
  });

  it.each([
    ['', 'empty'],
    ['.user', 'empty segment'],
    ['user.', 'empty segment'],
    ['user..created', 'empty segment'],
    ['user.*', 'is a pattern'],
    ['user.>', 'is a pattern'],
    ['*', 'is a pattern'],
    ['user created', 'bad character at 4'],
    ['user/created', 'bad character at 4'],
    ['usér.created', 'bad character at 2'],
    ['x'.repeat(MAX_CHANNEL_LENGTH + 1), 'over 255 characters'],
    [Array(17).fill('a').join('.'), 'over 16 segments'],
  ])('rejects %j (%s)', (name, why) => {
    expect(channelProblem(name, false)).toContain(why);
    expect(() => assertChannel(name)).toThrowError(expect.objectContaining({ code: 'bad_channel', message: `channel ${JSON.stringify(name)}: ${channelProblem(name, false)}` }));
  });

  it('rejects non-strings with bad_channel', () => {
    for (const v of [undefined, null, 42, {}, ['a']]) {
      expect(() => assertChannel(v)).toThrowError(CrierError);
    }
  });
});

describe('patterns', () => {
  it.each(['user.*', 'user.>', '*', '>', '*.created', 'a.*.c', 'a.*.*.>', 'user.created'])('accepts %j', (p) => {
    expect(channelProblem(p, true)).toBeUndefined();
    expect(() => assertPattern(p)).not.toThrow();
  });

  it.each([
    ['user.>.x', "'>' not last"],
    ['>.x', "'>' not last"],
    ['user.cr*', "'*' not a whole segment"],
    ['user.>x', "'>' not a whole segment"],
    ['user..*', 'empty segment'],
    ['', 'empty'],
  ])('rejects %j (%s)', (p, why) => {
    expect(channelProblem(p, true)).toContain(why);
    expect(() => assertPattern(p)).toThrowError(expect.objectContaining({ code: 'bad_pattern', message: `pattern ${JSON.stringify(p)}: ${channelProblem(p, true)}` }));
  });

  it.each([
    ['user.*', true],
    ['user.>', true],
    ['*', true],
    ['>', true],
    ['*.x', true],
    ['a.*.b', true],
    ['user.created', false],
    ['user', false],
  ])('isWildcard(%j) is %s', (p, expected) => {
    expect(isWildcard(p)).toBe(expected);
  });
});

describe('matchPattern', () => {
  it.each([
    ['user.*', 'user.created', true],
    ['user.*', 'user.profile.updated', false],
    ['user.*', 'user', false],
    ['user.>', 'user.created', true],
    ['user.>', 'user.profile.updated', true],
    ['user.>', 'user', false],
    ['*', 'user', true],
    ['*', 'user.created', false],
    ['>', 'user', true],
    ['>', 'a.b.c', true],
    ['*.created', 'user.created', true],
    ['*.created', 'order.created', true],
    ['*.created', 'user.deleted', false],
    ['a.*.c', 'a.b.c', true],
    ['a.*.c', 'a.b.d', false],
    ['a.*.c', 'a.c', false],
    ['a.*.>', 'a.b.c.d', true],
    ['a.*.>', 'a.b', false],
    ['user.created', 'user.created', true],
    ['user.created', 'user.create', false],
    ['user.create', 'user.created', false],
    ['user.created', 'user.created.x', false],
    ['user', 'users', false],
    ['users', 'user', false],
  ])('%j ~ %j → %s', (pattern, channel, expected) => {
    expect(matchPattern(pattern, channel)).toBe(expected);
  });

  // The matcher agrees with a plain segment-by-segment reference on random names and patterns.
  it('agrees with a reference matcher', () => {
    const seg = fc.constantFrom('a', 'b', 'ab', 'user', 'x1');
    const channel = fc.array(seg, { minLength: 1, maxLength: 5 }).map((s) => s.join('.'));
    const pattern = fc
      .tuple(fc.array(fc.oneof(seg, fc.constant('*')), { minLength: 0, maxLength: 5 }), fc.boolean())
      .filter(([segs, gt]) => segs.length > 0 || gt)
      .map(([segs, gt]) => (gt ? [...segs, '>'] : segs).join('.'));
    const reference = (p: string, c: string): boolean => {
      const ps = p.split('.');
      const cs = c.split('.');
      for (let i = 0; i < ps.length; i++) {
        if (ps[i] === '>') return cs.length > i;
        if (i >= cs.length) return false;
        if (ps[i] !== '*' && ps[i] !== cs[i]) return false;
      }
      return ps.length === cs.length;
    };
    fc.assert(fc.property(pattern, channel, (p, c) => matchPattern(p, c) === reference(p, c)), { numRuns: 2000 });
  });
});
