// Several brokers on one Redis, in this process: what a client sees of the nodes behind a load
// balancer (one broker), and of a Redis that goes away. The engine contract (engine/) holds the
// Redis engine to the memory engine's promises; this file holds the brokers on it to theirs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CloseCode, ErrorCode, FrameType, PROTOCOL_VERSION, type ErrorFrame, type EventFrame, type Frame, type PresenceChangeFrame, type ReplyAnswerFrame, type WelcomeFrame,
} from '@crier/protocol';
import type { Broker } from '../src/index.js';
import { RawClient, cleanup, startBroker, text, waitFor } from './helpers.js';
import { answerTo, ask, body, requestsOf, replyTo, respond, sendRequest, waitRequests } from './request-helpers.js';
import { redisCommand, startRedis, startRedisCluster, type RedisCluster, type RedisServer } from './redis-server.js';

let redis: RedisServer;
let cluster: RedisCluster;
let deployments = 0;
/** Where the nodes of the next deployment meet: one Redis server, or a Redis Cluster of three masters. */
let on: 'server' | 'cluster' = 'server';

beforeAll(async () => {
  [redis, cluster] = await Promise.all([startRedis(), startRedisCluster()]);
}, 30_000);
afterAll(async () => {
  await Promise.all([redis?.stop(), cluster?.stop()]);
});
afterEach(cleanup);

/** `n` brokers on the Redis, as one deployment (a key prefix of its own). */
type NodeOptions = {
  resumeWindow?: number; bufferSize?: number; maxBufferBytes?: number;
  jwtSecret?: string; jwtClockTolerance?: number; jwtSubscribe?: string[]; jwtPublish?: string[];
};
async function nodes(n: 2, options?: NodeOptions): Promise<[Broker, Broker]>;
async function nodes(n: 3, options?: NodeOptions): Promise<[Broker, Broker, Broker]>;
async function nodes(n: number, options: NodeOptions = {}): Promise<Broker[]> {
  const prefix = `d${deployments++}:`;
  const brokers: Broker[] = [];
  for (let i = 0; i < n; i++) {
    // On the cluster each node starts from another of its masters.
    const url = on === 'server' ? redis.url : cluster.urls[i % cluster.urls.length]!;
    brokers.push(await startBroker({ redis: url, redisCluster: on === 'cluster', redisPrefix: prefix, nodeName: `node${i}`, ...options }));
  }
  return brokers;
}

async function publish(publisher: RawClient, channel: string, body: string): Promise<Frame> {
  return publisher.request({ t: FrameType.publish, c: channel, d: text(body) });
}

const SECRET = 'a-presence-test-secret-of-32-bytes-or-more';
const jwt = (sub: string, crier?: object): Promise<string> =>
  new SignJWT({ sub, exp: Math.floor(Date.now() / 1000) + 600, ...(crier === undefined ? {} : { crier }) })
    .setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));

/** A connection authenticated with `tk` (a JWT), on its welcome. */
async function helloAs(url: string, tk: string, uuid?: string): Promise<RawClient> {
  const c = await RawClient.open(url);
  c.send({ t: FrameType.hello, v: PROTOCOL_VERSION, tk, ...(uuid === undefined ? {} : { u: uuid }) });
  c.welcome = (await c.waitFrame('welcome', (f) => f.t === FrameType.welcome)) as WelcomeFrame;
  return c;
}

const notices = (c: RawClient): PresenceChangeFrame[] => c.frames.filter((f): f is PresenceChangeFrame => f.t === FrameType.presenceChange);

const bodies = (events: EventFrame[]): string[] => events.map((e) => `${e.c}:${Buffer.from(e.d).toString()}`);

/** Opens a socket on `url` resuming `old`'s stream from the last event it received. */
async function resumeOn(url: string, old: RawClient, s = old.events().at(-1)?.s ?? 0): Promise<RawClient> {
  const next = await RawClient.open(url);
  next.send({ t: FrameType.hello, v: PROTOCOL_VERSION, u: old.welcome!.u, s: old.welcome!.s, rp: { e: old.welcome!.ep!, s } });
  next.welcome = (await next.waitFrame('welcome', (f) => f.t === FrameType.welcome)) as WelcomeFrame;
  return next;
}

describe.each(['server', 'cluster'] as const)('nodes on one Redis %s are one broker', (where) => {
  beforeAll(() => {
    on = where;
  });

  it('a publish on any node reaches the subscribers of every node once, with the same id, offset and epoch, from the moment their subscribe is acknowledged', async () => {
    const [a, b] = await nodes(2);
    const onA = await RawClient.connect(a.url);
    const onB = await RawClient.connect(b.url);
    await onA.subscribe('room.*');
    await onB.subscribe('room.1');
    await onB.subscribe('room.>'); // two subscriptions of one client matching: still once
    const pubA = await RawClient.connect(a.url);
    const pubB = await RawClient.connect(b.url);
    expect((await publish(pubA, 'room.1', 'from a')).t).toBe(FrameType.ack);
    expect((await publish(pubB, 'room.1', 'from b')).t).toBe(FrameType.ack);
    await publish(pubB, 'room.1.deep', 'only >');
    const gotA = await onA.waitEvents(2);
    const gotB = await onB.waitEvents(3);
    expect(bodies(gotA)).toEqual(['room.1:from a', 'room.1:from b']);
    expect(bodies(gotB)).toEqual(['room.1:from a', 'room.1:from b', 'room.1.deep:only >']);
    for (let i = 0; i < 2; i++) {
      expect([gotA[i]!.id, gotA[i]!.o, gotA[i]!.e, gotA[i]!.s]).toEqual([gotB[i]!.id, gotB[i]!.o, gotB[i]!.e, gotB[i]!.s]);
    }
    expect(gotA.map((e) => e.o)).toEqual([1, 2]);
    expect(onA.welcome!.ep).toBe(onB.welcome!.ep);
    // Nothing arrives twice, and nothing arrives that was not subscribed (a glob `*` crosses dots).
    await publish(pubA, 'room.end', 'end');
    await onA.waitEvents(3);
    expect(bodies(onA.events())).toEqual(['room.1:from a', 'room.1:from b', 'room.end:end']);
    expect(a.stats().engine).toMatchObject({ kind: 'redis', ready: true, node: 'node0' });
    const refiltered = a.stats().engine.refiltered ?? 0;
    expect(refiltered).toBeGreaterThanOrEqual(1); // room.1.deep reached node0 through room.* and was dropped
  });

  it('a client moved to another node resumes there: every missed event once, wildcards included', async () => {
    const [a, b, c] = await nodes(3);
    const stream = await RawClient.connect(a.url);
    await stream.subscribe('user.>');
    const publisher = await RawClient.connect(c.url);
    await publish(publisher, 'user.a', 'seen');
    await stream.waitEvents(1);
    stream.ws.terminate();
    await eventually('node0 to park the stream', async () => (await fetchParked(a)) === 1);
    await publish(publisher, 'user.a', 'm1');
    await publish(publisher, 'user.new', 'm2');
    await publish(publisher, 'other', 'not subscribed');
    const back = await resumeOn(b.url, stream);
    expect(back.welcome!.rs).toEqual({ n: 2 });
    expect(bodies(await back.waitEvents(2))).toEqual(['user.a:m1', 'user.new:m2']);
    await publish(publisher, 'user.b', 'live');
    expect(bodies(await back.waitEvents(3))).toEqual(['user.a:m1', 'user.new:m2', 'user.b:live']);
  });

  it('a stream held live on one node is taken over from another with its secret: the old connection is closed replaced, nothing missed', async () => {
    const [a, b] = await nodes(2);
    const stream = await RawClient.connect(a.url);
    await stream.subscribe('t.*');
    const publisher = await RawClient.connect(b.url);
    await publish(publisher, 't.1', 'seen');
    await stream.waitEvents(1);
    // Position 0: the client says its socket died before 'seen' arrived.
    const back = await resumeOn(b.url, stream, 0);
    expect((await stream.waitClose()).code).toBe(CloseCode.replaced);
    expect(back.welcome!.rs).toEqual({ n: 1 });
    await publish(publisher, 't.2', 'after');
    expect(bodies(await back.waitEvents(2))).toEqual(['t.1:seen', 't.2:after']);
  });

  it('refuses a takeover from another node without the secret, and the holder keeps its stream', async () => {
    const [a, b] = await nodes(2);
    const stream = await RawClient.connect(a.url);
    await stream.subscribe('t.*');
    const thief = await RawClient.open(b.url);
    thief.send({ t: FrameType.hello, v: PROTOCOL_VERSION, u: stream.welcome!.u, s: 'not-the-secret' });
    const closed = await thief.waitClose();
    expect(closed.code).toBe(CloseCode.helloRejected);
    expect(closed.reason).toMatch(/^forbidden: uuid .* is held by another connection/);
    const publisher = await RawClient.connect(b.url);
    await publish(publisher, 't.1', 'still here');
    expect(bodies(await stream.waitEvents(1))).toEqual(['t.1:still here']);
    expect(stream.closed).toBeUndefined();
  });

  it('an SSE stream on one node gets what another publishes from the moment it says subscribed', async () => {
    const [a, b] = await nodes(2);
    const res = await fetch(`${httpOf(b)}/events?channels=${encodeURIComponent('feed.*')}`);
    const reader = res.body!.getReader();
    let got = '';
    const until = async (text: string): Promise<void> => {
      const deadline = Date.now() + 5000;
      while (!got.includes(text)) {
        if (Date.now() > deadline) throw new Error(`no ${JSON.stringify(text)} in ${JSON.stringify(got)}`);
        const { value, done } = await reader.read();
        if (done) throw new Error('the stream ended');
        got += Buffer.from(value).toString();
      }
    };
    await until('event: subscribed');
    const publisher = await RawClient.connect(a.url);
    expect((await publish(publisher, 'feed.1', 'hello')).t).toBe(FrameType.ack);
    await until('hello');
    expect(got).toContain('event: feed.1\n');
    await reader.cancel();
  });

  it('keeps two nodes that share a name apart: each publish answered with its own event', async () => {
    const prefix = `d${deployments++}:`;
    const url = where === 'server' ? redis.url : cluster.urls[0]!;
    const twins = [
      await startBroker({ redis: url, redisCluster: where === 'cluster', redisPrefix: prefix, nodeName: 'same' }),
      await startBroker({ redis: url, redisCluster: where === 'cluster', redisPrefix: prefix, nodeName: 'same' }),
    ];
    const watcher = await RawClient.connect(twins[0]!.url);
    await watcher.subscribe('twin.*');
    const pubs = await Promise.all(twins.map((t) => RawClient.connect(t.url)));
    const acks = await Promise.all(pubs.flatMap((p, i) => [0, 1, 2].map((n) => publish(p, `twin.${i}`, `${i}-${n}`))));
    expect(acks.every((a) => a.t === FrameType.ack)).toBe(true);
    const ids = acks.map((a) => (a as { id?: string }).id);
    expect(new Set(ids).size).toBe(6);
    const got = await watcher.waitEvents(6);
    expect(new Set(got.map((e) => e.id))).toEqual(new Set(ids));
    expect(got.map((e) => `${e.c}:${Buffer.from(e.d).toString()}`).sort()).toEqual(['twin.0:0-0', 'twin.0:0-1', 'twin.0:0-2', 'twin.1:1-0', 'twin.1:1-1', 'twin.1:1-2']);
  });

  it('shares history: a node reads what another published', async () => {
    const [a, b] = await nodes(2);
    const publisher = await RawClient.connect(a.url);
    for (const body of ['1', '2', '3']) await publish(publisher, 'h.x', body);
    const res = await fetch(b.url.replace(/^ws/, 'http').replace(/\/$/, '') + '/history/h.x?limit=2');
    const page = (await res.json()) as { events: { offset: number; data: string }[] };
    expect(page.events.map((e) => [e.offset, e.data])).toEqual([[1, '1'], [2, '2']]);
  });

  it('request/reply across nodes: a request on one node is answered by a responder on another; nobody anywhere is no_responders at once', async () => {
    const [a, b, c] = await nodes(3);
    const responder = await RawClient.connect(b.url);
    await responder.subscribe('rpc.*');
    await responder.subscribe('rpc.>'); // a name and a pattern of one node: one request event
    const filtered = await RawClient.connect(c.url);
    expect((await filtered.request({ t: FrameType.subscribe, r: 0, p: 'rpc.*', f: { l: ['never'] } })).t).toBe(FrameType.ack);
    const stop = respond(responder, (d) => `from b: ${d}`);
    const requester = await RawClient.connect(a.url);
    const answer = (await ask(requester, 'rpc.echo', 'hi', { l: ['x'] })) as ReplyAnswerFrame;
    expect(answer).toMatchObject({ t: FrameType.reply, c: 'rpc.echo' });
    expect(body(answer)).toBe('from b: hi');
    expect(requestsOf(responder)).toHaveLength(1);
    expect(requestsOf(filtered)).toHaveLength(0);
    stop();
    // Node c's subscription filters every request out, node b's responder is gone: nobody, at once.
    await responder.request({ t: FrameType.unsubscribe, r: 0, p: 'rpc.*' });
    await responder.request({ t: FrameType.unsubscribe, r: 0, p: 'rpc.>' });
    const started = Date.now();
    expect(await ask(requester, 'rpc.echo', 'again', { l: ['x'], to: 20_000 })).toMatchObject({ code: ErrorCode.noResponders });
    expect(await ask(requester, 'nobody.at.all', 'x', { to: 20_000 })).toMatchObject({ code: ErrorCode.noResponders });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(a.stats().requests).toMatchObject({ sent: 3, answered: 1, noResponders: 2, pending: 0 });
    expect(b.stats().requests).toMatchObject({ delivered: 1, sent: 0 });
    // Through Redis: node0 sent three, took none (no interest); node1 took the first (once, though
    // it came twice; the second too if its unsubscribe reached Redis after it) and forwarded its
    // reply; node2 took both rpc.echo requests, and delivered them to nobody.
    expect(a.stats().engine.requests).toEqual({ sent: 3, received: 0, forwarded: 0 });
    expect(b.stats().engine.requests).toMatchObject({ sent: 0, forwarded: 1 });
    expect(b.stats().engine.requests!.received).toBeGreaterThanOrEqual(1);
    expect(c.stats().engine.requests).toEqual({ sent: 0, received: 2, forwarded: 0 });

  });

  it('a queue group spans the nodes: each event to exactly one member, spread by members over nodes; requests too', async () => {
    const [a, b] = await nodes(2);
    const members = [await RawClient.connect(a.url), await RawClient.connect(a.url), await RawClient.connect(b.url)];
    for (const m of members) {
      const answer = await m.request({ t: FrameType.subscribe, r: 0, p: 'job.*', g: 'workers' });
      expect(answer.t).toBe(FrameType.ack);
    }
    const plain = await RawClient.connect(b.url);
    await plain.subscribe('job.>');
    // Each node learns the other's members from a notice: wait until both count all three.
    await waitFor('both nodes to know the three members', () => [a, b].every((n) => n.stats().engine.groups?.members === 3));
    // Each publishing node picks by its own turn: 150 from each, a multiple of the 3 members.
    await Promise.all(Array.from({ length: 300 }, (_, i) => (i % 2 === 0 ? a : b).publish('job.run', text(String(i)))));
    await plain.waitEvents(300);
    await waitFor('the group to get the 300 events', () => members.reduce((n, m) => n + m.events().length, 0) >= 300, { wakeOn: members.map((m) => m.changed) });
    const counts = members.map((m) => m.events().length);
    console.log(`queue group across two nodes on Redis ${where}, members a1 / a2 / b1 x 300 events: ${counts.join(' / ')}`);
    expect(counts).toEqual([100, 100, 100]);
    const all = members.flatMap((m) => m.events().map((e) => Number(Buffer.from(e.d).toString()))).sort((x, y) => x - y);
    expect(all).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(a.stats().groups).toMatchObject({ members: 2, delivered: 200 });
    expect(b.stats().groups).toMatchObject({ members: 1, delivered: 100 });
    // Requests: one responder of the group answers each, wherever it is.
    members.forEach((m, i) => respond(m, (d) => `${i}:${d}`));
    const requester = await RawClient.connect(a.url);
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => ask(requester, 'job.ask', String(i))));
    const by = [0, 0, 0];
    for (const answer of answers) by[Number(body(answer as ReplyAnswerFrame).split(':')[0])]!++;
    console.log(`queue group requests across two nodes on Redis ${where}, a1 / a2 / b1 x 30 requests: ${by.join(' / ')}`);
    expect(by).toEqual([10, 10, 10]);
    expect(requestsOf(plain)).toHaveLength(30); // a plain subscriber gets every request, as every event
    // The member on b leaves: a picks b no more, the two on a share everything.
    members[2]!.ws.close();
    await waitFor('a to know b has no member left', () => a.stats().engine.groups?.members === 2);
    await Promise.all(Array.from({ length: 10 }, (_, i) => b.publish('job.more', text(String(i)))));
    await waitFor('a1 and a2 to get the 10 events', () => members[0]!.events('job.more').length + members[1]!.events('job.more').length === 10, { wakeOn: members.map((m) => m.changed) });
  });

  it('a queue group across nodes applies each member\'s filter: an event goes to a node holding a member it passes', async () => {
    const [a, b] = await nodes(2);
    const eu = await RawClient.connect(a.url);
    const us = await RawClient.connect(b.url);
    expect((await eu.request({ t: FrameType.subscribe, r: 0, p: 'sale.*', g: 'shop', f: { l: ['eu'] } })).t).toBe(FrameType.ack);
    expect((await us.request({ t: FrameType.subscribe, r: 0, p: 'sale.*', g: 'shop', f: { l: ['us'] } })).t).toBe(FrameType.ack);
    await waitFor('both nodes to know both members', () => [a, b].every((n) => n.stats().engine.groups?.members === 2));
    for (let i = 0; i < 10; i++) await (i % 2 === 0 ? a : b).publish('sale.new', text(`${i % 3 === 0 ? 'us' : 'eu'}${i}`), { labels: [i % 3 === 0 ? 'us' : 'eu'] });
    await eu.waitEvents(6);
    await us.waitEvents(4);
    expect(eu.events().map((e) => Buffer.from(e.d).toString())).toEqual(['eu1', 'eu2', 'eu4', 'eu5', 'eu7', 'eu8']);
    expect(us.events().map((e) => Buffer.from(e.d).toString())).toEqual(['us0', 'us3', 'us6', 'us9']);
  });

  it('a frozen member on one node is passed over by the publishing node: the members that read get its share', async () => {
    const [a, b] = await nodes(2, { bufferSize: 16, maxBufferBytes: 256 * 1024 });
    const reader = await RawClient.connect(a.url);
    const frozen = await RawClient.connect(b.url);
    for (const m of [reader, frozen]) expect((await m.request({ t: FrameType.subscribe, r: 0, p: 'work.*', g: 'w' })).t).toBe(FrameType.ack);
    await waitFor('both nodes to know both members', () => [a, b].every((n) => n.stats().engine.groups?.members === 2));
    frozen.ws.pause();
    // Rounds of 8 KiB events from a, half of them to b's member, until it is a slow consumer.
    const payload = new Uint8Array(8 * 1024);
    let published = 0;
    for (let round = 0; b.stats().slowConsumers === 0; round++) {
      if (round === 1000) throw new Error('the frozen member never became slow');
      for (let i = 0; i < 8; i++) await a.publish('work.load', payload);
      published += 8;
      await reader.waitEvents(published / 2);
    }
    await waitFor('a to know the member on b is slow', () => a.stats().engine.groups?.slow === 1);
    for (let i = 0; i < 20; i++) await a.publish('work.more', text(String(i)));
    await reader.waitEvents(20, 'work.more');
    console.log(`queue group across nodes on Redis ${where}: the member on b froze (slow after ${published} events); the next 20 went ${reader.events('work.more').length} to the reader on a`);
    frozen.ws.resume();
    await waitFor('the frozen member to recover', () => b.stats().slowConsumers === 0, { timeoutMs: 15_000 });
    await waitFor('a to know it recovered', () => a.stats().engine.groups?.slow === 0);
    expect(frozen.events('work.more')).toEqual([]);
  }, 60_000);

  it('presence notices are the deployment\'s: a watcher on one node hears joins and leaves on another with the deployment\'s count, ids only under its grant', async () => {
    const [a, b] = await nodes(2, { jwtSecret: SECRET, jwtClockTolerance: 0, jwtSubscribe: ['room.>'], jwtPublish: [] });
    const early = await helloAs(b.url, await jwt('early'));
    await early.subscribe('room.1'); // before anyone watches: part of the count the first notice starts from
    const watcher = await helloAs(a.url, await jwt('w', { presence: ['room.>'] }));
    const blind = await helloAs(a.url, await jwt('blind'));
    expect(await watcher.request({ t: FrameType.subscribe, r: 0, p: 'room.1', pe: true })).toMatchObject({ t: FrameType.ack });
    expect(await blind.request({ t: FrameType.subscribe, r: 0, p: 'room.1', pe: true })).toMatchObject({ t: FrameType.ack });
    // blind's join on a: told once b's count is known (early), so n counts every node.
    await waitFor('the watcher to hear blind', () => notices(watcher).length === 1, { wakeOn: [watcher.changed] });
    expect(notices(watcher)).toEqual([{ t: FrameType.presenceChange, c: 'room.1', j: true, n: 3, m: 'jwt:blind' }]);
    await waitFor('b to know room.1 is watched on a', () => b.stats().engine.presence?.watchedElsewhere === 1);
    // zed joins on b: both watchers on a hear it, the id only the granted one.
    const zed = await helloAs(b.url, await jwt('zed'), 'uuid-of-zed');
    await zed.subscribe('room.1');
    await zed.subscribe('room.*'); // another pattern: no news
    await waitFor('blind to hear zed join', () => notices(blind).length === 1, { wakeOn: [blind.changed] });
    expect(notices(blind)).toEqual([{ t: FrameType.presenceChange, c: 'room.1', j: true, n: 4 }]);
    zed.ws.terminate();
    await waitFor('the watcher to hear zed leave', () => notices(watcher).length === 3, { wakeOn: [watcher.changed] });
    expect(notices(watcher).slice(1)).toEqual([
      { t: FrameType.presenceChange, c: 'room.1', j: true, n: 4, m: 'jwt:zed' },
      { t: FrameType.presenceChange, c: 'room.1', j: false, n: 3, m: 'jwt:zed' },
    ]);
    await waitFor('blind to hear zed leave', () => notices(blind).length === 2, { wakeOn: [blind.changed] });
    expect(notices(blind)[1]).toEqual({ t: FrameType.presenceChange, c: 'room.1', j: false, n: 3 });
    expect(JSON.stringify([watcher.frames, blind.frames])).not.toContain('uuid-of');
    // Only watched channels cost traffic: b sent a news message per turn with a change of room.1.
    expect(b.stats().engine.presence!.newsSent).toBeGreaterThanOrEqual(2);
    expect(a.stats().engine.presence!.newsReceived).toBeGreaterThanOrEqual(2);
    // b closes: early leaves the count (its own leave, or b's holders gone with it).
    await b.close();
    await waitFor('the watcher to hear early leave', () => notices(watcher).at(-1)?.n === 2 && notices(watcher).at(-1), { wakeOn: [watcher.changed] });
    expect(notices(watcher).at(-1)).toMatchObject({ c: 'room.1', j: false, n: 2 });
  });

  it('presence counts the subscribers of every node together, over the socket and GET /presence', async () => {
    const [a, b] = await nodes(2);
    const onA = await RawClient.connect(a.url);
    const onB = await RawClient.connect(b.url);
    const alsoB = await RawClient.connect(b.url);
    await onA.subscribe('room.1');
    await onB.subscribe('room.*');
    await alsoB.subscribe('room.*');
    onA.send({ t: FrameType.presence, r: 77, p: 'room.1', m: true });
    const answer = await onA.waitFrame('the presence answer', (f) => f.t === FrameType.presence || f.t === FrameType.error);
    // Anonymous on loopback: every grant, and no id to show (anonymous principals never appear).
    expect(answer).toEqual({ t: FrameType.presence, r: 77, p: 'room.1', n: 3, m: [] });
    const res = await fetch(new URL('/presence/room.*', b.url.replace(/^ws/, 'http')));
    expect(await res.json()).toEqual({ n: 2 });
    alsoB.ws.terminate();
    await waitFor('b\'s subscriber gone from the count', async () => {
      const again = await fetch(new URL('/presence/room.1', a.url.replace(/^ws/, 'http')));
      return ((await again.json()) as { n: number }).n === 2;
    });
  });

  it('a reply that comes after the requester\'s node let the request go (timed out, or its requester left) is dropped there and counted', async () => {
    const [a, b] = await nodes(2);
    const responder = await RawClient.connect(b.url);
    await responder.subscribe('late.*');
    const requester = await RawClient.connect(a.url);
    const r = sendRequest(requester, 'late.timeout', '1', { to: 200 });
    const [event] = await waitRequests(responder, 1);
    expect(await answerTo(requester, r)).toMatchObject({ code: ErrorCode.timeout });
    replyTo(responder, event!, 'too late');
    sendRequest(requester, 'late.left', '2', { to: 20_000 });
    const [, left] = await waitRequests(responder, 2);
    requester.ws.terminate();
    await eventually('node0 to free the requests of the closed connection', async () => a.stats().requests.pending === 0);
    replyTo(responder, left!, 'nobody waits');
    await eventually('both late replies dropped on node0', async () => a.stats().requests.repliesDropped === 2);
    expect(b.stats().requests.repliesDropped).toBe(0); // forwarded, not judged, by the responder's node
  });
});

describe('Redis out of reach', () => {
  /** Nodes on a Redis of their own, which the test stops and starts again. */
  async function nodesOn(server: RedisServer, prefix = `d${deployments++}:`): Promise<[Broker, Broker]> {
    return [
      await startBroker({ redis: server.url, redisPrefix: prefix, nodeName: 'node0' }),
      await startBroker({ redis: server.url, redisPrefix: prefix, nodeName: 'node1' }),
    ];
  }

  /**
   * Two nodes on `server`: a subscriber to `<channel>.*` on node1, a publisher on node0, and one
   * event through (`<channel>.1: before`).
   */
  async function flowing(server: RedisServer, channel: string): Promise<{ a: Broker; b: Broker; sub: RawClient; publisher: RawClient }> {
    const [a, b] = await nodesOn(server);
    const sub = await RawClient.connect(b.url);
    await sub.subscribe(`${channel}.*`);
    const publisher = await RawClient.connect(a.url);
    await publish(publisher, `${channel}.1`, 'before');
    await sub.waitEvents(1);
    return { a, b, sub, publisher };
  }

  it('publishes fail unavailable (HTTP 503 with Retry-After), /readyz says not ready, clients stay connected; all recovers when Redis is back', async () => {
    // With persistence, as in production: the stream survives the restart.
    const own = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    try {
      const { a, b, sub, publisher } = await flowing(own, 'r');
      const http = httpOf(a);
      await own.kill();
      try {
        await eventually('node0 to see Redis gone', async () => (await fetch(`${http}/readyz`)).status === 503);
        const refused = (await publish(publisher, 'r.1', 'while down')) as ErrorFrame;
        expect([refused.t, refused.code]).toEqual([FrameType.error, ErrorCode.unavailable]);
        const res = await fetch(`${http}/publish/r.1`, { method: 'POST', body: 'while down' });
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).toBe('2');
        expect(((await res.json()) as { code: string }).code).toBe(ErrorCode.unavailable);
        expect((await (await fetch(`${http}/metrics`)).text())).toMatch(/crier_refused_total\{reason="unavailable"\} [1-9]/);
        expect(await ask(publisher, 'r.1', 'a request while down')).toMatchObject({ code: ErrorCode.unavailable });
      } finally {
        await own.restart();
      }
      await eventually('node0 to be ready again', async () => (await fetch(`${http}/readyz`)).status === 200);
      await eventually('node1 to be ready again', async () => b.stats().engine.ready);
      const after = await publish(publisher, 'r.1', 'after');
      expect(after.t).toBe(FrameType.ack);
      const got = await sub.waitEvents(2);
      expect(bodies(got)).toEqual(['r.1:before', 'r.1:after']);
      expect(got.map((e) => e.o)).toEqual([1, 2]); // the same stream, the same channel epoch
      expect(sub.closed).toBeUndefined();
      expect(publisher.closed).toBeUndefined();
    } finally {
      await own.stop();
    }
  });

  it('a Redis that stops answering (SIGSTOP) is seen within seconds: publishes refused unavailable, /readyz 503; all goes on once it answers again', async () => {
    const own = await startRedis();
    try {
      const { a, b, sub, publisher } = await flowing(own, 'h');
      own.pause();
      try {
        await eventually('node0 to see Redis hung', async () => (await fetch(`${httpOf(a)}/readyz`)).status === 503);
        const refused = (await publish(publisher, 'h.1', 'while hung')) as ErrorFrame;
        expect([refused.t, refused.code]).toEqual([FrameType.error, ErrorCode.unavailable]);
      } finally {
        own.resume();
      }
      await eventually('node0 to be ready again', async () => (await fetch(`${httpOf(a)}/readyz`)).status === 200);
      expect((await publish(publisher, 'h.1', 'after')).t).toBe(FrameType.ack);
      expect(bodies(await sub.waitEvents(2))).toEqual(['h.1:before', 'h.1:after']);
      expect(sub.closed).toBeUndefined();
    } finally {
      await own.stop();
    }
  });

  it('presence notices survive the nodes\' pub/sub connections cut: each node asks every node again, and a join after it is told with the deployment\'s count', async () => {
    const own = await startRedis();
    try {
      const [a, b] = await nodesOn(own);
      const early = await RawClient.connect(b.url);
      await early.subscribe('room.1');
      const watcher = await RawClient.connect(a.url);
      expect(await watcher.request({ t: FrameType.subscribe, r: 0, p: 'room.1', pe: true })).toMatchObject({ t: FrameType.ack });
      await waitFor('node1 to know room.1 is watched on node0', () => b.stats().engine.presence?.watchedElsewhere === 1);
      const syncs = [a, b].map((n) => n.stats().engine.presence!.syncs);
      await redisCommand(own.port, ['CLIENT', 'KILL', 'TYPE', 'pubsub']);
      await waitFor('both nodes to ask every node again, ready', () =>
        [a, b].every((n, i) => n.stats().engine.presence!.syncs > syncs[i]! && n.stats().engine.ready));
      const late = await RawClient.connect(b.url);
      await late.subscribe('room.1');
      await waitFor('the watcher to hear the late join', () => notices(watcher).length === 1, { wakeOn: [watcher.changed] });
      expect(notices(watcher)).toEqual([{ t: FrameType.presenceChange, c: 'room.1', j: true, n: 3 }]); // nothing told for the cut: no count changed
      expect(b.stats().engine.presence!.watchedElsewhere).toBe(1);
    } finally {
      await own.stop();
    }
  });

  it('a Redis that comes back behind what the nodes saw (an older snapshot): a new stream, clients sent to resume, nothing answered twice', async () => {
    const own = await startRedis();
    try {
      const [a, b] = await nodesOn(own, 'snap:');
      const sub = await RawClient.connect(b.url);
      await sub.subscribe('r.*');
      const publisher = await RawClient.connect(a.url);
      const first = [];
      for (let i = 0; i < 5; i++) first.push(await publish(publisher, 'r.1', `old ${i}`));
      await sub.waitEvents(5);
      // As if restarted from a snapshot taken after the second event: the stream position goes back.
      await redisCommand(own.port, ['HSET', 'snap:s', 'seq', '2']);
      await redisCommand(own.port, ['CLIENT', 'KILL', 'TYPE', 'pubsub']);
      const closed = await sub.waitClose(15_000);
      expect(closed.code).toBe(CloseCode.draining);
      await eventually('node0 to be ready again', async () => (await fetch(`${httpOf(a)}/readyz`)).status === 200);
      const back = await resumeOn(b.url, sub);
      expect(back.welcome!.rs).toMatchObject({ n: 0, why: 'broker_restarted' });
      const again = await RawClient.connect(a.url);
      const next = await publish(again, 'r.1', 'new') as { t: number; id?: string; o?: number };
      expect(next.t).toBe(FrameType.ack);
      expect(first.map((f) => (f as { id?: string }).id)).not.toContain(next.id);
      expect(next.o).toBe(1); // the channel starts again in the new stream
      expect(bodies(await back.waitEvents(1))).toEqual(['r.1:new']);
    } finally {
      await own.stop();
    }
  });

  it('a Redis that comes back without its data: every client is sent to resume (4009), and told the broker restarted', async () => {
    const own = await startRedis();
    try {
      const { a, b, sub, publisher } = await flowing(own, 'r');
      await own.kill();
      await own.restart();
      const closed = await sub.waitClose(15_000);
      expect(closed.code).toBe(CloseCode.draining);
      expect(closed.reason).toMatch(/^draining: reconnect after \d+ ms$/);
      const back = await resumeOn(b.url, sub);
      expect(back.welcome!.rs).toMatchObject({ n: 0, why: 'broker_restarted' });
      await eventually('node0 to be ready again', async () => (await fetch(`${httpOf(a)}/readyz`)).status === 200);
      const again = await RawClient.connect(a.url);
      expect((await publish(again, 'r.1', 'new stream')).t).toBe(FrameType.ack);
      expect(bodies(await back.waitEvents(1))).toEqual(['r.1:new stream']);
      expect(back.welcome!.ep).not.toBe(sub.welcome!.ep);
    } finally {
      await own.stop();
    }
  });
});

/** The parked sessions as /stats answers them (fresh from the engine). */
async function fetchParked(broker: Broker): Promise<number> {
  const stats = (await (await fetch(broker.url.replace(/^ws/, 'http').replace(/\/$/, '') + '/stats')).json()) as { sessions: { parked: number } };
  return stats.sessions.parked;
}

const httpOf = (broker: Broker): string => broker.url.replace(/^ws/, 'http').replace(/\/$/, '');

/** Resolves once `check` answers true (asked again every 20 ms: state no event announces), or fails after 10 s. */
async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('connecting to Redis', () => {
  it('takes a password in the URL, and refuses to start with a wrong one without showing it', async () => {
    const own = await startRedis();
    await redisCommand(own.port, ['CONFIG', 'SET', 'requirepass', 'right-secret']);
    try {
      const b = await startBroker({ redis: `redis://:right-secret@127.0.0.1:${own.port}`, redisPrefix: 'auth:' });
      const c = await RawClient.connect(b.url);
      expect((await publish(c, 'a.b', 'x')).t).toBe(FrameType.ack);
      expect(b.stats().engine.redis).toBe(`redis://:***@127.0.0.1:${own.port}`);
      const refused = startBroker({ redis: `redis://:wrong-secret@127.0.0.1:${own.port}`, redisPrefix: 'auth:' });
      await expect(refused).rejects.toThrow(/^the Redis engine cannot start on redis:\/\/:\*\*\*@127\.0\.0\.1:\d+: .*(WRONGPASS|invalid)/);
      await refused.catch((err: Error) => expect(err.message).not.toContain('wrong-secret'));
    } finally {
      await own.stop();
    }
  });

  it('refuses to start when Redis cannot be reached, at once, naming it', async () => {
    const own = await startRedis();
    await own.stop(); // a port nothing listens on any more
    await expect(startBroker({ redis: own.url })).rejects.toThrow(/^the Redis engine cannot start on redis:\/\/127\.0\.0\.1:\d+/);
  });

  it('speaks TLS to a rediss:// Redis, trusting the CA of redisCaFile', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'crier-redis-tls-'));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    const tlsPort = await freePort();
    const own = await startRedis({ args: ['--tls-port', String(tlsPort), '--tls-cert-file', cert, '--tls-key-file', key, '--tls-ca-cert-file', cert, '--tls-auth-clients', 'no'] });
    try {
      const url = `rediss://127.0.0.1:${tlsPort}`;
      const b = await startBroker({ redis: url, redisCaFile: cert, redisPrefix: 'tls:' });
      const c = await RawClient.connect(b.url);
      await c.subscribe('t.*');
      expect((await publish(c, 't.1', 'over tls')).t).toBe(FrameType.ack);
      expect(bodies(await c.waitEvents(1))).toEqual(['t.1:over tls']);
      // Without the CA the certificate is not trusted: the broker does not start.
      await expect(startBroker({ redis: url, redisPrefix: 'tls:' })).rejects.toThrow(/cannot start on rediss:/);
    } finally {
      await own.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A TCP port free now (for a second listener of a server the test starts). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
