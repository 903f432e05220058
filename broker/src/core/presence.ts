import { FrameType, encodeFrame, isWildcard } from '@crier/protocol';
import type { PresenceCarrier, PresenceChange, PresenceCount, PresenceNews } from '../engine/engine.js';
import type { SubscriptionRegistry } from './registry.js';
import type { Flushable, Subscriber } from './subscriber.js';

// Presence: who subscribes to a channel or a pattern on this node, and join/leave notices for the
// subscriptions that asked for them (`pe`). Counts come from the registry's index (a channel name:
// the subscribers an event on it reaches) and from a count of each subscriber's subscriptions per
// name or pattern kept here (a pattern: those holding exactly it; the notices: a subscriber's first
// and last subscription of a channel). Nothing scans every connection.
//
// Across nodes (an engine with a PresenceCarrier: Redis), a watched channel's notices are the
// deployment's: each node sends its changes of the channels other nodes watch (one batch per
// turn, to the watching nodes only), and `n` adds the other nodes' holders (their latest count
// each) to this node's. A channel's first watcher here waits for the other nodes' counts (1 s at
// most) before its first notice.

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

/** A change waiting to be told: about a local subscriber (`about`: not told to itself) or another node's. */
interface Notice {
  about?: Subscriber | undefined;
  j: boolean;
  m?: string | undefined;
}

/** A watched channel's changes waiting to be told: the first 64 itemized, the rest counted (`net`: joins minus leaves). */
interface NoticeQueue {
  items: Notice[];
  more: number;
  net: number;
}

export class Presence implements Flushable {
  dirty = false;
  /** Per name or pattern, each subscriber holding it and with how many subscriptions (filters, groups). */
  private readonly held = new Map<string, Map<Subscriber, number>>();
  /** Per channel name, its watchers (subscribers whose subscription asked for notices). */
  private readonly watchers = new Map<string, Map<Subscriber, PresenceWatcher>>();
  /** Per watched channel, the net change of each subscriber since the last flush (true: joined). */
  private readonly pending = new Map<string, Map<Subscriber, boolean>>();
  /** Per channel watched here, the changes to tell its watchers (held while the carrier is not settled). */
  private readonly queued = new Map<string, NoticeQueue>();
  /**
   * The channels whose queue got something this turn: all a flush looks at. A held queue waits
   * unseen until the carrier's word about its channel (its news when it settles) makes it due again.
   */
  private readonly due = new Set<string>();
  /** Per channel watched here, its holders on the other nodes (the carrier's latest word). */
  private readonly others = new Map<string, number>();
  private readonly figures = { notices: 0, folded: 0, queries: 0 };

  /** The engine's carrier of notices between nodes (none: one node, its own notices). */
  private carrier: PresenceCarrier | undefined;

  constructor(
    private readonly registry: SubscriptionRegistry,
    private readonly markDirty: (item: Flushable) => void,
  ) {
    registry.onSubscription((sub, pattern, added) => (added ? this.added(sub, pattern) : this.removed(sub, pattern)));
  }

  /**
   * Notices become the deployment's: other nodes' changes of the channels watched here arrive
   * through `carrier`, and this node's changes of the channels watched elsewhere leave through it.
   * Set once, before the first subscription.
   */
  carry(carrier: PresenceCarrier): void {
    this.carrier = carrier;
    carrier.onNews((news) => this.news(news), (channel) => this.held.get(channel)?.size ?? 0);
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
    if (watching === undefined) {
      this.watchers.set(channel, (watching = new Map()));
      this.carrier?.watch(channel, true);
    }
    watching.set(sub, watcher);
  }

  /** Figures for `/stats`. */
  stats(): PresenceFigures {
    return { watched: this.watchers.size, ...this.figures };
  }

  /**
   * Sends each watched channel's changes of this turn to its watchers (those of other nodes too,
   * once the carrier knows their counts), and this node's changes of the channels watched on
   * other nodes to the carrier, in one batch.
   */
  flush(): void {
    let news: PresenceNews[] | undefined;
    for (const [channel, changes] of this.pending) {
      if (changes.size === 0) continue;
      if (this.carrier?.watchedElsewhere(channel) === true) (news ??= []).push(this.newsOf(channel, changes));
      if (!this.watchers.has(channel)) continue;
      const queue = this.queue(channel);
      for (const [sub, j] of changes) enqueue(queue, { about: sub, j, m: memberId(sub) });
    }
    this.pending.clear();
    for (const channel of this.due) {
      const queue = this.queued.get(channel);
      if (queue === undefined || (this.carrier !== undefined && !this.carrier.settled(channel))) continue; // told once the other nodes' counts are known
      this.queued.delete(channel);
      const watching = this.watchers.get(channel);
      if (watching !== undefined) this.notify(channel, queue, watching);
    }
    this.due.clear();
    if (news !== undefined) this.carrier!.send(news);
  }

  /** Other nodes' news of a channel watched here (`n`: their holders together, now). */
  private news(news: PresenceNews): void {
    const { channel } = news;
    if (!this.watchers.has(channel)) return; // no longer watched here
    this.others.set(channel, news.n);
    if (news.changes.length > 0 || (news.more ?? 0) > 0) {
      const queue = this.queue(channel);
      for (const change of news.changes) enqueue(queue, change);
      queue.more += news.more ?? 0;
      queue.net += news.net ?? 0;
    }
    // A sync settling the channel also releases what waited for it.
    if (!this.queued.has(channel)) return;
    this.due.add(channel);
    if (!this.dirty) this.markDirty(this);
  }

  /** This node's news of `channel` for the other nodes: its holders now, the changes (64 at most itemized). */
  private newsOf(channel: string, changes: Map<Subscriber, boolean>): PresenceNews {
    const items: PresenceChange[] = [];
    let more = 0;
    let net = 0;
    for (const [sub, j] of changes) {
      if (items.length < MAX_NOTICES_PER_FLUSH) {
        const m = memberId(sub);
        items.push(m === undefined ? { j } : { j, m });
      } else {
        more++;
        net += j ? 1 : -1;
      }
    }
    const out: PresenceNews = { channel, n: this.held.get(channel)?.size ?? 0, changes: items };
    if (more > 0) Object.assign(out, { more, net });
    return out;
  }

  /** `channel`'s queue of notices, due at this turn's flush. */
  private queue(channel: string): NoticeQueue {
    let queue = this.queued.get(channel);
    if (queue === undefined) this.queued.set(channel, (queue = { items: [], more: 0, net: 0 }));
    this.due.add(channel);
    return queue;
  }

  /** `channel` has no watcher here any more: its queued notices and the other nodes' count go. */
  private unwatched(channel: string): void {
    this.watchers.delete(channel);
    this.queued.delete(channel);
    this.due.delete(channel);
    this.others.delete(channel);
    this.carrier?.watch(channel, false);
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
    if (watching?.delete(sub) && watching.size === 0) this.unwatched(pattern);
    this.changed(pattern, sub, false);
  }

  private changed(channel: string, sub: Subscriber, joined: boolean): void {
    if (!this.watchers.has(channel) && this.carrier?.watchedElsewhere(channel) !== true) return;
    let changes = this.pending.get(channel);
    if (changes === undefined) this.pending.set(channel, (changes = new Map()));
    // A join and a leave of the same subscriber within one turn cancel out.
    if (changes.get(sub) === !joined) changes.delete(sub);
    else changes.set(sub, joined);
    if (!this.dirty) this.markDirty(this);
  }

  private notify(channel: string, queue: NoticeQueue, watching: Map<Subscriber, PresenceWatcher>): void {
    const { items, more } = queue;
    if (items.length === 0 && more === 0) return;
    // The deployment's holders now: this node's and the other nodes' latest count.
    const now = (this.held.get(channel)?.size ?? 0) + (this.others.get(channel) ?? 0);
    let net = queue.net;
    for (const item of items) net += item.j ? 1 : -1;
    // The count after each change, from the count before this turn's changes.
    let n = now - net;
    // Past 64 (or with changes counted but not itemized): 63 itemized, then one notice for the rest.
    const fold = more > 0 || items.length > MAX_NOTICES_PER_FLUSH;
    const itemized = fold ? Math.min(items.length, MAX_NOTICES_PER_FLUSH - 1) : items.length;
    for (let i = 0; i < itemized; i++) {
      const { about, j, m } = items[i]!;
      n += j ? 1 : -1;
      // A count a lost message made wrong is never told below zero (the next news corrects it).
      const at = Math.max(0, n);
      const bare = encodeFrame({ t: FrameType.presenceChange, c: channel, j, n: at });
      const named = m === undefined ? bare : encodeFrame({ t: FrameType.presenceChange, c: channel, j, n: at, m });
      this.send(watching, about, bare, named, channel);
    }
    if (fold) {
      // The rest in one: the count now, which way the rest went (more or as many: a join), no id.
      this.figures.folded += items.length - itemized + more;
      this.send(watching, undefined, encodeFrame({ t: FrameType.presenceChange, c: channel, j: now >= n, n: Math.max(0, now) }), undefined, channel);
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

/** Queues a change: the first 64 itemized, the rest counted. */
function enqueue(queue: NoticeQueue, notice: Notice): void {
  if (queue.items.length < MAX_NOTICES_PER_FLUSH) queue.items.push(notice);
  else {
    queue.more++;
    queue.net += notice.j ? 1 : -1;
  }
}
