// Join/leave notices across nodes (engine/redis/presence-notices.ts) over an in-memory bus that
// stands for Redis pub/sub: what a node does when it missed news (its pub/sub connection dropped),
// when another node dies, when it stalled, and when a node answers late. The engine contract and
// the nodes tests run the same code on a real Redis; here the faults are exact.
import { describe, expect, it } from 'vitest';
import type { PresenceNews } from '../src/engine/engine.js';
import { LINGER_MS, MAX_SYNCS } from '../src/engine/redis/presence-notices.js';
import type { PresenceLink } from '../src/engine/redis/presence-link.js';
import { RedisPresence } from '../src/engine/redis/presence.js';
import { ManualClock } from './manual-clock.js';

/** One node on the bus: its presence traffic, what its broker was handed, and its holders per channel. */
interface Node {
  name: string;
  presence: RedisPresence;
  heard: PresenceNews[];
  holders: Map<string, number>;
  /** Its pub/sub connection: down, nothing reaches it (as Redis drops a subscriber's messages). */
  up: boolean;
  /** Its event loop stuck: what reaches it waits in `backlog` until it runs again. */
  stuck: boolean;
  backlog: (() => void)[];
  alive: boolean;
  warnings: string[];
  /** Messages it broadcast on the presence channel. */
  broadcasts: number;
}

/** Nodes sharing one bus and one clock; messages delivered in order, after the current turn. */
class Bus {
  readonly clock = new ManualClock();
  readonly nodes = new Map<string, Node>();
  private queue: (() => void)[] = [];

  node(name: string, links: Partial<PresenceLink> = {}): Node {
    const node: Node = { name, presence: undefined!, heard: [], holders: new Map(), up: true, stuck: false, backlog: [], alive: true, warnings: [], broadcasts: 0 };
    node.presence = new RedisPresence({
      instance: name,
      prefix: 't:',
      evaluate: async (_source, args) => args.slice(1).filter((n) => this.nodes.get(n)?.alive === true),
      defer: (callback) => void setImmediate(callback),
      now: () => this.clock.now(),
      broadcast: async (message) => {
        node.broadcasts++;
        const to = [...this.nodes.values()].filter((n) => n.up);
        for (const n of to) this.post(n, () => n.presence.onQuestion(message));
        return to.length;
      },
      toNode: (instance, message) => {
        const to = this.nodes.get(instance);
        if (to?.up) this.post(to, () => to.presence.takeAnswer(message));
      },
      setTimeout: (callback, ms) => this.clock.setTimeout(callback, ms),
      clearTimer: (handle) => this.clock.clearTimer(handle),
      warn: (_fields, message) => node.warnings.push(message),
      ...links,
    });
    node.presence.notices.onNews((news) => node.heard.push(news), (channel) => node.holders.get(channel) ?? 0);
    this.nodes.set(name, node);
    return node;
  }

  /** Runs every message in flight, and those they cause, until the bus is quiet. */
  async settle(): Promise<void> {
    for (let round = 0; round < 100; round++) {
      await new Promise((resolve) => setImmediate(resolve));
      if (this.queue.length === 0) return;
      const batch = this.queue;
      this.queue = [];
      for (const deliver of batch) deliver();
    }
    throw new Error('the bus never went quiet');
  }

  /** A stuck node runs what reached it meanwhile. */
  unstick(node: Node): void {
    node.stuck = false;
    this.queue.push(...node.backlog.splice(0));
  }

  private post(to: Node, deliver: () => void): void {
    if (to.stuck) to.backlog.push(deliver);
    else this.queue.push(deliver);
  }
}

/** Two nodes: `b` holds 3 of room.1 and does not answer (its event loop stuck); `a` watches nothing yet. */
function stuckPair(): { bus: Bus; a: Node; b: Node } {
  const bus = new Bus();
  const a = bus.node('a#1');
  const b = bus.node('b#1');
  b.holders.set('room.1', 3);
  b.stuck = true;
  return { bus, a, b };
}

/** Two nodes: `a` watches room.1, `b` holds 2 of it; `a` settled with b's count. */
async function watchedPair(): Promise<{ bus: Bus; a: Node; b: Node }> {
  const bus = new Bus();
  const a = bus.node('a#1');
  const b = bus.node('b#1');
  b.holders.set('room.1', 2);
  a.presence.notices.watch('room.1', true);
  expect(a.presence.notices.settled('room.1')).toBe(false);
  await bus.settle();
  expect(a.presence.notices.settled('room.1')).toBe(true);
  expect(b.presence.notices.watchedElsewhere('room.1')).toBe(true);
  expect(a.heard).toEqual([{ channel: 'room.1', n: 2, changes: [] }, { channel: 'room.1', n: 2, changes: [] }]); // b's count, then settled
  a.heard.length = 0;
  return { bus, a, b };
}

describe('presence notices across nodes (faults, on an in-memory bus)', () => {
  it('a node that missed news (its pub/sub connection dropped) asks again: the change it missed is told as one notice of the difference', async () => {
    const { bus, a, b } = await watchedPair();
    a.up = false;
    b.holders.set('room.1', 5);
    b.presence.notices.send([{ channel: 'room.1', n: 5, changes: [{ j: true, m: 'jwt:x' }, { j: true }, { j: true }] }]); // lost
    await bus.settle();
    expect(a.heard).toEqual([]);
    a.up = true;
    a.presence.notices.resync();
    await bus.settle();
    expect(a.heard).toEqual([{ channel: 'room.1', n: 5, changes: [], more: 3, net: 3 }]);
    // Told once: news after it carry on from the count it learned.
    b.presence.notices.send([{ channel: 'room.1', n: 4, changes: [{ j: false, m: 'jwt:x' }] }]);
    await bus.settle();
    expect(a.heard[1]).toEqual({ channel: 'room.1', n: 4, changes: [{ j: false, m: 'jwt:x' }] });
  });

  /** Two heartbeats of `node` (a node is taken for dead when both find its key gone). */
  async function beatTwice(bus: Bus, node: Node): Promise<void> {
    for (let i = 0; i < 2; i++) {
      node.presence.notices.sweep();
      await bus.settle();
    }
  }

  it('a node found dead at two heartbeats in a row leaves the count in one notice, and is sent nothing more', async () => {
    const { bus, a, b } = await watchedPair();
    const c = bus.node('c#1');
    c.presence.notices.resync(); // c starts: it learns what every node watches
    await bus.settle();
    expect(c.presence.notices.watchedElsewhere('room.1')).toBe(true);
    b.alive = false;
    b.up = false;
    a.presence.notices.sweep();
    await bus.settle();
    expect(a.heard).toEqual([]); // once: a Redis restarted empty looks the same, until b's next beat
    a.presence.notices.sweep();
    await bus.settle();
    expect(a.heard).toEqual([{ channel: 'room.1', n: 0, changes: [], more: 2, net: -2 }]);
    expect(a.presence.notices.stats()).toMatchObject({ nodesLost: 1 });
    // b's watches go too: a node that watched nothing of c's is not sent c's news.
    b.presence.notices.watch('room.2', true);
    await bus.settle();
    await beatTwice(bus, c);
    expect(c.presence.notices.watchedElsewhere('room.2')).toBe(false);
  });

  it('a node whose heartbeat key is missing at one heartbeat only (Redis restarted empty, before its next beat) stays counted', async () => {
    const { bus, a, b } = await watchedPair();
    b.alive = false;
    a.presence.notices.sweep();
    await bus.settle();
    b.alive = true; // its next beat
    await beatTwice(bus, a);
    b.alive = false; // and missing once more, later: once again only a suspect
    a.presence.notices.sweep();
    await bus.settle();
    expect(a.heard).toEqual([]);
    expect(a.presence.notices.stats().nodesLost).toBe(0);
  });

  it('a liveness read that goes wrong (not a list, or the broker failing to take the news) never leaves a rejected promise behind', async () => {
    const { bus, a, b } = await watchedPair();
    b.alive = false;
    a.presence.notices.onNews(() => {
      throw new Error('the broker broke');
    }, () => 0);
    await beatTwice(bus, a);
    expect(a.presence.notices.stats().nodesLost).toBe(1);
    expect(a.warnings).toContain('redis engine: the broker failed to take presence news');
    const c = bus.node('c#1', { evaluate: async () => 'OK' });
    c.presence.notices.resync(); // c learns that a watches room.1: a is a node to check
    await bus.settle();
    c.presence.notices.sweep();
    await bus.settle();
    expect(c.warnings).toEqual(['redis engine: the live nodes could not be read for presence']);
  });

  it('a node whose heartbeats stalled past 4 s (the others may have taken it for dead) syncs again, and the others get its count back', async () => {
    const { bus, a, b } = await watchedPair();
    b.presence.notices.sweep();
    // a takes b for dead while b is stalled: b's 2 leave the count, b's watches are forgotten.
    b.alive = false;
    await beatTwice(bus, a);
    expect(a.heard.at(-1)).toEqual({ channel: 'room.1', n: 0, changes: [], more: 2, net: -2 });
    b.alive = true;
    bus.clock.advance(5000);
    b.presence.notices.sweep(); // b's first heartbeat after the stall: it asks every node again
    await bus.settle();
    expect(b.presence.notices.stats().syncs).toBe(1);
    expect(a.heard.at(-1)).toEqual({ channel: 'room.1', n: 2, changes: [], more: 2, net: 2 });
  });

  it('holds a first watcher\'s notices for at most a second when a node does not answer, then counts that node from its late answer', async () => {
    const { bus, a, b } = stuckPair(); // b subscribed (Redis counts it), but not answering
    a.presence.notices.watch('room.1', true);
    await bus.settle();
    expect(a.presence.notices.settled('room.1')).toBe(false);
    bus.clock.advance(1000);
    expect(a.presence.notices.settled('room.1')).toBe(true);
    expect(a.heard).toEqual([{ channel: 'room.1', n: 0, changes: [] }]); // released without b's count
    bus.unstick(b);
    await bus.settle();
    expect(b.presence.notices.watchedElsewhere('room.1')).toBe(true);
    expect(a.heard.at(-1)).toEqual({ channel: 'room.1', n: 3, changes: [], more: 3, net: 3 });
  });

  it('a watch withdrawn stops the news (2 s after); a closing node is forgotten at once; messages that do not parse are ignored with a warning', async () => {
    const { bus, a, b } = await watchedPair();
    a.presence.notices.watch('room.1', false);
    await bus.settle();
    expect(b.presence.notices.watchedElsewhere('room.1')).toBe(true); // lingers
    bus.clock.advance(LINGER_MS);
    await bus.settle();
    expect(b.presence.notices.watchedElsewhere('room.1')).toBe(false);
    a.presence.notices.watch('room.1', true);
    await bus.settle();
    expect(a.heard).toEqual([{ channel: 'room.1', n: 2, changes: [] }, { channel: 'room.1', n: 2, changes: [] }]);
    await b.presence.notices.leave();
    await bus.settle();
    expect(a.heard.at(-1)).toEqual({ channel: 'room.1', n: 0, changes: [], more: 2, net: -2 });
    a.presence.takeAnswer(Buffer.from('!pCb#1 not json'));
    a.presence.takeAnswer(Buffer.from('!pCb#1 [["room.1", -1, []], ["room.1", 1, "x"], 7]'));
    a.presence.onQuestion(Buffer.from('+'));
    expect(a.warnings).toEqual([
      'redis engine: presence news that does not parse, ignored',
      'redis engine: presence news entries that do not parse or add up, ignored',
      'redis engine: a presence watch message without its origin, ignored',
    ]);
    expect(a.presence.traffic.malformed).toBe(3);
    expect(a.heard).toHaveLength(3); // nothing from them
  });

  it('a node whose news were lost syncs again: a count of its that fell to 0 meanwhile is set right on the watching node (news of n 0 too)', async () => {
    const { bus, a, b } = await watchedPair();
    b.holders.set('room.1', 0); // its two left; the news saying so never reached a (b's command connection dropped)
    b.presence.notices.resync(); // b's pub/sub connection back
    await bus.settle();
    expect(a.heard).toEqual([{ channel: 'room.1', n: 0, changes: [], more: 2, net: -2 }]);
  });

  it('a watch withdrawn and made again while its sync waits: still held by that sync, no second one', async () => {
    const { bus, a, b } = stuckPair();
    a.presence.notices.watch('room.1', true); // its sync: due at 1000
    await bus.settle();
    bus.clock.advance(500);
    a.presence.notices.watch('room.1', false);
    await bus.settle();
    a.presence.notices.watch('room.1', true);
    await bus.settle();
    expect(a.presence.notices.settled('room.1')).toBe(false);
    expect(a.presence.notices.stats().syncs).toBe(1);
    bus.unstick(b);
    await bus.settle();
    expect(a.presence.notices.settled('room.1')).toBe(true);
    expect(a.heard.at(-1)).toEqual({ channel: 'room.1', n: 3, changes: [] });
  });

  it('a watcher that comes and goes (a flapping client, a page reloading) within 2 s costs no broadcast and no wait: its count at once', async () => {
    const { bus, a, b } = await watchedPair();
    const before = a.broadcasts;
    for (let i = 0; i < 100; i++) {
      a.presence.notices.watch('room.1', false);
      await bus.settle();
      bus.clock.advance(10);
      a.presence.notices.watch('room.1', true);
      expect(a.presence.notices.settled('room.1')).toBe(true);
      await bus.settle();
    }
    expect(a.broadcasts - before).toBe(0);
    expect(a.heard.at(-1)).toEqual({ channel: 'room.1', n: 2, changes: [] });
    expect(a.heard).toHaveLength(100);
    // News kept coming meanwhile: the count stays current.
    b.presence.notices.send([{ channel: 'room.1', n: 3, changes: [{ j: true }] }]);
    await bus.settle();
    expect(a.heard.at(-1)).toEqual({ channel: 'room.1', n: 3, changes: [{ j: true }] });
    // Gone for good: one withdrawal, 2 s after.
    a.presence.notices.watch('room.1', false);
    a.presence.notices.watch('room.2', true);
    a.presence.notices.watch('room.2', false);
    await bus.settle();
    bus.clock.advance(LINGER_MS);
    await bus.settle();
    expect(b.presence.notices.watchedElsewhere('room.1')).toBe(false);
    expect(b.presence.notices.watchedElsewhere('room.2')).toBe(false);
    expect(a.broadcasts - before).toBe(2); // room.2's `+`, then one `-` for both
    // Closed while a watch lingers: its timer goes with it.
    a.presence.notices.watch('room.1', true);
    await bus.settle();
    a.presence.notices.watch('room.1', false);
    expect(bus.clock.pending).toBe(1);
    a.presence.close();
    expect(bus.clock.pending).toBe(0);
    bus.clock.advance(LINGER_MS);
    await bus.settle();
    expect(a.broadcasts - before).toBe(3); // room.1's `+` only
  });

  it('closed while a sync and a question wait: their timers go, nothing is told after, the question answers partial', async () => {
    const { bus, a, b } = stuckPair();
    a.presence.notices.watch('room.1', true);
    const asked = a.presence.ask('room.1', false);
    await bus.settle();
    expect(bus.clock.pending).toBe(2);
    a.presence.close();
    expect(bus.clock.pending).toBe(0);
    expect(await asked).toEqual({ n: 0, partial: true });
    bus.unstick(b);
    await bus.settle();
    expect(a.heard).toEqual([]);
  });

  it('a closing node forgets a liveness read still on its way: nothing is handed to its broker after close', async () => {
    const { bus, a, b } = await watchedPair();
    b.alive = false;
    a.presence.notices.sweep();
    await bus.settle();
    a.presence.notices.sweep(); // the read that would find b gone
    a.presence.close();
    await bus.settle();
    expect(a.heard).toEqual([]);
  });

  it('news whose counts do not add up are refused whole (more below 0, net past more), counted; a throwing count never leaves the handler', async () => {
    const { bus, a, b } = await watchedPair();
    a.presence.takeAnswer(Buffer.from('!pCb#1 [["room.1", 2, [], 0, -5]]'));
    a.presence.takeAnswer(Buffer.from('!pCb#1 [["room.1", 2, [], -1, 0]]'));
    a.presence.takeAnswer(Buffer.from('!pCb#1 [["room.1", 2, ["+"], 1, 2]]'));
    expect(a.heard).toEqual([]);
    expect(a.presence.traffic.malformed).toBe(3);
    b.presence.notices.onNews(() => {}, () => {
      throw new Error('the registry broke');
    });
    expect(() => b.presence.onQuestion(Buffer.from('+a#1 9 room.1'))).not.toThrow();
    expect(b.presence.traffic.malformed).toBe(1);
    await bus.settle();
  });

  it('a flood of watch changes while a node does not answer: 64 syncs waited for at most, the next ones hold no notice and count from the late answers', async () => {
    const { bus, a, b } = stuckPair();
    for (let i = 0; i < 100; i++) {
      b.holders.set(`room.${i}`, 1);
      a.presence.notices.watch(`room.${i}`, true); // one channel a turn: one sync each
      await bus.settle();
    }
    expect(a.presence.notices.stats()).toMatchObject({ syncs: 100, syncsWaiting: MAX_SYNCS });
    expect(a.presence.notices.settled(`room.${MAX_SYNCS - 1}`)).toBe(false);
    expect(a.presence.notices.settled(`room.${MAX_SYNCS}`)).toBe(true); // not held
    bus.unstick(b);
    await bus.settle();
    expect(a.presence.notices.stats().syncsWaiting).toBe(0);
    expect(a.heard.filter((news) => news.channel === 'room.99')).toEqual([
      { channel: 'room.99', n: 0, changes: [] }, // released at once
      { channel: 'room.99', n: 1, changes: [], more: 1, net: 1 }, // b's late answer: one notice of the difference
    ]);
    bus.clock.advance(1000); // timers: none left behind
    expect(a.heard.filter((news) => news.channel === 'room.0')).toEqual([{ channel: 'room.0', n: 1, changes: [] }, { channel: 'room.0', n: 1, changes: [] }]);
  });

  it('a flood of messages that do not parse: each counted, the warning written once per 10 s', async () => {
    const { bus, a } = await watchedPair();
    for (let i = 0; i < 1000; i++) {
      a.presence.takeAnswer(Buffer.from(`!pCb#1 not json ${i}`));
      a.presence.onQuestion(Buffer.from('+'));
    }
    expect(a.presence.traffic.malformed).toBe(2000);
    expect(a.warnings).toEqual([
      'redis engine: presence news that does not parse, ignored',
      'redis engine: a presence watch message without its origin, ignored',
    ]);
    bus.clock.advance(10_000);
    a.presence.onQuestion(Buffer.from('+'));
    expect(a.warnings).toHaveLength(3);
  });
});
