import { CrierError, ErrorCode, subscriptionKey, type EventFilter } from '@crier/protocol';
import { TopN } from '../observe/top-n.js';
import type { GroupFilterCount, ParkedSession } from '../engine/engine.js';
import type { GroupStats } from '../types.js';
import { ChannelIndex } from './channel-index.js';
import type { IndexEntry, Subscriber } from './subscriber.js';

// Queue groups (NATS-style): subscriptions that share a group name and a pattern are one group,
// and each event the pattern matches goes to ONE member of it (whose filter it passes), not to
// every one. At most once: the member picked gets it (or loses it to a full queue, as any
// subscriber would); it is never handed to a second member.
//
// Picking: round-robin over the members, skipping the busy ones (a slow consumer dropping events,
// or one with at least `busyDepth` events waiting towards it); when every member that passes the
// filter is busy, the least queued of them (those not dropping first; ties in round-robin order).

const GROUP_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** Added to a slow member's depth when every member is busy: the least queued of those not dropping goes first. */
const SLOW_RANK = 2 ** 40;

/** Throws `bad_frame` unless `group` is a queue group name: 1-64 characters of `A-Za-z0-9_.-`. */
export function assertGroup(group: unknown): asserts group is string {
  if (typeof group !== 'string' || !GROUP_NAME.test(group)) {
    throw new CrierError(ErrorCode.badFrame, 'a queue group name (g) is 1-64 characters of A-Z a-z 0-9 _ . -');
  }
}

/** A group's identity: its name and its pattern (neither holds a space). */
export function groupKey(name: string, pattern: string): string {
  return `${name} ${pattern}`;
}

/**
 * A subscription's identity on its subscriber with its group: (pattern, filter, group). The
 * group goes last behind ` \0` (a filter's id is JSON, which never holds a raw NUL), so the key
 * still starts with the pattern and a space, as `patternOfSubscriptionKey` reads it.
 */
export function memberKey(pattern: string, filter: EventFilter | undefined, group: string | undefined): string {
  const key = subscriptionKey(pattern, filter);
  return group === undefined ? key : `${key} \u0000${group}`;
}

/** One member of a group: a subscriber's subscription (pattern, filter) in it. */
export class GroupMember implements IndexEntry {
  constructor(
    readonly sub: Subscriber,
    readonly filter: EventFilter | undefined,
    readonly group: QueueGroup,
  ) {}
}

/** A group (name, pattern) on this node: its members, where its round-robin stands, its figures. */
export class QueueGroup {
  readonly key: string;
  readonly members: GroupMember[] = [];
  /** The member to try first next time. */
  cursor = 0;
  /** Events handed to a member; members passed over as busy; events no member here could take. */
  delivered = 0;
  skipped = 0;
  missed = 0;

  constructor(
    readonly name: string,
    readonly pattern: string,
  ) {
    this.key = groupKey(name, pattern);
  }
}

/** This node's members of a group (name, pattern) changed: how many have each filter (empty: none left). */
export type GroupListener = (name: string, pattern: string, members: readonly GroupFilterCount[]) => void;

/** Who may be picked (a request goes to open WebSocket connections only). */
export type Eligible = (sub: Subscriber) => boolean;

/** Every queue group of this node, indexed by pattern as subscriptions are. */
export class QueueGroups {
  private readonly index = new ChannelIndex<QueueGroup>();
  private readonly byKey = new Map<string, QueueGroup>();
  /** Members per pattern, over every group of it (the node's interest in the pattern). */
  private readonly perPattern = new Map<string, number>();
  private readonly listeners: GroupListener[] = [];
  /** Members over every group. */
  members = 0;
  /** Figures over every group since start (those of groups gone included). */
  readonly totals = { delivered: 0, skipped: 0, missed: 0 };

  /** @param busyDepth events waiting towards a member from which it is passed over */
  constructor(private readonly busyDepth: number) {}

  /** Groups held now. */
  get size(): number {
    return this.byKey.size;
  }

  onMembers(listener: GroupListener): void {
    this.listeners.push(listener);
  }

  /** Members of every group of `pattern`. */
  holders(pattern: string): number {
    return this.perPattern.get(pattern) ?? 0;
  }

  add(sub: Subscriber, pattern: string, filter: EventFilter | undefined, name: string): GroupMember {
    const key = groupKey(name, pattern);
    let group = this.byKey.get(key);
    if (group === undefined) {
      this.byKey.set(key, (group = new QueueGroup(name, pattern)));
      this.index.add(pattern, group);
    }
    const member = new GroupMember(sub, filter, group);
    group.members.push(member);
    this.members++;
    this.perPattern.set(pattern, (this.perPattern.get(pattern) ?? 0) + 1);
    this.tell(group);
    return member;
  }

  remove(member: GroupMember): void {
    const group = member.group;
    const at = group.members.indexOf(member);
    if (at < 0) return;
    group.members.splice(at, 1);
    // The member after the one removed keeps its turn.
    if (group.cursor > at) group.cursor--;
    this.members--;
    const left = (this.perPattern.get(group.pattern) ?? 1) - 1;
    if (left === 0) this.perPattern.delete(group.pattern);
    else this.perPattern.set(group.pattern, left);
    if (group.members.length === 0) {
      this.byKey.delete(group.key);
      this.index.remove(group.pattern, group);
      this.totals.delivered += group.delivered;
      this.totals.skipped += group.skipped;
      this.totals.missed += group.missed;
    }
    this.tell(group);
  }

  /**
   * A subscriber started or ended a slow spell: each group it is a member of is told again (so
   * that other nodes pick this one for it only when no member elsewhere keeps up).
   */
  slowChanged(subscriptions: ReadonlyMap<string, IndexEntry> | undefined): void {
    if (subscriptions === undefined || this.listeners.length === 0 || this.members === 0) return;
    let told: Set<QueueGroup> | undefined;
    for (const entry of subscriptions.values()) {
      if (!(entry instanceof GroupMember) || told?.has(entry.group)) continue;
      (told ??= new Set()).add(entry.group);
      this.tell(entry.group);
    }
  }

  /** Calls `visit` for every group whose pattern matches `channel`. */
  match(channel: string, visit: (group: QueueGroup) => void): void {
    this.index.match(channel, visit);
  }

  /**
   * The member of `group` that gets an event with `labels` and `key`, or `undefined` when no
   * member passes its filter (or is `eligible`). Counted in the group's figures.
   */
  pick(group: QueueGroup, labels: string[] | undefined, key: string | undefined, eligible?: Eligible): Subscriber | undefined {
    const members = group.members;
    const n = members.length;
    let fallback = -1;
    let fallbackDepth = Infinity;
    for (let i = 0; i < n; i++) {
      const at = (group.cursor + i) % n;
      const member = members[at]!;
      if (member.filter !== undefined && !member.filter.passes(labels, key)) continue;
      const sub = member.sub;
      if (eligible !== undefined && !eligible(sub)) continue;
      const depth = sub.queueDepth ?? 0;
      if (sub.slow !== true && depth < this.busyDepth) {
        group.cursor = (at + 1) % n;
        group.delivered++;
        return sub;
      }
      group.skipped++;
      // A member dropping events comes after every one that is only queued deep.
      const rank = sub.slow === true ? depth + SLOW_RANK : depth;
      if (rank < fallbackDepth) {
        fallback = at;
        fallbackDepth = rank;
      }
    }
    if (fallback < 0) {
      group.missed++;
      return undefined;
    }
    group.cursor = (fallback + 1) % n;
    group.delivered++;
    return members[fallback]!.sub;
  }

  /** Figures over every group: those held now and those gone. */
  figures(): { groups: number; members: number; delivered: number; skipped: number; missed: number } {
    let { delivered, skipped, missed } = this.totals;
    for (const group of this.byKey.values()) {
      delivered += group.delivered;
      skipped += group.skipped;
      missed += group.missed;
    }
    return { groups: this.byKey.size, members: this.members, delivered, skipped, missed };
  }

  /** The `limit` groups with the most members, most first (ties by name, then pattern): one pass. */
  top(limit: number): GroupStats[] {
    const best = new TopN<GroupStats>(limit, (a, b) => a.members > b.members
      || (a.members === b.members && (a.group < b.group || (a.group === b.group && a.pattern < b.pattern))));
    for (const g of this.byKey.values()) {
      best.offer({ group: g.name, pattern: g.pattern, members: g.members.length, delivered: g.delivered, skipped: g.skipped, missed: g.missed });
    }
    return best.result();
  }

  /** This node's members of `group` now, by filter. */
  private tell(group: QueueGroup): void {
    if (this.listeners.length === 0) return;
    const byFilter = new Map<string, GroupFilterCount>();
    for (const member of group.members) {
      const id = member.filter?.id ?? '';
      let counted = byFilter.get(id);
      if (counted === undefined) byFilter.set(id, (counted = { filter: member.filter?.wire, count: 0, slow: 0 }));
      counted.count++;
      if (member.sub.slow === true) counted.slow++;
    }
    const members = [...byFilter.values()];
    for (const listener of this.listeners) listener(group.name, group.pattern, members);
  }
}

/**
 * `session` (a subscriber's, its subscriptions listed in the order of `subscriptions`) with each
 * group member's group: a subscriber's own export knows patterns and filters only.
 */
export function withGroups(session: ParkedSession, subscriptions: ReadonlyMap<string, IndexEntry>): ParkedSession {
  let i = 0;
  for (const entry of subscriptions.values()) {
    const parked = session.subscriptions[i++];
    if (parked !== undefined && entry instanceof GroupMember) parked.group = entry.group.name;
  }
  return session;
}
