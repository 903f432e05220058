/** Samples kept for the percentile. */
export const LATENCY_SAMPLES = 4096;

/** Upper bounds of the latency histogram's buckets, in milliseconds (`+Inf` is implied). */
export const LATENCY_BUCKETS_MS: readonly number[] = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500];

/** The latency histogram since start: cumulative counts per bucket of {@link LATENCY_BUCKETS_MS}. */
export interface LatencyHistogram {
  /** `counts[i]`: samples of at most `LATENCY_BUCKETS_MS[i]` ms. */
  counts: readonly number[];
  /** Every sample. */
  count: number;
  /** Sum of every sample, in milliseconds. */
  sumMs: number;
}

/**
 * Publish-to-send latency, one sample per published event. Publishes of a tick are stamped into a
 * fixed array; the flush that hands them to the sockets turns them into samples. No allocation per
 * event, and a burst of a million publishes in one tick costs one array of {@link LATENCY_SAMPLES}.
 */
export class LatencyRecorder {
  // Publishes waiting for a flush, and those of the flush under way (double-buffered, so a
  // publish made while flushing is not counted as already sent).
  private waiting = new Batch();
  private flushing = new Batch();
  private readonly ring = new Float64Array(LATENCY_SAMPLES);
  private ringCount = 0;
  private ringNext = 0;
  private totalMs = 0;
  private totalCount = 0;
  private readonly buckets = new Float64Array(LATENCY_BUCKETS_MS.length);

  /** Stamps one publish at `now` (ms, monotonic). */
  markPublished(now: number): void {
    this.waiting.add(now);
  }

  /** Called as a flush starts: the publishes so far are the ones it sends. */
  beginFlush(): void {
    const b = this.flushing;
    this.flushing = this.waiting;
    this.waiting = b;
  }

  /** Called once the flush handed everything to the sockets, at `now`. */
  endFlush(now: number): void {
    const b = this.flushing;
    if (b.count === 0) return;
    // Sum of (now - t) over all stamps = count * (now - base) - sum of (t - base).
    this.totalMs += b.count * (now - b.base) - b.sumOffsets;
    this.totalCount += b.count;
    const kept = Math.min(b.count, LATENCY_SAMPLES);
    for (let i = 0; i < kept; i++) {
      this.ring[this.ringNext] = now - b.base - b.offsets[i]!;
      this.ringNext = (this.ringNext + 1) % LATENCY_SAMPLES;
    }
    this.ringCount = Math.min(this.ringCount + kept, LATENCY_SAMPLES);
    this.fillBuckets(b, now - b.base, kept);
    b.reset();
  }

  /**
   * Adds a flush's samples to the histogram without a step per event: stamps are in time order,
   * so a sample's latency falls as its index grows, and a binary search per bucket bound finds
   * how many are within it (O(buckets × log n) per flush). Stamps past the array are later than
   * the last kept one, so they count with its latency (an upper bound).
   */
  private fillBuckets(b: Batch, span: number, kept: number): void {
    const offsets = b.offsets;
    const extra = b.count - kept;
    for (let k = 0; k < LATENCY_BUCKETS_MS.length; k++) {
      // Samples within the bound are those stamped at or after span - bound.
      const from = span - LATENCY_BUCKETS_MS[k]!;
      let lo = 0;
      let hi = kept;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (offsets[mid]! < from) lo = mid + 1;
        else hi = mid;
      }
      this.buckets[k] = this.buckets[k]! + kept - lo + (lo < kept ? extra : 0);
    }
  }

  /** The histogram since start (cumulative bucket counts, as Prometheus wants them). */
  histogram(): LatencyHistogram {
    return { counts: Array.from(this.buckets), count: this.totalCount, sumMs: Math.max(0, this.totalMs) };
  }

  /** Mean since start and p99 of the last samples, in ms (0 when there is none). */
  summary(): { avgMs: number; p99Ms: number } {
    if (this.totalCount === 0) return { avgMs: 0, p99Ms: 0 };
    const sorted = this.ring.slice(0, this.ringCount).sort();
    const p99 = sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)] ?? 0;
    return { avgMs: round3(this.totalMs / this.totalCount), p99Ms: round3(p99) };
  }
}

/** Stamps of one flush, relative to the first one so sums stay precise in a double. */
class Batch {
  readonly offsets = new Float64Array(LATENCY_SAMPLES);
  base = 0;
  count = 0;
  sumOffsets = 0;

  add(now: number): void {
    if (this.count === 0) this.base = now;
    const offset = now - this.base;
    // Past the array, a stamp still counts in the mean; the percentile keeps the first ones.
    if (this.count < LATENCY_SAMPLES) this.offsets[this.count] = offset;
    this.sumOffsets += offset;
    this.count++;
  }

  reset(): void {
    this.count = 0;
    this.sumOffsets = 0;
  }
}

function round3(n: number): number {
  return Math.round(Math.max(0, n) * 1000) / 1000;
}
