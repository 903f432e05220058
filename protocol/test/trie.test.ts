import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PatternTrie, matchPattern } from '../src/index.js';

function matches(trie: PatternTrie<string>, channel: string): string[] {
  const out: string[] = [];
  trie.match(channel.split('.'), (v) => out.push(v));
  return out.sort();
}

describe('PatternTrie', () => {
  it('finds every pattern that matches a channel', () => {
    const trie = new PatternTrie<string>();
    for (const p of ['user.*', 'user.>', 'user.created', '*.created', '>', 'order.*', 'user.*.x']) trie.add(p, p);
    expect(matches(trie, 'user.created')).toEqual(['*.created', '>', 'user.*', 'user.>', 'user.created']);
    expect(matches(trie, 'user.profile.updated')).toEqual(['>', 'user.>']);
    expect(matches(trie, 'user.a.x')).toEqual(['>', 'user.*.x', 'user.>']);
    expect(matches(trie, 'user')).toEqual(['>']);
  });

  it('adds once, removes once, and prunes back to empty', () => {
    const trie = new PatternTrie<number>();
    expect(trie.add('a.*.c', 1)).toBe(true);
    expect(trie.add('a.*.c', 1)).toBe(false);
    expect(trie.add('a.*.c', 2)).toBe(true);
    expect(trie.add('a.>', 1)).toBe(true);
    expect(trie.size).toBe(3);
    expect(trie.remove('a.*.c', 3)).toBe(false);
    expect(trie.remove('a.b.c', 1)).toBe(false);
    expect(trie.remove('a.*.c', 1)).toBe(true);
    expect(trie.remove('a.*.c', 2)).toBe(true);
    expect(trie.remove('a.>', 1)).toBe(true);
    expect(trie.size).toBe(0);
    // Nothing is left behind: the root has no children.
    expect(JSON.stringify(trie)).not.toContain('"a"');
  });

  it('agrees with matchPattern over random sets', () => {
    const seg = fc.constantFrom('a', 'b', 'c');
    const pat = fc
      .tuple(fc.array(fc.oneof(seg, fc.constant('*')), { minLength: 1, maxLength: 4 }), fc.boolean())
      .map(([s, gt]) => (gt ? [...s, '>'] : s).join('.'));
    const chan = fc.array(seg, { minLength: 1, maxLength: 5 }).map((s) => s.join('.'));
    fc.assert(
      fc.property(fc.uniqueArray(pat, { maxLength: 20 }), chan, (patterns, channel) => {
        const trie = new PatternTrie<string>();
        for (const p of patterns) trie.add(p, p);
        const expected = patterns.filter((p) => matchPattern(p, channel)).sort();
        return JSON.stringify(matches(trie, channel)) === JSON.stringify(expected);
      }),
      { numRuns: 1000 },
    );
  });
});
