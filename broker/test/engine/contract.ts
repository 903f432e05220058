// The Engine contract: what every engine (memory, Redis…) promises the broker above it, written
// against the interface only and run once per engine. Every method's answer is awaited, so an
// engine that answers at once and one that answers with promises are held to the same promises.
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType, decodeFrame, encodeFrame } from '@crier/protocol';
import type { Engine, GroupFilterCount, ParkedSession, PresenceNews, PublishRequest, ReplyMessage, RequestMessage } from '../../src/engine/engine.js';
import { LINGER_MS } from '../../src/engine/redis/presence-notices.js';
import type { StreamEvent } from '../../src/engine/stream-event.js';
import { ManualClock } from '../manual-clock.js';

export { ManualClock };

/** The bounds every engine takes (the broker's options of the same names). */
export interface ContractLimits {
  channelCacheSize: number;
  historySize: number;
  historyBytes: number;
  historyTtl: number;
  historyTotalBytes: number;
  idempotencyWindow: number;
}

export interface EngineFactoryOptions {
  /** The engine's only time: ages, windows and expiries move when the test advances it. */
  clock: ManualClock;
  limits: ContractLimits;
  /**
   * Set when the test makes another instance over the store of one it made (a restart, another
   * node): a factory with a shared store must keep that store, not start from an empty one.
   */
  sameStoreAs?: Engine;
}

/** Makes a new engine, not started (the suite starts it with its sink), over an empty store. */
export type EngineFactory = (options: EngineFactoryOptions) => Promise<Engine> | Engine;

export interface EngineTraits {
  /** A new instance over the same store keeps its history and epoch (a Redis engine). */
  historySurvivesNewInstance?: boolean;
  /**
   * Instances over one store are nodes of one broker (a Redis engine): an event published on one
   * reaches the sink of every other whose interest matches it, and sessions and publish ids are shared.
   */
  sharedBetweenInstances?: boolean;
  /**
   * Titles of the cases this engine is known to fail (a bug reported, not fixed yet): they run as
   * `it.fails`, so the suite says when the fix lands.
   */
  knownFailures?: readonly string[];
}

/** Contract cases an engine may list in {@link EngineTraits.knownFailures}. */
export const Case = {
  sessionTtlPerPark: 'forgets each session after its own ttl, whatever the ttl of those parked before it',
} as const;

const DEFAULT_LIMITS: ContractLimits = {
  channelCacheSize: 1000,
  historySize: 100,
  historyBytes: 1 << 20,
  historyTtl: 300_000,
  historyTotalBytes: 64 << 20,
  idempotencyWindow: 120_000,
};

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const body = (e: StreamEvent): string => new TextDecoder().decode(e.data);
const bodies = (events: StreamEvent[]): string[] => events.map(body);
const seqs = (events: StreamEvent[]): number[] => events.map((e) => e.seq);
/** About 1.1 KB as a frame, with its channel and fields. */
const KB = 'x'.repeat(1000);

/** `n` members of a queue group, with no filter (none left when 0), as the broker tells an engine. */
const members = (n: number, slow = 0): GroupFilterCount[] => (n === 0 ? [] : [{ filter: undefined, count: n, slow }]);

/** A request as the broker hands it to an engine: its event frame carries the reply token. */
function requestMessage(channel: string, data: string, extra: { labels?: string[]; key?: string } = {}): RequestMessage {
  const frame = encodeFrame({ t: FrameType.event, c: channel, d: text(data), id: `q-${data}`, o: 0, e: '', ts: 1, l: extra.labels, k: extra.key, rp: `tok-${data}` });
  return { channel, labels: extra.labels, key: extra.key, frame };
}

/** What an engine handed to a node's request and reply sinks; `answer` is what its request sink says (recipients). */
interface RequestProbe {
  requests: RequestMessage[];
  replies: ReplyMessage[];
  answer: number;
}

function probe(engine: Engine, answer = 1): RequestProbe {
  const p: RequestProbe = { requests: [], replies: [], answer };
  engine.onRequests((request) => {
    p.requests.push(request);
    return p.answer;
  }, (reply) => p.replies.push(reply));
  return p;
}

/** Resolves once `check` holds, or fails after 5 s (what another node receives comes when it comes). */
async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within 5 s: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A started engine, the events its sink got, and a publish that returns the sequenced event. */
interface Rig {
  engine: Engine;
  clock: ManualClock;
  limits: ContractLimits;
  sunk: StreamEvent[];
  /** The queue groups the sink was told this node serves, per event (see EventSink). */
  chosen: Map<StreamEvent, ReadonlySet<string> | undefined>;
  publish(channel: string, data?: string, extra?: Omit<PublishRequest, 'channel' | 'data'>): Promise<StreamEvent>;
}

export function engineContract(name: string, make: EngineFactory, traits: EngineTraits = {}): void {
  const made: Engine[] = [];

  async function rig(limits: Partial<ContractLimits> = {}, clock = new ManualClock(), sameStoreAs?: Engine): Promise<Rig> {
    const all = { ...DEFAULT_LIMITS, ...limits };
    const engine = await make({ clock, limits: all, ...(sameStoreAs === undefined ? {} : { sameStoreAs }) });
    made.push(engine);
    const sunk: StreamEvent[] = [];
    const chosen = new Map<StreamEvent, ReadonlySet<string> | undefined>();
    await engine.start((event, groups) => {
      sunk.push(event);
      chosen.set(event, groups);
    });
    const publish = async (channel: string, data = 'x', extra: Omit<PublishRequest, 'channel' | 'data'> = {}): Promise<StreamEvent> => {
      const result = await engine.publish({ channel, data: text(data), ...extra });
      const event = sunk.find((e) => e.id === result.id);
      if (event === undefined) throw new Error(`publish to ${channel} answered ${result.id} before the sink got it`);
      return event;
    };
    return { engine, clock, limits: all, sunk, chosen, publish };
  }

  /** Closes an engine before the end of its test (once: afterEach closes the others). */
  async function stop(engine: Engine): Promise<void> {
    made.splice(made.indexOf(engine), 1);
    await engine.close();
  }

  afterEach(async () => {
    await Promise.all(made.splice(0).map((e) => e.close()));
  });

  const known = new Set(traits.knownFailures ?? []);
  /** `it`, or `it.fails` for a case the engine is known to fail. */
  const check = (title: string, test: () => Promise<void>): void => (known.has(title) ? it.fails : it)(title, test);

  describe(name, () => {
    describe('sequencing', () => {
      it('gives each channel offsets 1, 2, 3 in one epoch, unique ids, and an increasing stream seq', async () => {
        const { engine, publish } = await rig();
        expect(engine.position()).toBe(0);
        const events = [await publish('a'), await publish('a'), await publish('b'), await publish('a')];
        const a = events.filter((e) => e.channel === 'a');
        expect(a.map((e) => e.offset)).toEqual([1, 2, 3]);
        expect(new Set(a.map((e) => e.epoch)).size).toBe(1);
        expect(events[2]!.offset).toBe(1);
        expect(new Set(events.map((e) => e.id)).size).toBe(4);
        for (let i = 1; i < events.length; i++) expect(events[i]!.seq).toBeGreaterThan(events[i - 1]!.seq);
        expect(engine.position()).toBe(events[3]!.seq);
      });

      it('answers each publish with its event\'s id, offset and epoch', async () => {
        const { engine, sunk } = await rig();
        const result = await engine.publish({ channel: 'a.b', data: text('one') });
        expect(sunk).toHaveLength(1);
        expect(result).toMatchObject({ id: sunk[0]!.id, offset: sunk[0]!.offset, epoch: sunk[0]!.epoch });
      });

      it('hands every event to the sink in publish order, by the time publish answers', async () => {
        const { engine, sunk } = await rig();
        const answers = [];
        for (let i = 0; i < 10; i++) {
          const answer = engine.publish({ channel: `c.${i % 3}`, data: text(String(i)) });
          // An engine that answers at once has handed the event over before answering.
          if (!(answer instanceof Promise)) expect(sunk.at(-1)!.id).toBe(answer.id);
          answers.push(answer);
        }
        const results = await Promise.all(answers);
        expect(bodies(sunk)).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
        expect(sunk.map((e) => e.id)).toEqual(results.map((r) => r.id));
        for (let i = 1; i < sunk.length; i++) expect(sunk[i]!.seq).toBeGreaterThan(sunk[i - 1]!.seq);
        expect(engine.position()).toBe(sunk[9]!.seq);
      });

      it('makes event frames that decode to the event\'s fields, with s its seq', async () => {
        const { clock, publish } = await rig();
        clock.advance(1234);
        for (const event of [await publish('a.b', 'plain'), await publish('a.b', 'tagged', { labels: ['x', 'y'], key: 'k1' })]) {
          const frame = decodeFrame(event.frame);
          expect(frame.t).toBe(FrameType.event);
          if (frame.t !== FrameType.event) return;
          expect({ ...frame, d: new TextDecoder().decode(frame.d) }).toEqual({
            t: FrameType.event, c: 'a.b', d: body(event), id: event.id, o: event.offset, e: event.epoch, s: event.seq, ts: event.time,
            ...(event.labels === undefined ? {} : { l: event.labels }), ...(event.key === undefined ? {} : { k: event.key }),
          });
          expect(event.time).toBe(clock.wall());
        }
      });

      it('keeps a high-priority publish\'s priority: on the event, as pr: 1 in its frame, and in history', async () => {
        const { engine, publish } = await rig();
        const high = await publish('p.x', 'alert', { priority: 1 });
        const normal = await publish('p.x', 'routine');
        expect([high.priority, normal.priority]).toEqual([1, 0]);
        expect(decodeFrame(high.frame)).toMatchObject({ pr: 1 });
        expect(decodeFrame(normal.frame)).not.toHaveProperty('pr');
        const page = await engine.history('p.x', undefined, 10);
        expect(page.events.map((e) => (decodeFrame(e.frame) as { pr?: number }).pr)).toEqual([1, undefined]);
      });

      it('counts the channels it holds and ranks the busiest, ties by name', async () => {
        const { engine, publish } = await rig();
        for (const channel of ['b', 'a', 'c', 'a', 'c', 'a', 'c', 'b', 'd']) await publish(channel);
        expect(await engine.channelCount()).toBe(4);
        expect(await engine.busiestChannels(2)).toEqual([{ channel: 'a', events: 3 }, { channel: 'c', events: 3 }]);
        expect(await engine.busiestChannels(10)).toEqual([
          { channel: 'a', events: 3 }, { channel: 'c', events: 3 }, { channel: 'b', events: 2 }, { channel: 'd', events: 1 },
        ]);
      });
    });

    describe('history', () => {
      it('answers a channel\'s retained events oldest first, at most limit, with more', async () => {
        const { engine, publish } = await rig();
        const events = [];
        for (let i = 1; i <= 5; i++) events.push(await publish('h', String(i)));
        await publish('other');
        const all = await engine.history('h', undefined, 10);
        expect(bodies(all.events)).toEqual(['1', '2', '3', '4', '5']);
        expect(all).toMatchObject({ epoch: events[0]!.epoch, offset: 5, complete: true, more: false });
        expect(all.events.map((e) => [e.id, e.offset, e.seq, e.channel])).toEqual(events.map((e) => [e.id, e.offset, e.seq, 'h']));
        const first = await engine.history('h', undefined, 2);
        expect([bodies(first.events), first.more]).toEqual([['1', '2'], true]);
        const never = await engine.history('never', undefined, 10);
        expect(never).toMatchObject({ events: [], offset: 0, complete: true, more: false });
      });

      it('answers the events after a position, complete, paging with limit', async () => {
        const { engine, publish } = await rig();
        const { epoch } = await publish('h', '1');
        for (let i = 2; i <= 5; i++) await publish('h', String(i));
        const fromStart = await engine.history('h', { epoch, offset: 0 }, 10);
        expect([bodies(fromStart.events), fromStart.complete, fromStart.more]).toEqual([['1', '2', '3', '4', '5'], true, false]);
        const page = await engine.history('h', { epoch, offset: 2 }, 2);
        expect([bodies(page.events), page.complete, page.more]).toEqual([['3', '4'], true, true]);
        const last = await engine.history('h', { epoch, offset: 4 }, 2);
        expect([bodies(last.events), last.complete, last.more]).toEqual([['5'], true, false]);
        const caughtUp = await engine.history('h', { epoch, offset: 5 }, 2);
        expect([caughtUp.events, caughtUp.complete, caughtUp.more]).toEqual([[], true, false]);
        const otherEpoch = await engine.history('h', { epoch: `${epoch}-not`, offset: 2 }, 10);
        expect(otherEpoch.complete).toBe(false);
      });

      it('keeps historySize events per channel: a position before them is incomplete', async () => {
        const { engine, publish } = await rig({ historySize: 3 });
        const { epoch } = await publish('h', '1');
        for (let i = 2; i <= 5; i++) await publish('h', String(i));
        const page = await engine.history('h', undefined, 10);
        expect([bodies(page.events), page.offset]).toEqual([['3', '4', '5'], 5]);
        const trimmed = await engine.history('h', { epoch, offset: 1 }, 10);
        expect([bodies(trimmed.events), trimmed.complete]).toEqual([['3', '4', '5'], false]);
        const whole = await engine.history('h', { epoch, offset: 2 }, 10);
        expect([bodies(whole.events), whole.complete]).toEqual([['3', '4', '5'], true]);
      });

      it('keeps historyBytes per channel, the oldest out first', async () => {
        const { engine, publish } = await rig({ historyBytes: 3000 });
        const { epoch } = await publish('h', `1${KB}`);
        for (let i = 2; i <= 4; i++) await publish('h', `${i}${KB}`);
        await publish('small', 'other channels keep theirs');
        const page = await engine.history('h', undefined, 10);
        expect(page.events.map((e) => body(e)[0])).toEqual(['3', '4']);
        expect((await engine.history('h', { epoch, offset: 1 }, 10)).complete).toBe(false);
        expect((await engine.history('h', { epoch, offset: 2 }, 10)).complete).toBe(true);
        expect((await engine.history('small', undefined, 10)).events).toHaveLength(1);
      });

      it('forgets events older than historyTtl, by the injected clock', async () => {
        const { engine, clock, publish } = await rig({ historyTtl: 10_000 });
        const { epoch } = await publish('h', 'old');
        clock.advance(6000);
        await publish('h', 'young');
        clock.advance(5000);
        const page = await engine.history('h', undefined, 10);
        expect([bodies(page.events), page.offset]).toEqual([['young'], 2]);
        expect((await engine.history('h', { epoch, offset: 0 }, 10)).complete).toBe(false);
        expect((await engine.history('h', { epoch, offset: 1 }, 10)).complete).toBe(true);
        clock.advance(6000);
        const none = await engine.history('h', { epoch, offset: 1 }, 10);
        expect([none.events, none.offset, none.complete]).toEqual([[], 2, false]);
        expect((await engine.history('h', { epoch, offset: 2 }, 10)).complete).toBe(true);
      });

      it('past historyTotalBytes forgets whole channels, least recently published first: their next event starts a new epoch', async () => {
        const { engine, publish } = await rig({ historyTotalBytes: 4000 });
        const a1 = await publish('t.a', KB);
        const b1 = await publish('t.b', KB);
        await publish('t.c', KB);
        expect(await engine.channelCount()).toBe(3);
        await publish('t.a', KB); // t.a is the newest now: t.b, published least recently, goes
        expect(await engine.channelCount()).toBe(2);
        expect((await engine.history('t.b', undefined, 10)).events).toEqual([]);
        expect((await engine.history('t.b', { epoch: b1.epoch, offset: 0 }, 10)).complete).toBe(false);
        expect((await engine.history('t.a', { epoch: a1.epoch, offset: 0 }, 10)).events).toHaveLength(2);
        expect((await engine.history('t.c', undefined, 10)).events).toHaveLength(1);
        const b2 = await publish('t.b', 'again');
        expect(b2.offset).toBe(1);
        expect(b2.epoch).not.toBe(b1.epoch);
        expect(b2.seq).toBeGreaterThan(a1.seq);
        // Counted from its new epoch.
        expect(await engine.busiestChannels(3)).toEqual([{ channel: 't.a', events: 2 }, { channel: 't.b', events: 1 }, { channel: 't.c', events: 1 }]);
      });

      it('past channelCacheSize forgets the least recently published channel whole', async () => {
        const { engine, publish } = await rig({ channelCacheSize: 2 });
        const a1 = await publish('a');
        const b1 = await publish('b');
        await publish('a');
        await publish('c'); // b is the least recently published
        expect(await engine.channelCount()).toBe(2);
        expect((await engine.history('a', { epoch: a1.epoch, offset: 0 }, 10)).events).toHaveLength(2);
        expect((await engine.history('b', { epoch: b1.epoch, offset: 0 }, 10)).complete).toBe(false);
        const b2 = await publish('b');
        expect([b2.offset, b2.epoch === b1.epoch]).toEqual([1, false]);
      });

      it.each(['historySize', 'historyBytes', 'historyTtl'] as const)('with %s 0 keeps nothing: a position with later events is incomplete', async (bound) => {
        const { engine, publish } = await rig({ [bound]: 0 });
        const { epoch } = await publish('h', '1');
        await publish('h', '2');
        const page = await engine.history('h', undefined, 10);
        expect([page.events, page.offset, page.complete]).toEqual([[], 2, true]);
        expect((await engine.history('h', { epoch, offset: 0 }, 10)).complete).toBe(false);
        expect((await engine.history('h', { epoch, offset: 1 }, 10)).complete).toBe(false);
        expect((await engine.history('h', { epoch, offset: 2 }, 10)).complete).toBe(true);
        const replay = await engine.replay('h', 0, 10);
        expect([replay.events, replay.complete]).toEqual([[], false]);
        expect((await engine.replay('h', engine.position(), 10)).complete).toBe(true);
        expect((await engine.rewind('h', 5, 1 << 20)).events).toEqual([]);
      });
    });

    describe('replay', () => {
      /** Two events before the position, then a mix after it, on seen and unseen channels. */
      async function mixed(limits: Partial<ContractLimits> = {}): Promise<Rig & { since: number; after: StreamEvent[] }> {
        const r = await rig(limits);
        await r.publish('user.a', 'before');
        await r.publish('other.x', 'before');
        const since = r.engine.position();
        const after = [];
        for (const [channel, data] of [['user.a', 'a1'], ['user.b', 'b1'], ['other.x', 'x1'], ['user.c.d', 'cd1'], ['user.a', 'a2']]) {
          after.push(await r.publish(channel!, data));
        }
        return { ...r, since, after };
      }

      it('answers every matching event after the position, in stream order, each once, on seen and new channels', async () => {
        const { engine, since, after } = await mixed();
        const all = await engine.replay('user.>', since, 100);
        expect([bodies(all.events), all.complete, all.more]).toEqual([['a1', 'b1', 'cd1', 'a2'], true, false]);
        expect(seqs(all.events)).toEqual(seqs(after.filter((e) => e.channel.startsWith('user.'))));
        expect(all.events.map((e) => [e.id, e.channel, e.offset, e.epoch])).toEqual(
          after.filter((e) => e.channel.startsWith('user.')).map((e) => [e.id, e.channel, e.offset, e.epoch]));
        expect(bodies((await engine.replay('user.*', since, 100)).events)).toEqual(['a1', 'b1', 'a2']);
        expect(bodies((await engine.replay('user.a', since, 100)).events)).toEqual(['a1', 'a2']);
        expect(bodies((await engine.replay('user.b', since, 100)).events)).toEqual(['b1']); // new since the position
        const none = await engine.replay('user.>', engine.position(), 100);
        expect([none.events, none.complete, none.more]).toEqual([[], true, false]);
        expect(bodies((await engine.replay('nobody.>', 0, 100)).events)).toEqual([]);
      });

      it('filters with accept, by labels and key', async () => {
        const { engine, publish } = await rig();
        await publish('job.a', 'low', { labels: ['low'] });
        await publish('job.b', 'urgent', { labels: ['urgent', 'x'] });
        await publish('job.a', 'keyed', { key: 'k1' });
        await publish('job.a', 'bare');
        const urgent = await engine.replay('job.*', 0, 100, (labels) => labels?.includes('urgent') === true);
        expect([bodies(urgent.events), urgent.complete]).toEqual([['urgent'], true]);
        const keyed = await engine.replay('job.a', 0, 100, (_labels, key) => key === 'k1');
        expect(bodies(keyed.events)).toEqual(['keyed']);
        const seen: [string[] | undefined, string | undefined][] = [];
        await engine.replay('job.>', 0, 100, (labels, key) => (seen.push([labels, key]), true));
        expect(seen).toEqual([[['low'], undefined], [['urgent', 'x'], undefined], [undefined, 'k1'], [undefined, undefined]]);
      });

      it('pages with limit: more, then the rest from the last event', async () => {
        const { engine, since } = await mixed();
        const page = await engine.replay('user.>', since, 3);
        expect([bodies(page.events), page.more, page.complete]).toEqual([['a1', 'b1', 'cd1'], true, true]);
        const rest = await engine.replay('user.>', page.events[2]!.seq, 3);
        expect([bodies(rest.events), rest.more]).toEqual([['a2'], false]);
        const filtered = await engine.replay('user.>', since, 1, (_l, _k) => true);
        expect([bodies(filtered.events), filtered.more]).toEqual([['a1'], true]);
      });

      it('is incomplete when a matching event after the position was trimmed, and only then', async () => {
        const { engine, publish } = await rig({ historySize: 2 });
        await publish('user.a', 'before');
        const since = engine.position();
        for (const data of ['x1', 'x2', 'x3']) await publish('other.x', data); // trimmed, but not matching
        await publish('user.a', 'a1');
        const kept = await engine.replay('user.>', since, 100);
        expect([bodies(kept.events), kept.complete]).toEqual([['a1'], true]);
        for (const data of ['a2', 'a3']) await publish('user.a', data);
        const cut = await engine.replay('user.>', since, 100);
        expect([bodies(cut.events), cut.complete]).toEqual([['a2', 'a3'], false]);
        expect((await engine.replay('user.a', since, 100)).complete).toBe(false);
        // Events lost only before the position do not count.
        expect((await engine.replay('user.>', cut.events[0]!.seq - 1, 100)).complete).toBe(true);
      });

      it('is incomplete when a matching channel with events after the position was forgotten', async () => {
        const { engine, publish } = await rig({ channelCacheSize: 2 });
        await publish('user.old', 'before'); // forgotten below, but it had nothing after the position
        const since = engine.position();
        await publish('user.a', 'a1');
        await publish('other.x', 'x1');
        await publish('other.y', 'y1'); // user.old, then user.a, forgotten
        const page = await engine.replay('user.>', since, 100);
        expect([page.events, page.complete]).toEqual([[], false]);
        expect((await engine.replay('user.a', since, 100)).complete).toBe(false);
        expect((await engine.replay('user.old', since, 100)).complete).toBe(true);
        expect((await engine.replay('nobody.>', since, 100)).complete).toBe(true);
        await publish('user.b', 'b1'); // other.x forgotten: it does not match
        const later = engine.position() - 1;
        const b = await engine.replay('user.>', later, 100);
        expect([bodies(b.events), b.complete]).toEqual([['b1'], true]);
        // Published again after it was forgotten: what it had after the position is still lost.
        await publish('user.a', 'a2');
        const again = await engine.replay('user.a', since, 100);
        expect([bodies(again.events), again.complete]).toEqual([['a2'], false]);
      });

      it('is incomplete when a matching channel was forgotten past historyTotalBytes', async () => {
        const { engine, publish } = await rig({ historyTotalBytes: 4000 });
        const since = engine.position();
        await publish('user.a', KB);
        await publish('other.x', KB);
        await publish('other.y', KB);
        await publish('other.z', KB); // user.a goes
        expect((await engine.replay('user.>', since, 100)).complete).toBe(false);
        expect((await engine.replay('other.*', since + 1, 100)).complete).toBe(true);
      });
    });

    describe('rewind', () => {
      async function stream(): Promise<Rig> {
        const r = await rig();
        for (const [channel, data, labels] of [['r.a', 'a1'], ['r.a', 'a2', 'hot'], ['r.b', 'b1'], ['r.a', 'a3'], ['x', 'x1'], ['r.b', 'b2', 'hot']]) {
          await r.publish(channel!, data, labels === undefined ? {} : { labels: [labels] });
        }
        return r;
      }

      it('answers the last count events of every matching channel, in stream order', async () => {
        const { engine } = await stream();
        const page = await engine.rewind('r.*', 3, 1 << 20);
        expect([bodies(page.events), page.more]).toEqual([['b1', 'a3', 'b2'], false]);
        expect(bodies((await engine.rewind('r.a', 2, 1 << 20)).events)).toEqual(['a2', 'a3']);
        expect(bodies((await engine.rewind('r.>', 100, 1 << 20)).events)).toEqual(['a1', 'a2', 'b1', 'a3', 'b2']);
        expect(bodies((await engine.rewind('r.*', 5, 1 << 20, (labels) => labels?.includes('hot') === true)).events)).toEqual(['a2', 'b2']);
        expect((await engine.rewind('nobody', 3, 1 << 20)).events).toEqual([]);
      });

      it('with count 0 answers the last event of each matching channel', async () => {
        const { engine } = await stream();
        expect(bodies((await engine.rewind('r.*', 0, 1 << 20)).events)).toEqual(['a3', 'b2']);
        expect(bodies((await engine.rewind('r.*', 0, 1 << 20, (labels) => labels === undefined)).events)).toEqual(['b1', 'a3']);
        expect(bodies((await engine.rewind('x', 0, 1 << 20)).events)).toEqual(['x1']);
      });

      it('leaves the oldest out past maxBytes, with more', async () => {
        const { engine } = await stream();
        const all = (await engine.rewind('r.*', 3, 1 << 20)).events;
        const size = (events: StreamEvent[]): number => events.reduce((n, e) => n + e.frame.length, 0);
        const newest2 = await engine.rewind('r.*', 3, size(all.slice(1)));
        expect([seqs(newest2.events), newest2.more]).toEqual([seqs(all.slice(1)), true]);
        const newest1 = await engine.rewind('r.*', 3, size(all.slice(1)) - 1);
        expect([seqs(newest1.events), newest1.more]).toEqual([seqs(all.slice(2)), true]);
        const exact = await engine.rewind('r.*', 3, size(all));
        expect([seqs(exact.events), exact.more]).toEqual([seqs(all), false]);
      });
    });

    describe('idempotency', () => {
      it('answers a repeat within the window with the first result, and hands it to nobody', async () => {
        const { engine, clock, sunk, publish } = await rig({ idempotencyWindow: 10_000 });
        const first = await publish('i', 'once', { idempotency: { scope: 'alice', id: 'm1' } });
        clock.advance(9000);
        const repeat = await engine.publish({ channel: 'i', data: text('twice'), idempotency: { scope: 'alice', id: 'm1' } });
        expect(repeat).toMatchObject({ id: first.id, offset: first.offset, epoch: first.epoch });
        expect(sunk).toHaveLength(1);
        expect(engine.position()).toBe(first.seq);
        expect(bodies((await engine.history('i', undefined, 10)).events)).toEqual(['once']);
      });

      it('after the window, or for another scope or id, publishes a new event', async () => {
        const { engine, clock, sunk, publish } = await rig({ idempotencyWindow: 10_000 });
        const first = await publish('i', '1', { idempotency: { scope: 'alice', id: 'm1' } });
        const otherScope = await publish('i', '2', { idempotency: { scope: 'bob', id: 'm1' } });
        const otherId = await publish('i', '3', { idempotency: { scope: 'alice', id: 'm2' } });
        expect(new Set([first.id, otherScope.id, otherId.id]).size).toBe(3);
        clock.advance(10_001);
        const after = await publish('i', '4', { idempotency: { scope: 'alice', id: 'm1' } });
        expect([after.id === first.id, after.offset]).toEqual([false, 4]);
        expect(bodies(sunk)).toEqual(['1', '2', '3', '4']);
        // The new one is remembered in turn.
        const again = await engine.publish({ channel: 'i', data: text('5'), idempotency: { scope: 'alice', id: 'm1' } });
        expect(again.id).toBe(after.id);
      });

      it('with idempotencyWindow 0 publishes every repeat', async () => {
        const { sunk, publish } = await rig({ idempotencyWindow: 0 });
        await publish('i', '1', { idempotency: { scope: 'alice', id: 'm1' } });
        await publish('i', '2', { idempotency: { scope: 'alice', id: 'm1' } });
        expect(bodies(sunk)).toEqual(['1', '2']);
      });
    });

    describe('parked sessions', () => {
      const session = (secret: string, principal = ''): ParkedSession => ({
        secret,
        principal,
        subscriptions: [
          { pattern: 'user.>', filter: undefined, since: 3 },
          { pattern: 'job.*', filter: { l: ['urgent'], k: ['k1'] }, since: 7 },
        ],
      });

      it('gives the session back to the right secret, once', async () => {
        const { engine } = await rig();
        const parked = session('s3cret');
        await engine.parkSession('u1', parked, 60_000);
        expect(await engine.parkedSessions()).toBe(1);
        expect(await engine.takeSession('u1', { secret: 's3cret', principal: '' })).toEqual({ session: parked });
        expect(await engine.parkedSessions()).toBe(0);
        expect(await engine.takeSession('u1', { secret: 's3cret', principal: '' })).toEqual({ none: true });
        expect(await engine.takeSession('never', { secret: 's3cret', principal: '' })).toEqual({ none: true });
      });

      it('refuses a wrong secret and keeps the session parked', async () => {
        const { engine } = await rig();
        await engine.parkSession('u1', session('s3cret'), 60_000);
        expect(await engine.takeSession('u1', { secret: 'wrong', principal: '' })).toEqual({ refused: true });
        expect(await engine.takeSession('u1', { secret: undefined, principal: '' })).toEqual({ refused: true });
        expect(await engine.parkedSessions()).toBe(1);
        expect(await engine.takeSession('u1', { secret: 's3cret', principal: '' })).toEqual({ session: session('s3cret') });
      });

      it('gives the session to the same authenticated principal without the secret, never to another or to anonymous', async () => {
        const { engine } = await rig();
        await engine.parkSession('u1', session('s3cret', 'alice'), 60_000);
        await engine.parkSession('u2', session('other', ''), 60_000);
        expect(await engine.takeSession('u1', { secret: undefined, principal: 'bob' })).toEqual({ refused: true });
        expect(await engine.takeSession('u1', { secret: undefined, principal: '' })).toEqual({ refused: true });
        expect(await engine.takeSession('u1', { secret: undefined, principal: 'alice' })).toEqual({ session: session('s3cret', 'alice') });
        // Anonymous is nobody: '' never matches ''.
        expect(await engine.takeSession('u2', { secret: undefined, principal: '' })).toEqual({ refused: true });
        expect(await engine.takeSession('u2', { secret: 'other', principal: 'alice' })).toEqual({ session: session('other', '') });
      });

      it('forgets a session after its ttl, by the injected clock', async () => {
        const { engine, clock } = await rig();
        await engine.parkSession('u1', session('a'), 10_000);
        await engine.parkSession('u2', session('b'), 10_000);
        clock.advance(9999);
        expect(await engine.parkedSessions()).toBe(2);
        expect(await engine.takeSession('u1', { secret: 'a', principal: '' })).toEqual({ session: session('a') });
        clock.advance(2);
        expect(await engine.parkedSessions()).toBe(0);
        expect(await engine.takeSession('u2', { secret: 'b', principal: '' })).toEqual({ none: true });
      });

      check(Case.sessionTtlPerPark, async () => {
        const { engine, clock } = await rig();
        await engine.parkSession('long', session('a'), 60_000);
        await engine.parkSession('short', session('b'), 1000);
        clock.advance(2000);
        expect(await engine.parkedSessions()).toBe(1);
        expect(await engine.takeSession('short', { secret: 'b', principal: '' })).toEqual({ none: true });
        expect(await engine.takeSession('long', { secret: 'a', principal: '' })).toEqual({ session: session('a') });
      });

      it('drops a session, and a second park of a uuid replaces the first', async () => {
        const { engine, clock } = await rig();
        await engine.parkSession('u1', session('a'), 60_000);
        await engine.parkSession('u2', session('b'), 60_000);
        await engine.dropSession('u1');
        await engine.dropSession('never');
        expect(await engine.parkedSessions()).toBe(1);
        expect(await engine.takeSession('u1', { secret: 'a', principal: '' })).toEqual({ none: true });
        const replacement: ParkedSession = { secret: 'c', principal: '', subscriptions: [] };
        await engine.parkSession('u2', replacement, 20_000);
        expect(await engine.parkedSessions()).toBe(1);
        expect(await engine.takeSession('u2', { secret: 'b', principal: '' })).toEqual({ refused: true });
        clock.advance(15_000);
        expect(await engine.takeSession('u2', { secret: 'c', principal: '' })).toEqual({ session: replacement });
      });
    });

    describe('requests', () => {
      it('hands a request to the request sink of a node with interest, once, and answers that it reached someone', async () => {
        const { engine, sunk } = await rig();
        const got = probe(engine, 1);
        engine.interest('svc.*', true);
        engine.interest('svc.echo', true); // a name and a pattern both matching: still once
        await engine.live('svc.*');
        await engine.live('svc.echo');
        const message = requestMessage('svc.echo', 'ping', { labels: ['eu'], key: 'k1' });
        expect(await engine.request(message)).toBe(true);
        await until('the request to reach the sink', () => got.requests.length === 1);
        const [request] = got.requests;
        expect([request!.channel, request!.labels, request!.key]).toEqual(['svc.echo', ['eu'], 'k1']);
        expect(Buffer.from(request!.frame)).toEqual(Buffer.from(message.frame));
        // Not sequenced, not kept: no event, no position, no history.
        expect(sunk).toEqual([]);
        expect(engine.position()).toBe(0);
        expect((await engine.history('svc.echo', undefined, 10)).events).toEqual([]);
        await engine.request(requestMessage('svc.echo', 'again'));
        await until('the second request', () => got.requests.length === 2);
        expect(got.requests).toHaveLength(2);
      });

      it('answers false when the request reached nobody: no sink got it to anyone', async () => {
        const { engine } = await rig();
        const got = probe(engine, 0);
        engine.interest('svc.>', true);
        await engine.live('svc.>');
        expect(await engine.request(requestMessage('svc.none', 'x'))).toBe(false);
        expect(got.requests).toHaveLength(1);
        engine.interest('svc.>', false);
        got.answer = 1;
        // Without interest an engine that routes by it may not hand it over at all: nobody either way.
        if (traits.sharedBetweenInstances) expect(await engine.request(requestMessage('svc.none', 'y'))).toBe(false);
      });

      it('names its instance with characters a reply token can carry; another instance is another name', async () => {
        const a = await rig();
        const b = await rig();
        expect(a.engine.instance).toMatch(/^[A-Za-z0-9_.#-]{1,80}$/);
        expect(b.engine.instance).not.toBe(a.engine.instance);
        if (!traits.sharedBetweenInstances) {
          // One node: a token naming another instance names nobody.
          expect(a.engine.reply(b.engine.instance, { token: 't', data: text('x'), id: 'r1', time: 1 })).toBe(false);
        }
      });
    });

    describe('queue groups', () => {
      it('tells the sink which groups of an event this node serves: every local one on one node, the one it was picked for across nodes', async () => {
        const { engine, chosen, publish } = await rig();
        engine.interest('job.*', true);
        engine.groupMembers?.('w', 'job.*', members(2));
        await engine.live('job.*');
        const event = await publish('job.run', '1');
        if (traits.sharedBetweenInstances) {
          // The only node with members of (w, job.*): picked for it.
          expect([...chosen.get(event)!]).toEqual(['w job.*']);
          const other = await publish('other.x', '2');
          expect([...chosen.get(other)!]).toEqual([]);
        } else {
          expect(chosen.get(event)).toBeUndefined(); // one node: its own groups, all of them
        }
        engine.groupMembers?.('w', 'job.*', members(0));
        await engine.live('job.*');
        const after = await publish('job.run', '3');
        if (traits.sharedBetweenInstances) expect([...chosen.get(after)!]).toEqual([]);
      });
    });

    describe('presence', () => {
      it('answers this node\'s own count through the seam, ids only when asked', async () => {
        const { engine } = await rig();
        const asked: [string, boolean][] = [];
        engine.onPresence((pattern, members) => {
          asked.push([pattern, members]);
          return members ? { n: 2, m: ['jwt:a', 'jwt:b'] } : { n: 2 };
        });
        expect(await engine.presence('room.1', false)).toEqual({ n: 2 });
        expect(await engine.presence('room.*', true)).toEqual({ n: 2, m: ['jwt:a', 'jwt:b'] });
        expect(asked).toEqual([['room.1', false], ['room.*', true]]);
      });

      it('carries join/leave notices between nodes only where nodes share it (one node: the broker\'s own notices)', async () => {
        const { engine } = await rig();
        if (traits.sharedBetweenInstances) expect(engine.presenceCarrier).toBeDefined();
        else expect(engine.presenceCarrier).toBeUndefined();
      });
    });

    if (traits.sharedBetweenInstances) {
      describe('nodes', () => {
        /** Two instances over one store, each started with its own sink. */
        async function pair(): Promise<[Rig, Rig]> {
          const a = await rig();
          const b = await rig({}, a.clock, a.engine);
          return [a, b];
        }

        /** Resolves once `sunk` holds an event of `channel`, or fails after 5 s. */
        async function arrival(sunk: StreamEvent[], channel: string): Promise<StreamEvent> {
          const deadline = Date.now() + 5000;
          for (;;) {
            const found = sunk.find((e) => e.channel === channel);
            if (found !== undefined) return found;
            if (Date.now() > deadline) throw new Error(`no event of ${channel} arrived within 5 s`);
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
        }

        it('counts presence over every node: counts summed, ids merged (distinct, sorted); a node that does not answer is left out, partial', async () => {
          const [a, b] = await pair();
          let counted = 0;
          a.engine.onPresence((_, members) => (counted++, members ? { n: 2, m: ['jwt:x', 'token:svc'] } : { n: 2 }));
          b.engine.onPresence((_, members) => (counted++, members ? { n: 3, m: ['jwt:a', 'jwt:x'] } : { n: 3 }));
          expect(await a.engine.presence('room.1', false)).toEqual({ n: 5 });
          expect(await b.engine.presence('room.*', true)).toEqual({ n: 5, m: ['jwt:a', 'jwt:x', 'token:svc'] });
          // A third node that cannot count (as one stuck or gone would be): its answer never comes.
          const c = await rig({}, a.clock, a.engine);
          c.engine.onPresence(() => {
            throw new Error('stuck');
          });
          counted = 0;
          const asked = a.engine.presence('room.1', false);
          await until('a and b to count', () => counted === 2);
          // Behind their answers on a's channel: a publish of a's own, confirmed there.
          await a.publish('mark');
          // The asker's second passes (the engines' clock is the test's): c is left out.
          a.clock.advance(1000);
          expect(await asked).toEqual({ n: 5, partial: true });
        });

        it('carries presence news of a watched channel to the watching node only, with each node\'s holders: the first notice waits for every node\'s count, a node that closes leaves it', async () => {
          const [a, b] = await pair();
          const c = await rig({}, a.clock, a.engine);
          const [onA, onB, onC] = [a, b, c].map((r) => r.engine.presenceCarrier!);
          const heard: PresenceNews[] = [];
          const holders = new Map([[onB, 2], [onC, 1]]);
          onA!.onNews((news) => heard.push(news), () => 0);
          for (const node of [onB!, onC!]) {
            node.onNews(() => {
              throw new Error('no channel is watched on this node');
            }, (channel) => (channel === 'room.1' ? holders.get(node)! : 0));
          }
          onA!.watch('room.1', true);
          expect(onA!.settled('room.1')).toBe(false); // its first notice waits for the other nodes' counts
          await until('a to know the holders of b and c', () => onA!.settled('room.1'));
          // Counts, no change: the broker starts from them (3 on the other nodes), telling nobody.
          expect(heard.at(-1)).toEqual({ channel: 'room.1', n: 3, changes: [] });
          await until('b and c to know that a watches room.1', () => onB!.watchedElsewhere('room.1') && onC!.watchedElsewhere('room.1'));
          expect([onB!.watchedElsewhere('room.2'), onA!.watchedElsewhere('room.1')]).toEqual([false, false]);
          heard.length = 0;
          // b's turn: one joined room.1, one joined an unwatched channel (not sent).
          onB!.send([{ channel: 'room.1', n: 3, changes: [{ j: true, m: 'jwt:z' }] }, { channel: 'room.2', n: 1, changes: [{ j: true }] }]);
          await until('b\'s news to reach a', () => heard.length === 1);
          expect(heard[0]).toEqual({ channel: 'room.1', n: 4, changes: [{ j: true, m: 'jwt:z' }] });
          // A storm past 64 on c: 64 itemized, the rest counted.
          const storm = Array.from({ length: 64 }, () => ({ j: true }));
          onC!.send([{ channel: 'room.1', n: 101, changes: storm, more: 36, net: 36 }]);
          await until('c\'s storm to reach a', () => heard.length === 2);
          expect(heard[1]).toEqual({ channel: 'room.1', n: 104, changes: storm, more: 36, net: 36 });
          // c closes: its 101 holders leave the count, in one notice.
          await stop(c.engine);
          await until('c\'s holders to leave', () => heard.length === 3);
          expect(heard[2]).toEqual({ channel: 'room.1', n: 3, changes: [], more: 101, net: -101 });
          // a stops watching: b stops sending (once the watch stopped lingering, 2 s after).
          onA!.watch('room.1', false);
          a.clock.advance(LINGER_MS);
          await until('b to know nobody watches room.1', () => !onB!.watchedElsewhere('room.1'));
          expect(b.engine.stats().presence).toMatchObject({ newsSent: 1, watchedElsewhere: 0 });
          // a's syncs: its start, and room.1; c may also have sent its count on hearing a watch (a race with its start).
          expect(a.engine.stats().presence).toMatchObject({ syncs: 2 });
          expect(a.engine.stats().presence!.newsReceived).toBeGreaterThanOrEqual(2);
        });

        it('carries a high-priority event to another instance as high priority', async () => {
          const [a, b] = await pair();
          b.engine.interest('pr.x', true);
          await b.engine.live('pr.x');
          await a.publish('pr.x', 'alert', { priority: 1 });
          const got = await arrival(b.sunk, 'pr.x');
          expect(got.priority).toBe(1);
          expect(decodeFrame(got.frame)).toMatchObject({ pr: 1 });
        });

        it('carries to another instance the events of its interest once live, each once, in stream order, with the same fields', async () => {
          const [a, b] = await pair();
          b.engine.interest('user.>', true);
          b.engine.interest('user.a', true); // a name and a pattern both matching: still once
          await b.engine.live('user.>');
          await b.engine.live('user.a');
          const published = [await a.publish('user.a', '1'), await a.publish('other.x', '2'), await a.publish('user.b.c', '3'), await a.publish('user', '4')];
          await b.publish('end', 'mark');
          await arrival(b.sunk, 'user.b.c');
          const got = b.sunk.filter((e) => e.channel !== 'end');
          expect(bodies(got)).toEqual(['1', '3']);
          for (const event of got) {
            const same = published.find((p) => p.id === event.id)!;
            expect([event.offset, event.epoch, event.seq, event.time, event.channel]).toEqual([same.offset, same.epoch, same.seq, same.time, same.channel]);
            expect(event.frame).toEqual(same.frame);
          }
          expect(b.engine.epoch).toBe(a.engine.epoch);
          expect(b.engine.position()).toBeGreaterThanOrEqual(published[2]!.seq);
        });

        it('carries a request to the nodes of its interest only, and answers whether any reached someone', async () => {
          const [a, b] = await pair();
          const onA = probe(a.engine, 1);
          const onB = probe(b.engine, 1);
          b.engine.interest('svc.*', true);
          b.engine.interest('svc.echo', true); // two copies to b: delivered once
          await b.engine.live('svc.*');
          await b.engine.live('svc.echo');
          expect(await a.engine.request(requestMessage('svc.echo', '1'))).toBe(true);
          await until('b to get the request', () => onB.requests.length === 1);
          expect(onA.requests).toEqual([]); // a has no interest in it
          onB.answer = 0; // b's subscribers are gone, or filtered it out: every copy says nobody
          expect(await a.engine.request(requestMessage('svc.echo', '2'))).toBe(false);
          expect(await a.engine.request(requestMessage('other.x', '3'))).toBe(false); // nobody's interest
          expect(onB.requests.map((r) => r.channel)).toEqual(['svc.echo', 'svc.echo']);
        });

        it('carries a reply to the node its token names', async () => {
          const [a, b] = await pair();
          probe(a.engine);
          const onB = probe(b.engine);
          const reply: ReplyMessage = { token: `${b.engine.instance}:0:0:${'x'.repeat(16)}`, data: text('the answer'), labels: ['ok'], id: 'r1', time: 1234 };
          expect(a.engine.reply(b.engine.instance, reply)).toBe(true);
          await until('b to get the reply', () => onB.replies.length === 1);
          const [got] = onB.replies;
          expect([got!.token, Buffer.from(got!.data).toString(), got!.labels, got!.id, got!.time]).toEqual([reply.token, 'the answer', ['ok'], 'r1', 1234]);
        });

        /** Where each of `events` (by id) was chosen for group `key`: 'a', 'b', or both/none as a string. */
        function placed(a: Rig, b: Rig, ids: string[], key: string): string[] {
          return ids.map((id) => {
            const onA = [...a.chosen].some(([e, g]) => e.id === id && g?.has(key) === true);
            const onB = [...b.chosen].some(([e, g]) => e.id === id && g?.has(key) === true);
            return onA && onB ? 'both' : onA ? 'a' : onB ? 'b' : 'none';
          });
        }

        it('picks one node for each queue group of an event, weighted by its members there, the same pick on every node', async () => {
          const [a, b] = await pair();
          for (const [r, n] of [[a, 2], [b, 1]] as const) {
            r.engine.interest('job.*', true);
            r.engine.groupMembers!('w', 'job.*', members(n));
            await r.engine.live('job.*');
          }
          // a hears of b's members by a notice: publish until a picks b once.
          for (let i = 0; ; i++) {
            if (i === 200) throw new Error('a never picked b');
            const probe = await a.publish('job.probe', String(i));
            await until('b to get the probe', () => b.sunk.some((e) => e.id === probe.id));
            if (placed(a, b, [probe.id], 'w job.*')[0] === 'b') break;
          }
          const ids: string[] = [];
          for (let i = 0; i < 30; i++) ids.push((await a.publish('job.run', String(i))).id);
          await until('b to get the 30 events', () => ids.every((id) => b.sunk.some((e) => e.id === id)));
          const where = placed(a, b, ids, 'w job.*');
          expect(where.filter((w) => w === 'a')).toHaveLength(20);
          expect(where.filter((w) => w === 'b')).toHaveLength(10);
          // A node that leaves the group (its last member gone), or ends, is picked no more: a
          // picks itself 6 times in a row (at most 2 with b's member counted), once told.
          const onlyA = async (channel: string): Promise<void> => {
            let row = 0;
            for (let i = 0; row < 6; i++) {
              if (i === 300) throw new Error(`a kept picking b (${channel})`);
              const e = await a.publish(channel, String(i));
              row = placed(a, b, [e.id], 'w job.*')[0] === 'a' ? row + 1 : 0;
            }
          };
          b.engine.groupMembers!('w', 'job.*', members(0));
          await b.engine.live('job.*');
          await onlyA('job.after');
          b.engine.groupMembers!('w', 'job.*', members(1));
          await b.engine.live('job.*');
          await stop(b.engine);
          await onlyA('job.end');
        });

        it('picks only a node holding a member whose filter the event passes', async () => {
          const [a, b] = await pair();
          a.engine.interest('sale.*', true);
          a.engine.groupMembers!('s', 'sale.*', [{ filter: { l: ['eu'] }, count: 2, slow: 0 }]);
          b.engine.interest('sale.*', true);
          b.engine.groupMembers!('s', 'sale.*', [{ filter: { l: ['us'] }, count: 1, slow: 0 }, { filter: { k: ['vip'] }, count: 1, slow: 0 }]);
          await a.engine.live('sale.*');
          await b.engine.live('sale.*');
          // a hears of b's members by a notice: publish a us event until a picks b for it.
          for (let i = 0; ; i++) {
            if (i === 200) throw new Error('a never picked b for a us event');
            const probe = await a.publish('sale.probe', String(i), { labels: ['us'] });
            await until('b to get the probe', () => b.sunk.some((e) => e.id === probe.id));
            if (placed(a, b, [probe.id], 's sale.*')[0] === 'b') break;
          }
          const eu = await a.publish('sale.x', 'eu', { labels: ['eu'] });
          const us = await a.publish('sale.x', 'us', { labels: ['us'] });
          const vip = await a.publish('sale.x', 'vip', { labels: ['asia'], key: 'vip' });
          const none = await a.publish('sale.x', 'none', { labels: ['asia'] });
          await until('b to get the four', () => [eu, us, vip, none].every((e) => b.sunk.some((x) => x.id === e.id)));
          expect(placed(a, b, [eu.id, us.id, vip.id, none.id], 's sale.*')).toEqual(['a', 'b', 'b', 'none']);
        });

        it('picks a node whose members are all slow only when no member elsewhere keeps up', async () => {
          const [a, b] = await pair();
          for (const r of [a, b]) {
            r.engine.interest('job.*', true);
            r.engine.groupMembers!('w', 'job.*', members(1));
            await r.engine.live('job.*');
          }
          /** Publishes on a until `node` is picked `times` times in a row (or fails after 300). */
          const streak = async (node: 'a' | 'b', times: number): Promise<void> => {
            let row = 0;
            for (let i = 0; row < times; i++) {
              if (i === 300) throw new Error(`a never picked ${node} ${times} times in a row`);
              const e = await a.publish('job.x', String(i));
              await until('b to get it', () => b.sunk.some((x) => x.id === e.id));
              row = placed(a, b, [e.id], 'w job.*')[0] === node ? row + 1 : 0;
            }
          };
          await streak('b', 1); // a knows b's member
          b.engine.groupMembers!('w', 'job.*', members(1, 1)); // b's member is slow now
          await b.engine.live('job.*');
          await streak('a', 6); // with b's member counted, at most 1 in a row
          a.engine.groupMembers!('w', 'job.*', members(1, 1)); // every member slow: all of them again
          await a.engine.live('job.*');
          await streak('b', 1);
        });

        it('carries a request with its queue group picks: one node serves each group', async () => {
          const [a, b] = await pair();
          const onA = probe(a.engine, 1);
          const onB = probe(b.engine, 1);
          for (const r of [a, b]) {
            r.engine.interest('svc.*', true);
            r.engine.groupMembers!('q', 'svc.*', members(1));
            await r.engine.live('svc.*');
          }
          const serves = (p: RequestProbe, data: string): boolean => p.requests.some((r) => Buffer.from(r.frame).includes(Buffer.from(`q-${data}`)) && r.chosen?.has('q svc.*') === true);
          // a hears of b's member by a notice: ask until b is picked once.
          for (let i = 0; ; i++) {
            if (i === 200) throw new Error('a never picked b for a request');
            await a.engine.request(requestMessage('svc.x', `p${i}`));
            await until('both nodes to get the request', () => [onA, onB].every((p) => p.requests.some((r) => Buffer.from(r.frame).includes(Buffer.from(`q-p${i}`)))));
            if (serves(onB, `p${i}`)) break;
          }
          for (let i = 0; i < 10; i++) await a.engine.request(requestMessage('svc.x', `r${i}`));
          await until('both nodes to get the 10 requests', () => [onA, onB].every((p) => p.requests.filter((r) => Buffer.from(r.frame).includes(Buffer.from('q-r'))).length === 10));
          const onAServes = Array.from({ length: 10 }, (_, i) => serves(onA, `r${i}`));
          const onBServes = Array.from({ length: 10 }, (_, i) => serves(onB, `r${i}`));
          expect(onAServes.map((x, i) => Number(x) + Number(onBServes[i]))).toEqual(Array(10).fill(1));
          expect(onAServes.filter(Boolean)).toHaveLength(5);
        });

        it('sequences publishes of both instances in one stream: offsets and seqs never repeat', async () => {
          const [a, b] = await pair();
          const events = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).publish('shared', String(i))));
          expect(new Set(events.map((e) => e.offset)).size).toBe(20);
          expect(new Set(events.map((e) => e.seq)).size).toBe(20);
          expect(Math.max(...events.map((e) => e.offset))).toBe(20);
          const page = await b.engine.history('shared', undefined, 100);
          expect(page.events.map((e) => e.offset)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
        });

        it('shares parked sessions and the idempotency window', async () => {
          const [a, b] = await pair();
          const session: ParkedSession = { secret: 's', principal: '', subscriptions: [{ pattern: 'x.>', filter: undefined, since: 3 }] };
          await a.engine.parkSession('u1', session, 60_000);
          expect(await b.engine.takeSession('u1', { secret: 's', principal: '' })).toEqual({ session });
          expect(await a.engine.takeSession('u1', { secret: 's', principal: '' })).toEqual({ none: true });
          const first = await a.engine.publish({ channel: 'once', data: text('1'), idempotency: { scope: 'p', id: 'm1' } });
          const again = await b.engine.publish({ channel: 'once', data: text('1'), idempotency: { scope: 'p', id: 'm1' } });
          expect(again).toEqual(first);
          expect((await b.engine.history('once', undefined, 10)).events).toHaveLength(1);
        });

        it('keeps the session a live stream recorded on an instance that ends without parking it, for its ttl after that instance\'s end', async () => {
          const [a, b] = await pair();
          const session: ParkedSession = { secret: 's', principal: '', subscriptions: [{ pattern: 'x.>', filter: undefined, since: 0 }] };
          a.engine.saveSession('live1', session, 30_000);
          a.engine.saveSession('live2', session, 30_000);
          await a.engine.history('sync', undefined, 1); // the saves went before this read, on the same connection
          expect(await b.engine.takeSession('live1', { secret: 'wrong', principal: '' })).toEqual({ refused: true });
          expect(await b.engine.parkedSessions()).toBe(0); // live, not parked
          await stop(a.engine); // a crash: nothing parked
          expect(await b.engine.takeSession('live1', { secret: 's', principal: '' })).toEqual({ session });
          b.clock.advance(31_000);
          expect(await b.engine.takeSession('live2', { secret: 's', principal: '' })).toEqual({ none: true });
        });
      });
    }

    describe('epoch', () => {
      it('is stable while the engine runs', async () => {
        const { engine, publish } = await rig();
        const epoch = engine.epoch;
        expect(typeof epoch).toBe('string');
        expect(epoch.length).toBeGreaterThan(0);
        await publish('a');
        expect(engine.epoch).toBe(epoch);
      });

      if (traits.historySurvivesNewInstance) {
        it('is kept, with the history, by a new instance over the same store', async () => {
          const first = await rig();
          const a1 = await first.publish('a', 'kept');
          await stop(first.engine);
          const second = await rig({}, first.clock, first.engine);
          expect(second.engine.epoch).toBe(first.engine.epoch);
          const page = await second.engine.history('a', { epoch: a1.epoch, offset: 0 }, 10);
          expect([bodies(page.events), page.complete]).toEqual([['kept'], true]);
          const a2 = await second.publish('a', 'next');
          expect([a2.offset, a2.epoch, a2.seq > a1.seq]).toEqual([2, a1.epoch, true]);
        });
      } else {
        it('is another in a new instance, which has none of the old history', async () => {
          const first = await rig();
          const a1 = await first.publish('a', 'lost');
          await stop(first.engine);
          const second = await rig({}, first.clock, first.engine);
          expect(second.engine.epoch).not.toBe(first.engine.epoch);
          const page = await second.engine.history('a', { epoch: a1.epoch, offset: 0 }, 10);
          expect([page.events, page.complete]).toEqual([[], false]);
          expect(second.engine.position()).toBe(0);
          const a2 = await second.publish('a', 'new');
          expect([a2.offset, a2.epoch === a1.epoch]).toEqual([1, false]);
        });
      }
    });
  });
}
