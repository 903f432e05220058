// Server-side subscription filters (labels, keys) over raw WebSocket clients and in-process.
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType, type ErrorFrame, type Frame, type SubscriptionFilter } from '@crier/protocol';
import type { BrokerEvent } from '../src/index.js';
import { RawClient, cleanup, startBroker, text, waitFor } from './helpers.js';

afterEach(cleanup);

async function sub(c: RawClient, p: string, f?: SubscriptionFilter): Promise<Frame> {
  return c.request({ t: FrameType.subscribe, r: 0, p, f });
}

describe('filters on subscribe', () => {
  it('labels (any), labels (all), keys and both: only passing events are queued, and counted as delivered', async () => {
    const b = await startBroker();
    const [any, all, keys, both] = await Promise.all([1, 2, 3, 4].map(() => RawClient.connect(b.url)));
    expect((await sub(any!, 'o.*', { l: ['red', 'blue'] })).t).toBe(FrameType.ack);
    expect((await sub(all!, 'o.*', { l: ['red', 'blue'], la: true })).t).toBe(FrameType.ack);
    expect((await sub(keys!, 'o.*', { k: ['k1', 'k2'] })).t).toBe(FrameType.ack);
    expect((await sub(both!, 'o.*', { l: ['red'], k: ['k1'] })).t).toBe(FrameType.ack);
    const sends: [string, string[] | undefined, string | undefined][] = [
      ['1', ['red'], undefined], // any
      ['2', ['red', 'blue', 'green'], 'k1'], // any, all, keys, both
      ['3', ['green'], 'k2'], // keys
      ['4', undefined, undefined], // none
      ['5', ['blue'], 'k3'], // any
      ['6', ['red'], 'k2'], // any, keys
    ];
    for (const [d, labels, key] of sends) b.publish('o.x', text(d), { labels, key });
    b.publish('o.end', text('end'), { labels: ['red', 'blue'], key: 'k1' }); // every one
    await Promise.all([any, all, keys, both].map((c) => c!.waitEvents(1, 'o.end')));
    const got = (c: RawClient): string[] => c.events('o.x').map((e) => new TextDecoder().decode(e.d));
    expect(got(any!)).toEqual(['1', '2', '5', '6']);
    expect(got(all!)).toEqual(['2']);
    expect(got(keys!)).toEqual(['2', '3', '6']);
    expect(got(both!)).toEqual(['2']);
    // Filtered-out events never reach a queue: delivered counts only those that passed.
    expect(b.stats().delivered).toBe(4 + 1 + 3 + 1 + 4);
  });

  it('overlapping subscriptions of one connection deliver a passing event once; a filtered one does not hide an unfiltered one', async () => {
    const b = await startBroker();
    const c = await RawClient.connect(b.url);
    await sub(c, 'a.*', { l: ['x'] });
    await sub(c, 'a.>', { l: ['x', 'y'] });
    await sub(c, 'a.b', { k: ['k'] });
    b.publish('a.b', text('1'), { labels: ['x', 'y'], key: 'k' }); // passes all three
    b.publish('a.b', text('2'), { labels: ['z'] }); // passes none
    b.publish('a.b', text('3'), { labels: ['z'], key: 'k' }); // passes the third only
    await sub(c, 'a.b'); // unfiltered
    b.publish('a.b', text('4'), { labels: ['z'] });
    await c.waitEvents(3);
    expect(c.events().map((e) => e.o)).toEqual([1, 3, 4]);
    expect(b.stats().delivered).toBe(3);
  });

  it('(pattern, canonical filter) is the identity: reordered or repeated labels are the same subscription; maxChannels counts filters', async () => {
    const b = await startBroker({ maxChannels: 3 });
    const c = await RawClient.connect(b.url);
    await sub(c, 'a.b', { l: ['y', 'x', 'x'] });
    await sub(c, 'a.b', { l: ['x', 'y'], la: false });
    await sub(c, 'a.b', { l: [], k: [] }); // no filter at all
    expect(b.stats().subscriptions).toBe(2);
    await sub(c, 'a.b', { l: ['x', 'y'], la: true });
    expect(b.stats().subscriptions).toBe(3);
    const refused = (await sub(c, 'a.b', { k: ['k'] })) as ErrorFrame;
    expect(refused.code).toBe('max_channels');
    // Unsubscribe with a filter removes that one; without, the unfiltered one only.
    await c.request({ t: FrameType.unsubscribe, r: 0, p: 'a.b', f: { l: ['x', 'y'], la: true } });
    expect(b.stats().subscriptions).toBe(2);
    await c.request({ t: FrameType.unsubscribe, r: 0, p: 'a.b' });
    expect(b.stats().subscriptions).toBe(1);
    b.publish('a.b', text('1'));
    b.publish('a.b', text('2'), { labels: ['y'] });
    await c.waitEvents(1);
    expect(c.events().map((e) => e.o)).toEqual([2]);
  });

  it('refuses filters out of bounds with bad_filter, and of the wrong type with bad_frame', async () => {
    const b = await startBroker();
    const c = await RawClient.connect(b.url);
    const code = async (f: unknown): Promise<string> => {
      const answer = await c.request({ t: FrameType.subscribe, r: 0, p: 'a.b', f } as Frame);
      return answer.t === FrameType.error ? answer.code : 'ack';
    };
    expect(await code({ l: Array.from({ length: 17 }, (_, i) => `l${i}`) })).toBe('bad_filter');
    expect(await code({ l: [''] })).toBe('bad_filter');
    expect(await code({ l: ['x'.repeat(65)] })).toBe('bad_filter');
    expect(await code({ k: Array.from({ length: 257 }, (_, i) => `k${i}`) })).toBe('bad_filter');
    expect(await code({ k: ['x'.repeat(257)] })).toBe('bad_filter');
    expect(await code({ l: 'x' })).toBe('bad_frame');
    expect(await code({ la: 1, l: ['x'] })).toBe('bad_frame');
    expect(await code(['x'])).toBe('bad_frame');
    expect(await code({ l: Array.from({ length: 16 }, (_, i) => `l${i}`), k: Array.from({ length: 256 }, (_, i) => `k${i}`) })).toBe('ack');
    expect(b.stats().subscriptions).toBe(1);
  });

  it('in-process subscribe takes the same filter', async () => {
    const b = await startBroker();
    const got: BrokerEvent[] = [];
    b.subscribe('a.*', (e) => got.push(e), { labels: ['x', 'y'], allLabels: true });
    b.subscribe('a.*', (e) => got.push(e), { keys: ['k'] });
    expect(() => b.subscribe('a.*', () => {}, { labels: [''] })).toThrow(expect.objectContaining({ code: 'bad_filter' }));
    b.publish('a.b', text('1'), { labels: ['x'] });
    b.publish('a.b', text('2'), { labels: ['y', 'x'] });
    b.publish('a.b', text('3'), { key: 'k' });
    await waitFor('two events', () => got.length >= 2);
    expect(got.map((e) => e.offset)).toEqual([2, 3]);
    expect(b.stats().delivered).toBe(2);
  });
});
