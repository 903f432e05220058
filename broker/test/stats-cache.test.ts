// Issue 9, finding 4: after publishes to 100,000 distinct channels, each GET /stats walked every
// channel counter (25-40 ms; with ?channels=100, 131-228 ms; 20 at once, ~2.5 s). The rankings
// are now computed at most once a second and shared; these tests count walks with a fake clock.
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelIndex } from '../src/core/channel-index.js';
import { ChannelStore } from '../src/engine/channel-store.js';
import { TOP_CACHE_MS, TOP_EXACT_BELOW } from '../src/observe/top-n.js';
import { cleanup, startBroker } from './helpers.js';

afterEach(cleanup);

/** A store whose `next(channel)` sequences one event of the channel, as a publish does. */
function countersWith(channels: number, clock: { now: number }): ChannelStore & { next(channel: string): void } {
  const limits = { channelCacheSize: 200_000, historySize: 0, historyBytes: 0, historyTtl: 0, historyTotalBytes: 0 };
  const store = Object.assign(new ChannelStore(limits, () => 0, () => clock.now), {
    next(channel: string): void {
      store.sequence(channel);
    },
  });
  for (let i = 0; i < channels; i++) store.next(`ch.${i}`);
  return store;
}

describe('the busiest channels of /stats: one walk per second, shared', () => {
  it('answers repeated calls within the window from one walk, whatever the limit', () => {
    const clock = { now: 0 };
    const counters = countersWith(10_000, clock);
    for (let i = 0; i < 5; i++) counters.next('ch.hot');
    for (let i = 0; i < 20; i++) counters.top(100);
    expect(counters.top(10)[0]).toEqual({ channel: 'ch.hot', events: 5 });
    expect(counters.top(0)).toEqual([]);
    expect(counters.ranking.walks).toBe(1);
    clock.now = TOP_CACHE_MS - 1;
    counters.next('ch.hot');
    expect(counters.top(100)[0]).toEqual({ channel: 'ch.hot', events: 5 }); // up to a second old
    expect(counters.ranking.walks).toBe(1);
    clock.now = TOP_CACHE_MS;
    expect(counters.top(100)[0]).toEqual({ channel: 'ch.hot', events: 6 });
    expect(counters.top(100)).toHaveLength(100);
    expect(counters.ranking.walks).toBe(2);
  });

  it('keeps a small broker exact: below the threshold every call ranks afresh', () => {
    const clock = { now: 0 };
    const counters = countersWith(TOP_EXACT_BELOW - 2, clock);
    expect(counters.top(3)).toHaveLength(3);
    counters.next('ch.5');
    expect(counters.top(1)).toEqual([{ channel: 'ch.5', events: 2 }]);
    expect(counters.ranking.walks).toBe(2);
  });

  it('caches the most subscribed names of /stats/top the same way', () => {
    const clock = { now: 0 };
    const index = new ChannelIndex<object>(() => clock.now);
    const subs = Array.from({ length: 3 }, () => ({}));
    for (let i = 0; i < 5_000; i++) index.add(`name.${i}`, subs[0]!);
    for (const s of subs) index.add('user.*', s);
    for (let i = 0; i < 20; i++) expect(index.top(20)[0]).toEqual({ name: 'user.*', pattern: true, subscribers: 3 });
    expect(index.ranking.walks).toBe(1);
    clock.now = 5 * TOP_CACHE_MS;
    index.top(20);
    expect(index.ranking.walks).toBe(2);
  });
});

describe('GET /stats with many channels', () => {
  it('answers with the busiest channels, alone and 20 at once', async () => {
    const b = await startBroker();
    const one = new Uint8Array(1);
    for (let i = 0; i < 5_000; i++) b.publish(`many.${i}`, one);
    for (let i = 0; i < 3; i++) b.publish('many.hot', one);
    const url = `${b.url.replace(/^ws/, 'http').replace(/\/$/, '')}/stats?channels=100`;
    const answers = await Promise.all(Array.from({ length: 20 }, async () => (await fetch(url)).json() as Promise<{ eventsByChannel: unknown[]; channelCounters: number }>));
    for (const a of answers) {
      expect(a.channelCounters).toBe(5_001);
      expect(a.eventsByChannel).toHaveLength(100);
      expect(a.eventsByChannel[0]).toEqual({ channel: 'many.hot', events: 3 });
    }
  });
});
