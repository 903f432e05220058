import { createHash } from 'node:crypto';
import { nanoid } from 'nanoid';
import type { Logger } from 'pino';
import { CrierError, ErrorCode, PatternTrie, isWildcard, matchPattern, type DecodeLimits } from '@crier/protocol';
import { secretMatches } from '../../auth/secret.js';
import type { Clock, TimerHandle } from '../../clock.js';
import type { ChannelEvents, PublishResult } from '../../types.js';
import type { StoreLimits } from '../channel-store.js';
import { REMEMBERED_EVICTIONS, historyWindow } from '../channel-store.js';
import type {
  Accept, GroupFilterCount, ChannelPosition, Engine, EngineStats, EventSink, HistoryPage, LocalPresence, ParkedSession, PresenceCarrier, PresenceCount, PublishRequest, ReplayPage, ReplyMessage, ReplySink,
  RequestMessage, RequestSink, SessionClaim, SessionTake, StreamClaimAnswer, StreamClaimHandler,
} from '../engine.js';
import { MAX_PARKED_SESSIONS } from '../memory-engine.js';
import type { StreamEvent } from '../stream-event.js';
import { NO_GROUPS, RedisGroups } from './groups.js';
import { encodePayload, eventId, messageEvent, parseHeader, payloadLimits, requestEvent, type Header } from './message.js';
import * as scripts from './scripts.js';
import { RedisRequests } from './requests.js';
import { RedisPresence } from './presence.js';

/** What the Redis engine is made of. */
export interface RedisEngineOptions extends StoreLimits {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS). */
  url: string;
  /** Put before every key and pub/sub channel: several deployments may share one Redis. */
  prefix: string;
  /** How long a publish's message id is remembered, in ms (0: publishes are not deduplicated). */
  idempotencyWindow: number;
  /** The broker's largest payload: what a message from Redis may carry. */
  maxPayload: number;
  /** This node's name (`/stats`, the dashboard, its pub/sub channel): unique per node. */
  node: string;
  /**
   * `url` is a node of a Redis Cluster: every key and channel of the deployment carries one hash
   * tag (the prefix in braces: one slot, so scripts stay atomic), and events travel by sharded
   * pub/sub (`SPUBLISH`/`SSUBSCRIBE`).
   */
  cluster?: boolean;
  /** Certificate authorities to trust for `rediss://` (PEM), beside Node's own. */
  ca?: Buffer | undefined;
}

/** The part of a node-redis client the engine uses (the `redis` package is loaded only when configured). */
interface RedisConnection {
  connect(): Promise<unknown>;
  sendCommand(args: ReadonlyArray<string | Buffer>, options?: object): Promise<unknown>;
  subscribe(channels: string, listener: Listener, bufferMode: true): Promise<void>;
  unsubscribe(channels: string, listener: Listener, bufferMode: true): Promise<void>;
  pSubscribe(patterns: string, listener: Listener, bufferMode: true): Promise<void>;
  pUnsubscribe(patterns: string, listener: Listener, bufferMode: true): Promise<void>;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  duplicate(): RedisConnection;
  close(): Promise<void>;
  destroy(): void;
  readonly isReady: boolean;
}

type Listener = (message: Buffer, channel: Buffer) => void;

/** The part of a node-redis cluster client the engine uses. */
interface RedisClusterLike {
  connect(): Promise<unknown>;
  sendCommand(firstKey: string, isReadonly: boolean, args: (string | Buffer)[], options?: object): Promise<unknown>;
  sSubscribe(channels: string, listener: Listener, bufferMode: true): Promise<void>;
  sUnsubscribe(channels: string, listener: Listener, bufferMode: true): Promise<void>;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  close(): Promise<void>;
  destroy(): void;
  readonly isReady: boolean;
}
type RedisModule = typeof import('redis');

/** Publishes waiting on Redis at most; past it a publish fails `unavailable` at once. */
export const MAX_PENDING_PUBLISHES = 10_000;
/** Messages a node holds while it fills a gap after a reconnect; past it, it reads them from history instead. */
export const MAX_FILL_BUFFER = 10_000;
/** Events one gap fill reads at most; past it the rest is counted lost. */
export const MAX_FILL_EVENTS = 100_000;
/** How long after its script's answer a publish waits for its confirmation at most, in ms. */
const CONFIRM_TIMEOUT = 2000;
/** Channels one wildcard rewind reads at most (the most recently published), and how many names it scans a step. */
export const MAX_REWIND_CHANNELS = 1000;
const REWIND_SCAN = 1000;
/** How long a ping may go unanswered before the engine counts Redis as not answering, in ms. */
const PING_TIMEOUT = 2000;
/** How long a gap fill that failed waits before it tries again, in ms. */
const FILL_RETRY_MS = 250;
/** How often the engine pings Redis (its health and round-trip time), in ms. */
export const HEALTH_INTERVAL = 1000;

interface Script {
  source: string;
  sha: string;
  /**
   * Run by its hash (the hot ones: every publish, every read). The others are sent whole: a
   * Redis that restarted has forgotten its scripts, and a command sent again after `NOSCRIPT`
   * would run after those sent behind it (a session dropped after it was parked again).
   */
  byHash: boolean;
}

function script(source: string, byHash = false): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex'), byHash };
}

const PUBLISH = script(scripts.PUBLISH, true);
const READ = script(scripts.READ, true);
const INIT = script(scripts.INIT);
const PARK = script(scripts.PARK);
const PEEK = script(scripts.PEEK);
const TAKE = script(scripts.TAKE);
const DROP = script(scripts.DROP);
const PARKED = script(scripts.PARKED);
const OWNER = script(scripts.OWNER);
const SAVE = script(scripts.SAVE);
const HEARTBEAT = script(scripts.HEARTBEAT);
const DISOWN = script(scripts.DISOWN);

/** How long a node waits for another to release a stream it claims, in ms. */
export const CLAIM_TIMEOUT = 1000;
/** How long a stream's holder is remembered (a node counts as alive 5 s after its last heartbeat). */
const HOLDER_TTL = 24 * 60 * 60 * 1000;

/**
 * No command times out by itself: node-redis's per-command timeout (5 s by default, an AbortSignal
 * timer per command) did not fire on a stopped Redis here, and costs a timer per publish. A Redis
 * that stops answering fails the heartbeat instead (publishes refused at once), and a silent
 * connection is closed after 15 s (socketTimeout), which fails what waits on it.
 */
const NO_TIMEOUT = { timeout: 0 };
const BINARY = { ...NO_TIMEOUT, typeMapping: { 36 /* RESP blob string */: Buffer } };

interface Pending {
  request: PublishRequest;
  resolve(result: PublishResult): void;
  reject(err: unknown): void;
  /** The publish script's answer, once it came, and when (monotonic ms). */
  header: Header | undefined;
  answeredAt: number;
}

/** One channel as the READ script answers it. */
interface ChannelRead {
  name: string;
  exists: boolean;
  epoch: string;
  offset: number;
  lost: number;
  lostSeq: number;
  /** The last seq of the channel when it was forgotten (0: never, or no longer remembered). */
  gone: number;
  events: StreamEvent[];
}

interface Read {
  seq: number;
  forgot: number;
  channels: ChannelRead[];
}

/** An item of the pub/sub stream, as it arrived: an event, or a node's own publish went through. */
type Arrival = { event: Buffer } | { marker: Buffer };

/**
 * The engine of a deployment of several broker nodes on one Redis: sequencing, history, idempotency
 * and parked sessions live in Redis (Lua scripts make each step atomic), and events travel by
 * Redis pub/sub to the nodes that have a subscriber for them.
 *
 * Each node receives events on one subscriber connection, in stream order (the order the publish
 * script ran in), and hands them to the broker in that order, each once: an event two of its
 * subscriptions match (a name and a pattern) arrives twice and is passed on once. A node's own
 * publish is confirmed on the same connection, behind the event, so it is handed over in order
 * even when no subscription of the node matches it.
 */
export class RedisEngine implements Engine {
  readonly kind = 'redis';
  /** Nodes share it: live streams' sessions are recorded, for a resume on another node if this one dies. */
  readonly shared = true;
  /** This run of the node: its name and a start id (a node restarted under its name is another instance). */
  readonly instance: string;
  epoch = '';
  private sink: EventSink = () => {};
  private readonly cmd: RedisConnection;
  private readonly sub: RedisConnection;
  private readonly limits: DecodeLimits;
  /** On a Redis Cluster: sharded pub/sub, and the prefix a hash tag. */
  private readonly sharded: boolean;
  private readonly prefix: string;
  /** The key every script is routed by (on a cluster: the slot of every key of the deployment). */
  private readonly routeKey: string;
  private readonly publishCommand: 'PUBLISH' | 'SPUBLISH';
  /** The publish script's arguments that never change: the history bounds; the window, evictions remembered, pub/sub mode. */
  private readonly bounds: string[];
  private readonly publishTail: string[];
  /** The stream epoch a publish sets if Redis has none (a new or emptied Redis). */
  private readonly epochCandidate = nanoid(10);
  /** On a cluster: sharded channels subscribed for patterns, with how many patterns use each. */
  private readonly shardedPatterns = new Map<string, number>();

  /** The highest seq handed to the sink; `known`: the highest seq this node knows was given. */
  private delivered = 0;
  private known = 0;
  private readonly pending = new Map<string, Pending>();
  private publishes = 0;

  /** This node's interest: names, patterns (and their Redis globs), and the subscribes in flight. */
  private readonly names = new Set<string>();
  private readonly patterns = new PatternTrie<string>();
  private readonly patternSet = new Set<string>();
  private readonly subscribing = new Map<string, Promise<void>>();

  /**
   * The subscriber connection dropped: what arrives is held until a gap fill has read what was
   * missed (node-redis hands over messages of the connection made again before it says ready).
   */
  private gap = false;
  /** A gap fill in progress: what arrived meanwhile, in order. */
  private filling = false;
  private held: Arrival[] = [];
  private overflowed = false;

  private started = false;
  private closed = false;
  private cmdUp = false;
  private subUp = false;
  private health: TimerHandle | undefined;
  /** When the ping in flight was sent (`performance.now()`; 0: none in flight). */
  private pingSince = 0;
  private lastError = '';

  /** Claims this node sent, waiting for the holder's answer. */
  private readonly claims = new Map<string, (answer: StreamClaimAnswer) => void>();
  private claimSeq = 0;
  private claimHandler: StreamClaimHandler = () => 'absent';
  private epochListener: () => void = () => {};
  /** Requests and replies between nodes (see requests.ts): not sequenced, straight on pub/sub. */
  private readonly requests: RedisRequests;
  /** Queue groups over the nodes (see groups.ts): the registry, the choices in each message. */
  private readonly groups: RedisGroups;
  /** Presence over the nodes (see presence.ts): questions to every node, answers summed. */
  private readonly presenceTraffic: RedisPresence;

  /** Figures for `/stats` and `/metrics`. */
  readonly counters = { received: 0, refiltered: 0, fills: 0, filled: 0, lostInFills: 0, rttMs: 0, disconnects: 0, epochChanges: 0 };

  constructor(
    private readonly redis: RedisModule,
    private readonly options: RedisEngineOptions,
    private readonly clock: Clock,
    private readonly log: Logger | undefined,
  ) {
    const clientOptions = {
      disableOfflineQueue: true,
      // A connection that goes silent (a half-open socket after a network fault) is pinged every
      // 5 s and closed after 15 s without a byte: it is then made again, and a gap fill follows.
      pingInterval: 5000,
      commandsQueueMaxLength: MAX_PENDING_PUBLISHES + 1000,
      socket: {
        // At start, a Redis out of reach is an error (the node does not start, saying why); once
        // started, it is waited for, with backoff from 50 ms to 2 s.
        reconnectStrategy: (retries: number, cause: Error) => (!this.started && retries >= 2 ? cause
          : Math.min(50 * 2 ** retries, 2000) + Math.floor(Math.random() * 100)),
        connectTimeout: 5000,
        socketTimeout: 15_000,
        ...(options.ca === undefined ? {} : { ca: options.ca }),
      },
    };
    this.sharded = options.cluster === true;
    this.prefix = this.sharded ? `{${options.prefix}}` : options.prefix;
    this.routeKey = `${this.prefix}s`;
    this.publishCommand = this.sharded ? 'SPUBLISH' : 'PUBLISH';
    if (this.sharded) {
      const cluster = redis.createCluster({ rootNodes: [{ url: options.url }], defaults: clientOptions });
      this.cmd = this.sub = new ClusterConnection(cluster as unknown as RedisClusterLike, this.routeKey);
    } else {
      this.cmd = redis.createClient({ url: options.url, ...clientOptions }) as unknown as RedisConnection;
      this.sub = this.cmd.duplicate();
    }
    this.limits = payloadLimits(options.maxPayload);
    this.bounds = [options.historySize, options.historyBytes, options.historyTtl, options.historyTotalBytes, options.channelCacheSize].map(String);
    this.publishTail = [String(options.idempotencyWindow), String(REMEMBERED_EVICTIONS), this.sharded ? 's' : ''];
    this.instance = `${options.node}#${nanoid(6)}`;
    this.groups = new RedisGroups({
      instance: this.instance,
      prefix: this.prefix,
      sharded: this.sharded,
      evaluate: (source, args) => this.send(['EVAL', source, '1', this.routeKey, ...args]),
      warn: (fields, message) => this.log?.warn(fields, message),
    });
    this.requests = new RedisRequests({
      instance: this.instance,
      choose: (channel, labels, key) => this.groups.choose(channel, labels, key),
      chosenIn: (choices) => this.groups.chosenIn(choices),
      limits: this.limits,
      now: () => this.clock.now(),
      toNode: (instance, message) => void this.send([this.publishCommand, `${this.prefix}n:${instance}`, message]).catch(() => {}),
      publish: (channel, message) => this.publishRequest(channel, message),
      warn: (fields, message) => this.log?.warn(fields, message),
    });
    this.presenceTraffic = new RedisPresence({
      instance: this.instance,
      prefix: this.prefix,
      evaluate: (source, args) => this.send(['EVAL', source, '1', this.routeKey, ...args]),
      defer: (callback) => void this.clock.defer(callback),
      now: () => this.clock.now(),
      broadcast: async (message) => Number(await this.send([this.publishCommand, `${this.prefix}w`, message])),
      toNode: (instance, message) => void this.send([this.publishCommand, `${this.prefix}n:${instance}`, message]).catch(() => {}),
      setTimeout: (callback, ms) => this.clock.setTimeout(callback, ms),
      clearTimer: (handle) => this.clock.clearTimer(handle),
      warn: (fields, message) => this.log?.warn(fields, message),
    });
    this.cmd.on('error', (err) => this.onError('commands', err));
    this.sub.on('error', (err) => this.onError('subscriber', err));
    this.cmd.on('ready', () => {
      this.cmdUp = true;
      if (!this.started) return;
      this.log?.info('redis engine: command connection ready');
      // Before any publish on the new connection: a restarted Redis has no scripts.
      this.loadScripts();
    });
    this.sub.on('ready', () => {
      this.subUp = true;
      if (!this.started) return;
      void this.fill();
      // Presence news and watch changes sent meanwhile were missed: every node is asked again.
      this.presenceTraffic.notices.resync();
    });
    this.cmd.on('end', () => (this.cmdUp = false));
    this.sub.on('end', () => this.subDown());
  }

  /** The node's own pub/sub channel (its publishes' confirmations). */
  private get nodeChannel(): string {
    return `${this.prefix}n:${this.instance}`;
  }

  /** Both connections up, and no gap fill under way (a node catching up, or that lost its stream, is not ready yet). */
  get ready(): boolean {
    return this.cmdUp && this.subUp && !this.gap && !this.closed;
  }

  async start(sink: EventSink): Promise<void> {
    this.sink = sink;
    try {
      await this.cmd.connect();
      if (this.sub !== this.cmd) await this.sub.connect();
      this.cmdUp = this.subUp = true;
      await Promise.all(this.loadScripts());
      const [epoch, seq] = (await this.run(INIT, [this.prefix, nanoid(10)])) as [string, number];
      this.epoch = String(epoch);
      this.delivered = this.known = Number(seq);
      await this.sub.subscribe(this.nodeChannel, this.onMarker, true);
      await this.sub.subscribe(`${this.prefix}q`, this.groups.onNotice, true);
      await this.sub.subscribe(`${this.prefix}w`, this.presenceTraffic.onQuestion, true);
      await this.groups.refresh();
    } catch (err) {
      await this.close();
      throw new Error(`the Redis engine cannot start on ${redacted(this.options.url)}: ${(err as Error).message}`);
    }
    this.started = true;
    await this.ping();
    // After the first heartbeat (a node that hears of this one finds it alive): what every node watches.
    this.presenceTraffic.notices.resync();
    this.health = this.clock.setInterval(() => void this.ping(), HEALTH_INTERVAL);
  }

  // ---- publish ------------------------------------------------------------------------------

  publish(request: PublishRequest): Promise<PublishResult> {
    if (!this.ready) return Promise.reject(this.unavailable());
    if (this.pending.size >= MAX_PENDING_PUBLISHES) {
      return Promise.reject(new CrierError(ErrorCode.unavailable, `${MAX_PENDING_PUBLISHES} publishes are waiting on Redis already`));
    }
    const id = (this.publishes++).toString(36);
    const o = this.options;
    const idem = request.idempotency === undefined || o.idempotencyWindow <= 0 ? '' : `${request.idempotency.scope}\u0000${request.idempotency.id}`;
    return new Promise<PublishResult>((resolve, reject) => {
      const pending: Pending = { request, resolve, reject, header: undefined, answeredAt: 0 };
      const downs = this.counters.disconnects;
      this.pending.set(id, pending);
      const frame = encodePayload(request);
      let payload = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
      // One node for each queue group the channel matches, the same for every node reading it.
      const choices = this.groups.choose(request.channel, request.labels, request.key);
      if (choices !== undefined) payload = Buffer.concat([Buffer.from(`${choices}|`, 'latin1'), payload]);
      const args = [this.prefix, request.channel, payload, String(this.clock.wall()),
        this.epochCandidate, this.instance, id, ...this.bounds, idem, ...this.publishTail];
      this.run(PUBLISH, args).then((reply) => {
        const [published, header] = reply as [number, string];
        const h = parseHeader(String(header).slice(0, -1));
        if (!published) {
          // A repeat within the window: the first publish's answer, delivered to nobody.
          this.pending.delete(id);
          resolve(resultOf(h));
        } else if (this.pending.has(id)) {
          pending.header = h;
          pending.answeredAt = this.clock.now();
          // Its confirmation was lost if the subscriber connection dropped since it was sent: the
          // gap fill hands the event over to this node's subscribers.
          if (!this.subUp || this.counters.disconnects !== downs) this.settle(id);
        }
      }, (err: unknown) => {
        this.pending.delete(id);
        reject(this.failure(err));
      });
    });
  }

  private settle(id: string): void {
    const pending = this.pending.get(id);
    if (pending?.header === undefined) return;
    this.pending.delete(id);
    pending.resolve(resultOf(pending.header));
  }

  // ---- request/reply ------------------------------------------------------------------------

  onRequests(requests: RequestSink, replies: ReplySink): void {
    this.requests.onRequests(requests, replies);
  }

  request(request: RequestMessage): Promise<boolean> {
    if (!this.ready) return Promise.reject(this.unavailable());
    return this.requests.request(request);
  }

  // ---- presence ----------------------------------------------------------------------------

  onPresence(local: LocalPresence): void {
    this.presenceTraffic.onPresence(local);
  }

  /** Join/leave notices across the nodes: see presence-notices.ts. */
  get presenceCarrier(): PresenceCarrier {
    return this.presenceTraffic.notices;
  }

  presence(pattern: string, members: boolean): Promise<PresenceCount> {
    if (!this.ready) return Promise.reject(this.unavailable());
    return this.presenceTraffic.ask(pattern, members);
  }

  reply(instance: string, reply: ReplyMessage): boolean {
    if (!this.ready) return false;
    this.requests.reply(instance, reply);
    return true;
  }

  /**
   * A request on the pub/sub channels an event of `channel` goes to (so every node with a name or
   * pattern of interest gets it): the copies sent. On a cluster, the three sharded channels of the
   * publish script (name, first segment, all), one slot: their counts add up.
   */
  private async publishRequest(channel: string, message: Buffer): Promise<number> {
    const p = this.prefix;
    if (!this.sharded) return Number(await this.send(['PUBLISH', `${p}e:${channel}`, message]));
    const first = channel.slice(0, channel.indexOf('.') < 0 ? channel.length : channel.indexOf('.'));
    const counts = await Promise.all([`${p}e:${channel}`, `${p}p:${first}`, `${p}all`].map((to) => this.send(['SPUBLISH', to, message])));
    return counts.reduce<number>((sum, n) => sum + Number(n), 0);
  }

  // ---- the pub/sub stream -------------------------------------------------------------------

  private readonly onEvent: Listener = (message) => {
    // A request is not sequenced: delivered at once, even while a gap is being filled.
    if (RedisRequests.isRequest(message)) this.requests.takeRequest(message);
    else if (this.gap) this.hold({ event: message });
    else this.take(message);
  };

  private readonly onMarker: Listener = (message) => {
    if (RedisRequests.isNodeTraffic(message)) this.requests.takeNodeMessage(message);
    else if (RedisPresence.isAnswer(message)) this.presenceTraffic.takeAnswer(message);
    else if (message[0] === 0x21 /* ! */) this.control(message.toString());
    else if (this.gap) this.hold({ marker: message });
    else this.confirm(message);
  };

  private hold(arrival: Arrival): void {
    if (this.held.length >= MAX_FILL_BUFFER) {
      // Too much behind the fill: drop it, and read it from history in another round.
      this.held = [];
      this.overflowed = true;
    }
    if (!this.overflowed) this.held.push(arrival);
  }

  /** An event from Redis: to the sink if it is new and some local subscription may want it. */
  private take(message: Buffer): void {
    let event: StreamEvent;
    try {
      event = messageEvent(message, this.limits);
    } catch (err) {
      this.log?.error({ err }, 'redis engine: a message that is not a crier event, ignored');
      return;
    }
    if (!event.epoch.startsWith(this.epoch) || event.epoch.charCodeAt(this.epoch.length) !== 0x2e) this.newEpoch(event.epoch);
    if (event.seq <= this.delivered) return; // a name and a pattern of this node both matched it
    this.counters.received++;
    if (!this.wants(event.channel)) {
      // A Redis glob is wider than a crier pattern (`*` crosses dots). Not counted as handed
      // over: if this node published it, its confirmation hands it over.
      this.counters.refiltered++;
      return;
    }
    this.delivered = event.seq;
    if (event.seq > this.known) this.known = event.seq;
    this.sink(event, this.groups.chosenInMessage(message));
  }

  /** This node's publish went through: the event follows its channel's, if it came. */
  private confirm(message: Buffer): void {
    const text = message.toString('latin1');
    const space = text.indexOf(' ');
    const id = text.slice(0, space);
    const h = parseHeader(text.slice(space + 1, -1));
    if (!h.epoch.startsWith(this.epoch) || h.epoch.charCodeAt(this.epoch.length) !== 0x2e) this.newEpoch(h.epoch);
    const pending = this.pending.get(id);
    if (h.seq > this.delivered) {
      // No subscription of this node matched it: hand it over here, in stream order.
      this.delivered = h.seq;
      if (h.seq > this.known) this.known = h.seq;
      // No member of a group here either: no group of it is this node's.
      if (pending !== undefined) this.sink(requestEvent(pending.request, h), NO_GROUPS);
    }
    if (pending !== undefined) {
      this.pending.delete(id);
      pending.resolve(resultOf(h));
    }
  }

  private wants(channel: string): boolean {
    if (this.names.has(channel)) return true;
    if (this.patterns.size === 0) return false;
    let found = false;
    this.patterns.match(channel.split('.'), () => (found = true));
    return found;
  }

  // ---- interest -----------------------------------------------------------------------------

  interest(pattern: string, present: boolean): void {
    const wild = isWildcard(pattern);
    if (wild && this.sharded) return this.shardedInterest(pattern, present);
    const redisName = this.redisChannel(pattern, wild);
    if (present) {
      if (wild) {
        if (this.patternSet.has(pattern)) return;
        this.patternSet.add(pattern);
        this.patterns.add(pattern, pattern);
      } else {
        if (this.names.has(pattern)) return;
        this.names.add(pattern);
      }
      if (this.closed) return;
      const done = (wild ? this.sub.pSubscribe(redisName, this.onEvent, true) : this.sub.subscribe(redisName, this.onEvent, true))
        .catch((err: unknown) => this.log?.warn({ err, pattern }, 'redis engine: subscribe failed; it is made again on reconnect'))
        .finally(() => {
          if (this.subscribing.get(pattern) === done) this.subscribing.delete(pattern);
        });
      this.subscribing.set(pattern, done);
    } else {
      if (wild) {
        if (!this.patternSet.delete(pattern)) return;
        this.patterns.remove(pattern, pattern);
      } else if (!this.names.delete(pattern)) {
        return;
      }
      this.subscribing.delete(pattern);
      if (this.closed) return;
      void (wild ? this.sub.pUnsubscribe(redisName, this.onEvent, true) : this.sub.unsubscribe(redisName, this.onEvent, true))
        .catch((err: unknown) => this.log?.warn({ err, pattern }, 'redis engine: unsubscribe failed'));
    }
  }

  /**
   * A pattern on a Redis Cluster: sharded pub/sub has no globs, so a pattern is served by the
   * sharded channel of its first segment (`user.*`, `user.>` → `p:user`), or of every event
   * (`all`) when that segment is a wildcard; shared by the patterns that map to it.
   */
  private shardedInterest(pattern: string, present: boolean): void {
    const first = pattern.slice(0, pattern.indexOf('.') < 0 ? pattern.length : pattern.indexOf('.'));
    const channel = first === '*' || first === '>' ? `${this.prefix}all` : `${this.prefix}p:${first}`;
    const users = this.shardedPatterns.get(channel) ?? 0;
    if (present) {
      if (this.patternSet.has(pattern)) return;
      this.patternSet.add(pattern);
      this.patterns.add(pattern, pattern);
      this.shardedPatterns.set(channel, users + 1);
      if (this.closed) return;
      const done = users > 0 ? this.subscribing.get(channel) : this.sub.subscribe(channel, this.onEvent, true)
        .catch((err: unknown) => this.log?.warn({ err, pattern }, 'redis engine: subscribe failed; it is made again on reconnect'))
        .finally(() => {
          if (this.subscribing.get(channel) === done) this.subscribing.delete(channel);
          if (this.subscribing.get(pattern) === done) this.subscribing.delete(pattern);
        });
      if (done !== undefined) {
        this.subscribing.set(channel, done);
        this.subscribing.set(pattern, done);
      }
    } else {
      if (!this.patternSet.delete(pattern)) return;
      this.patterns.remove(pattern, pattern);
      this.subscribing.delete(pattern);
      if (users > 1) {
        this.shardedPatterns.set(channel, users - 1);
        return;
      }
      this.shardedPatterns.delete(channel);
      this.subscribing.delete(channel);
      if (!this.closed) void this.sub.unsubscribe(channel, this.onEvent, true).catch(() => {});
    }
  }

  live(pattern: string): Promise<void> | undefined {
    const subscribed = this.subscribing.get(pattern);
    const grouped = this.groups.pending(pattern);
    if (grouped === undefined) return subscribed;
    return subscribed === undefined ? grouped : Promise.all([subscribed, grouped]).then(() => {});
  }

  groupMembers(name: string, pattern: string, members: readonly GroupFilterCount[]): void {
    if (!this.closed) this.groups.setLocal(name, pattern, members);
  }

  /** The Redis pub/sub channel (a name) or glob (a pattern: `*` and `>` become `*`). */
  private redisChannel(pattern: string, wild: boolean): string {
    const prefix = `${this.prefix}e:`;
    if (!wild) return prefix + pattern;
    // Channel names hold no glob characters; the prefix may.
    const escaped = prefix.replace(/[*?[\]\\]/g, '\\$&');
    return escaped + pattern.split('.').map((s) => (s === '*' || s === '>' ? '*' : s)).join('.');
  }

  // ---- streams held across nodes ------------------------------------------------------------

  streamOpened(uuid: string): void {
    if (!this.ready) return;
    this.command(['SET', this.key(`u:${uuid}`), this.instance, 'PX', String(HOLDER_TTL)]).catch(() => {});
  }

  streamClosed(uuid: string): void {
    if (!this.ready) return;
    this.run(DISOWN, [this.prefix, uuid, this.instance]).catch(() => {});
  }

  onEpochChange(listener: () => void): void {
    this.epochListener = listener;
  }

  onStreamClaim(handler: StreamClaimHandler): void {
    this.claimHandler = handler;
  }

  async claimStream(uuid: string, claim: SessionClaim): Promise<StreamClaimAnswer> {
    const owner = (await this.run(OWNER, [this.prefix, uuid, this.instance])) as string | null;
    if (owner === null || owner === undefined) return 'free';
    const id = (this.claimSeq++).toString(36);
    const request = JSON.stringify({ id, from: this.instance, uuid, secret: claim.secret ?? null, principal: claim.principal });
    return new Promise<StreamClaimAnswer>((resolve) => {
      const timer = this.clock.setTimeout(() => {
        // The holder did not answer (gone, or cut off from Redis): this node goes on without its session.
        if (this.claims.delete(id)) resolve('free');
      }, CLAIM_TIMEOUT);
      this.claims.set(id, (answer) => {
        this.clock.clearTimer(timer);
        resolve(answer);
      });
      this.command([this.publishCommand, `${this.prefix}n:${String(owner)}`, `!c${request}`]).catch(() => {
        this.claims.delete(id);
        this.clock.clearTimer(timer);
        resolve('free');
      });
    });
  }

  /** A message between nodes: a claim on a stream this node holds (`!c`), or the answer to one (`!r`). */
  private control(text: string): void {
    try {
      if (text.startsWith('!r')) {
        const { id, answer } = JSON.parse(text.slice(2)) as { id: string; answer: StreamClaimAnswer };
        const done = this.claims.get(id);
        this.claims.delete(id);
        done?.(answer);
        return;
      }
      if (!text.startsWith('!c')) return;
      const { id, from, uuid, secret, principal } = JSON.parse(text.slice(2)) as { id: string; from: string; uuid: string; secret: string | null; principal: string };
      const reply = (answer: 'released' | 'refused' | 'absent'): void => {
        const sent: StreamClaimAnswer = answer === 'absent' ? 'free' : answer;
        this.command([this.publishCommand, `${this.prefix}n:${from}`, `!r${JSON.stringify({ id, answer: sent })}`]).catch(() => {});
      };
      const answer = this.claimHandler(uuid, { secret: secret ?? undefined, principal });
      if (answer instanceof Promise) answer.then(reply, () => reply('absent'));
      else reply(answer);
    } catch (err) {
      this.log?.warn({ err }, 'redis engine: a message between nodes that does not parse, ignored');
    }
  }

  // ---- gaps ---------------------------------------------------------------------------------

  private subDown(): void {
    if (!this.subUp) return;
    this.subUp = false;
    this.gap = true;
    this.counters.disconnects++;
    // Publishes whose script answered wait on no confirmation now: the fill hands their events over.
    for (const id of [...this.pending.keys()]) this.settle(id);
  }

  /**
   * After the subscriber connection came back (its subscriptions made again), reads from
   * history every event of this node's interest published meanwhile, and hands them over in
   * order before anything that arrived live since.
   */
  private async fill(): Promise<void> {
    if (this.filling || this.closed) return;
    this.filling = true;
    this.gap = true;
    this.counters.fills++;
    const downs = this.counters.disconnects;
    try {
      for (;;) {
        try {
          this.overflowed = false;
          const [epoch, seq] = (await this.run(INIT, [this.prefix, nanoid(10), String(this.known), this.epoch])) as [string, number];
          if (String(epoch) !== this.epoch) this.newEpoch(`${String(epoch)}.`);
          const upTo = Number(seq);
          if (upTo > this.delivered) await this.readGap(this.delivered, upTo);
          if (upTo > this.known) this.known = upTo;
          if (!this.overflowed) break;
        } catch (err) {
          // Redis half back (the command connection not yet): again shortly, still holding what
          // arrives live (bounded: past it, read from history too), so the gap stays before it.
          if (this.closed) return;
          this.log?.warn({ err: (err as Error).message }, 'redis engine: a gap fill failed; trying again');
          this.overflowed = true;
          await new Promise<void>((resolve) => this.clock.setTimeout(resolve, FILL_RETRY_MS));
        }
      }
    } finally {
      this.filling = false;
      if (this.counters.disconnects !== downs) {
        // Dropped again meanwhile: still holding; another fill once it is back (now, if it is).
        if (this.subUp && !this.closed) void this.fill();
      } else {
        this.gap = false;
        const held = this.held;
        this.held = [];
        for (const arrival of held) {
          if ('event' in arrival) this.take(arrival.event);
          else this.confirm(arrival.marker);
        }
      }
    }
  }

  /**
   * Redis lost its data (restarted without persistence, flushed): a new stream epoch, positions
   * from 0 again. Seen in an event's or a confirmation's channel epoch (`<stream epoch>.<n>`), or
   * by a gap fill. Resuming clients hold positions of the old epoch, and are told so.
   */
  private newEpoch(channelEpoch: string): void {
    const epoch = channelEpoch.slice(0, channelEpoch.indexOf('.'));
    if (epoch === this.epoch) return;
    this.counters.epochChanges++;
    this.log?.warn({ was: this.epoch, now: epoch }, 'redis engine: the stream epoch changed (Redis lost its data); resuming clients are told');
    this.epoch = epoch;
    this.delivered = this.known = 0;
    this.epochListener();
  }

  /** Hands over the events of this node's interest with seq in (since, upTo]. */
  private async readGap(since: number, upTo: number): Promise<void> {
    // Every channel with an event after `since`: its last event may be after `upTo` by now.
    const touched = (await this.command(['ZRANGEBYSCORE', this.key('chans'), `(${since}`, '+inf'])) as string[];
    const names = touched.map(String).filter((name) => this.wants(name));
    const events: StreamEvent[] = [];
    for (let i = 0; i < names.length && events.length < MAX_FILL_EVENTS; i += 100) {
      const read = await this.read('after', names.slice(i, i + 100), since, upTo, 0);
      for (const channel of read.channels) {
        if (channel.lostSeq > since) this.counters.lostInFills++;
        events.push(...channel.events);
      }
    }
    events.sort((a, b) => a.seq - b.seq);
    if (events.length > MAX_FILL_EVENTS) {
      this.counters.lostInFills += events.length - MAX_FILL_EVENTS;
      events.length = MAX_FILL_EVENTS;
    }
    this.counters.filled += events.length;
    if (events.length > 0) this.log?.info({ events: events.length, since, upTo }, 'redis engine: filled a gap from history');
    for (const event of events) {
      if (event.seq <= this.delivered) continue;
      this.delivered = event.seq;
      this.sink(event, this.groups.chosenOf(event));
    }
    if (upTo > this.delivered) this.delivered = upTo;
  }

  // ---- reads --------------------------------------------------------------------------------

  async history(channel: string, since: ChannelPosition | undefined, limit: number): Promise<HistoryPage> {
    const [read] = (await this.read('all', [channel], 0, 0, 0)).channels;
    if (read === undefined || !read.exists) return { events: [], epoch: '', offset: 0, complete: since === undefined, more: false };
    const retained = read.events;
    const first = retained.length > 0 ? retained[0]!.offset : read.offset + 1;
    const { from, to, complete } = historyWindow(retained.length, first, read.epoch, read.lost, since, limit);
    return { events: retained.slice(from, to), epoch: read.epoch, offset: read.offset, complete, more: to < retained.length };
  }

  async replay(pattern: string, since: number, limit: number, accept?: Accept): Promise<ReplayPage> {
    await this.live(pattern);
    let complete = true;
    let names: string[];
    if (!isWildcard(pattern)) {
      names = [pattern];
    } else {
      const [touched, gone] = await Promise.all([
        this.command(['ZRANGEBYSCORE', this.key('chans'), `(${since}`, '+inf']),
        this.command(['ZRANGEBYSCORE', this.key('gone'), `(${since}`, '+inf']),
      ]) as [string[], string[]];
      names = touched.map(String).filter((name) => matchPattern(pattern, name));
      if (gone.some((name) => matchPattern(pattern, String(name)))) complete = false;
    }
    const events: StreamEvent[] = [];
    let more = false;
    let from = since;
    for (let round = 0; ; round++) {
      const read = await this.read('after', names, from, 0, limit + 1);
      if (round === 0 && from < read.forgot && from < read.seq) complete = false;
      // Events past the last one read of a channel cut short wait for the next round.
      let horizon = Infinity;
      const all: StreamEvent[] = [];
      for (const channel of read.channels) {
        if (round === 0) {
          // Lost if trimmed, or forgotten whole since (even when published again after).
          if (channel.gone > since || (channel.exists && channel.lostSeq > since)) complete = false;
        }
        if (channel.events.length === limit + 1) horizon = Math.min(horizon, channel.events[limit]!.seq);
        all.push(...channel.events);
      }
      all.sort((a, b) => a.seq - b.seq);
      for (const event of all) {
        if (event.seq > horizon) break;
        if (accept !== undefined && !accept(event.labels, event.key)) continue;
        if (events.length === limit) {
          more = true;
          break;
        }
        events.push(event);
      }
      if (more || horizon === Infinity) break;
      from = horizon;
    }
    return { events, complete, more };
  }

  async rewind(pattern: string, count: number, maxBytes: number, accept?: Accept): Promise<ReplayPage> {
    await this.live(pattern);
    let names: string[];
    let cut = false;
    if (!isWildcard(pattern)) {
      names = [pattern];
    } else {
      // The most recently published matching channels, at most MAX_REWIND_CHANNELS: one rewind
      // never makes Redis read every channel (a `>` on a busy deployment).
      names = [];
      for (let from = 0; names.length < MAX_REWIND_CHANNELS; from += REWIND_SCAN) {
        const chunk = ((await this.command(['ZREVRANGE', this.key('chans'), String(from), String(from + REWIND_SCAN - 1)])) as string[]).map(String);
        for (const name of chunk) if (matchPattern(pattern, name)) names.push(name);
        if (chunk.length < REWIND_SCAN) break;
      }
      if (names.length > MAX_REWIND_CHANNELS) {
        names.length = MAX_REWIND_CHANNELS;
        cut = true;
      }
    }
    // Newest first per channel; a filter may pass over many, so it reads all that is retained.
    const per = accept !== undefined ? 0 : count === 0 ? 1 : count;
    const read: { channels: ChannelRead[] } = { channels: [] };
    for (let i = 0; i < names.length; i += 100) read.channels.push(...(await this.read('newest', names.slice(i, i + 100), 0, 0, per)).channels);
    const passes = (e: StreamEvent): boolean => accept === undefined || accept(e.labels, e.key);
    let picked: StreamEvent[] = [];
    if (count === 0) {
      for (const channel of read.channels) {
        const last = channel.events.find(passes);
        if (last !== undefined) picked.push(last);
      }
    } else {
      const all = read.channels.flatMap((c) => c.events).filter(passes);
      all.sort((a, b) => b.seq - a.seq);
      picked = all.slice(0, count);
    }
    picked.sort((a, b) => b.seq - a.seq);
    let bytes = 0;
    let kept = 0;
    while (kept < picked.length && bytes + picked[kept]!.frame.length <= maxBytes) bytes += picked[kept++]!.frame.length;
    return { events: picked.slice(0, kept).reverse(), complete: true, more: cut || kept < picked.length };
  }

  private async read(mode: 'after' | 'newest' | 'all', names: string[], since: number, upTo: number, count: number): Promise<Read> {
    const reply = (await this.run(READ, [
      this.prefix, String(this.clock.wall()), String(this.options.historyTtl), mode, String(since), String(upTo), String(count), ...names,
    ], true)) as unknown[];
    const channels: ChannelRead[] = [];
    for (let i = 2; i < reply.length; i++) {
      const [name, exists, epoch, offset, lost, lostSeq, gone, messages] = reply[i] as [Buffer, number, Buffer, number, number, number, number, Buffer[]];
      const events: StreamEvent[] = [];
      for (const message of messages) {
        const event = messageEvent(message, this.limits);
        this.groups.remember(event, message);
        events.push(event);
      }
      channels.push({
        name: name.toString(), exists: Number(exists) === 1, epoch: epoch.toString(), offset: Number(offset), lost: Number(lost),
        lostSeq: Number(lostSeq), gone: Number(gone), events,
      });
    }
    return { seq: Number(reply[0]), forgot: Number(reply[1]), channels };
  }

  position(): number {
    return Math.max(this.delivered, this.known);
  }

  // ---- sessions -----------------------------------------------------------------------------

  async parkSession(uuid: string, session: ParkedSession, ttl: number): Promise<void> {
    const now = this.clock.wall();
    await this.run(PARK, [this.prefix, uuid, JSON.stringify({ s: session }), String(now + ttl), String(now), String(ttl), String(MAX_PARKED_SESSIONS)]);
  }

  saveSession(uuid: string, session: ParkedSession, ttl: number): void {
    if (!this.ready) return;
    this.run(SAVE, [this.prefix, uuid, JSON.stringify({ s: session, n: this.instance, t: ttl }), this.instance])
      .catch((err: unknown) => this.log?.debug({ err, uuid }, 'redis engine: a live session was not recorded'));
  }

  async takeSession(uuid: string, claim: SessionClaim): Promise<SessionTake> {
    const found = (await this.run(PEEK, [this.prefix, uuid])) as [string, string, string] | [];
    if (found.length === 0) return { none: true };
    const [stored, expiry, beat] = found;
    const record = JSON.parse(String(stored)) as { s: ParkedSession; n?: string; t?: number };
    // Parked: until its expiry. Live on a node: while the node runs, or for its ttl after its last heartbeat.
    const until = record.n === undefined ? Number(expiry) : Number(beat) === 0 ? 0 : Number(beat) + (record.t ?? 0);
    if (until <= this.clock.wall()) {
      await this.run(DROP, [this.prefix, uuid]);
      return { none: true };
    }
    const session = record.s;
    const samePrincipal = claim.principal !== '' && claim.principal === session.principal;
    const secret = secretMatches(claim.secret, session.secret) || secretMatches(claim.secret, session.formerSecret);
    if (!samePrincipal && !secret) return { refused: true };
    // Taken only if it is still the one read: two nodes resuming one uuid at once, one wins.
    const taken = (await this.run(TAKE, [this.prefix, uuid, String(stored)])) as number;
    return Number(taken) === 1 ? { session } : { none: true };
  }

  async dropSession(uuid: string): Promise<void> {
    await this.run(DROP, [this.prefix, uuid]);
  }

  async parkedSessions(): Promise<number> {
    return Number(await this.run(PARKED, [this.prefix, String(this.clock.wall())]));
  }

  // ---- figures ------------------------------------------------------------------------------

  async channelCount(): Promise<number> {
    return Number(await this.command(['ZCARD', this.key('chans')]));
  }

  async busiestChannels(limit: number): Promise<ChannelEvents[]> {
    if (limit <= 0) return [];
    const top = (await this.command(['ZREVRANGE', this.key('busy'), '0', String(limit - 1), 'WITHSCORES'])) as unknown[];
    const ranked = pairs(top);
    if (ranked.length === 0) return [];
    // Ties by name: every channel at the lowest count kept, in name order.
    const lowest = ranked[ranked.length - 1]!.events;
    const ties = (await this.command(['ZRANGEBYSCORE', this.key('busy'), String(lowest), String(lowest)])) as string[];
    const above = ranked.filter((c) => c.events > lowest);
    return [...above, ...ties.map((channel) => ({ channel: String(channel), events: lowest }))]
      .sort((a, b) => b.events - a.events || (a.channel < b.channel ? -1 : a.channel > b.channel ? 1 : 0))
      .slice(0, limit);
  }

  stats(): EngineStats {
    return {
      kind: this.kind, ready: this.ready, node: this.options.node, redis: redacted(this.options.url), ...this.counters,
      pending: this.pending.size, interest: this.names.size + this.patternSet.size, lastError: this.lastError, requests: { ...this.requests.traffic },
      groups: { ...this.groups.stats() },
      presence: { ...this.presenceTraffic.traffic, ...this.presenceTraffic.notices.stats() },
    };
  }

  // ---- Redis --------------------------------------------------------------------------------

  private key(name: string): string {
    return this.prefix + name;
  }

  private async command(args: string[]): Promise<unknown> {
    return this.send(args);
  }

  private async send(args: (string | Buffer)[]): Promise<unknown> {
    try {
      return await this.cmd.sendCommand(args, NO_TIMEOUT);
    } catch (err) {
      throw this.failure(err);
    }
  }

  /**
   * Loads the scripts run by their hash (on a cluster, on the shard of the deployment's slot).
   * Sent first on a new connection: a publish sent by hash to a Redis without the script would
   * be sent again whole after the answer, behind publishes sent after it (reordered).
   */
  private loadScripts(): Promise<unknown>[] {
    return [PUBLISH, READ].map((s) => this.cmd.sendCommand(['SCRIPT', 'LOAD', s.source], NO_TIMEOUT).catch((err: unknown) => {
      this.log?.warn({ err: (err as Error).message }, 'redis engine: a script could not be loaded');
    }));
  }

  /** Runs a script by its hash, sending its source when Redis does not have it (a restarted Redis). */
  private async run(s: Script, args: (string | Buffer)[], binary = false): Promise<unknown> {
    const options = binary ? BINARY : NO_TIMEOUT;
    if (s.byHash) {
      try {
        return await this.cmd.sendCommand(['EVALSHA', s.sha, '1', this.routeKey, ...args], options);
      } catch (err) {
        if (!(err instanceof this.redis.ErrorReply) || !err.message.startsWith('NOSCRIPT')) throw this.failure(err);
        // Scripts are loaded on every connection: this is a SCRIPT FLUSH on a live Redis, and
        // the publishes in flight then may run out of order (sent again behind later ones).
        this.log?.warn('redis engine: Redis lost its scripts while connected (SCRIPT FLUSH?); reloading');
        this.loadScripts();
      }
    }
    try {
      return await this.cmd.sendCommand(['EVAL', s.source, '1', this.routeKey, ...args], options);
    } catch (err) {
      throw this.failure(err);
    }
  }

  /** A failed command as the broker's error: Redis out of reach is `unavailable`; an error reply, `internal`. */
  private failure(err: unknown): CrierError {
    if (err instanceof CrierError) return err;
    if (err instanceof this.redis.ErrorReply) {
      this.log?.error({ err }, 'redis engine: Redis answered an error');
      return new CrierError(ErrorCode.internal, 'the engine failed: Redis answered an error');
    }
    this.lastError = (err as Error).message;
    return this.unavailable();
  }

  private unavailable(): CrierError {
    return new CrierError(ErrorCode.unavailable, 'the broker cannot reach its Redis engine right now; retry later');
  }

  private onError(which: string, err: unknown): void {
    const message = (err as Error).message;
    if (message !== this.lastError) this.log?.warn({ err: message, connection: which }, 'redis engine: connection error; reconnecting');
    this.lastError = message;
    if (which === 'subscriber') this.subDown();
    else if (!this.cmd.isReady) this.cmdUp = false; // a failed ping (Redis not answering) keeps it down too
  }

  private async ping(): Promise<void> {
    if (this.closed) return;
    this.requests.sweep();
    // A publish whose script answered but whose confirmation never came (lost with a connection
    // that dropped and came back in between): answered from the script's reply.
    const stale = this.clock.now() - CONFIRM_TIMEOUT;
    for (const [id, pending] of this.pending) if (pending.header !== undefined && pending.answeredAt < stale) this.settle(id);
    if (this.pingSince !== 0) {
      // The last ping is still unanswered: a Redis that does not answer (stopped, overloaded)
      // refuses publishes at once until it does (see NO_TIMEOUT).
      if (performance.now() - this.pingSince > PING_TIMEOUT) this.cmdUp = false;
      return;
    }
    if (!this.cmd.isReady) return;
    // Real time: a round trip to Redis takes what it takes, whatever a test's clock says.
    const start = (this.pingSince = performance.now());
    try {
      // The ping says this node is alive too: another node asks it for the streams it holds.
      await this.cmd.sendCommand(['EVAL', HEARTBEAT.source, '1', this.routeKey, this.prefix, this.instance, String(this.clock.wall())], NO_TIMEOUT);
      this.counters.rttMs = Math.round((performance.now() - start) * 1000) / 1000;
      this.cmdUp = true;
      // The queue group registry of the live nodes (a node that stopped beating is left out).
      this.groups.refresh().catch((err: unknown) => this.log?.warn({ err: (err as Error).message }, 'redis engine: the queue group registry could not be read'));
      // Nodes with presence watches or holders known here that died leave the counts.
      this.presenceTraffic.notices.sweep();
    } catch {
      this.cmdUp = false;
    } finally {
      this.pingSince = 0;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.health !== undefined) this.clock.clearTimer(this.health);
    for (const pending of this.pending.values()) pending.reject(new CrierError(ErrorCode.shuttingDown, 'the engine is closed'));
    this.pending.clear();
    this.requests.close();
    this.presenceTraffic.close();
    for (const done of this.claims.values()) done('free');
    this.claims.clear();
    // Gone at once for the other nodes: they stop asking this one for its streams.
    if (this.cmd.isReady) await this.command(['DEL', this.key(`node:${this.instance}`)]).catch(() => {});
    if (this.cmd.isReady) await this.groups.leave().catch(() => {});
    if (this.cmd.isReady) await this.presenceTraffic.notices.leave().catch(() => {});
    await Promise.all([this.cmd, this.sub].map((c) => (c.isReady ? c.close().catch(() => c.destroy()) : Promise.resolve(safeDestroy(c)))));
  }
}

function safeDestroy(c: RedisConnection): void {
  try {
    c.destroy();
  } catch {
    // never opened
  }
}

function resultOf(h: Header): PublishResult {
  return { id: eventId(h), offset: h.offset, epoch: h.epoch };
}

function pairs(reply: unknown[]): ChannelEvents[] {
  // RESP3 answers WITHSCORES as [member, score] pairs; RESP2 as a flat list.
  const out: ChannelEvents[] = [];
  if (reply.length > 0 && Array.isArray(reply[0])) {
    for (const [member, score] of reply as [string, number][]) out.push({ channel: String(member), events: Number(score) });
  } else {
    for (let i = 0; i + 1 < reply.length; i += 2) out.push({ channel: String(reply[i]), events: Number(reply[i + 1]) });
  }
  return out;
}

/** A Redis URL without its password, for logs and `/stats`. */
export function redacted(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'redis://?';
  }
}

/** Loads the `redis` package (only when a Redis engine is configured) and makes the engine. */
export async function createRedisEngine(options: RedisEngineOptions, clock: Clock, log?: Logger): Promise<RedisEngine> {
  const redis = await import('redis');
  return new RedisEngine(redis, options, clock, log);
}

/**
 * A Redis Cluster as the engine's one connection: every command routed by the deployment's one
 * slot, subscriptions sharded (node-redis keeps a pub/sub connection per shard). Its events: a
 * node connection ready or lost stands for the engine's.
 */
class ClusterConnection implements RedisConnection {
  constructor(
    private readonly cluster: RedisClusterLike,
    private readonly routeKey: string,
  ) {}

  connect(): Promise<unknown> {
    return this.cluster.connect();
  }

  sendCommand(args: ReadonlyArray<string | Buffer>, options?: object): Promise<unknown> {
    return this.cluster.sendCommand(this.routeKey, false, args as (string | Buffer)[], options);
  }

  subscribe(channel: string, listener: Listener, bufferMode: true): Promise<void> {
    return this.cluster.sSubscribe(channel, listener, bufferMode);
  }

  unsubscribe(channel: string, listener: Listener, bufferMode: true): Promise<void> {
    return this.cluster.sUnsubscribe(channel, listener, bufferMode);
  }

  pSubscribe(): Promise<void> {
    return Promise.reject(new Error('a Redis Cluster has no sharded pattern subscriptions'));
  }

  pUnsubscribe(): Promise<void> {
    return Promise.resolve();
  }

  on(event: string, listener: (...args: unknown[]) => void): unknown {
    // A node's connection failing is reported as `node-error` (its pub/sub one included): the
    // engine holds what arrives from then until a fill has read the gap.
    if (event === 'error') this.cluster.on('node-error', listener);
    const name = event === 'ready' ? 'node-ready' : event === 'end' ? 'node-disconnect' : event;
    return this.cluster.on(name, listener);
  }

  duplicate(): RedisConnection {
    return this;
  }

  close(): Promise<void> {
    return this.cluster.close();
  }

  destroy(): void {
    this.cluster.destroy();
  }

  get isReady(): boolean {
    return this.cluster.isReady;
  }
}
