// Queue groups on one node, as raw WebSocket clients see them: each event to exactly one member,
// round-robin, a frozen member skipped, plain subscribers untouched, one event per connection,
// filters per member, leaving a group, requests shared by responders, stats and resume.
import { afterEach, expect, it } from 'vitest';
import { ErrorCode, FrameType, type ErrorFrame, type EventFrame, type Frame, type ReplyAnswerFrame, type WelcomeFrame } from '@crier/protocol';
import { RawClient, cleanup, startBroker, text, waitFor } from './helpers.js';
import { ask, respond } from './request-helpers.js';

afterEach(cleanup);

/** Joins `group` on `pattern` (with filter `f`), failing on anything but an ack. */
async function join(client: RawClient, pattern: string, group: string, f?: { l?: string[]; k?: string[] }): Promise<void> {
  const answer = await client.request({ t: FrameType.subscribe, r: 0, p: pattern, g: group, ...(f === undefined ? {} : { f }) });
  if (answer.t !== FrameType.ack) throw new Error(`joining ${group} on ${pattern} failed: ${JSON.stringify(answer)}`);
}

/** The data of the events a client got on channels starting with `prefix`. */
const got = (client: RawClient, prefix: string): string[] =>
  client.events().filter((e) => e.c.startsWith(prefix)).map((e) => Buffer.from(e.d).toString());

/** Waits until the clients got `total` events of `prefix` between them. */
const waitTotal = (clients: RawClient[], prefix: string, total: number): Promise<number> =>
  waitFor(`${total} events of ${prefix} over ${clients.length} clients`, () => {
    const n = clients.reduce((sum, c) => sum + got(c, prefix).length, 0);
    return n >= total && n;
  }, { wakeOn: clients.map((c) => c.changed) });

it('spreads a group\'s events round-robin, each to exactly one member, while a plain subscriber gets every one', async () => {
  const b = await startBroker();
  const members = await Promise.all([0, 1, 2].map(() => RawClient.connect(b.url)));
  for (const m of members) await join(m, 'job.*', 'workers');
  const plain = await RawClient.connect(b.url);
  await plain.subscribe('job.>');
  for (let i = 0; i < 300; i++) b.publish('job.run', text(String(i)));
  await plain.waitEvents(300);
  await waitTotal(members, 'job.', 300);
  const counts = members.map((m) => got(m, 'job.').length);
  console.log(`queue group spread, 3 members x 300 events: ${counts.join(' / ')}`);
  expect(counts).toEqual([100, 100, 100]);
  // Each event exactly once over the group, and in order within each member.
  const all = members.flatMap((m) => got(m, 'job.')).map(Number).sort((a, b) => a - b);
  expect(all).toEqual(Array.from({ length: 300 }, (_, i) => i));
  for (const m of members) {
    const mine = got(m, 'job.').map(Number);
    expect(mine).toEqual([...mine].sort((a, b) => a - b));
  }
  expect(got(plain, 'job.')).toHaveLength(300);
  const stats = b.stats();
  expect(stats.groups).toMatchObject({ groups: 1, members: 3, delivered: 300, skipped: 0, missed: 0 });
  expect(stats.groups.top).toEqual([{ group: 'workers', pattern: 'job.*', members: 3, delivered: 300, skipped: 0, missed: 0 }]);
  expect(stats.subscriptions).toBe(4);
  expect(stats.delivered).toBe(600);
  const metrics = await (await fetch(new URL('/metrics', b.url.replace(/^ws/, 'http')))).text();
  expect(metrics).toMatch(/^crier_queue_groups 1$/m);
  expect(metrics).toMatch(/^crier_queue_group_members 3$/m);
  expect(metrics).toMatch(/^crier_queue_group_deliveries_total 300$/m);
  expect(metrics).toMatch(/^crier_queue_group_skips_total 0$/m);
});

it('two groups on one pattern, and a group of another pattern, each get every event once', async () => {
  const b = await startBroker();
  const [a1, a2, b1, c1] = await Promise.all([0, 1, 2, 3].map(() => RawClient.connect(b.url)));
  await join(a1!, 'order.*', 'billing');
  await join(a2!, 'order.*', 'billing');
  await join(b1!, 'order.*', 'audit');
  await join(c1!, 'order.>', 'billing'); // another group: (name, pattern) is the identity
  for (let i = 0; i < 10; i++) b.publish('order.paid', text(String(i)));
  await waitTotal([a1!, a2!], 'order.', 10);
  await b1!.waitEvents(10);
  await c1!.waitEvents(10);
  expect([got(a1!, 'order.').length, got(a2!, 'order.').length]).toEqual([5, 5]);
  expect(b.stats().groups.groups).toBe(3);
});

it('a connection that is a member and a plain subscriber gets each event once', async () => {
  const b = await startBroker();
  const both = await RawClient.connect(b.url);
  const other = await RawClient.connect(b.url);
  await join(both, 'feed.*', 'g');
  await both.subscribe('feed.*');
  await join(other, 'feed.*', 'g');
  // The same pattern with and without a group are two subscriptions.
  expect(b.stats().subscriptions).toBe(3);
  for (let i = 0; i < 20; i++) b.publish('feed.x', text(String(i)));
  await both.waitEvents(20);
  await other.waitEvents(10);
  expect(got(both, 'feed.').map(Number)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  expect(got(other, 'feed.')).toHaveLength(10);
  expect(b.stats().delivered).toBe(30);
});

it('applies each member\'s filter: an event goes to a member it passes, and to nobody when it passes none', async () => {
  const b = await startBroker();
  const [eu1, eu2, us] = await Promise.all([0, 1, 2].map(() => RawClient.connect(b.url)));
  await join(eu1!, 'sale.*', 'shop', { l: ['eu'] });
  await join(eu2!, 'sale.*', 'shop', { l: ['eu'] });
  await join(us!, 'sale.*', 'shop', { l: ['us'] });
  for (let i = 0; i < 6; i++) b.publish('sale.new', text(`eu${i}`), { labels: ['eu'] });
  for (let i = 0; i < 3; i++) b.publish('sale.new', text(`us${i}`), { labels: ['us'] });
  b.publish('sale.new', text('none'), { labels: ['asia'] });
  await waitTotal([eu1!, eu2!, us!], 'sale.', 9);
  expect(got(eu1!, 'sale.')).toEqual(['eu0', 'eu2', 'eu4']);
  expect(got(eu2!, 'sale.')).toEqual(['eu1', 'eu3', 'eu5']);
  expect(got(us!, 'sale.')).toEqual(['us0', 'us1', 'us2']);
  expect(b.stats().groups).toMatchObject({ delivered: 9, missed: 1 });
});

it('unsubscribe and close leave the group: the others get its share', async () => {
  const b = await startBroker();
  const [m1, m2, m3] = await Promise.all([0, 1, 2].map(() => RawClient.connect(b.url)));
  for (const m of [m1!, m2!, m3!]) await join(m, 'task.>', 'w');
  // Unsubscribing without g leaves the membership alone (that is another subscription).
  expect((await m1!.request({ t: FrameType.unsubscribe, r: 0, p: 'task.>' })).t).toBe(FrameType.ack);
  expect(b.stats().groups.members).toBe(3);
  expect((await m1!.request({ t: FrameType.unsubscribe, r: 0, p: 'task.>', g: 'w' })).t).toBe(FrameType.ack);
  expect(b.stats().groups.members).toBe(2);
  for (let i = 0; i < 10; i++) b.publish('task.a', text(String(i)));
  await waitTotal([m2!, m3!], 'task.', 10);
  expect([got(m2!, 'task.').length, got(m3!, 'task.').length]).toEqual([5, 5]);
  m2!.ws.close();
  await waitFor('the closed member to leave', () => b.stats().groups.members === 1);
  for (let i = 10; i < 20; i++) b.publish('task.a', text(String(i)));
  await m3!.waitEvents(15);
  expect(got(m3!, 'task.').slice(5).map(Number)).toEqual(Array.from({ length: 10 }, (_, i) => i + 10));
  expect(got(m1!, 'task.')).toEqual([]);
  m3!.ws.close();
  await waitFor('the group to be gone', () => b.stats().groups.groups === 0);
  expect(b.stats().groups.delivered).toBe(20); // figures of groups gone are kept
});

it('skips a member that stopped reading: the others get its share', async () => {
  const b = await startBroker({ bufferSize: 16, maxBufferBytes: 256 * 1024 });
  const [fast1, fast2, frozen] = await Promise.all([0, 1, 2].map(() => RawClient.connect(b.url)));
  for (const m of [fast1!, fast2!, frozen!]) await join(m, 'work.*', 'w');
  frozen!.ws.pause();
  // Rounds of 8 KiB events until the frozen member is a slow consumer (its kernel buffers full,
  // then its queue): each round waits until the readers have every event not meant for it.
  const payload = new Uint8Array(8 * 1024);
  let published = 0;
  for (let round = 0; b.stats().slowConsumers === 0; round++) {
    if (round === 1000) throw new Error('the frozen member never became slow');
    for (let i = 0; i < 6; i++) b.publish('work.load', payload);
    published += 6;
    await waitTotal([fast1!, fast2!], 'work.', Math.floor(published * 2 / 3));
  }
  const before = [got(fast1!, 'work.').length, got(fast2!, 'work.').length];
  const frozenDepth = b.stats().maxQueueDepth;
  for (let i = 0; i < 30; i++) b.publish('work.more', text(String(i)));
  await waitTotal([fast1!, fast2!], 'work.more', 30).catch((err: unknown) => {
    throw new Error(`${String(err)}: ${[fast1!, fast2!].map((m) => got(m, 'work.more').length).join(' / ')} ${JSON.stringify(b.stats().groups)} slow ${b.stats().slowConsumers}`);
  });
  const share = [fast1!, fast2!].map((m) => got(m, 'work.more').length);
  console.log(`frozen member skipped after ${published} events (its queue ${frozenDepth} deep): the next 30 went ${share.join(' / ')} to the two readers`);
  expect(share[0]! + share[1]!).toBe(30);
  expect(Math.abs(share[0]! - share[1]!)).toBeLessThanOrEqual(1);
  expect(b.stats().groups.skipped).toBeGreaterThanOrEqual(30);
  // What the frozen member gets once it reads again holds none of the events after it was skipped.
  frozen!.ws.resume();
  b.publish('work.end', text(''));
  const tail = await RawClient.connect(b.url);
  await tail.subscribe('work.end');
  expect(before[0]! + before[1]!).toBeGreaterThan(0);
  await waitFor('the frozen member to drain', () => b.stats().maxQueueDepth === 0, { timeoutMs: 15_000 });
  expect(got(frozen!, 'work.more')).toEqual([]);
}, 60_000);

it('shares requests among a group of responders: each request to one, all answered', async () => {
  const b = await startBroker();
  const responders = await Promise.all([0, 1, 2].map(() => RawClient.connect(b.url)));
  for (const [i, r] of responders.entries()) {
    await join(r, 'price.*', 'quoters');
    respond(r, (d) => `${i}:${d}`);
  }
  const requester = await RawClient.connect(b.url);
  const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => ask(requester, 'price.quote', String(i))));
  const by = [0, 0, 0];
  for (const a of answers) {
    expect(a.t).toBe(FrameType.reply);
    by[Number(Buffer.from((a as ReplyAnswerFrame).d).toString().split(':')[0])]!++;
  }
  console.log(`queue group requests, 3 responders x 30 requests: ${by.join(' / ')}`);
  expect(by).toEqual([10, 10, 10]);
  expect(b.stats().requests).toMatchObject({ delivered: 30, answered: 30, repliesDropped: 0 });
});

it('refuses a bad group name and a rewind in a group with bad_frame; members count in maxChannels', async () => {
  const b = await startBroker({ maxChannels: 2 });
  const c = await RawClient.connect(b.url);
  for (const g of ['', 'a b', 'x'.repeat(65), 'é', 'a:b']) {
    expect(await c.request({ t: FrameType.subscribe, r: 0, p: 'a.b', g })).toMatchObject({ t: FrameType.error, code: ErrorCode.badFrame });
  }
  expect(await c.request({ t: FrameType.subscribe, r: 0, p: 'a.b', g: 'ok', w: 1 })).toMatchObject({ t: FrameType.error, code: ErrorCode.badFrame });
  expect(await c.request({ t: FrameType.unsubscribe, r: 0, p: 'a.b', g: 'no way' })).toMatchObject({ t: FrameType.error, code: ErrorCode.badFrame });
  await join(c, 'a.b', 'x'.repeat(64));
  await join(c, 'a.b', 'A-z_0.9');
  expect(await c.request({ t: FrameType.subscribe, r: 0, p: 'a.b' })).toMatchObject({ t: FrameType.error, code: ErrorCode.maxChannels });
  await join(c, 'a.b', 'A-z_0.9'); // held already: acknowledged, not counted again
  expect(b.stats().groups).toMatchObject({ groups: 2, members: 2 });
});

it('a resumed member is back in its group, with no replay of what the group got meanwhile', async () => {
  const b = await startBroker();
  const member = await RawClient.connect(b.url);
  await join(member, 'q.*', 'g');
  await member.subscribe('log.*');
  const other = await RawClient.connect(b.url);
  await join(other, 'q.*', 'g');
  const { u, s } = member.welcome!;
  const position = { e: member.welcome!.ep!, s: 0 };
  member.ws.terminate();
  await waitFor('the member to be parked', () => b.stats().groups.members === 1);
  for (let i = 0; i < 4; i++) b.publish('q.x', text(String(i)));
  b.publish('log.x', text('missed'));
  await other.waitEvents(4);
  const back = await RawClient.open(b.url);
  back.send({ t: FrameType.hello, v: 1, u, s, rp: position });
  const welcome = (await back.waitFrame('welcome', (f: Frame) => f.t === FrameType.welcome)) as WelcomeFrame;
  expect(welcome.rs).toMatchObject({ n: 1 });
  await back.waitEvents(1, 'log.x');
  expect(back.events('q.x')).toEqual([]);
  expect(b.stats().groups.members).toBe(2);
  for (let i = 4; i < 8; i++) b.publish('q.x', text(String(i)));
  await back.waitEvents(2, 'q.x');
  await other.waitEvents(6, 'q.x');
  const after = [...(back.events('q.x') as EventFrame[]), ...other.events('q.x').slice(4)].map((e) => Number(Buffer.from(e.d).toString()));
  expect(after.sort()).toEqual([4, 5, 6, 7]);
  const errors = back.frames.filter((f): f is ErrorFrame => f.t === FrameType.error);
  expect(errors).toEqual([]);
});
