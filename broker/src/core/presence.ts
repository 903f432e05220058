import { FrameType, encodeFrame, isWildcard } from '@crier/protocol';
import type { PresenceCount } from '../engine/engine.js';
import type { SubscriptionRegistry } from './registry.js';
import type { Flushable, Subscriber } from './subscriber.js';

// Presence: who subscribes to a channel or a pattern on this node, and join/leave notices for the
// subscriptions that asked for them (`pe`). Counts come from the registry's index (a channel name:
// the subscribers an event on it reaches) and from a count of each subscriber's subscriptions per
// name or pattern kept here (a pattern: those holding exactly it; the notices: a subscriber's first
// and last subscription of a channel). Nothing scans every connection.

/** Principal ids an answer lists at most (its count stays exact). */
export const MAX_PRESENCE_MEMBERS = 1000;
/**
 * Notices one channel's watchers get per flush at most: past it, one more notice with the count
 * now and no id stands for the rest (a reconnect storm of thousands must not become thousands of
 * frames to each watcher).
 */
export const MAX_NOTICES_PER_FLUSH = 64;

/** A subscription made with `pe`: where its notices go, and whether it may see who joined. */
export interface PresenceWatcher {
  /** Whether its principal may see the ids of `channel`'s subscribers (read at each notice). */
  maySee(channel: string): boolean;
  /** Queues an encoded frame for it; never refuses. */
  enqueueControl(frame: Uint8Array): void;
  /** Gone (closed): it is sent nothing. */
  readonly gone: boolean;
}

/** The principal id presence may show of `sub`: authenticated ones only, never a uuid. */
export function memberId(sub: Subscriber): string | undefined {
  const p = sub.principal;
  return p === undefined || p.kind === 'anonymous' ? undefined : p.id;
}

/** Figures for `/stats`. */
export interface PresenceFigures {
  /** Channels with at least one subscription asking for notices. */
  watched: number;
  /** Notices queued since start (one per watcher), and changes folded into a summary notice. */
  notices: number;
  folded: number;
  /** Presence questions answered by this node (its own clients', and other nodes'). */
  queries: number;
}

export class Presence implements Flushable {
  dirty = false;
  /** Per name or pattern, each subscriber holding it and with how many subscriptions (filters, groups). */
  private readonly held = new Map<string, Map<Subscriber, number>>();
  /** Per channel name, its watchers (subscribers whose subscription asked for notices). */
  private readonly watchers = new Map<string, Map<Subscriber, PresenceWatcher>>();
  /** Per watched channel, the net change of each subscriber since the last flush (true: joined). */
  private readonly pending = new Map<string, Map<Subscriber, boolean>>();
  private readonly figures = { notices: 0, folded: 0, queries: 0 };

  constructor(
    private readonly registry: SubscriptionRegistry,
    private readonly markDirty: (item: Flushable) => void,
  ) {
    registry.onSubscription((sub, pattern, added) => (added ? this.added(sub, pattern) : this.removed(sub, pattern)));
  }

  /**
   * This node's subscribers of `pattern`: for a channel name, those an event on it reaches (by any
   * subscription, queue group members included); for a wildcard pattern, those holding exactly
   * it. With `members`, the distinct ids of the authenticated principals among them (sorted, at
   * most {@link MAX_PRESENCE_MEMBERS}). The caller checked the grants.
   */
  count(pattern: string, members: boolean): PresenceCount {
    this.figures.queries++;
    let subs: Iterable<Subscriber>;
    let n: number;
    if (isWildcard(pattern)) {
      const held = this.held.get(pattern);
      subs = held?.keys() ?? [];
      n = held?.size ?? 0;
    } else {
      const reached = new Set<Subscriber>();
      this.registry.match(pattern, (entry) => reached.add(entry.sub));
      this.registry.groups.match(pattern, (group) => {
        for (const member of group.members) reached.add(member.sub);
      });
      subs = reached;
      n = reached.size;
    }
    if (!members) return { n };
    const ids = new Set<string>();
    for (const sub of subs) {
      const id = memberId(sub);
      if (id === undefined) continue;
      ids.add(id);
      if (ids.size >= MAX_PRESENCE_MEMBERS) break;
    }
    return { n, m: [...ids].sort() };
  }

  /**
   * `sub` (holding a subscription of the channel name `channel`) gets a notice whenever a
   * subscriber starts or stops holding `channel`, until its own last subscription of it ends.
   */
  watch(sub: Subscriber, channel: string, watcher: PresenceWatcher): void {
    if (!this.held.get(channel)?.has(sub)) return; // not subscribed (after all): nothing to watch
    let watching = this.watchers.get(channel);
    if (watching === undefined) this.watchers.set(channel, (watching = new Map()));
    watching.set(sub, watcher);
  }

  /** Figures for `/stats`. */
  stats(): PresenceFigures {
    return { watched: this.watchers.size, ...this.figures };
  }

  /** Sends each watched channel's changes of this turn to its watchers. */
  flush(): void {
    for (const [channel, changes] of this.pending) {
      const watching = this.watchers.get(channel);
      if (watching !== undefined && changes.size > 0) this.notify(channel, changes, watching);
    }
    this.pending.clear();
  }

  private added(sub: Subscriber, pattern: string): void {
    let held = this.held.get(pattern);
    if (held === undefined) this.held.set(pattern, (held = new Map()));
    const count = (held.get(sub) ?? 0) + 1;
    held.set(sub, count);
    if (count === 1) this.changed(pattern, sub, true);
  }

  private removed(sub: Subscriber, pattern: string): void {
    const held = this.held.get(pattern);
    const count = (held?.get(sub) ?? 1) - 1;
    if (held === undefined) return;
    if (count > 0) {
      held.set(sub, count);
      return;
    }
    held.delete(sub);
    if (held.size === 0) this.held.delete(pattern);
    // Its watch ends with its last subscription of the channel (before the notice: it is not told of itself).
    const watching = this.watchers.get(pattern);
    if (watching?.delete(sub) && watching.size === 0) this.watchers.delete(pattern);
    this.changed(pattern, sub, false);
  }

  private changed(channel: string, sub: Subscriber, joined: boolean): void {
    if (!this.watchers.has(channel)) return;
    let changes = this.pending.get(channel);
    if (changes === undefined) this.pending.set(channel, (changes = new Map()));
    // A join and a leave of the same subscriber within one turn cancel out.
    if (changes.get(sub) === !joined) changes.delete(sub);
    else changes.set(sub, joined);
    if (!this.dirty) this.markDirty(this);
  }

  private notify(channel: string, changes: Map<Subscriber, boolean>, watching: Map<Subscriber, PresenceWatcher>): void {
    const now = this.held.get(channel)?.size ?? 0;
    let net = 0;
    for (const joined of changes.values()) net += joined ? 1 : -1;
    // The count after each change, from the count before this turn's changes.
    let n = now - net;
    let sent = 0;
    for (const [sub, j] of changes) {
      if (sent === MAX_NOTICES_PER_FLUSH - 1 && changes.size > MAX_NOTICES_PER_FLUSH) {
        // The rest in one: the count now, which way the rest went (more or as many: a join), no id.
        this.figures.folded += changes.size - sent;
        this.send(watching, undefined, encodeFrame({ t: FrameType.presenceChange, c: channel, j: now >= n, n: now }), undefined, channel);
        return;
      }
      n += j ? 1 : -1;
      sent++;
      const id = memberId(sub);
      const bare = encodeFrame({ t: FrameType.presenceChange, c: channel, j, n });
      const named = id === undefined ? bare : encodeFrame({ t: FrameType.presenceChange, c: channel, j, n, m: id });
      this.send(watching, sub, bare, named, channel);
    }
  }

  /** One notice to every watcher (but `about` itself): `named` to those who may see ids. */
  private send(watching: Map<Subscriber, PresenceWatcher>, about: Subscriber | undefined, bare: Uint8Array, named: Uint8Array | undefined, channel: string): void {
    for (const [sub, watcher] of watching) {
      if (sub === about || watcher.gone) continue;
      watcher.enqueueControl(named !== undefined && watcher.maySee(channel) ? named : bare);
      this.figures.notices++;
    }
  }
}
