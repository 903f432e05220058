import { patternOfSubscriptionKey, type EventFilter } from '@crier/protocol';
import type { ChannelCount } from '../types.js';
import { ChannelIndex } from './channel-index.js';
import { GroupMember, QueueGroups, memberKey } from './groups.js';
import { FilteredEntry, type IndexEntry, type Subscriber } from './subscriber.js';

/** A name or pattern gained its first subscriber (`true`) or lost its last (`false`) on this node. */
export type InterestListener = (pattern: string, present: boolean) => void;

/** `sub` gained (`true`) or lost (`false`) one subscription of `pattern` (any filter or group). */
export type SubscriptionListener = (sub: Subscriber, pattern: string, added: boolean) => void;

/**
 * Every subscription of every subscriber (connections, SSE streams, in-process handlers): the
 * one place that adds and removes them, keeps the channel index the pipeline matches against,
 * and tells the engine when this node's interest in a name or pattern starts and ends. Queue group
 * members are held apart, in {@link groups}: an event goes to one member of a group, not to each.
 */
export class SubscriptionRegistry {
  readonly index = new ChannelIndex<IndexEntry>();
  readonly groups: QueueGroups;
  private readonly listeners: InterestListener[] = [];
  /** Presence's count of who holds what (see core/presence.ts): one listener, or none. */
  private onChange: SubscriptionListener | undefined;

  /** @param busyDepth events queued towards a group member from which it is passed over */
  constructor(busyDepth = Infinity) {
    this.groups = new QueueGroups(busyDepth);
  }

  /** Distinct subscribed names and patterns. */
  get channels(): number {
    return this.index.channels;
  }

  /** (subscriber, pattern, filter, group) subscriptions held. */
  get subscriptions(): number {
    return this.index.subscriptions + this.groups.members;
  }

  /** Calls `listener` on every change of interest from now on. */
  onInterest(listener: InterestListener): void {
    this.listeners.push(listener);
  }

  /** Calls `listener` on every subscription added or ended from now on (replacing any before). */
  onSubscription(listener: SubscriptionListener): void {
    this.onChange = listener;
  }

  /** Whether `sub` holds the subscription `(pattern, filter, group)`. */
  holds(sub: Subscriber, pattern: string, filter: EventFilter | undefined, group?: string): boolean {
    return sub.subscriptions.has(memberKey(pattern, filter, group));
  }

  /**
   * Subscribes `sub` to the valid `pattern` through `filter`, as a member of the queue group
   * `group` (a valid name) when given. Returns false when already held.
   */
  add(sub: Subscriber, pattern: string, filter: EventFilter | undefined, group?: string): boolean {
    const key = memberKey(pattern, filter, group);
    if (sub.subscriptions.has(key)) return false;
    let entry: IndexEntry;
    if (group !== undefined) {
      entry = this.groups.add(sub, pattern, filter, group);
    } else {
      entry = filter === undefined ? sub : new FilteredEntry(sub, filter);
      this.index.add(pattern, entry);
    }
    sub.subscriptions.set(key, entry);
    this.onChange?.(sub, pattern, true);
    if (this.listeners.length > 0 && this.holders(pattern) === 1) this.tell(pattern, true);
    return true;
  }

  /** Ends the subscription `(pattern, filter, group)` of `sub`. Returns false when it was not held. */
  remove(sub: Subscriber, pattern: string, filter: EventFilter | undefined, group?: string): boolean {
    const key = memberKey(pattern, filter, group);
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
    if (entry instanceof GroupMember) this.groups.remove(entry);
    else this.index.remove(pattern, entry);
    this.onChange?.(entry.sub, pattern, false);
    if (this.listeners.length > 0 && this.holders(pattern) === 0) this.tell(pattern, false);
  }

  /** Subscriptions of `pattern`, group members included: the node's interest in it. */
  private holders(pattern: string): number {
    return this.index.holders(pattern) + this.groups.holders(pattern);
  }

  private tell(pattern: string, present: boolean): void {
    for (const listener of this.listeners) listener(pattern, present);
  }
}
