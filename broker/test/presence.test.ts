// Presence on one node, as raw WebSocket clients see it: counts per channel name (every
// subscription an event reaches) and per pattern (exactly that pattern), principal ids only with a
// presence grant and never a uuid, GET /presence, and join/leave notices (`pe`).
import { createHash } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@crier/broker';
import { FrameType, PROTOCOL_VERSION, type Frame, type PresenceAnswerFrame, type PresenceChangeFrame } from '@crier/protocol';
import { DEFAULT_DECODE_LIMITS, decodeFrame } from '@crier/protocol';
import { MAX_NOTICES_PER_FLUSH, Presence } from '../src/core/presence.js';
import { SubscriptionRegistry } from '../src/core/registry.js';
import type { Flushable, Subscriber } from '../src/core/subscriber.js';
import { RawClient, cleanup, startBroker, waitFor } from './helpers.js';
import type { Engine } from '../src/index.js';
import type { PresenceCarrier, PresenceNews } from '../src/engine/engine.js';
import { MemoryEngine } from '../src/engine/memory-engine.js';
import { systemClock } from '../src/clock.js';

afterEach(cleanup);

const SECRET = 'a-presence-test-secret-of-32-bytes-or-more';
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const jwt = (sub: string, crier?: object): Promise<string> =>
  new SignJWT({ sub, exp: Math.floor(Date.now() / 1000) + 600, ...(crier === undefined ? {} : { crier }) })
    .setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));

let nextR = 1000;
/** Asks who subscribes to `p`: the presence answer, or the error. */
async function ask(client: RawClient, p: string, m?: boolean): Promise<Frame> {
  const r = nextR++;
  client.send({ t: FrameType.presence, r, p, ...(m === undefined ? {} : { m }) });
  return client.waitFrame(`the presence answer ${r}`, (f) => (f.t === FrameType.presence || f.t === FrameType.error) && 'r' in f && f.r === r);
}

async function count(client: RawClient, p: string, m?: boolean): Promise<{ n: number; m?: string[] }> {
  const a = await ask(client, p, m);
  if (a.t !== FrameType.presence) throw new Error(`presence ${p}: ${JSON.stringify(a)}`);
  const { n, m: ids } = a as PresenceAnswerFrame;
  return ids === undefined ? { n } : { n, m: ids };
}

async function sub(client: RawClient, p: string, extra: object = {}): Promise<Frame> {
  return client.request({ t: FrameType.subscribe, r: 0, p, ...extra });
}

async function helloAs(url: string, tk: string, uuid?: string): Promise<RawClient> {
  const c = await RawClient.open(url);
  c.send({ t: FrameType.hello, v: PROTOCOL_VERSION, tk, ...(uuid === undefined ? {} : { u: uuid }) });
  await c.waitFrame('welcome', (f) => f.t === FrameType.welcome);
  return c;
}

const notices = (c: RawClient): PresenceChangeFrame[] => c.frames.filter((f): f is PresenceChangeFrame => f.t === FrameType.presenceChange);

async function httpPresence(b: Broker, path: string, token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(new URL(path, b.url.replace(/^ws/, 'http')), token === undefined ? {} : { headers: { Authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('counts', () => {
  it('a channel name counts every connection an event on it reaches; a pattern, those holding exactly it', async () => {
    const b = await startBroker();
    const [a, c, d, e, asker] = await Promise.all([0, 1, 2, 3, 4].map(() => RawClient.connect(b.url)));
    await sub(a!, 'room.1');
    await sub(a!, 'room.*'); // the same connection twice: counted once
    await sub(c!, 'room.*');
    await sub(d!, 'room.>', { f: { l: ['x'] } });
    await sub(e!, 'room.*', { g: 'workers' }); // a queue group member is reached too
    expect(await count(asker!, 'room.1')).toEqual({ n: 4 });
    expect(await count(asker!, 'room.2')).toEqual({ n: 4 }); // by patterns only
    expect(await count(asker!, 'room.*')).toEqual({ n: 3 }); // a, c and e hold exactly room.*
    expect(await count(asker!, 'room.>')).toEqual({ n: 1 });
    expect(await count(asker!, 'other')).toEqual({ n: 0 });
    // Anonymous principals never appear among the members, and uuids never do.
    expect(await count(asker!, 'room.1', true)).toEqual({ n: 4, m: [] });
    c!.ws.terminate();
    await waitFor('c gone', async () => (await count(asker!, 'room.*')).n === 2);
    await a!.request({ t: FrameType.unsubscribe, r: 0, p: 'room.1' });
    expect(await count(asker!, 'room.1')).toEqual({ n: 3 }); // a still holds room.*
    // Bad input: stable codes.
    expect(await ask(asker!, 'a..b')).toMatchObject({ t: FrameType.error, code: 'bad_pattern' });
  });

  it('needs a subscribe grant covering the name or pattern; gives ids only with a presence grant, never anonymous ones or uuids', async () => {
    const b = await startBroker({
      jwtSecret: SECRET, jwtClockTolerance: 0, jwtSubscribe: ['room.>'], jwtPublish: [],
      tokens: [{ id: 'svc', sha256: sha('svc-token'), subscribe: ['room.>'], presence: ['room.>'] }],
    });
    const alice = await helloAs(b.url, await jwt('alice'), 'uuid-of-alice');
    const bob = await helloAs(b.url, await jwt('bob', { presence: ['room.{sub}'] }), 'uuid-of-bob');
    const carol = await helloAs(b.url, await jwt('carol', { subscribe: ['room.1'], presence: ['room.1'] }));
    const svc = await helloAs(b.url, 'svc-token');
    await sub(alice, 'room.1');
    await sub(bob, 'room.1');
    await sub(svc, 'room.*');
    // No presence grant: the count only.
    expect(await count(alice, 'room.1', true)).toEqual({ n: 3 });
    // A presence grant that does not cover it: the count only.
    expect(await count(bob, 'room.1', true)).toEqual({ n: 3 });
    // Granted: the principals' ids, sorted, never their uuids.
    const answer = await count(carol, 'room.1', true);
    expect(answer).toEqual({ n: 3, m: ['jwt:alice', 'jwt:bob', 'token:svc'] });
    expect(JSON.stringify(answer)).not.toContain('uuid-of');
    expect(await count(carol, 'room.1')).toEqual({ n: 3 }); // not asked: not given
    // No subscribe grant covering it: forbidden.
    expect(await ask(carol, 'room.*')).toMatchObject({ t: FrameType.error, code: 'forbidden' });
    expect(await ask(carol, 'room.2')).toMatchObject({ t: FrameType.error, code: 'forbidden' });
    expect(await count(svc, 'room.*', true)).toEqual({ n: 1, m: ['token:svc'] });
  });

  it('answers GET /presence/<channel-or-pattern> with the same rules', async () => {
    const b = await startBroker({
      tokens: [
        { id: 'svc', sha256: sha('svc-token'), subscribe: ['room.>'], presence: ['room.>'] },
        { id: 'plain', sha256: sha('plain-token'), subscribe: ['room.>'] },
        { id: 'other', sha256: sha('other-token'), subscribe: ['user.>'] },
      ],
    });
    const svc = await helloAs(b.url, 'svc-token');
    const plain = await helloAs(b.url, 'plain-token');
    await sub(svc, 'room.1');
    await sub(plain, 'room.*');
    expect(await httpPresence(b, '/presence/room.1', 'svc-token')).toEqual({ status: 200, body: { n: 2 } });
    expect(await httpPresence(b, '/presence/room.1?members', 'svc-token')).toEqual({ status: 200, body: { n: 2, m: ['token:plain', 'token:svc'] } });
    expect(await httpPresence(b, '/presence/room.*?members', 'plain-token')).toEqual({ status: 200, body: { n: 1 } });
    expect(await httpPresence(b, '/presence/room.%2A', 'plain-token')).toEqual({ status: 200, body: { n: 1 } });
    expect(await httpPresence(b, '/presence/room.1', 'other-token')).toMatchObject({ status: 403, body: { code: 'forbidden' } });
    expect(await httpPresence(b, '/presence/room.1')).toMatchObject({ status: 401, body: { code: 'unauthorized' } });
    expect(await httpPresence(b, '/presence/a..b', 'svc-token')).toMatchObject({ status: 400, body: { code: 'bad_pattern' } });
    expect(await httpPresence(b, '/presence/a%zz', 'svc-token')).toMatchObject({ status: 400, body: { code: 'bad_channel' } });
    const post = await fetch(new URL('/presence/room.1', b.url.replace(/^ws/, 'http')), { method: 'POST', headers: { Authorization: 'Bearer svc-token' } });
    expect(post.status).toBe(405);
    // Anonymous on loopback with no credential configured, as /history.
    const open = await startBroker();
    const anon = await RawClient.connect(open.url);
    await sub(anon, 'x');
    expect(await httpPresence(open, '/presence/x?members')).toEqual({ status: 200, body: { n: 1, m: [] } });
  });
});

describe('a deployment with a node that does not answer', () => {
  it('says so: pa on the socket, partial over HTTP, with the count of the nodes that answered', async () => {
    const inner = new MemoryEngine({
      channelCacheSize: 1000, historySize: 100, historyBytes: 1 << 20, historyTtl: 300_000, historyTotalBytes: 64 << 20,
      idempotencyWindow: 0, idempotencyKeys: 0,
    } as ConstructorParameters<typeof MemoryEngine>[0], systemClock);
    // The memory engine is one node; this one answers as a Redis engine does when a node was silent.
    const engine = new Proxy(inner, {
      get(target, prop) {
        if (prop === 'presence') return (p: string, m: boolean) => ({ ...target.presence(p, m), partial: true });
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    }) as Engine;
    const b = await startBroker({ engine });
    const asker = await RawClient.connect(b.url);
    await sub(asker, 'room.9');
    expect(await ask(asker, 'room.9')).toEqual({ t: FrameType.presence, r: expect.any(Number), p: 'room.9', n: 1, pa: true });
    const res = await fetch(new URL('/presence/room.9', b.url.replace(/^ws/, 'http')));
    expect(await res.json()).toEqual({ n: 1, partial: true });
  });
});

describe('join/leave notices', () => {
  it('a subscription with pe hears others start and stop subscribing to its channel, with ids only when granted', async () => {
    const b = await startBroker({
      jwtSecret: SECRET, jwtClockTolerance: 0, jwtSubscribe: ['room.>'], jwtPublish: [],
    });
    const watcher = await helloAs(b.url, await jwt('w', { presence: ['room.>'] }));
    const blind = await helloAs(b.url, await jwt('blind'));
    expect(await sub(watcher, 'room.1', { pe: true })).toMatchObject({ t: FrameType.ack });
    expect(await sub(blind, 'room.1', { pe: true })).toMatchObject({ t: FrameType.ack });
    // A pattern cannot ask for notices.
    expect(await sub(watcher, 'room.*', { pe: true })).toMatchObject({ t: FrameType.error, code: 'bad_frame' });
    // The watcher heard blind join (the watcher does not hear itself).
    await waitFor('blind joined', () => notices(watcher).length === 1 && notices(watcher), { wakeOn: [watcher.changed] });
    expect(notices(watcher)).toEqual([{ t: FrameType.presenceChange, c: 'room.1', j: true, n: 2, m: 'jwt:blind' }]);
    const zed = await helloAs(b.url, await jwt('zed'), 'uuid-of-zed');
    await sub(zed, 'room.1');
    await sub(zed, 'room.1', { f: { l: ['a'] } }); // a second subscription of the channel: no notice
    await sub(zed, 'room.*'); // another pattern: not about room.1
    await waitFor('zed joined', () => notices(blind).length === 1, { wakeOn: [blind.changed] });
    expect(notices(blind)).toEqual([{ t: FrameType.presenceChange, c: 'room.1', j: true, n: 3 }]); // no grant: no id
    zed.ws.terminate();
    await waitFor('zed left', () => notices(watcher).length === 3, { wakeOn: [watcher.changed] });
    expect(notices(watcher).slice(1)).toEqual([
      { t: FrameType.presenceChange, c: 'room.1', j: true, n: 3, m: 'jwt:zed' },
      { t: FrameType.presenceChange, c: 'room.1', j: false, n: 2, m: 'jwt:zed' },
    ]);
    expect(JSON.stringify(watcher.frames)).not.toContain('uuid-of');
    // The watcher's own unsubscribe ends its notices; blind hears it leave.
    await watcher.request({ t: FrameType.unsubscribe, r: 0, p: 'room.1' });
    await waitFor('w left', () => notices(blind).length === 3, { wakeOn: [blind.changed] });
    expect(notices(blind)[2]).toEqual({ t: FrameType.presenceChange, c: 'room.1', j: false, n: 1 });
    // /stats: the notices and questions, and the most subscribed names and patterns.
    const stats = b.stats();
    expect(stats.presence).toMatchObject({ watched: 1, queries: 0 });
    expect(stats.presence.notices).toBeGreaterThanOrEqual(5);
    expect(stats.presence.top[0]).toEqual({ name: 'room.1', pattern: false, subscribers: 1 });
  });

  it('a crowd joining gets its watcher at most one notice per joiner, the last with the exact count', async () => {
    const b = await startBroker();
    const watcher = await RawClient.connect(b.url);
    await sub(watcher, 'lobby', { pe: true });
    const crowd = await Promise.all(Array.from({ length: 100 }, () => RawClient.connect(b.url)));
    // Every subscribe in one message each, all arriving in few turns.
    for (const c of crowd) c.send({ t: FrameType.subscribe, r: 1, p: 'lobby' });
    await waitFor('the count reaches 101', () => {
      const last = notices(watcher).at(-1);
      return last !== undefined && last.n === 101;
    }, { wakeOn: [watcher.changed] });
    // Never more than one per joiner, and the count of the last is exact.
    expect(notices(watcher).length).toBeLessThanOrEqual(100);
    expect(notices(watcher).every((f) => f.j && f.m === undefined)).toBe(true);
  });
});

describe('notices per turn (the core, one turn by hand)', () => {
  const subscriber = (id?: string): Subscriber => ({
    stamp: 0, filter: undefined, subscriptions: new Map(), deliver: () => true,
    get sub() {
      return this;
    },
    ...(id === undefined ? {} : { principal: { id, kind: 'jwt' } }),
  }) as Subscriber;

  it('folds a storm past 64 changes into one notice with the count, and a join and leave of one subscriber into none', () => {
    const registry = new SubscriptionRegistry();
    const dirty: Flushable[] = [];
    const presence = new Presence(registry, (item) => {
      item.dirty = true;
      dirty.push(item);
    });
    const frames: PresenceChangeFrame[] = [];
    const me = subscriber('me');
    registry.add(me, 'lobby', undefined);
    presence.watch(me, 'lobby', { maySee: () => true, enqueueControl: (f) => frames.push(decodeFrame(f, DEFAULT_DECODE_LIMITS) as PresenceChangeFrame), gone: false });
    const flicker = subscriber('flicker');
    registry.add(flicker, 'lobby', undefined);
    registry.remove(flicker, 'lobby', undefined);
    for (let i = 0; i < 200; i++) registry.add(subscriber(`u${i}`), 'lobby', undefined);
    expect(dirty).toHaveLength(1);
    presence.dirty = false;
    presence.flush();
    expect(frames).toHaveLength(MAX_NOTICES_PER_FLUSH);
    expect(frames[0]).toEqual({ t: FrameType.presenceChange, c: 'lobby', j: true, n: 2, m: 'u0' });
    expect(frames.some((f) => f.m === 'flicker')).toBe(false);
    expect(frames.at(-1)).toEqual({ t: FrameType.presenceChange, c: 'lobby', j: true, n: 201 });
    expect(presence.stats()).toMatchObject({ watched: 1, notices: MAX_NOTICES_PER_FLUSH, folded: 200 - MAX_NOTICES_PER_FLUSH + 1 });
  });

  it('with a carrier (nodes sharing the engine): holds a channel\'s first notices until the other nodes\' count is known, adds it to n, tells their news, and sends this node\'s news of channels watched elsewhere', () => {
    const registry = new SubscriptionRegistry();
    const presence = new Presence(registry, (item) => {
      item.dirty = true;
    });
    let sink: (news: PresenceNews) => void = () => {};
    const watched: [string, boolean][] = [];
    const sent: PresenceNews[][] = [];
    const elsewhere = new Set(['hall']);
    let settled = false;
    const carrier: PresenceCarrier = {
      onNews: (s, held) => {
        sink = s;
        expect(held('lobby')).toBe(0);
      },
      watch: (channel, watching) => watched.push([channel, watching]),
      watchedElsewhere: (channel) => elsewhere.has(channel),
      settled: () => settled,
      send: (news) => sent.push(news),
    };
    presence.carry(carrier);
    const turn = (): void => {
      presence.dirty = false;
      presence.flush();
    };
    const frames: PresenceChangeFrame[] = [];
    const me = subscriber('me');
    registry.add(me, 'lobby', undefined);
    presence.watch(me, 'lobby', { maySee: () => true, enqueueControl: (f) => frames.push(decodeFrame(f, DEFAULT_DECODE_LIMITS) as PresenceChangeFrame), gone: false });
    expect(watched).toEqual([['lobby', true]]);
    registry.add(subscriber('u'), 'lobby', undefined);
    turn();
    expect(frames).toEqual([]); // held: the other nodes' count is not known yet
    settled = true;
    sink({ channel: 'lobby', n: 5, changes: [] }); // the other nodes hold 5
    expect(presence.dirty).toBe(true);
    turn();
    expect(frames).toEqual([{ t: FrameType.presenceChange, c: 'lobby', j: true, n: 7, m: 'u' }]);
    // Another node's news: one joined there (6 now), told with the deployment's count.
    sink({ channel: 'lobby', n: 6, changes: [{ j: true, m: 'jwt:r' }] });
    turn();
    expect(frames.at(-1)).toEqual({ t: FrameType.presenceChange, c: 'lobby', j: true, n: 8, m: 'jwt:r' });
    // A node gone with its 6: one notice, no id.
    sink({ channel: 'lobby', n: 0, changes: [], more: 6, net: -6 });
    turn();
    expect(frames.at(-1)).toEqual({ t: FrameType.presenceChange, c: 'lobby', j: false, n: 2 });
    // News of a channel not watched here: ignored.
    sink({ channel: 'elsewhere', n: 1, changes: [{ j: true }] });
    turn();
    expect(frames).toHaveLength(3);
    // This node's changes of a channel another node watches: sent in one batch per turn, ids of authenticated ones only.
    const x = subscriber('x');
    registry.add(x, 'hall', undefined);
    registry.add(subscriber(), 'hall', undefined);
    registry.add(subscriber('y'), 'nobody.watches', undefined);
    turn();
    expect(sent).toEqual([[{ channel: 'hall', n: 2, changes: [{ j: true, m: 'x' }, { j: true }] }]]);
    // The last watcher leaves: the carrier is told, nothing more is sent about lobby.
    registry.remove(me, 'lobby', undefined);
    expect(watched).toEqual([['lobby', true], ['lobby', false]]);
    turn();
    expect(sent).toHaveLength(1);
  });

  it('with a carrier: a turn looks only at the channels with something new, not at every channel whose notices are held', () => {
    const registry = new SubscriptionRegistry();
    const presence = new Presence(registry, (item) => {
      item.dirty = true;
    });
    let sink: (news: PresenceNews) => void = () => {};
    let asked = 0;
    const unsettled = new Set<string>();
    presence.carry({
      onNews: (s) => (sink = s),
      watch: () => {},
      watchedElsewhere: () => false,
      settled: (channel) => (asked++, !unsettled.has(channel)),
      send: () => {},
    });
    const turn = (): void => {
      presence.dirty = false;
      presence.flush();
    };
    const frames: [string, number][] = [];
    const watch = (channel: string): void => {
      const me = subscriber();
      registry.add(me, channel, undefined);
      presence.watch(me, channel, { maySee: () => false, enqueueControl: (f) => frames.push([channel, (decodeFrame(f, DEFAULT_DECODE_LIMITS) as PresenceChangeFrame).n]), gone: false });
    };
    // 1000 channels first watched (their notices held until the other nodes' counts are known), a change on each.
    for (let i = 0; i < 1000; i++) {
      unsettled.add(`room.${i}`);
      watch(`room.${i}`);
      registry.add(subscriber(), `room.${i}`, undefined);
    }
    turn();
    watch('lobby');
    registry.add(subscriber(), 'lobby', undefined);
    asked = 0;
    turn();
    expect(frames).toEqual([['lobby', 2]]);
    expect(asked).toBe(1); // lobby's only
    // room.7 settles: the carrier's word (its count) makes it due again, its held notice goes.
    unsettled.delete('room.7');
    sink({ channel: 'room.7', n: 3, changes: [] });
    asked = 0;
    turn();
    expect(frames.at(-1)).toEqual(['room.7', 5]);
    expect(asked).toBe(1);
  });
});
