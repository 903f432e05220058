import type { TimerHandle } from '../../clock.js';
import type { PresenceCarrier, PresenceNews } from '../engine.js';
import { Gatherings } from './gather.js';
import { ANSWER_R, NEWS, encodeNews, parseNews, parseSyncAnswer } from './presence-wire.js';
import type { PresenceLink, PresenceReport } from './presence-link.js';

// Join/leave notices across the nodes of a Redis deployment (see core/presence.ts for what a
// watcher is told). Only watched channels cost anything: each node knows which channels the other
// nodes watch (told on the presence channel when a node's first watcher of a channel comes, batched
// per turn, and LINGER_MS after its last one went, batched over those ms), and sends its changes of those channels, once per turn, in one
// message to each node watching one of them. Each message carries the sender's holders of the
// channel after the changes, so a watching node adds up the latest count of every node: `n` is the
// deployment's. Nothing is kept in Redis.
//
// The messages: see presence-wire.ts.
//
// A channel's first watcher on a node waits for every node's answer (SYNC_TIMEOUT_MS at most)
// before its first notice, so that `n` starts from the deployment's count. A node found dead (its
// heartbeat key expired, ~5 s, at two heartbeats in a row) leaves the count: its holders are told
// gone in one notice. A node that was stalled past its heartbeat (others may have taken it for
// dead) and one whose pub/sub connection came back (it missed news) sync again with `=`; a count
// that a lost message left wrong is told as one notice of the difference.

/** The nodes among ARGV[2..] alive now (their heartbeat key is there). ARGV: prefix, instance…. */
export const PRESENCE_LIVE = `
local P = ARGV[1]
local out = {}
for i = 2, #ARGV do
  if redis.call('EXISTS', P .. 'node:' .. ARGV[i]) == 1 then out[#out + 1] = ARGV[i] end
end
return out
`;

/** How long a channel's first watcher waits for the other nodes' counts before its first notice, in ms. */
export const SYNC_TIMEOUT_MS = 1000;
/**
 * Syncs waited for at once: past it (a flood of watch changes, one sync per turn, while a node does
 * not answer), a sync still goes but holds no notice, and its answers count as they come.
 */
export const MAX_SYNCS = 64;
/** A gap this long between two heartbeats: the other nodes may have taken this one for dead (its key lives 5 s). */
const STALL_MS = 4000;
/**
 * How long a channel stays watched on the wire after its last watcher here left, in ms: a watcher
 * back within it (a page reloading, a client flapping) costs no broadcast, no sync and no wait.
 */
export const LINGER_MS = 2000;

/** A sync this node asked: `+` holds the first notices of its channels; `=` (a restart, a reconnect) holds none. */
interface Sync {
  kind: '+' | '=';
  channels: string[];
}

/** Figures for `/stats` and `/metrics`. */
export interface NoticeTraffic {
  /** News messages sent to watching nodes, and received from other nodes (one per node per turn at most). */
  newsSent: number;
  newsReceived: number;
  /** Syncs asked (a channel's first watcher here, a restart, a reconnect), and nodes found dead with holders or watches known here. */
  syncs: number;
  nodesLost: number;
}

export class RedisPresenceNotices implements PresenceCarrier {
  private sink: (news: PresenceNews) => void = () => {};
  private held: (channel: string) => number = () => 0;
  /** Per channel, the other nodes watching it; per other node, the channels it watches. */
  private readonly watchedBy = new Map<string, Set<string>>();
  private readonly watchesOf = new Map<string, Set<string>>();
  /** Per channel watched here (its keys: the channels watched on this node), each other node's holders of it (more than 0 only). */
  private readonly counts = new Map<string, Map<string, number>>();
  /** Per channel watched here, the `+` syncs still waiting for answers about it. */
  private readonly settling = new Map<string, number>();
  private readonly syncs: Gatherings<Sync>;
  /** This turn's first watches, sent in one `+` broadcast. */
  private readonly adding = new Set<string>();
  private scheduled = false;
  /** Channels whose last watcher here left, and when, oldest first: withdrawn (`-`) after LINGER_MS. */
  private readonly leaving = new Map<string, number>();
  private leaveTimer: TimerHandle | undefined;
  private lastSweep: number | undefined;
  private sweeping = false;
  /** Nodes found without a heartbeat key once: gone if the next heartbeat finds them so again. */
  private readonly suspects = new Set<string>();
  private closed = false;
  readonly traffic: NoticeTraffic = { newsSent: 0, newsReceived: 0, syncs: 0, nodesLost: 0 };

  constructor(
    private readonly link: PresenceLink,
    private readonly report: PresenceReport,
  ) {
    this.syncs = new Gatherings<Sync>(link, SYNC_TIMEOUT_MS, MAX_SYNCS, (sync, { error }) => {
      if (error !== undefined) this.report.warn({ err: (error as Error).message }, 'redis engine: a presence sync could not be sent; notices count this node\'s subscribers only until news come');
      this.finish(sync);
    });
  }

  // ---- the broker's side (PresenceCarrier) --------------------------------------------------

  onNews(sink: (news: PresenceNews) => void, held: (channel: string) => number): void {
    this.sink = sink;
    this.held = held;
  }

  watch(channel: string, watching: boolean): void {
    if (!watching) {
      // Still watched on the wire for LINGER_MS: the news keep coming, the counts stay current.
      this.leaving.set(channel, this.link.now());
      this.leaveTimer ??= this.link.setTimeout(() => this.withdraw(), LINGER_MS);
    } else if (this.leaving.delete(channel)) {
      this.tell({ channel, n: this.others(channel), changes: [] }); // back in time: its count, at once
    } else {
      this.counts.set(channel, new Map());
      this.adding.add(channel);
      if (!this.scheduled) {
        this.scheduled = true;
        this.link.defer(() => this.sendWatches());
      }
    }
  }

  watchedElsewhere(channel: string): boolean {
    return this.watchedBy.has(channel);
  }

  settled(channel: string): boolean {
    return !this.settling.has(channel) && !this.adding.has(channel);
  }

  /**
   * Figures, with `watchedElsewhere`: channels other nodes watch (this node sends them its changes
   * of those), and `syncsWaiting`: syncs waiting for answers now ({@link MAX_SYNCS} at most).
   */
  stats(): NoticeTraffic & { watchedElsewhere: number; syncsWaiting: number } {
    return { ...this.traffic, watchedElsewhere: this.watchedBy.size, syncsWaiting: this.syncs.size };
  }

  send(news: PresenceNews[]): void {
    const batches = new Map<string, unknown[]>();
    for (const item of news) {
      const nodes = this.watchedBy.get(item.channel);
      if (nodes === undefined) continue;
      const entry = encodeNews(item);
      for (const node of nodes) {
        let batch = batches.get(node);
        if (batch === undefined) batches.set(node, (batch = []));
        batch.push(entry);
      }
    }
    for (const [node, batch] of batches) this.sendNews(node, batch);
  }

  // ---- the engine's side --------------------------------------------------------------------

  /**
   * Asks every node what it watches and for its holders of what this node watches (`=`): at
   * start, and after this node's pub/sub connection came back (it may have missed news and watch
   * changes). Counts that changed meanwhile are told as one notice each.
   */
  resync(): void {
    if (this.closed) return;
    this.ask('=', [...this.counts.keys()]);
  }

  /**
   * At each heartbeat: nodes known here that are dead leave (their holders told gone); a stalled
   * node syncs again. Dead: no heartbeat key at two heartbeats in a row (a key missing once is a
   * Redis restarted empty, read before that node's next beat).
   */
  sweep(): void {
    if (this.closed) return;
    const now = this.link.now();
    if (this.lastSweep !== undefined && now - this.lastSweep > STALL_MS) this.resync();
    this.lastSweep = now;
    if (this.sweeping) return;
    const known = new Set(this.watchesOf.keys());
    for (const counts of this.counts.values()) for (const node of counts.keys()) known.add(node);
    if (known.size === 0) return;
    this.sweeping = true;
    this.link.evaluate(PRESENCE_LIVE, [this.link.prefix, ...known]).then((reply) => {
      if (this.closed) return;
      if (!Array.isArray(reply)) throw new Error('not a list');
      const alive = new Set(reply.map(String));
      for (const node of this.suspects) if (!known.has(node) || alive.has(node)) this.suspects.delete(node);
      for (const node of known) {
        if (alive.has(node)) continue;
        if (!this.suspects.has(node)) {
          this.suspects.add(node);
          continue;
        }
        this.traffic.nodesLost++;
        this.report.warn({ node }, 'redis engine: a node with presence watches or holders is gone; its subscribers leave the count');
        this.forget(node);
      }
    }).catch((err: unknown) => this.report.warn({ err: (err as Error).message }, 'redis engine: the live nodes could not be read for presence'))
      .finally(() => (this.sweeping = false));
  }

  /** The engine closes: nothing more is asked or told (the broker above is going too). */
  close(): void {
    this.closed = true;
    this.syncs.close();
    if (this.leaveTimer !== undefined) this.link.clearTimer(this.leaveTimer);
    this.leaveTimer = undefined;
  }

  /** This node closes (Redis still reachable): the others forget its watches and holders at once. */
  async leave(): Promise<void> {
    this.close();
    await this.link.broadcast(Buffer.from(`x${this.link.instance}`, 'latin1'));
  }

  /** A watch message of another node (or this one's own) on the presence channel. */
  onBroadcast(text: string): void {
    if (this.closed) return;
    const kind = text[0];
    const words = text.slice(1).split(' ');
    const origin = words[0];
    if (origin === undefined || origin === '') return this.report.malformed({}, 'redis engine: a presence watch message without its origin, ignored');
    if (kind === 'x') {
      if (origin !== this.link.instance) this.forget(origin);
      return;
    }
    if (kind === '-') {
      if (origin !== this.link.instance) for (const channel of words.slice(1)) this.unwatchedBy(origin, channel);
      return;
    }
    const key = words[1];
    if ((kind !== '+' && kind !== '=') || key === undefined) return this.report.malformed({ kind }, 'redis engine: a presence watch message that does not parse, ignored');
    const channels = words.slice(2);
    if (origin === this.link.instance) return this.syncs.answered(key); // its own: one of the nodes the broadcast reached
    if (kind === '=') this.replaceWatches(origin, channels);
    else for (const channel of channels) this.watchedByNode(origin, channel);
    let answer = `!p${kind === '+' ? 'S' : 'R'}${key} ${this.link.instance}`;
    for (const channel of channels) {
      const n = this.held(channel);
      if (n > 0) answer += ` ${channel}=${n}`;
    }
    if (kind === '=') for (const channel of this.counts.keys()) answer += ` @${channel}`;
    this.link.toNode(origin, Buffer.from(answer, 'latin1'));
  }

  /** A sync answer or news on this node's channel. */
  take(message: Buffer): void {
    if (this.closed) return;
    if (message[2] === NEWS) return this.takeNews(message.toString('utf8', 3));
    const answer = parseSyncAnswer(message.toString('latin1', 3));
    if (answer === undefined) return this.report.malformed({}, 'redis engine: a presence sync answer that does not parse, ignored');
    const { key, from, reported, watched } = answer;
    const sync = this.syncs.get(key);
    // The channels asked about (late, the sync forgotten: those reported); unreported ones: none held there.
    for (const channel of sync?.channels ?? reported.keys()) this.apply(from, { channel, n: reported.get(channel) ?? 0, changes: [] });
    if (message[2] === ANSWER_R) {
      this.replaceWatches(from, watched);
      // It may have taken this node for dead (or never known it), or missed its news (this node's
      // command connection dropped): its watched channels get this node's holders again, 0 too.
      if (watched.length > 0) this.sendNews(from, watched.map((channel) => [channel, this.held(channel), []]));
    }
    this.syncs.answered(key);
  }

  // ---- inside -------------------------------------------------------------------------------

  private takeNews(text: string): void {
    const space = text.indexOf(' ');
    let entries: unknown;
    try {
      entries = JSON.parse(text.slice(space + 1));
    } catch {
      entries = undefined;
    }
    if (space <= 0 || !Array.isArray(entries)) return this.report.malformed({}, 'redis engine: presence news that does not parse, ignored');
    const from = text.slice(0, space);
    this.traffic.newsReceived++;
    let refused = 0;
    for (const entry of entries) {
      const news = parseNews(entry);
      if (news === undefined) refused++;
      else this.apply(from, news);
    }
    if (refused > 0) this.report.malformed({ from, refused }, 'redis engine: presence news entries that do not parse or add up, ignored');
  }

  /**
   * Node `from` holds `n` of `channel` now, after `changes` (and `more` more, `net` of them):
   * handed to the broker with the other nodes' total. A difference the changes do not explain
   * (a lost message, a node back after being taken for dead) is told as one notice, once the
   * channel is settled (before, it is the count the first notice starts from).
   */
  private apply(from: string, { channel, n, changes, more = 0, net = 0 }: PresenceNews): void {
    const counts = this.counts.get(channel);
    if (counts === undefined || from === this.link.instance) return; // not watched here (any more)
    const before = counts.get(from) ?? 0;
    if (n > 0) counts.set(from, n);
    else counts.delete(from);
    let explained = net;
    for (const change of changes) explained += change.j ? 1 : -1;
    const unexplained = this.settled(channel) ? n - before - explained : 0;
    if (changes.length === 0 && more === 0 && unexplained === 0 && n === before) return;
    const news: PresenceNews = { channel, n: this.others(channel), changes };
    if (more > 0 || unexplained !== 0) Object.assign(news, { more: more + Math.abs(unexplained), net: net + unexplained });
    this.tell(news);
  }

  /** Hands news to the broker: whatever goes wrong there stays there (a pub/sub listener, a timer or a promise called this). */
  private tell(news: PresenceNews): void {
    try {
      this.sink(news);
    } catch (err) {
      this.report.warn({ err: (err as Error).message, channel: news.channel }, 'redis engine: the broker failed to take presence news');
    }
  }

  /** The holders of `channel` on every other node, as last told. */
  private others(channel: string): number {
    let sum = 0;
    for (const n of this.counts.get(channel)?.values() ?? []) sum += n;
    return sum;
  }

  /** A node gone: its watches go, and its holders leave the counts (one notice per channel). */
  private forget(node: string): void {
    this.suspects.delete(node);
    for (const channel of this.watchesOf.get(node) ?? []) this.unwatchedBy(node, channel);
    for (const [channel, counts] of this.counts) {
      const n = counts.get(node);
      if (n === undefined) continue;
      counts.delete(node);
      this.tell({ channel, n: this.others(channel), changes: [], more: n, net: -n });
    }
  }

  private watchedByNode(node: string, channel: string): void {
    let nodes = this.watchedBy.get(channel);
    if (nodes === undefined) this.watchedBy.set(channel, (nodes = new Set()));
    nodes.add(node);
    let channels = this.watchesOf.get(node);
    if (channels === undefined) this.watchesOf.set(node, (channels = new Set()));
    channels.add(channel);
  }

  private unwatchedBy(node: string, channel: string): void {
    const nodes = this.watchedBy.get(channel);
    if (nodes?.delete(node) && nodes.size === 0) this.watchedBy.delete(channel);
    const channels = this.watchesOf.get(node);
    if (channels?.delete(channel) && channels.size === 0) this.watchesOf.delete(node);
  }

  private replaceWatches(node: string, channels: string[]): void {
    const now = new Set(channels);
    for (const channel of [...(this.watchesOf.get(node) ?? [])]) if (!now.has(channel)) this.unwatchedBy(node, channel);
    for (const channel of now) this.watchedByNode(node, channel);
  }

  /** This turn's first watches: one `+` broadcast (it asks every node's holders). */
  private sendWatches(): void {
    this.scheduled = false;
    const added = [...this.adding];
    this.adding.clear();
    if (!this.closed && added.length > 0) this.ask('+', added);
  }

  /** The channels left unwatched for LINGER_MS: one `-` broadcast; the next oldest waits its turn. */
  private withdraw(): void {
    this.leaveTimer = undefined;
    const now = this.link.now();
    const removed: string[] = [];
    for (const [channel, since] of this.leaving) {
      if (now - since < LINGER_MS) {
        this.leaveTimer = this.link.setTimeout(() => this.withdraw(), LINGER_MS - (now - since));
        break;
      }
      this.leaving.delete(channel);
      this.counts.delete(channel); // its syncs in flight still count down `settling` as they end
      removed.push(channel);
    }
    if (removed.length === 0 || this.closed) return;
    this.link.broadcast(Buffer.from(`-${this.link.instance} ${removed.join(' ')}`, 'latin1')).catch((err: unknown) => {
      this.report.warn({ err: (err as Error).message }, 'redis engine: presence watches could not be withdrawn (the other nodes send news for them until this node syncs again)');
    });
  }

  /** Broadcasts a sync: `+` holds the first notices of `channels` until every node answered (1 s at most). */
  private ask(kind: '+' | '=', channels: string[]): void {
    this.traffic.syncs++;
    if (kind === '+') for (const channel of channels) this.settling.set(channel, (this.settling.get(channel) ?? 0) + 1);
    this.syncs.start({ kind, channels }, (key) => Buffer.from(`${kind}${this.link.instance} ${key}${channels.map((c) => ` ${c}`).join('')}`, 'latin1'));
  }

  /** A sync is over (every node answered, its second passed, or it was not waited for): the notices it held go. */
  private finish(sync: Sync): void {
    if (sync.kind !== '+' || this.closed) return;
    for (const channel of sync.channels) {
      const left = (this.settling.get(channel) ?? 0) - 1;
      if (left > 0) {
        this.settling.set(channel, left);
        continue;
      }
      this.settling.delete(channel);
      if (this.counts.has(channel)) this.tell({ channel, n: this.others(channel), changes: [] });
    }
  }

  private sendNews(node: string, entries: unknown[]): void {
    this.traffic.newsSent++;
    this.link.toNode(node, Buffer.from(`!pC${this.link.instance} ${JSON.stringify(entries)}`, 'utf8'));
  }
}
