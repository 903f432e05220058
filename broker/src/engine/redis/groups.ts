import { PatternTrie, compileFilter, isWildcard, type EventFilter, type SubscriptionFilter } from '@crier/protocol';
import type { GroupFilterCount } from '../engine.js';

// Queue groups across the nodes of a Redis deployment: each event to exactly one member of a
// group (name, pattern), whatever node it is on.
//
// The membership registry, under the prefix P:
//   P q:<instance>  hash   this node's groups: field `<name> <pattern>`, value its members by
//                          filter, JSON `[[<filter or null>, <count>, <slow>], …]` (slow: how
//                          many of them are slow consumers now)
//   P q             pub/sub a change: `<instance> <name> <pattern> <value>` (no value: none left)
// Every node caches the registry (refreshed on each change notice, and read whole once a second,
// live nodes only: a node whose `P node:<instance>` expired is left out within ~5 s, and its hash
// is deleted by the heartbeat's sweep of dead nodes).
//
// The publishing node picks one node for each group the channel matches, among the nodes holding
// a member whose filter the event passes and that is not a slow consumer (round-robin weighted by
// how many there are; when every such member is slow, among all of them), and writes its
// choices in the message, between the header and the payload:
//   <seq> <offset> <channel epoch> <time>|g<name> <pattern> <instance>,<name> <pattern> <instance>|<event frame>
// (names, patterns and instances hold no space, comma or bar). Every node reads the same choices;
// the chosen one picks the member locally (see core/groups.ts). A request carries them the same
// way (see requests.ts). A message without choices (no group known to its publisher) goes to no
// group member. At most once: a choice that finds no member left on its node loses the event for
// that group only.

const G = 0x67; // 'g'
const BAR = 0x7c; // '|'

/** Nothing chosen: a node that serves no group of an event. */
export const NO_GROUPS: ReadonlySet<string> = new Set();

/** Sets this node's members of a group and tells every node. ARGV: prefix, instance, `<name> <pattern>`, value ('': none), `s` (sharded). */
export const GROUP_SET = `
local P, instance, field, value = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local Q = P .. 'q:' .. instance
if value ~= '' then redis.call('HSET', Q, field, value) else redis.call('HDEL', Q, field) end
local notice = instance .. ' ' .. field .. ' ' .. value
if ARGV[5] == 's' then redis.call('SPUBLISH', P .. 'q', notice) else redis.call('PUBLISH', P .. 'q', notice) end
return 1
`;

/** The registry of the live nodes: {instance, field, value, ...}. ARGV: prefix. */
export const GROUPS_READ = `
local P = ARGV[1]
local out = {}
local nodes = redis.call('ZRANGE', P .. 'nodes', 0, -1)
for i = 1, #nodes do
  local n = nodes[i]
  if redis.call('EXISTS', P .. 'node:' .. n) == 1 then
    local h = redis.call('HGETALL', P .. 'q:' .. n)
    for j = 1, #h, 2 do
      out[#out + 1] = n
      out[#out + 1] = h[j]
      out[#out + 1] = h[j + 1]
    end
  end
end
return out
`;

/** Removes this node's registry (it closes), telling every node. ARGV: prefix, instance, `s` (sharded). */
export const GROUPS_LEAVE = `
local P, instance = ARGV[1], ARGV[2]
local Q = P .. 'q:' .. instance
local fields = redis.call('HKEYS', Q)
redis.call('DEL', Q)
for i = 1, #fields do
  local notice = instance .. ' ' .. fields[i] .. ' '
  if ARGV[3] == 's' then redis.call('SPUBLISH', P .. 'q', notice) else redis.call('PUBLISH', P .. 'q', notice) end
end
return 1
`;

/** What the registry needs from the engine around it. */
export interface GroupLink {
  readonly instance: string;
  readonly prefix: string;
  readonly sharded: boolean;
  /** Runs a script (routed by the deployment's key). */
  evaluate(source: string, args: string[]): Promise<unknown>;
  warn(fields: object, message: string): void;
}

/** One node's members of a group: how many with each filter. */
interface NodeMembers {
  /** As the registry holds it (JSON): what a refresh compares. */
  readonly value: string;
  readonly filters: { filter: EventFilter | undefined; count: number; slow: number }[];
  readonly total: number;
}

/** A group (name, pattern) of the deployment: its members per node, and whose turn it is. */
interface Group {
  readonly name: string;
  readonly pattern: string;
  readonly key: string;
  /** Members per node instance (this one's from its own registry, the others' from Redis). */
  readonly nodes: Map<string, NodeMembers>;
  /** The nodes with members, in instance order: what a pick walks. */
  slots: [string, NodeMembers][];
  total: number;
  turn: number;
}

/** Figures for `/stats`: groups known over the deployment and their members, and node choices written. */
export interface GroupTraffic {
  groups: number;
  members: number;
  /** Members that are slow consumers now (as their nodes last said). */
  slow: number;
  chosen: number;
}

/** The deployment's queue groups as one node sees them, and the choices it writes and reads. */
export class RedisGroups {
  private readonly groups = new Map<string, Group>();
  private readonly exact = new Map<string, Set<Group>>();
  private readonly trie = new PatternTrie<Group>();
  /** This node's own members (registry values by group key): what it wrote, or is writing. */
  private readonly local = new Map<string, string>();
  /** Writes in flight, per pattern (a subscribe waits for them: see {@link pending}). */
  private readonly writes = new Map<string, Promise<void>>();
  /** Chosen sets of events read back from history (a gap fill hands them over with them). */
  private readonly readBack = new WeakMap<object, ReadonlySet<string>>();
  readonly traffic: GroupTraffic = { groups: 0, members: 0, slow: 0, chosen: 0 };
  private readonly mode: string;

  constructor(private readonly link: GroupLink) {
    this.mode = link.sharded ? 's' : '';
  }

  /** This node's members of (name, pattern) changed: written to Redis, every node told. */
  setLocal(name: string, pattern: string, members: readonly GroupFilterCount[]): void {
    const key = `${name} ${pattern}`;
    const value = members.length === 0 ? '' : JSON.stringify(members.map((m) => [m.filter ?? null, m.count, m.slow]));
    if (value !== '') this.local.set(key, value);
    else this.local.delete(key);
    this.set(name, pattern, this.link.instance, value);
    const write = this.write(key, value);
    const all = Promise.all([this.writes.get(pattern), write]).then(() => {});
    this.writes.set(pattern, all);
    void all.finally(() => {
      if (this.writes.get(pattern) === all) this.writes.delete(pattern);
    });
  }

  /** Settles once this node's group changes of `pattern` are in Redis (other nodes told). */
  pending(pattern: string): Promise<void> | undefined {
    return this.writes.get(pattern);
  }

  /** A change notice from another node (or this one: ignored, its own counts are known here). */
  readonly onNotice = (message: Buffer): void => {
    const text = message.toString('utf8');
    const [instance, name, pattern] = text.split(' ', 3);
    if (instance === undefined || name === undefined || pattern === undefined) {
      return this.link.warn({ notice: text }, 'redis engine: a queue group notice that does not parse, ignored');
    }
    const value = text.slice(instance.length + name.length + pattern.length + 3);
    if (instance !== this.link.instance) this.set(name, pattern, instance, value);
  };

  /**
   * Reads the whole registry (the live nodes'): the cache becomes it, this node's own counts
   * kept, and any of them Redis lacks (it restarted, or lost a write) written again.
   */
  async refresh(): Promise<void> {
    const reply = (await this.link.evaluate(GROUPS_READ, [this.link.prefix])) as unknown[];
    const seen = new Map<string, Map<string, string>>();
    const mine = new Map<string, string>();
    for (let i = 0; i + 2 < reply.length; i += 3) {
      const instance = String(reply[i]);
      const key = String(reply[i + 1]);
      const value = String(reply[i + 2]);
      if (instance === this.link.instance) {
        mine.set(key, value);
        continue;
      }
      let nodes = seen.get(key);
      if (nodes === undefined) seen.set(key, (nodes = new Map()));
      nodes.set(instance, value);
    }
    for (const [key, value] of this.local) {
      if (mine.get(key) !== value) void this.write(key, value);
      let nodes = seen.get(key);
      if (nodes === undefined) seen.set(key, (nodes = new Map()));
      nodes.set(this.link.instance, value);
    }
    for (const key of mine.keys()) if (!this.local.has(key)) void this.write(key, '');
    // Groups gone from Redis go; the others take the counts read (their turn kept).
    for (const group of [...this.groups.values()]) {
      if (!seen.has(group.key)) this.drop(group);
    }
    for (const [key, nodes] of seen) {
      const space = key.indexOf(' ');
      const group = this.group(key.slice(0, space), key.slice(space + 1));
      for (const instance of [...group.nodes.keys()]) if (!nodes.has(instance)) group.nodes.delete(instance);
      for (const [instance, value] of nodes) if (group.nodes.get(instance)?.value !== value) this.parseInto(group, instance, value);
      this.reslot(group);
      if (group.nodes.size === 0) this.drop(group);
    }
  }

  /**
   * The choices for an event of `channel` with `labels` and `key`: for each group of the
   * deployment that the channel matches, one node holding a member whose filter the event
   * passes, as the `g…` part of a message (without its bar); `undefined` when none.
   */
  choose(channel: string, labels: string[] | undefined, key: string | undefined): string | undefined {
    if (this.groups.size === 0) return undefined;
    let out: string | undefined;
    const visit = (group: Group): void => {
      if (group.total === 0) return;
      // Members that keep up first; the slow ones only when there is nobody else.
      let keepUp = true;
      let total = 0;
      for (const [, members] of group.slots) total += passing(members, labels, key, true);
      if (total === 0) {
        keepUp = false;
        for (const [, members] of group.slots) total += passing(members, labels, key, false);
      }
      if (total === 0) return; // no member anywhere passes its filter
      let at = group.turn++ % total;
      let node = group.slots[0]![0];
      for (const [instance, members] of group.slots) {
        const n = passing(members, labels, key, keepUp);
        if (at < n) {
          node = instance;
          break;
        }
        at -= n;
      }
      this.traffic.chosen++;
      const choice = `${group.key} ${node}`;
      out = out === undefined ? `g${choice}` : `${out},${choice}`;
    };
    const set = this.exact.get(channel);
    if (set !== undefined) for (const group of set) visit(group);
    if (this.trie.size > 0) this.trie.match(channel.split('.'), visit);
    return out;
  }

  /** The groups (`<name> <pattern>`) a choices text (`g…`, no bar) gives this node. */
  chosenIn(choices: string): ReadonlySet<string> {
    let chosen: Set<string> | undefined;
    for (const choice of choices.slice(1).split(',')) {
      const last = choice.lastIndexOf(' ');
      if (choice.slice(last + 1) === this.link.instance) (chosen ??= new Set()).add(choice.slice(0, last));
    }
    return chosen ?? NO_GROUPS;
  }

  /** The groups an event message (header, choices, payload) gives this node. */
  chosenInMessage(message: Uint8Array): ReadonlySet<string> {
    const bar = message.indexOf(BAR);
    if (bar < 0 || message[bar + 1] !== G) return NO_GROUPS;
    const end = message.indexOf(BAR, bar + 1);
    if (end < 0) return NO_GROUPS;
    return this.chosenIn(Buffer.from(message.buffer, message.byteOffset + bar + 1, end - bar - 1).toString('latin1'));
  }

  /** Remembers what an event read back from history was chosen for (see {@link chosenOf}). */
  remember(event: object, message: Uint8Array): void {
    const bar = message.indexOf(BAR);
    if (bar >= 0 && message[bar + 1] === G) this.readBack.set(event, this.chosenInMessage(message));
  }

  /** What an event read back from history was chosen for on this node. */
  chosenOf(event: object): ReadonlySet<string> {
    return this.readBack.get(event) ?? NO_GROUPS;
  }

  /** This node leaves every group (it closes): the others stop choosing it at once. */
  async leave(): Promise<void> {
    if (this.local.size === 0) return;
    this.local.clear();
    await this.link.evaluate(GROUPS_LEAVE, [this.link.prefix, this.link.instance, this.mode]);
  }

  stats(): GroupTraffic {
    this.traffic.groups = this.groups.size;
    let members = 0;
    let slow = 0;
    for (const group of this.groups.values()) {
      members += group.total;
      for (const [, node] of group.slots) for (const f of node.filters) slow += f.slow;
    }
    this.traffic.members = members;
    this.traffic.slow = slow;
    return this.traffic;
  }

  private write(key: string, value: string): Promise<void> {
    return this.link.evaluate(GROUP_SET, [this.link.prefix, this.link.instance, key, value, this.mode]).then(() => {}, (err: unknown) => {
      // The next refresh (a second) writes it again.
      this.link.warn({ err: (err as Error).message, group: key }, 'redis engine: a queue group count could not be written; it is retried');
    });
  }

  private set(name: string, pattern: string, instance: string, value: string): void {
    const group = this.group(name, pattern);
    if (value === '') group.nodes.delete(instance);
    else this.parseInto(group, instance, value);
    if (group.nodes.size === 0) this.drop(group);
    else this.reslot(group);
  }

  /** A node's registry value (`[[filter, count], …]`) into `group`; one that does not parse is left out. */
  private parseInto(group: Group, instance: string, value: string): void {
    try {
      const filters: NodeMembers['filters'] = [];
      let total = 0;
      for (const [filter, count, slow] of JSON.parse(value) as [SubscriptionFilter | null, number, number | undefined][]) {
        filters.push({ filter: compileFilter(filter), count, slow: slow ?? 0 });
        total += count;
      }
      group.nodes.set(instance, { value, filters, total });
    } catch (err) {
      group.nodes.delete(instance);
      this.link.warn({ err: (err as Error).message, instance, group: group.key }, 'redis engine: a queue group registry entry that does not parse, ignored');
    }
  }

  private group(name: string, pattern: string): Group {
    const key = `${name} ${pattern}`;
    let group = this.groups.get(key);
    if (group === undefined) {
      group = { name, pattern, key, nodes: new Map(), slots: [], total: 0, turn: 0 };
      this.groups.set(key, group);
      if (isWildcard(pattern)) this.trie.add(pattern, group);
      else {
        let set = this.exact.get(pattern);
        if (set === undefined) this.exact.set(pattern, (set = new Set()));
        set.add(group);
      }
    }
    return group;
  }

  private drop(group: Group): void {
    if (this.groups.get(group.key) !== group) return;
    this.groups.delete(group.key);
    if (isWildcard(group.pattern)) this.trie.remove(group.pattern, group);
    else {
      const set = this.exact.get(group.pattern);
      set?.delete(group);
      if (set?.size === 0) this.exact.delete(group.pattern);
    }
  }

  private reslot(group: Group): void {
    group.slots = [...group.nodes].filter(([, n]) => n.total > 0).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    group.total = group.slots.reduce((sum, [, n]) => sum + n.total, 0);
  }
}

/** How many of a node's members (not slow ones, with `keepUp`) an event with `labels` and `key` passes the filter of. */
function passing(members: NodeMembers, labels: string[] | undefined, key: string | undefined, keepUp: boolean): number {
  let n = 0;
  for (const { filter, count, slow } of members.filters) {
    if (filter === undefined || filter.passes(labels, key)) n += keepUp ? count - slow : count;
  }
  return n;
}
