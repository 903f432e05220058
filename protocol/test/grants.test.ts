import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expandGrant, grantTemplateProblem, matchPattern, patternCovers } from '../src/index.js';

describe('patternCovers', () => {
  it.each([
    ['user.42.>', 'user.42.>', true],
    ['user.42.>', 'user.42.*', true],
    ['user.42.>', 'user.42.profile.updated', true],
    ['user.42.>', 'user.*', false],
    ['user.42.>', 'user.>', false],
    ['user.42.>', 'user.42', false], // `>` needs one more segment
    ['user.*', 'user.created', true],
    ['user.*', 'user.*', true],
    ['user.*', 'user.>', false],
    ['user.*', 'user.a.b', false],
    ['>', '>', true],
    ['>', 'a.*.>', true],
    ['*.created', 'user.created', true],
    ['*.created', '*.*', false],
    ['a.b', 'a.b', true],
    ['a.b', 'a.*', false],
  ])('grant %s covers %s: %s', (grant, pattern, expected) => {
    expect(patternCovers(grant, pattern)).toBe(expected);
  });

  // Over a small alphabet, "covers" is exactly "every channel the pattern matches, the grant
  // matches": checked against matchPattern on every channel of up to 5 segments the pattern can
  // produce (a `>` stands for 1-3 segments, a `*` for each name).
  const names = ['a', 'b', 'c'];
  const segment = fc.constantFrom('a', 'b', '*');
  const pattern = fc
    .tuple(fc.array(segment, { minLength: 0, maxLength: 3 }), fc.boolean())
    .filter(([segs, tail]) => segs.length > 0 || tail)
    .map(([segs, tail]) => [...segs, ...(tail ? ['>'] : [])].join('.'));

  function channelsOf(p: string): string[] {
    let out: string[][] = [[]];
    for (const seg of p.split('.')) {
      if (seg === '>') {
        const tails = [[...names.map((n) => [n])], names.flatMap((a) => names.map((b) => [a, b])), names.flatMap((a) => names.flatMap((b) => names.map((c) => [a, b, c])))].flat();
        out = out.flatMap((prefix) => tails.map((t) => [...prefix, ...t]));
      } else if (seg === '*') out = out.flatMap((prefix) => names.map((n) => [...prefix, n]));
      else out = out.map((prefix) => [...prefix, seg]);
    }
    return out.map((s) => s.join('.'));
  }

  it('agrees with the matcher: covers exactly when every channel of the pattern matches the grant', () => {
    fc.assert(
      fc.property(pattern, pattern, (grant, p) => {
        const everyMatches = channelsOf(p).every((c) => matchPattern(grant, c));
        expect(patternCovers(grant, p)).toBe(everyMatches);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('grant templates', () => {
  it('fill {sub} with the token subject', () => {
    expect(expandGrant('user.{sub}.>', { sub: '42' })).toBe('user.42.>');
    expect(expandGrant('chat.{sub}', { sub: 'alice_1' })).toBe('chat.alice_1');
    expect(expandGrant('public.>', {})).toBe('public.>');
  });

  it('drop the grant, never widen it, when the subject is not one plain segment', () => {
    for (const sub of ['*', '>', 'a.b', '', 'a b', 'é', undefined]) {
      expect(expandGrant('user.{sub}.>', sub === undefined ? {} : { sub })).toBeUndefined();
    }
  });

  it('are checked when configured: unknown placeholders and bad patterns are named', () => {
    expect(grantTemplateProblem('user.{sub}.>')).toBeUndefined();
    expect(grantTemplateProblem('user.{tenant}.>')).toBe('unknown placeholder {tenant} (known: {sub})');
    expect(grantTemplateProblem('user..>')).toBeDefined();
  });
});
