// The subscription registry: one place that adds and removes every subscriber's subscriptions,
// and tells when this node's interest in a name or pattern starts (first subscriber) and ends
// (last): what an engine that routes between nodes (Redis) subscribes to.
import { expect, it } from 'vitest';
import { compileFilter } from '@crier/protocol';
import { SubscriptionRegistry } from '../src/core/registry.js';
import type { IndexEntry, Subscriber } from '../src/core/subscriber.js';

function subscriber(): Subscriber {
  const sub: Subscriber = { stamp: 0, filter: undefined, subscriptions: new Map<string, IndexEntry>(), deliver: () => true } as unknown as Subscriber;
  (sub as { sub: Subscriber }).sub = sub;
  return sub;
}

it('reports a name or pattern\'s first subscriber and its last, once each, whatever the filters', () => {
  const registry = new SubscriptionRegistry();
  const changes: string[] = [];
  registry.onInterest((pattern, present) => changes.push(`${present ? '+' : '-'}${pattern}`));
  const [a, b] = [subscriber(), subscriber()];
  const urgent = compileFilter({ l: ['urgent'] });

  expect(registry.add(a, 'user.*', undefined)).toBe(true);
  expect(registry.add(a, 'user.*', undefined)).toBe(false); // held: nothing changes
  expect(registry.add(a, 'user.*', urgent)).toBe(true); // another subscription, same pattern
  expect(registry.add(b, 'user.*', undefined)).toBe(true);
  expect(registry.add(b, 'order.created', undefined)).toBe(true);
  expect(changes).toEqual(['+user.*', '+order.created']);

  expect(registry.remove(a, 'user.*', undefined)).toBe(true);
  registry.removeAll(b);
  expect(changes).toEqual(['+user.*', '+order.created', '-order.created']); // a's filtered one still holds user.*
  expect(registry.remove(a, 'user.*', urgent)).toBe(true);
  expect(changes.at(-1)).toBe('-user.*');
  expect(registry.subscriptions).toBe(0);
  expect(registry.channels).toBe(0);
});

it('matches through the index once per entry; the pipeline dedupes subscribers', () => {
  const registry = new SubscriptionRegistry();
  const a = subscriber();
  registry.add(a, 'user.*', undefined);
  registry.add(a, 'user.>', undefined);
  const seen: IndexEntry[] = [];
  registry.match('user.created', (entry) => seen.push(entry));
  expect(seen).toHaveLength(2);
  expect(seen.every((e) => e.sub === a)).toBe(true);
});
