/**
 * A token bucket: `burst` tokens at most, refilled at `rate` tokens per second. Time is an input
 * (milliseconds from any monotonic clock), so tests decide it. O(1), allocation-free: a check on
 * the publish path costs a subtraction, a multiplication and a comparison.
 */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.at = now;
  }

  /** Takes one token at time `now` (ms); false when the bucket is empty (nothing taken). */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Whether the bucket is back to full at `now`: it can be forgotten and made anew. */
  full(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.burst;
  }

  /** Whole seconds until a token is there again (at least 1): the `Retry-After` of a refusal. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil((1 - this.tokens) / this.rate));
  }

  private refill(now: number): void {
    const elapsed = now - this.at;
    if (elapsed <= 0) return;
    this.at = now;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.rate) / 1000);
  }
}

/**
 * One {@link TokenBucket} per client address, at most `maxAddresses` of them: past that, the
 * buckets back to full are forgotten (a full bucket is the same as none), then the oldest. So a
 * flood of distinct addresses (IPv6 makes them cheap) holds bounded memory; the price is that an
 * address forgotten while not full starts again with a full bucket.
 */
export class AddressBuckets {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly maxAddresses = 65_536,
  ) {}

  /** Takes a token for `address` at `now`; the refusing bucket when there is none (for Retry-After). */
  take(address: string, now: number): TokenBucket | undefined {
    let bucket = this.buckets.get(address);
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxAddresses) this.prune(now);
      bucket = new TokenBucket(this.rate, this.burst, now);
      this.buckets.set(address, bucket);
    }
    return bucket.take(now) ? undefined : bucket;
  }

  get size(): number {
    return this.buckets.size;
  }

  private prune(now: number): void {
    for (const [address, bucket] of this.buckets) if (bucket.full(now)) this.buckets.delete(address);
    // Still full of busy addresses: forget the oldest quarter at once, so this pass is rare.
    let excess = this.buckets.size - Math.floor(this.maxAddresses * 0.75);
    for (const address of this.buckets.keys()) {
      if (excess-- <= 0) break;
      this.buckets.delete(address);
    }
  }
}
