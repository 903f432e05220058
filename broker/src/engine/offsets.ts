import { LRUCache } from 'lru-cache';
import { nanoid } from 'nanoid';
import { CachedTop, TopN } from '../observe/top-n.js';
import type { ChannelEvents } from '../types.js';

interface Counter {
  epoch: string;
  offset: number;
}

/**
 * Event ids and per-channel offsets. Counters live in an LRU of bounded size, so publishing to
 * any number of distinct channels holds at most `size` of them. A channel whose counter was
 * forgotten starts again at offset 1 under a new epoch: `(epoch, offset)` never repeats.
 */
export class ChannelCounters {
  private readonly counters: LRUCache<string, Counter>;
  // A random prefix per broker instance makes ids and epochs unique across restarts, and a
  // base-36 sequence behind it keeps each one cheap (no random bytes per event).
  private readonly prefix = nanoid(10);
  /** This instance's epoch of the whole stream: every channel epoch starts with it. */
  readonly streamEpoch = this.prefix;
  private idSeq = 0;
  private epochSeq = 0;

  /** Filled by {@link next}: the counter of the last event. Read right after the call. */
  epoch = '';
  offset = 0;
  /** The busiest channels, ranked at most once a second when there are many. */
  readonly ranking: CachedTop<ChannelEvents>;

  /** @param now a clock in milliseconds, for the ranking's cache */
  constructor(size: number, now?: () => number) {
    this.counters = new LRUCache<string, Counter>({ max: size });
    this.ranking = new CachedTop((limit) => this.rank(limit), () => this.counters.size, now);
  }

  /** Channels with a counter. */
  get size(): number {
    return this.counters.size;
  }

  /**
   * The `limit` channels with the most events in their current epoch, most first (ties by name).
   * With many channels (anyone can publish to 100,000 names), from a ranking at most a second
   * old, shared by every caller: no request walks every channel.
   */
  top(limit: number): ChannelEvents[] {
    return this.ranking.top(limit);
  }

  /**
   * One pass over the held counters keeping the best `limit`: O(channels × limit) at worst, no
   * copy of the cache; it does not touch the LRU order.
   */
  private rank(limit: number): ChannelEvents[] {
    const best = new TopN<ChannelEvents>(limit, ranksBefore);
    this.counters.forEach((counter, channel) => {
      // Most channels rank with none of the kept ones: turned away without an allocation.
      const worst = best.threshold;
      if (worst !== undefined && (counter.offset < worst.events || (counter.offset === worst.events && channel > worst.channel))) return;
      best.offer({ channel, events: counter.offset });
    });
    return best.result();
  }

  /** The counter of `channel` without touching the LRU order, if held. */
  peek(channel: string): Readonly<Counter> | undefined {
    return this.counters.peek(channel);
  }

  /** Advances `channel`'s counter (into `epoch` and `offset`) and returns a new event id. */
  next(channel: string): string {
    let counter = this.counters.get(channel);
    if (counter === undefined) {
      counter = { epoch: `${this.prefix}.${(this.epochSeq++).toString(36)}`, offset: 0 };
      this.counters.set(channel, counter);
    }
    counter.offset++;
    this.epoch = counter.epoch;
    this.offset = counter.offset;
    return `${this.prefix}-${(this.idSeq++).toString(36)}`;
  }
}

function ranksBefore(a: ChannelEvents, b: ChannelEvents): boolean {
  return a.events > b.events || (a.events === b.events && a.channel < b.channel);
}
