import { PatternTrie, isWildcard } from '@crier/protocol';

// Queue groups across the nodes of a Redis deployment: each event to exactly one member of a
// group (name, pattern), whatever node it is on.
//
// The membership registry, under the prefix P:
//   P q:<instance>  hash   this node's groups: field `<name> <pattern>`, value its member count
//   P q             pub/sub a change: `<instance> <count> <name> <pattern>`
// Every node caches the registry (refreshed on each change notice, and read whole once a second,
// live nodes only: a node whose `P node:<instance>` expired is left out within ~5 s, and its hash
// is deleted by the heartbeat's sweep of dead nodes).
//
// The publishing node picks one node for each group the channel matches (round-robin weighted by
// member counts) and writes its choices in the message, between the header and the payload:
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

/** Sets this node's count of a group and tells every node. ARGV: prefix, instance, `<name> <pattern>`, count, `s` (sharded). */
export const GROUP_SET = `
local P, instance, field, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local Q = P .. 'q:' .. instance
if count > 0 then redis.call('HSET', Q, field, count) else redis.call('HDEL', Q, field) end
local notice = instance .. ' ' .. count .. ' ' .. field
if ARGV[5] == 's' then redis.call('SPUBLISH', P .. 'q', notice) else redis.call('PUBLISH', P .. 'q', notice) end
return 1
`;

/** The registry of the live nodes: {instance, field, count, ...}. ARGV: prefix. */
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
  local notice = instance .. ' 0 ' .. fields[i]
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

/** A group (name, pattern) of the deployment: its members per node, and whose turn it is. */
interface Group {
  readonly name: string;
  readonly pattern: string;
  readonly key: string;
  /** Members per node instance (this one's from its own registry, the others' from Redis). */
  readonly nodes: Map<string, number>;
  /** The nodes with members, in instance order, and their counts: what a pick walks. */
  slots: [string, number][];
  total: number;
  turn: number;
}

/** Figures for `/stats`: groups known over the deployment and their members, and node choices written. */
export interface GroupTraffic {
  groups: number;
  members: number;
  chosen: number;
}

/** The deployment's queue groups as one node sees them, and the choices it writes and reads. */
export class RedisGroups {
  private readonly groups = new Map<string, Group>();
  private readonly exact = new Map<string, Set<Group>>();
  private readonly trie = new PatternTrie<Group>();
  /** This node's own counts: what it wrote, or is writing. */
  private readonly local = new Map<string, number>();
  /** Writes in flight, per pattern (a subscribe waits for them: see {@link pending}). */
  private readonly writes = new Map<string, Promise<void>>();
  /** Chosen sets of events read back from history (a gap fill hands them over with them). */
  private readonly readBack = new WeakMap<object, ReadonlySet<string>>();
  readonly traffic: GroupTraffic = { groups: 0, members: 0, chosen: 0 };
  private readonly mode: string;

  constructor(private readonly link: GroupLink) {
    this.mode = link.sharded ? 's' : '';
  }

  /** This node's members of (name, pattern) became `count`: written to Redis, every node told. */
  setLocal(name: string, pattern: string, count: number): void {
    const key = `${name} ${pattern}`;
    if (count > 0) this.local.set(key, count);
    else this.local.delete(key);
    this.set(name, pattern, this.link.instance, count);
    const write = this.write(key, count);
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
    const text = message.toString('latin1');
    const [instance, count, name, pattern] = text.split(' ');
    if (instance === undefined || count === undefined || name === undefined || pattern === undefined) {
      return this.link.warn({ notice: text }, 'redis engine: a queue group notice that does not parse, ignored');
    }
    if (instance !== this.link.instance) this.set(name, pattern, instance, Number(count));
  };

  /**
   * Reads the whole registry (the live nodes'): the cache becomes it, this node's own counts
   * kept, and any of them Redis lacks (it restarted, or lost a write) written again.
   */
  async refresh(): Promise<void> {
    const reply = (await this.link.evaluate(GROUPS_READ, [this.link.prefix])) as unknown[];
    const seen = new Map<string, Map<string, number>>();
    const mine = new Map<string, number>();
    for (let i = 0; i + 2 < reply.length; i += 3) {
      const instance = String(reply[i]);
      const key = String(reply[i + 1]);
      const count = Number(reply[i + 2]);
      if (instance === this.link.instance) {
        mine.set(key, count);
        continue;
      }
      let nodes = seen.get(key);
      if (nodes === undefined) seen.set(key, (nodes = new Map()));
      nodes.set(instance, count);
    }
    for (const [key, count] of this.local) {
      if (mine.get(key) !== count) void this.write(key, count);
      let nodes = seen.get(key);
      if (nodes === undefined) seen.set(key, (nodes = new Map()));
      nodes.set(this.link.instance, count);
    }
    for (const [key, count] of mine) if (!this.local.has(key) && count > 0) void this.write(key, 0);
    // Groups gone from Redis go; the others take the counts read (their turn kept).
    for (const group of [...this.groups.values()]) {
      if (!seen.has(group.key)) this.drop(group);
    }
    for (const [key, nodes] of seen) {
      const space = key.indexOf(' ');
      const group = this.group(key.slice(0, space), key.slice(space + 1));
      group.nodes.clear();
      for (const [instance, count] of nodes) group.nodes.set(instance, count);
      this.reslot(group);
    }
  }

  /**
   * The choices for an event of `channel`: one node for each group of the deployment that the
   * channel matches, as the `g…` part of a message (without its bar); `undefined` when none.
   */
  choose(channel: string): string | undefined {
    if (this.groups.size === 0) return undefined;
    let out: string | undefined;
    const visit = (group: Group): void => {
      if (group.total === 0) return;
      let at = group.turn++ % group.total;
      let node = group.slots[0]![0];
      for (const [instance, count] of group.slots) {
        if (at < count) {
          node = instance;
          break;
        }
        at -= count;
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
    for (const group of this.groups.values()) members += group.total;
    this.traffic.members = members;
    return this.traffic;
  }

  private write(key: string, count: number): Promise<void> {
    return this.link.evaluate(GROUP_SET, [this.link.prefix, this.link.instance, key, String(count), this.mode]).then(() => {}, (err: unknown) => {
      // The next refresh (a second) writes it again.
      this.link.warn({ err: (err as Error).message, group: key }, 'redis engine: a queue group count could not be written; it is retried');
    });
  }

  private set(name: string, pattern: string, instance: string, count: number): void {
    const group = this.group(name, pattern);
    if (count > 0) group.nodes.set(instance, count);
    else group.nodes.delete(instance);
    if (group.nodes.size === 0) this.drop(group);
    else this.reslot(group);
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
    group.slots = [...group.nodes].filter(([, n]) => n > 0).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    group.total = group.slots.reduce((sum, [, n]) => sum + n, 0);
  }
}
