// Server-side subscription filters end to end: sdk-node clients and a real broker.
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@crier/broker';
import type { CrierClient, CrierEvent } from '@crier/sdk-node';
import { connectClient, startBroker, text, waitFor } from './helpers.js';

const brokers: Broker[] = [];
const clients: CrierClient[] = [];

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((c) => c.quit()));
  await Promise.allSettled(brokers.splice(0).map((b) => b.close()));
});

async function broker(port = 0): Promise<Broker> {
  const b = await startBroker({ port });
  brokers.push(b);
  return b;
}

async function client(b: Broker): Promise<CrierClient> {
  const c = await connectClient(b, { reconnect: { initialDelay: 10, maxDelay: 50 } });
  clients.push(c);
  return c;
}

const texts = (events: CrierEvent[]): string[] => events.map((e) => new TextDecoder().decode(e.data));

describe('subscription filters', () => {
  it('the broker queues only passing events; overlapping subscriptions deliver once; handlers see only their own', async () => {
    const b = await broker();
    const [pub, sub] = await Promise.all([client(b), client(b)]);
    const red: CrierEvent[] = [];
    const both: CrierEvent[] = [];
    const keyed: CrierEvent[] = [];
    const stream: CrierEvent[] = [];
    sub.onEvent((e) => stream.push(e));
    await Promise.all([
      sub.subscribe('order.*', { labels: ['red', 'blue'] }, (e) => red.push(e)).ready,
      sub.subscribe('order.>', { labels: ['red', 'blue'], allLabels: true }, (e) => both.push(e)).ready,
      sub.subscribe('order.paid', { keys: ['k1'] }, (e) => keyed.push(e)).ready,
    ]);
    await pub.publish('order.paid', text('1'), { labels: ['red'] });
    await pub.publish('order.paid', text('2'), { labels: ['green'] });
    await pub.publish('order.paid', text('3'), { labels: ['blue', 'red'], key: 'k1' });
    await pub.publish('order.paid', text('4'), { key: 'k1' });
    await pub.publish('order.paid', text('5'));
    await waitFor('the last passing event', () => stream.length >= 3 && keyed.length >= 2);
    expect(texts(stream)).toEqual(['1', '3', '4']);
    expect(texts(red)).toEqual(['1', '3']);
    expect(texts(both)).toEqual(['3']);
    expect(texts(keyed)).toEqual(['3', '4']);
    // Events 2 and 5 passed no filter: never queued to the subscriber.
    expect(b.stats()).toMatchObject({ published: 5, delivered: 3, subscriptions: 3 });
  });

  it('subscriptions keep their filters across a broker restart', async () => {
    const first = await broker();
    const port = first.port;
    const c = await client(first);
    const got: CrierEvent[] = [];
    await c.subscribe('a.*', { keys: ['mine'] }, (e) => got.push(e)).ready;
    await first.close();
    const second = await broker(port);
    await waitFor('the client to resubscribe', () => second.stats().subscriptions === 1);
    second.publish('a.b', text('not mine'), { key: 'theirs' });
    second.publish('a.b', text('mine'), { key: 'mine' });
    await waitFor('the event', () => got.length >= 1);
    second.publish('a.end', text('end'), { key: 'mine' });
    await waitFor('the end event', () => got.length >= 2);
    expect(texts(got)).toEqual(['mine', 'end']);
    expect(second.stats().delivered).toBe(2);
  });
});
