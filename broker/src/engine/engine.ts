import type { SubscriptionFilter } from '@crier/protocol';
import type { ChannelEvents, EngineStats, PublishResult } from '../types.js';

export type { EngineStats };
import type { StreamEvent } from './stream-event.js';

/** A publish as the engine receives it: validated and allowed already. */
export interface PublishRequest {
  channel: string;
  data: Uint8Array;
  labels?: string[] | undefined;
  key?: string | undefined;
  /** 1: high priority (the event frame carries `pr: 1`; see Connection's high lane). */
  priority?: 0 | 1 | undefined;
  /**
   * Makes the publish idempotent: within the engine's idempotency window, a second publish with
   * the same `scope` (the publisher: its principal, or its stream) and `id` is answered with the
   * first one's result and delivered to nobody.
   */
  idempotency?: { scope: string; id: string } | undefined;
}

/** Which retained events a read keeps, by their labels and key: a subscription's filter. */
export type Accept = (labels: string[] | undefined, key: string | undefined) => boolean;

/**
 * Where an engine hands every sequenced event (on every node): the broker's routing and delivery.
 * `chosen`: the queue groups (`<name> <pattern>`) this node hands the event to, when the engine
 * carries events between nodes and a node was picked for each group (the others skip it);
 * `undefined` (one node): every local group gets it.
 */
export type EventSink = (event: StreamEvent, chosen?: ReadonlySet<string>) => void;

/**
 * A request (request/reply) on its way to every node: the `event` frame its responders get (with
 * the reply token `rp`, `o` 0, no `s`), and what routing needs of it. It is not sequenced, not kept
 * in history, and never replayed: it is handed to the request sink of every node that may hold a
 * matching subscription, once per node.
 */
export interface RequestMessage {
  channel: string;
  labels?: string[] | undefined;
  key?: string | undefined;
  /** The encoded `event` frame, sent as is to every local responder. */
  frame: Uint8Array;
  /** The queue groups this node serves the request to (see {@link EventSink}); `undefined`: every local one. */
  chosen?: ReadonlySet<string> | undefined;
}

/**
 * Where an engine hands each request on every node (this one's included): the broker delivers it
 * to its local matching subscriptions and answers how many got it (0: nobody on this node).
 */
export type RequestSink = (request: RequestMessage) => number;

/** A responder's reply, on its way to the node that holds its request (named by the token). */
export interface ReplyMessage {
  /** The reply token of the request (`rp`), as the responder gave it. */
  token: string;
  data: Uint8Array;
  labels?: string[] | undefined;
  /** The reply's id, and when the responder's node took it (ms since the Unix epoch). */
  id: string;
  time: number;
}

/** Where an engine hands the replies other nodes forward to this one. */
export type ReplySink = (reply: ReplyMessage) => void;

/**
 * Who subscribes to a channel or pattern (see `Engine.presence`): `n` subscribers; `m` the ids of
 * the authenticated principals among them, when asked (distinct, at most 1000); `partial` when a
 * node did not answer in time and its subscribers are not counted.
 */
export interface PresenceCount {
  n: number;
  m?: string[];
  partial?: boolean;
}

/** How this node counts its own subscribers of a channel or pattern (the broker's registry). */
export type LocalPresence = (pattern: string, members: boolean) => PresenceCount;

/** One subscriber starting (`j` true) or ending its hold of a channel, with its principal id when authenticated. */
export interface PresenceChange {
  j: boolean;
  m?: string | undefined;
}

/**
 * One node's news of a watched channel in one turn: `n` holders of exactly `channel` (on the
 * node that sends it; as handed to the broker, on every other node together), after `changes` in
 * order and `more` changes not itemized (a storm past 64: `net` of them joins minus leaves). No
 * change at all: only the count (a sync, or a node that went away: then `more`/`net` say by how much).
 */
export interface PresenceNews {
  channel: string;
  n: number;
  changes: PresenceChange[];
  more?: number;
  net?: number;
}

/**
 * Join/leave notices across nodes (see core/presence.ts): what an engine that carries them between
 * nodes offers the broker. One node (the memory engine) has none: notices are the node's own.
 */
export interface PresenceCarrier {
  /**
   * Where other nodes' news of the channels watched here arrive (`n`: their holders together,
   * now), and how this node counts its own holders of a channel (for the nodes that ask).
   */
  onNews(sink: (news: PresenceNews) => void, held: (channel: string) => number): void;
  /** This node starts (its first watcher of `channel`) or stops (its last one left) watching `channel`. */
  watch(channel: string, watching: boolean): void;
  /** Whether a node other than this one watches `channel`: this node's changes of it are then sent. */
  watchedElsewhere(channel: string): boolean;
  /**
   * Whether the other nodes' holders of a channel watched here are known (false while they are
   * asked, 1 s at most). When it turns true, news of the channel follow (the count, no change):
   * the broker looks at a held channel again only then.
   */
  settled(channel: string): boolean;
  /** This node's news of channels other nodes watch: one turn's, batched. */
  send(news: PresenceNews[]): void;
}

/** Members of a queue group on one node with one filter (`undefined`: none). */
export interface GroupFilterCount {
  filter: SubscriptionFilter | undefined;
  count: number;
  /** How many of them are slow consumers (losing events) right now. */
  slow: number;
}

/**
 * A position in a channel's history: the last event a reader has, by `(epoch, offset)`.
 * `offset` 0 asks for the channel from its oldest retained event.
 */
export interface ChannelPosition {
  epoch: string;
  offset: number;
}

/** What `history()` answers. */
export interface HistoryPage {
  /** The retained events after the asked position, oldest first, at most `limit`. */
  events: StreamEvent[];
  /** The channel's epoch now, and its latest offset (0: nothing published in this epoch). */
  epoch: string;
  offset: number;
  /**
   * Whether `events` follows the asked position with nothing missing: false when the epoch
   * changed, or when events after the position were evicted. Always true without a position.
   */
  complete: boolean;
  /** More retained events follow the last one returned (`limit` was reached). */
  more: boolean;
}

/** What `replay()` answers. */
export interface ReplayPage {
  /** The retained events after the position, of every matching channel, in stream order. */
  events: StreamEvent[];
  /**
   * Whether every matching event after the position is in `events` (or after it, when `more`):
   * false when one was trimmed, evicted with its channel, or never kept (history off).
   */
  complete: boolean;
  /** More matching events follow the last one returned (`limit` was reached). */
  more: boolean;
}

/** A stream kept after its connection went away without `quit`, for a resume within the window. */
export interface ParkedSession {
  /** The session secret its welcome gave: a resume must present it. */
  secret: string;
  /** The secret the client resumed it with before: it may not have got the newer one yet. */
  formerSecret?: string;
  /** The principal that held it (`''`: anonymous): the same authenticated principal may resume without the secret. */
  principal: string;
  /** Its subscriptions, each with the stream position from which it was live (`since`). */
  subscriptions: ParkedSubscription[];
}

export interface ParkedSubscription {
  pattern: string;
  filter: SubscriptionFilter | undefined;
  since: number;
  /** Its queue group, when it is a member of one. */
  group?: string;
}

/** What presents a resume: the secret it holds, and who it is. */
export interface SessionClaim {
  secret: string | undefined;
  /** The principal id of the new connection (`''`: anonymous). */
  principal: string;
}

/** {@link Engine.claimStream}'s answer. */
export type StreamClaimAnswer = 'free' | 'released' | 'refused';

/** How a node answers another's claim on a stream: `absent` when it does not hold it (any more). */
export type StreamClaimHandler = (uuid: string, claim: SessionClaim) => 'released' | 'refused' | 'absent' | Promise<'released' | 'refused' | 'absent'>;

/** `takeSession`'s answer: the session (now taken), none, or a claim that does not prove it (it stays parked). */
export type SessionTake = { session: ParkedSession } | { none: true } | { refused: true };

/**
 * The seam under the broker: it owns sequencing (ids, per-channel offsets and epochs, the
 * stream's `seq`), history, and the idempotency window, and it carries events between nodes.
 * The broker above it routes each event to its local subscribers and delivers it.
 *
 * Sequencing may need a network round trip (a Redis engine): methods answer with a value when
 * the engine can at once (the memory engine always does) and with a promise otherwise, so the
 * memory engine costs no promise per publish. Callers handle both.
 */
export interface Engine {
  /** `memory`, `redis`: shown in `/stats`. */
  readonly kind: string;
  /**
   * The stream epoch: `seq` positions count within it. It changes when the engine loses its
   * history (the memory engine: every start), and a client resuming from another epoch is told
   * it cannot be recovered.
   */
  readonly epoch: string;
  /** Starts handing sequenced events to `sink` (from every node). Called once, before publishing. */
  start(sink: EventSink): Promise<void>;
  /**
   * Sequences one event, stores it in history, and hands it to the sink of every node (on this
   * node, before it answers). Answers with the event's `{id, offset, epoch}`; a duplicate within
   * the idempotency window answers the first publish's and is delivered to nobody.
   */
  publish(request: PublishRequest): PublishResult | Promise<PublishResult>;
  /** The retained events of one channel after `since` (or all retained), oldest first, at most `limit`. */
  history(channel: string, since: ChannelPosition | undefined, limit: number): HistoryPage | Promise<HistoryPage>;
  /**
   * The retained events after stream position `since` of every channel `pattern` (a name or a
   * wildcard pattern) matches, in stream order, at most `limit`; `accept` filters them (a
   * subscription's labels and keys). What a resuming subscription is replayed.
   */
  replay(
    pattern: string, since: number, limit: number, accept?: Accept,
  ): ReplayPage | Promise<ReplayPage>;
  /**
   * The newest retained events of every channel `pattern` matches, in stream order: the last
   * `count` of them all, or with `count` 0 the last of each channel; their frames within
   * `maxBytes` (`more` when some were left out). What a subscription's rewind starts with.
   */
  rewind(
    pattern: string, count: number, maxBytes: number, accept?: Accept,
  ): ReplayPage | Promise<ReplayPage>;
  /** The stream position of the newest event this node has sequenced or received (0: none yet). */
  position(): number;
  /** Keeps `session` for `ttl` ms under `uuid` (replacing one parked there), for a resume on any node. */
  parkSession(uuid: string, session: ParkedSession, ttl: number): void | Promise<void>;
  /**
   * Takes the parked session of `uuid` for a resume, if one is kept and `claim` proves it (its
   * secret, or the same authenticated principal); a claim that does not leaves it parked.
   */
  takeSession(uuid: string, claim: SessionClaim): SessionTake | Promise<SessionTake>;
  /** Forgets the parked session of `uuid`, if any (a `quit`). */
  dropSession(uuid: string): void | Promise<void>;
  /** Sessions parked now (expired ones freed first). */
  parkedSessions(): number | Promise<number>;
  /** Channels whose sequencing state (counter, history) the engine holds. */
  channelCount(): number | Promise<number>;
  /** The channels with the most events in their current epoch, most first (ties by name). */
  busiestChannels(limit: number): ChannelEvents[] | Promise<ChannelEvents[]>;
  /**
   * This node's interest in a name or pattern began (`present`: its first local subscriber) or
   * ended (its last one left). An engine that carries events between nodes brings this node the
   * events of its interest (and may bring more: the sink's routing matches each one again).
   */
  interest(pattern: string, present: boolean): void;
  /**
   * This node's members of the queue group (`name`, `pattern`) changed: how many there are with
   * each filter now, and how many of those are slow (empty: none left); told again when a member
   * starts or ends a slow spell. An engine that carries events between nodes shares it
   * with them, so that the node publishing an event picks, for each group, one node holding a
   * member whose filter the event passes ({@link EventSink}'s `chosen`); {@link live} for the
   * pattern settles once the other nodes can know it. One node (the memory engine) needs nothing.
   */
  groupMembers?(name: string, pattern: string, members: readonly GroupFilterCount[]): void;
  /**
   * Settles once events of `pattern` published on any node reach this node's sink (its interest
   * is live in the shared store); `undefined` when they already do. A subscribe is acknowledged,
   * and a replay read, only after it: nothing published after the acknowledgement is missed.
   */
  live(pattern: string): Promise<void> | undefined;
  /**
   * Nodes share this engine: the broker records each live stream's session with
   * {@link saveSession} (at its welcome and when its subscriptions change).
   */
  readonly shared: boolean;
  /**
   * Records the session of the live stream `uuid` (held on this node), so that if this node dies
   * without parking it (`kill -9`), another node resumes it within `ttl` of this node's end.
   * A park or a drop of `uuid` replaces it.
   */
  saveSession(uuid: string, session: ParkedSession, ttl: number): void;
  /**
   * The live stream `uuid` opened on this node (`streamOpened`) or went away from it: where nodes
   * share the engine, it records which node holds each stream, for {@link claimStream}.
   */
  streamOpened(uuid: string): void;
  streamClosed(uuid: string): void;
  /**
   * A client presents the stream `uuid` here: if another node holds it live, asks that node to
   * let it go (as one node does for a takeover: its connection closed `replaced`, its session
   * parked for this resume) when `claim` proves it, and answers once it did (`released`), or
   * `refused`; `free` when no other node holds it (or the holder does not answer within a second).
   */
  claimStream(uuid: string, claim: SessionClaim): StreamClaimAnswer | Promise<StreamClaimAnswer>;
  /** Sets what answers the claims of other nodes on the streams this node holds. */
  onStreamClaim(handler: StreamClaimHandler): void;
  /**
   * Calls `listener` when the stream epoch changes while the engine runs (a shared store that lost
   * its data): positions held by connected clients mean nothing any more, and events may have
   * been lost that no history can give back.
   */
  onEpochChange(listener: () => void): void;
  /**
   * This run of this node, as reply tokens name it: unique among the nodes sharing the engine, and
   * new at every start (a token of a node's former life names nobody). Letters, digits and
   * `_ . # -` only.
   */
  readonly instance: string;
  /** Sets where requests (for this node's subscribers) and forwarded replies (for its requesters) arrive. */
  onRequests(requests: RequestSink, replies: ReplySink): void;
  /**
   * Hands `request` to the request sink of every node whose subscribers it may reach (this one's
   * included). Answers whether any sink got it to someone: false only when every node that got it
   * said nobody (no responders); true also when a node that got it did not say in time.
   * Not sequenced, kept or deduplicated. Fails `unavailable` as a publish does.
   */
  request(request: RequestMessage): boolean | Promise<boolean>;
  /**
   * Carries `reply` to the reply sink of the node `instance` (another one than this). Fire and
   * forget; answers false when no such node can be reached from here (one node: a token of another
   * instance names nobody), and the caller counts the reply as dropped.
   */
  reply(instance: string, reply: ReplyMessage): boolean;
  /** Sets how this node counts its own subscribers, for {@link presence} here and on other nodes. */
  onPresence(local: LocalPresence): void;
  /**
   * The subscribers of `pattern` (a channel name: those an event on it reaches; a wildcard
   * pattern: those holding exactly it) over every live node, with their principal ids when
   * `members`. One node: its own count. Nodes sharing the engine that do not answer in time are
   * left out, and the answer says `partial`.
   */
  presence(pattern: string, members: boolean): PresenceCount | Promise<PresenceCount>;
  /**
   * Carries join/leave notices between the nodes sharing the engine, so that a watcher hears of
   * every node's subscribers (`undefined`: one node, its own).
   */
  readonly presenceCarrier?: PresenceCarrier | undefined;
  /** Whether the engine can sequence now (`/readyz`; publishes fail `unavailable` otherwise). */
  readonly ready: boolean;
  /** Its state and figures, for `/stats` and `/metrics`. */
  stats(): EngineStats;
  /** Stops: timers, connections. The engine is not used after. */
  close(): Promise<void>;
}
