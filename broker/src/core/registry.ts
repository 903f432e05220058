import { patternOfSubscriptionKey, subscriptionKey, type EventFilter } from '@crier/protocol';
import type { ChannelCount } from '../types.js';
import { ChannelIndex } from './channel-index.js';
import { FilteredEntry, type IndexEntry, type Subscriber } from './subscriber.js';

/** A name or pattern gained its first subscriber (`true`) or lost its last (`false`) on this node. */
export type InterestListener = (pattern: string, present: boolean) => void;

/**
 * Every subscription of every subscriber (connections, SSE streams, in-process handlers): the
 * one place that adds and removes them, keeps the channel index the pipeline matches against,
 * and tells the engine when this node's interest in a name or pattern starts and ends.
 */
export class SubscriptionRegistry {
  readonly index = new ChannelIndex<IndexEntry>();
  private readonly listeners: InterestListener[] = [];

  /** Distinct subscribed names and patterns. */
  get channels(): number {
    return this.index.channels;
  }

  /** (subscriber, pattern, filter) subscriptions held. */
  get subscriptions(): number {
    return this.index.subscriptions;
  }

  /** Calls `listener` on every change of interest from now on. */
  onInterest(listener: InterestListener): void {
    this.listeners.push(listener);
  }

  /** Whether `sub` holds the subscription `(pattern, filter)`. */
  holds(sub: Subscriber, pattern: string, filter: EventFilter | undefined): boolean {
    return sub.subscriptions.has(subscriptionKey(pattern, filter));
  }

  /** Subscribes `sub` to the valid `pattern` through `filter`. Returns false when already held. */
  add(sub: Subscriber, pattern: string, filter: EventFilter | undefined): boolean {
    const key = subscriptionKey(pattern, filter);
    if (sub.subscriptions.has(key)) return false;
    const entry: IndexEntry = filter === undefined ? sub : new FilteredEntry(sub, filter);
    sub.subscriptions.set(key, entry);
    this.index.add(pattern, entry);
    if (this.listeners.length > 0 && this.index.holders(pattern) === 1) this.tell(pattern, true);
    return true;
  }

  /** Ends the subscription `(pattern, filter)` of `sub`. Returns false when it was not held. */
  remove(sub: Subscriber, pattern: string, filter: EventFilter | undefined): boolean {
    const key = subscriptionKey(pattern, filter);
    const entry = sub.subscriptions.get(key);
    if (entry === undefined) return false;
    sub.subscriptions.delete(key);
    this.unindex(pattern, entry);
    return true;
  }

  /** Ends every subscription of `sub`. */
  removeAll(sub: Subscriber): void {
    for (const [key, entry] of sub.subscriptions) this.unindex(patternOfSubscriptionKey(key), entry);
    sub.subscriptions.clear();
  }

  /** Calls `visit` for every entry whose name or pattern matches `channel` (see ChannelIndex.match). */
  match(channel: string, visit: (entry: IndexEntry) => void): void {
    this.index.match(channel, visit);
  }

  /** The most subscribed names and patterns (see ChannelIndex.top). */
  top(limit: number): ChannelCount[] {
    return this.index.top(limit);
  }

  private unindex(pattern: string, entry: IndexEntry): void {
    this.index.remove(pattern, entry);
    if (this.listeners.length > 0 && this.index.holders(pattern) === 0) this.tell(pattern, false);
  }

  private tell(pattern: string, present: boolean): void {
    for (const listener of this.listeners) listener(pattern, present);
  }
}
