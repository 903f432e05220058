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
    let at = best.length === limit ? limit - 1 : best.length;
    while (at > 0 && before(item, best[at - 1]!)) {
      best[at] = best[at - 1]!;
      at--;
    }
    best[at] = item;
  }

  /** The items kept, best first. */
  result(): T[] {
    return this.best;
  }
}
