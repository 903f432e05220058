/**
 * The best `limit` of a stream of items, best first, by `before(a, b)`: whether `a` ranks strictly
 * before `b`. One pass, holding a sorted array of at most `limit` items (insertion into it, so
 * O(items × limit) at worst): no copy or sort of the whole source, for stats that a dashboard
 * polls over every channel. An item that ranks with none of the kept ones is not inserted.
 */
export class TopN<T> {
  private readonly best: T[] = [];

  constructor(
    private readonly limit: number,
    private readonly before: (a: T, b: T) => boolean,
  ) {}

  /** Considers one item. */
  offer(item: T): void {
    const { best, limit, before } = this;
    if (limit <= 0) return;
    if (best.length === limit && !before(item, best[limit - 1]!)) return;
    // Binary search for its place, then one native move: a source visited in reverse rank order
    // (every item better than the last) costs log(limit) comparisons each, not limit.
    let lo = 0;
    let hi = best.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(item, best[mid]!)) hi = mid;
      else lo = mid + 1;
    }
    best.splice(lo, 0, item);
    if (best.length > limit) best.pop();
  }

  /** The last item kept when `limit` are kept (what a new item must rank before), else undefined. */
  get threshold(): T | undefined {
    return this.best.length === this.limit ? this.best[this.limit - 1] : undefined;
  }

  /** The items kept, best first. */
  result(): T[] {
    return this.best;
  }
}

/** How long a ranking over many items is reused: the dashboard polls once a second. */
export const TOP_CACHE_MS = 1000;
/** How many items a cached ranking keeps: the most any endpoint asks for. */
export const TOP_CACHE_DEPTH = 100;
/** Sources up to this size are ranked afresh on every call (a pass costs microseconds). */
export const TOP_EXACT_BELOW = 1024;

/**
 * A ranking of a source that attackers can grow (channels published to, names subscribed),
 * computed at most once per {@link TOP_CACHE_MS} and shared by every request in between, for any
 * `limit` up to {@link TOP_CACHE_DEPTH}: twenty dashboards polling `/stats` walk the source once
 * a second between them, not twenty times. A small source is ranked on every call, so it is
 * always exact; a large one may be up to a second old.
 */
export class CachedTop<T> {
  /** Full passes over the source so far. */
  walks = 0;
  private best: T[] = [];
  private at = -Infinity;

  /**
   * @param rank one pass over the source keeping the best `limit`
   * @param size the source's size now
   * @param now a clock in milliseconds
   */
  constructor(
    private readonly rank: (limit: number) => T[],
    private readonly size: () => number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The best `limit` items, best first (a fresh array; the items may be shared). */
  top(limit: number): T[] {
    if (this.size() < TOP_EXACT_BELOW || limit > TOP_CACHE_DEPTH) {
      this.walks++;
      return this.rank(limit);
    }
    const now = this.now();
    if (now - this.at >= TOP_CACHE_MS) {
      this.walks++;
      this.best = this.rank(TOP_CACHE_DEPTH);
      this.at = now;
    }
    return this.best.slice(0, limit);
  }
}
