// SSE resume with a real EventSource (the `eventsource` package, as browsers behave): every event's
// id is its stream position `<epoch>:<seq>`, a reconnect sends it back as Last-Event-ID, and the
// new stream starts with what the old one missed, then `resumed`, then live events.
import { EventSource, type EventSourceFetchInit, type FetchLike } from 'eventsource';
import { afterEach, describe, expect, it } from 'vitest';
import { ResumeReason } from '@crier/protocol';
import type { Broker, BrokerOptions, Engine, ReplayPage } from '../src/index.js';
import { MemoryEngine } from '../src/engine/memory-engine.js';
import { StreamEvent } from '../src/engine/stream-event.js';
import { systemClock } from '../src/clock.js';
import { mergeReplays } from '../src/core/replay.js';
import { joinHeld, parseSsePosition } from '../src/transport/sse-resume.js';
import type { Ingress } from '../src/transport/ingress.js';
import type { SseHub } from '../src/transport/sse.js';
import { Signal, cleanup, startBroker, text, waitFor } from './helpers.js';

interface Received {
  type: string;
  data: string;
  id: string;
}

/** An EventSource that records every event of the given names, and each request's Last-Event-ID. */
class Listener {
  readonly received: Received[] = [];
  /** The Last-Event-ID header of each connection it made (undefined: none sent). */
  readonly sentIds: (string | undefined)[] = [];
  readonly changed = new Signal();
  readonly source: EventSource;

  constructor(url: string, names: string[], extraHeaders: Record<string, string> = {}) {
    const fetchWithLog: FetchLike = (input: string | URL, init: EventSourceFetchInit) => {
      const headers: Record<string, string> = { ...init.headers, ...extraHeaders };
      this.sentIds.push(headers['Last-Event-ID']);
      return fetch(input, { ...init, headers } as RequestInit);
    };
    this.source = new EventSource(url, { fetch: fetchWithLog });
    for (const name of ['subscribed', 'resumed', ...names]) {
      this.source.addEventListener(name, (e) => {
        const m = e as MessageEvent;
        this.received.push({ type: name, data: String(m.data), id: m.lastEventId });
        this.changed.notify();
      });
    }
    this.source.addEventListener('error', () => this.changed.notify());
    sources.push(this.source);
  }

  of(type: string): Received[] {
    return this.received.filter((r) => r.type === type);
  }

  /** The data of every event that is not `subscribed` or `resumed`, in order. */
  data(): string[] {
    return this.received.filter((r) => r.type !== 'subscribed' && r.type !== 'resumed').map((r) => r.data);
  }

  wait(what: string, check: () => boolean, timeoutMs = 10_000): Promise<true> {
    return waitFor(what, () => check() || undefined, { timeoutMs, wakeOn: [this.changed] });
  }

  waitFor(type: string, n: number): Promise<Received[]> {
    return this.wait(`${n} "${type}" events`, () => this.of(type).length >= n).then(() => this.of(type));
  }

  /** Resolves with the `resumed` payload once the n-th one arrived. */
  async resumed(n = 1): Promise<{ recovered: boolean; reason?: string; replayed: number }> {
    const all = await this.waitFor('resumed', n);
    return JSON.parse(all[n - 1]!.data) as { recovered: boolean; reason?: string; replayed: number };
  }
}

const sources: EventSource[] = [];
afterEach(async () => {
  for (const s of sources.splice(0)) s.close();
  await cleanup();
});

const eventsUrl = (b: Broker, query: string): string => `${b.url.replace(/^ws/, 'http').replace(/\/$/, '')}/events?${query}`;
const hubOf = (b: Broker): SseHub => (b as unknown as { sse: SseHub }).sse;
const ingressOf = (b: Broker): Ingress => (b as unknown as { ingress: Ingress }).ingress;

/** Cuts every SSE stream from the broker's side (as a proxy or a network loss would), and waits until they are freed. */
async function dropStreams(b: Broker): Promise<void> {
  for (const stream of hubOf(b).streams) stream.res.destroy();
  await waitFor('the streams to be freed', () => b.stats().sseStreams === 0);
}

async function publishAll(b: Broker, channel: string, values: string[], options?: { labels?: string[] }): Promise<void> {
  for (const v of values) await b.publish(channel, text(v), options);
}

describe('SSE resume with an EventSource', () => {
  it('after a dropped connection, the automatic reconnect gets every missed event in order, once, then live ones', async () => {
    const b = await startBroker();
    // Two patterns that both match order.created: each event comes once, live and replayed.
    const es = new Listener(eventsUrl(b, 'channels=order.*,order.>&labels=keep'), ['order.created', 'order.paid']);
    const [subscribed] = await es.waitFor('subscribed', 1);
    // Without a position asked, `subscribed` carries where the stream starts.
    expect(parseSsePosition(subscribed!.id)).toEqual({ epoch: ingressOf(b).core.engine.epoch, seq: 0 });
    const keep = { labels: ['keep'] };
    await publishAll(b, 'order.created', ['1', '2'], keep);
    await es.wait('2 live events', () => es.data().length === 2);
    const live = es.of('order.created');
    expect(live.map((r) => parseSsePosition(r.id))).toEqual([{ epoch: ingressOf(b).core.engine.epoch, seq: 1 }, { epoch: ingressOf(b).core.engine.epoch, seq: 2 }]);

    await dropStreams(b);
    // Published while the client is away (it reconnects after the stream's retry: 2 s).
    await publishAll(b, 'order.created', ['3'], keep);
    await publishAll(b, 'order.paid', ['4'], keep);
    await publishAll(b, 'order.paid', ['filtered out']); // no label: the stream's filter refuses it
    await publishAll(b, 'user.created', ['other channel'], keep);
    await publishAll(b, 'order.created', ['5', '6'], keep);

    expect(await es.resumed()).toEqual({ recovered: true, replayed: 4 });
    expect(es.sentIds).toEqual([undefined, live[1]!.id]);
    await publishAll(b, 'order.paid', ['7'], keep);
    await es.wait('the live event after the resume', () => es.data().includes('7'));
    expect(es.data()).toEqual(['1', '2', '3', '4', '5', '6', '7']);
    // Replayed then live, in stream order: the ids only grow, and `resumed` sits between.
    const types = es.received.map((r) => r.type);
    expect(types).toEqual(['subscribed', 'order.created', 'order.created', 'subscribed', 'order.created', 'order.paid', 'order.created', 'order.created', 'resumed', 'order.paid']);
    const seqs = es.received.filter((r) => r.type.startsWith('order.')).map((r) => parseSsePosition(r.id)!.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(ingressOf(b).resumesRecovered).toBe(1);
  }, 20_000);

  it('a reconnect after history was trimmed gets recovered:false history_evicted, what is retained, and a 200 stream that goes on', async () => {
    const b = await startBroker({ historySize: 2 });
    const es = new Listener(eventsUrl(b, 'channels=t.x'), ['t.x']);
    await es.waitFor('subscribed', 1);
    await publishAll(b, 't.x', ['1']);
    await es.waitFor('t.x', 1);
    await dropStreams(b);
    await publishAll(b, 't.x', ['2', '3', '4', '5']);
    expect(await es.resumed()).toEqual({ recovered: false, reason: ResumeReason.historyEvicted, replayed: 2 });
    expect(es.source.readyState).toBe(EventSource.OPEN);
    await publishAll(b, 't.x', ['6']);
    await es.wait('the live event', () => es.data().includes('6'));
    expect(es.data()).toEqual(['1', '4', '5', '6']);
    expect(ingressOf(b).resumesNotRecovered).toBe(1);
  }, 20_000);

  it('a reconnect to a restarted broker (another epoch) gets recovered:false broker_restarted, then live events', async () => {
    const first = await startBroker();
    const port = first.port;
    const es = new Listener(eventsUrl(first, 'channels=a.*'), ['a.b']);
    await es.waitFor('subscribed', 1);
    await publishAll(first, 'a.b', ['before']);
    await es.waitFor('a.b', 1);
    const oldEpoch = ingressOf(first).core.engine.epoch;
    await first.close();
    const second = await startBroker({ port });
    expect(await es.resumed()).toEqual({ recovered: false, reason: ResumeReason.brokerRestarted, replayed: 0 });
    expect(es.sentIds.at(-1)).toBe(`${oldEpoch}:1`);
    // `resumed` carries the new epoch's position: the next drop resumes from there.
    const [resumed] = es.of('resumed');
    expect(parseSsePosition(resumed!.id)).toEqual({ epoch: ingressOf(second).core.engine.epoch, seq: 0 });
    await publishAll(second, 'a.b', ['after']);
    await es.wait('the live event', () => es.data().includes('after'));
    expect(es.data()).toEqual(['before', 'after']);
  }, 20_000);

  it('a new EventSource resumes from the lastEventId parameter; a header wins over it; a malformed one gets bad_position', async () => {
    const b = await startBroker();
    const epoch = ingressOf(b).core.engine.epoch;
    await publishAll(b, 'q.a', ['1', '2', '3']);

    const fromParam = new Listener(eventsUrl(b, `channels=q.a&lastEventId=${encodeURIComponent(`${epoch}:1`)}`), ['q.a']);
    expect(await fromParam.resumed()).toEqual({ recovered: true, replayed: 2 });
    expect(fromParam.data()).toEqual(['2', '3']);
    // The `resumed` id is the position the client now has.
    expect(fromParam.of('resumed')[0]!.id).toBe(`${epoch}:3`);

    const header = new Listener(eventsUrl(b, 'channels=q.a&lastEventId=garbage'), ['q.a'], { 'Last-Event-ID': `${epoch}:2` });
    expect(await header.resumed()).toEqual({ recovered: true, replayed: 1 });
    expect(header.data()).toEqual(['3']);

    const otherEpoch = new Listener(eventsUrl(b, 'channels=q.a&lastEventId=gone:2'), ['q.a']);
    expect(await otherEpoch.resumed()).toEqual({ recovered: false, reason: ResumeReason.brokerRestarted, replayed: 0 });
    // An offset id of the brokers before positions (`id: 7`) is not a position.
    for (const bad of ['7', `${epoch}:`, `${epoch}:-1`, `${epoch}:1.5`, `${epoch} :1`]) {
      const es = new Listener(eventsUrl(b, `channels=q.a&lastEventId=${encodeURIComponent(bad)}`), ['q.a']);
      expect(await es.resumed()).toEqual({ recovered: false, reason: ResumeReason.badPosition, replayed: 0 });
      expect(es.data()).toEqual([]);
    }
    await publishAll(b, 'q.a', ['4']);
    await otherEpoch.wait('the live event', () => otherEpoch.data().includes('4'));
  }, 20_000);

  it('replays at most bufferSize events: past it, the oldest missed in order, recovered:false replay_limit, then live', async () => {
    const b = await startBroker({ bufferSize: 3 });
    const epoch = ingressOf(b).core.engine.epoch;
    await publishAll(b, 'r.a', ['1', '2', '3', '4', '5']);
    await publishAll(b, 'r.b', ['6', '7']);
    const es = new Listener(eventsUrl(b, `channels=r.a,r.b&lastEventId=${epoch}:0`), ['r.a', 'r.b']);
    expect(await es.resumed()).toEqual({ recovered: false, reason: ResumeReason.replayLimit, replayed: 3 });
    expect(es.data()).toEqual(['1', '2', '3']);
    await publishAll(b, 'r.b', ['8']);
    await es.wait('the live event', () => es.data().includes('8'));
    expect(es.data()).toEqual(['1', '2', '3', '8']);
  });
});

/**
 * A memory engine whose replays answer later, when the test says: `snapshot` reads at the call
 * (what a store read before the publishes would see), else at the release.
 */
function laterEngine(options: BrokerOptions, snapshot: (call: number) => boolean): { engine: Engine; release: () => void; pending: () => number } {
  const inner = new MemoryEngine({
    channelCacheSize: 1000, historySize: 100, historyBytes: 1 << 20, historyTtl: 300_000, historyTotalBytes: 64 << 20,
    idempotencyWindow: 0, idempotencyKeys: 0, ...options,
  } as ConstructorParameters<typeof MemoryEngine>[0], systemClock);
  const gates: (() => void)[] = [];
  let calls = 0;
  const engine = new Proxy(inner, {
    get(target, prop) {
      if (prop === 'replay') {
        return (...args: Parameters<MemoryEngine['replay']>): Promise<ReplayPage> => {
          const early = snapshot(calls++) ? target.replay(...args) : undefined;
          return new Promise((resolve) => gates.push(() => resolve(early ?? target.replay(...args))));
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  }) as Engine;
  return { engine, release: () => gates.splice(0).forEach((open) => open()), pending: () => gates.length };
}

describe('SSE resume on an engine that answers later', () => {
  it('holds live events during the replay and writes each once, in stream order, with none lost', async () => {
    // The first pattern's replay is read before the publishes below, the second's after them.
    const later = laterEngine({}, (call) => call === 0);
    const b = await startBroker({ engine: later.engine });
    const epoch = later.engine.epoch;
    await publishAll(b, 'p.a', ['1']);
    await publishAll(b, 'p.b', ['2']);
    const es = new Listener(eventsUrl(b, `channels=p.a,p.b&lastEventId=${epoch}:0`), ['p.a', 'p.b']);
    await waitFor('both replays to be asked', () => later.pending() === 2);
    // Published while the replays are pending: held by the stream.
    await publishAll(b, 'p.a', ['3']); // not in p.a's snapshot, older than p.b's last: joins the replay
    await publishAll(b, 'p.b', ['4']); // in p.b's replay and held: written once
    later.release();
    expect(await es.resumed()).toEqual({ recovered: true, replayed: 4 });
    await publishAll(b, 'p.a', ['5']);
    await es.wait('the live event', () => es.data().includes('5'));
    expect(es.data()).toEqual(['1', '2', '3', '4', '5']);
    const seqs = es.received.filter((r) => r.type.startsWith('p.')).map((r) => parseSsePosition(r.id)!.seq);
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('merging replays', () => {
  const ev = (seq: number, channel = 'c.a'): StreamEvent => new StreamEvent(channel, text(String(seq)), `id${seq}`, seq, 'e', seq, 0, undefined, undefined);
  const page = (seqs: number[], more = false, complete = true): ReplayPage => ({ events: seqs.map((s) => ev(s)), more, complete });
  const size = (): number => 10;
  const seqs = (events: StreamEvent[]): number[] => events.map((e) => e.seq);

  it('merges in stream order, each event once', () => {
    const { events, reason } = mergeReplays([page([1, 3, 5]), page([2, 3, 6])], { events: 100, bytes: 1000 }, size);
    expect([seqs(events), reason]).toEqual([[1, 2, 3, 5, 6], undefined]);
  });

  it('stops at the last event of a page cut by its limit, so that nothing after it is missing', () => {
    const { events, reason } = mergeReplays([page([1, 4], true), page([2, 5, 6])], { events: 2, bytes: 1000 }, size);
    expect([seqs(events), reason]).toEqual([[1, 2], ResumeReason.replayLimit]);
    const wide = mergeReplays([page([1, 4], true), page([2, 5, 6])], { events: 10, bytes: 1000 }, size);
    expect(seqs(wide.events)).toEqual([1, 2, 4]);
  });

  it('keeps within the byte bound (one event at least), and says history_evicted before replay_limit', () => {
    expect(seqs(mergeReplays([page([1, 2, 3])], { events: 10, bytes: 25 }, size).events)).toEqual([1, 2]);
    expect(seqs(mergeReplays([page([1, 2])], { events: 10, bytes: 5 }, size).events)).toEqual([1]);
    expect(mergeReplays([page([1, 2], true, false)], { events: 2, bytes: 1000 }, size).reason).toBe(ResumeReason.historyEvicted);
  });

  it('joins held live events: those the replay carried once, older ones in order, newer ones after', () => {
    const { replay, after, last } = joinHeld([ev(1), ev(3), ev(5)], [ev(2), ev(5), ev(6), ev(7)]);
    expect([seqs(replay), seqs(after), last]).toEqual([[1, 2, 3, 5], [6, 7], 5]);
    expect(joinHeld([], [ev(4)])).toMatchObject({ replay: [], last: 0 });
  });
});
