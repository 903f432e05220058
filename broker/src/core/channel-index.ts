import { PatternTrie, isWildcard } from '@crier/protocol';
import { CachedTop, TopN } from '../observe/top-n.js';
import type { ChannelCount } from '../types.js';

/**
 * Who holds which subscription. Exact names sit in a Map (one lookup per publish); wildcard
 * patterns in the protocol's segment trie, walked only when there is at least one.
 */
export class ChannelIndex<S> {
  private readonly exact = new Map<string, Set<S>>();
  private readonly trie = new PatternTrie<S>();
  // Subscribers per wildcard pattern: the trie counts pairs, the stats want distinct patterns.
  private readonly wildcardRefs = new Map<string, number>();
  private pairs = 0;
  /** The most subscribed names and patterns, ranked at most once a second when there are many. */
  readonly ranking: CachedTop<ChannelCount>;

  /** @param now a clock in milliseconds, for the ranking's cache */
  constructor(now?: () => number) {
    this.ranking = new CachedTop((limit) => this.rank(limit), () => this.channels, now);
  }

  /** (subscriber, pattern) pairs held. */
  get subscriptions(): number {
    return this.pairs;
  }

  /** Distinct names and patterns held. */
  get channels(): number {
    return this.exact.size + this.wildcardRefs.size;
  }

  /** Subscribers holding `pattern` (a name or a wildcard pattern). */
  holders(pattern: string): number {
    return isWildcard(pattern) ? (this.wildcardRefs.get(pattern) ?? 0) : (this.exact.get(pattern)?.size ?? 0);
  }

  /** Adds `sub` under the valid `pattern`. Returns false when it was already there. */
  add(pattern: string, sub: S): boolean {
    if (isWildcard(pattern)) {
      if (!this.trie.add(pattern, sub)) return false;
      this.wildcardRefs.set(pattern, (this.wildcardRefs.get(pattern) ?? 0) + 1);
    } else {
      let set = this.exact.get(pattern);
      if (!set) this.exact.set(pattern, (set = new Set()));
      if (set.has(sub)) return false;
      set.add(sub);
    }
    this.pairs++;
    return true;
  }

  /** Removes `sub` from `pattern`. Returns false when it was not there. */
  remove(pattern: string, sub: S): boolean {
    if (isWildcard(pattern)) {
      if (!this.trie.remove(pattern, sub)) return false;
      const refs = (this.wildcardRefs.get(pattern) ?? 1) - 1;
      if (refs === 0) this.wildcardRefs.delete(pattern);
      else this.wildcardRefs.set(pattern, refs);
    } else {
      const set = this.exact.get(pattern);
      if (!set?.delete(sub)) return false;
      if (set.size === 0) this.exact.delete(pattern);
    }
    this.pairs--;
    return true;
  }

  /**
   * Calls `visit` for each subscriber of every name or pattern matching `channel`. A subscriber
   * holding several matching patterns is visited once per pattern: the caller dedupes.
   */
  match(channel: string, visit: (sub: S) => void): void {
    const set = this.exact.get(channel);
    if (set) for (const sub of set) visit(sub);
    // The split is the one allocation of a match; skip it when no pattern could need it.
    if (this.trie.size > 0) this.trie.match(channel.split('.'), visit);
  }

  /**
   * The `limit` names and patterns with the most subscribers, most first (ties by name); with
   * many of them, from a ranking at most a second old shared by every caller.
   */
  top(limit: number): ChannelCount[] {
    return this.ranking.top(limit);
  }

  /**
   * One pass over the distinct names and patterns keeping the best `limit`: no copy or sort of
   * the whole index.
   */
  private rank(limit: number): ChannelCount[] {
    const best = new TopN<ChannelCount>(limit, ranksBefore);
    for (const [name, set] of this.exact) best.offer({ name, pattern: false, subscribers: set.size });
    for (const [name, refs] of this.wildcardRefs) best.offer({ name, pattern: true, subscribers: refs });
    return best.result();
  }
}

function ranksBefore(a: ChannelCount, b: ChannelCount): boolean {
  return a.subscribers > b.subscribers || (a.subscribers === b.subscribers && a.name < b.name);
}
