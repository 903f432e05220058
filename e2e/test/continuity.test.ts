// Continuity through real faults, with sdk-node clients: a reset network (the broker alive), a
// half-dead one, a frame cut in half, and a broker killed with kill -9. The fault proxy is the
// tool; what is tested is that crier's clients keep every event, once, in order, or are told
// they may have missed some.
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@crier/broker';
import { connect, type ClientOptions, type CrierClient, type CrierEvent } from '@crier/sdk-node';
import { startBrokerProcess, type BrokerProcess } from './browser/harness.js';
import { freePort } from './cli/run-cli.js';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';
import { Signal, getStats, startBroker, text, waitFor } from './helpers.js';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
});

/** What a test needs to know of a client's `'resumed'` events. */
interface Resumed {
  recovered: boolean;
  reason?: string | undefined;
  replayed: number;
}

/** A subscriber that records its events and its resumes. */
class Watcher {
  readonly events: CrierEvent[] = [];
  readonly resumes: Resumed[] = [];
  /** performance.now() of each resume. */
  readonly resumedAt: number[] = [];
  readonly changed = new Signal();

  constructor(readonly client: CrierClient, pattern: string) {
    client.subscribe(pattern, (e) => {
      this.events.push(e);
      this.changed.notify();
    });
    client.on('resumed', (info) => {
      this.resumes.push(info);
      this.resumedAt.push(performance.now());
      this.changed.notify();
    });
  }

  texts(): string[] {
    return this.events.map((e) => new TextDecoder().decode(e.data));
  }

  async waitCount(n: number, timeoutMs = 10_000): Promise<void> {
    await waitFor(`${n} events`, () => this.events.length >= n, { timeoutMs, wake: this.changed, seen: () => `got ${this.events.length}` });
  }

  async waitResumes(n: number, timeoutMs = 10_000): Promise<void> {
    await waitFor(`${n} resumes`, () => this.resumes.length >= n, { timeoutMs, wake: this.changed, seen: () => `got ${this.resumes.length}` });
  }
}

async function client(url: string, options: ClientOptions = {}): Promise<CrierClient> {
  const c = connect(url, { reconnect: { initialDelay: 50, maxDelay: 500 }, ...options });
  closers.push(() => c.quit());
  await c.ready();
  return c;
}

async function broker(options: Parameters<typeof startBroker>[0] = {}): Promise<Broker> {
  const b = await startBroker(options);
  closers.push(() => b.close());
  return b;
}

async function proxyTo(port: number): Promise<FaultProxy> {
  const proxy = await startFaultProxy({ port });
  closers.push(() => proxy.close());
  return proxy;
}

const parked = async (b: Broker): Promise<number> => ((await getStats(b))['sessions'] as { parked: number }).parked;

/** Publishes `n` events `<prefix>0..n-1` on `channel`, each acked. */
async function publishMany(publisher: CrierClient, channel: string, prefix: string, n: number): Promise<string[]> {
  const sent: string[] = [];
  for (let i = 0; i < n; i++) {
    sent.push(`${prefix}${i}`);
    await publisher.publish(channel, text(`${prefix}${i}`));
  }
  return sent;
}

describe('a connection reset with the broker alive', () => {
  it('100 clients behind a reset network all resume: nothing lost, nothing twice, in order', async () => {
    const b = await broker();
    const proxy = await proxyTo(b.port);
    const watchers = await Promise.all(Array.from({ length: 100 }, async () => new Watcher(await client(proxy.url), 'load.>')));
    await Promise.all(watchers.map((w) => w.client.subscribe('load.>').ready));
    const publisher = await client(b.url);
    const before = await publishMany(publisher, 'load.a', 'before-', 10);
    await Promise.all(watchers.map((w) => w.waitCount(10)));

    proxy.refuse(true);
    proxy.reset();
    await waitFor('the broker to park all 100 streams', async () => (await parked(b)) === 100, { timeoutMs: 10_000 });
    const during = await publishMany(publisher, 'load.b', 'during-', 30);
    proxy.refuse(false);
    await Promise.all(watchers.map((w) => w.waitResumes(1)));
    const after = await publishMany(publisher, 'load.a', 'after-', 10);
    await Promise.all(watchers.map((w) => w.waitCount(50)));

    for (const w of watchers) {
      expect(w.resumes).toEqual([{ recovered: true, replayed: 30 }]);
      expect(w.texts()).toEqual([...before, ...during, ...after]);
    }
    expect(await parked(b)).toBe(0);
  });
});

describe('a broker killed with kill -9 and restarted', () => {
  it('100 clients reconnect spread by the backoff\'s jitter, each told recovered: false (broker_restarted)', async () => {
    const port = await freePort();
    let proc: BrokerProcess = await startBrokerProcess(['--port', String(port)]);
    closers.push(() => proc.stop());
    const watchers = await Promise.all(Array.from({ length: 100 }, async () => new Watcher(await client(proc.url, { reconnect: { initialDelay: 200, maxDelay: 2000 } }), 'crash.>')));
    await waitFor('100 subscriptions', async () => (await proc.stats())['subscriptions'] === 100, { timeoutMs: 10_000 });

    await proc.stop('SIGKILL');
    await Promise.all(watchers.map((w) => waitFor('the client to notice', () => w.client.state === 'reconnecting', { timeoutMs: 10_000 })));
    proc = await startBrokerProcess(['--port', String(port)]);
    const restarted = performance.now();
    await Promise.all(watchers.map((w) => w.waitResumes(1, 20_000)));

    for (const w of watchers) expect(w.resumes[0]).toMatchObject({ recovered: false, reason: 'broker_restarted', replayed: 0 });
    const times = watchers.map((w) => w.resumedAt[0]! - restarted).sort((a, b) => a - b);
    const spread = times.at(-1)! - times[0]!;
    console.log(`kill -9: 100 clients resumed ${times[0]!.toFixed(0)}-${times.at(-1)!.toFixed(0)} ms after the restart (spread ${spread.toFixed(0)} ms, median ${times[50]!.toFixed(0)} ms)`);
    // Jittered: not one burst. (A lower bound only: how wide depends on when each attempt failed.)
    expect(new Set(times.map((t) => Math.round(t / 10))).size).toBeGreaterThan(5);

    // The clients subscribe again on their own: a new event reaches all of them.
    await waitFor('100 subscriptions again', async () => (await proc.stats())['subscriptions'] === 100, { timeoutMs: 10_000 });
    const publisher = await client(proc.url);
    await publisher.publish('crash.after', text('back'));
    await Promise.all(watchers.map((w) => w.waitCount(1)));
  });
});

describe('a half-dead network and a frame cut in half', () => {
  it('keeps every event, once, in order, across a blackhole, a reset mid-frame and latency', async () => {
    const b = await broker({ keepAliveInterval: 200 });
    const proxy = await proxyTo(b.port);
    proxy.latency(10);
    const watcher = new Watcher(await client(proxy.url), 'flow.>');
    await watcher.client.subscribe('flow.>').ready;
    const publisher = await client(b.url);
    const sent: string[] = [];
    const publish = async (n: number): Promise<void> => void sent.push(...(await publishMany(publisher, 'flow.x', `e${sent.length}-`, n)));

    await publish(20);
    // Half-dead: nothing flows, the sockets stay open; the keep-alives on both sides find out.
    proxy.blackhole(true);
    await publish(20);
    await waitFor('the broker to give up on the silent connection and park it', async () => (await parked(b)) === 1, { timeoutMs: 10_000 });
    proxy.blackhole(false);
    await watcher.waitResumes(1, 15_000);
    await publish(20);
    await watcher.waitCount(sent.length);

    // A large event cut in half by a reset.
    await publisher.publish('flow.x', new Uint8Array(200_000));
    sent.push('');
    const resumes = watcher.resumes.length;
    proxy.reset({ midFrame: true });
    await publish(20);
    await watcher.waitResumes(resumes + 1);
    await watcher.waitCount(sent.length);

    const texts = watcher.texts().map((t) => (t.length === 200_000 ? '' : t));
    expect(texts).toEqual(sent);
    expect(watcher.resumes.every((r) => r.recovered)).toBe(true);
  });
});

describe('a publish whose ack is lost with the connection', () => {
  it.each([
    ['delivered once, as a subscriber sees it', 120_000, ['once', 'marker']],
    // The proof that it was sent again: without the broker's idempotency window, twice.
    ['delivered twice without the idempotency window (the resend happened)', 0, ['once', 'once', 'marker']],
  ] as const)('is sent again with its message id after the reconnect: %s', async (_, idempotencyWindow, expected) => {
    const b = await broker({ idempotencyWindow });
    const proxy = await proxyTo(b.port);
    const watcher = new Watcher(await client(b.url), 'pay.>');
    await watcher.client.subscribe('pay.>').ready;
    const publisher = await client(proxy.url);
    // Slow both ways: the broker has the publish long before its ack could reach the publisher.
    proxy.latency(300);
    const acked = publisher.publish('pay.done', text('once'));
    await watcher.waitCount(1); // delivered: the broker has it
    proxy.reset(); // the ack is still on its way: lost with the connection
    const ack = await acked; // resent after the reconnect with the same id, acked with the first result
    await publisher.publish('pay.done', text('marker'));
    await watcher.waitCount(expected.length);
    expect(watcher.texts()).toEqual(expected);
    if (idempotencyWindow > 0) expect(ack.offset).toBe(watcher.events[0]!.offset);
  });
});
