import type { SubscriptionFilter } from './filter.js';

/** The protocol version this package speaks. Sent in `hello` and echoed in `welcome`. */
export const PROTOCOL_VERSION = 1;

/** Frame kinds: the `t` field of every frame. */
export const FrameType = {
  hello: 1,
  welcome: 2,
  subscribe: 3,
  unsubscribe: 4,
  publish: 5,
  quit: 6,
  ping: 7,
  pong: 8,
  ack: 9,
  error: 10,
  event: 11,
  dropped: 12,
  auth: 13,
  history: 14,
  events: 15,
  request: 16,
  reply: 17,
  presence: 18,
  presenceChange: 19,
} as const;

export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Client → broker, first frame on a socket. */
export interface HelloFrame {
  t: typeof FrameType.hello;
  /** Protocol version the client speaks. */
  v: number;
  /** The uuid to use (to take over a stream); the broker assigns one when absent. */
  u?: string;
  /** The credential: a JWT or a static token. */
  tk?: string;
  /**
   * The session secret of the stream `u`, from its `welcome`: proves a takeover of `u` comes from
   * its holder (required unless the same authenticated principal holds `u`).
   */
  s?: string;
  /**
   * Resume: the last stream position the client received on its stream `u` (`e`: the stream
   * epoch of its `welcome`, `s`: the highest event `s` it got). With `u` and its secret, within
   * the broker's resume window, the broker restores the stream's subscriptions and replays what
   * each missed after the welcome, before anything live; the welcome's `rs` says how it went.
   */
  rp?: StreamPosition;
}

/** A position in a broker's stream: its epoch, and an event position within it. */
export interface StreamPosition {
  e: string;
  s: number;
}

/**
 * Why a resume (or a replay from a position) could not give every missed event. Stable strings,
 * like error codes.
 */
export const ResumeReason = {
  /** No session of this uuid and secret is kept: the resume window passed, or it never existed. */
  windowPassed: 'window_passed',
  /** The broker's stream epoch changed: it restarted without shared history. */
  brokerRestarted: 'broker_restarted',
  /** Events after the position were trimmed from history, or never kept (history off or bounded). */
  historyEvicted: 'history_evicted',
  /** More events were missed than one replay carries. */
  replayLimit: 'replay_limit',
  /** The position given is not one the broker writes (an SSE `Last-Event-ID` not `<epoch>:<seq>`). */
  badPosition: 'bad_position',
} as const;

export type ResumeReason = (typeof ResumeReason)[keyof typeof ResumeReason];

/** The welcome's account of a resume (`hello` with `rp`). */
export interface ResumeOutcome {
  /** Events replayed right after the welcome, before anything live. */
  n: number;
  /** Absent when every subscription got every missed event; else the (first) reason why not. */
  why?: string;
  /** The patterns restored but not fully recovered (absent when all were, or none restored). */
  f?: string[];
}

/** The limits a broker applies to one connection, sent in `welcome` so an SDK can fail fast. */
export interface ConnectionLimits {
  /** Max subscriptions per connection (`maxChannels`). */
  mc: number;
  /** Max bytes of event data (`maxPayload`). */
  mp: number;
  /** Max events queued towards this connection (`bufferSize`). */
  bs: number;
  /**
   * Publishes per second this connection may make (`publishRate`), sustained; past it (and the
   * burst) a publish gets `rate_limited`. Absent from brokers that do not limit it.
   */
  pr?: number;
  /** Publishes the connection may make at once above the rate (`publishBurst`). */
  pb?: number;
}

/** Broker → client, answer to `hello`. */
export interface WelcomeFrame {
  t: typeof FrameType.welcome;
  v: number;
  /** The connection's uuid. */
  u: string;
  /** Keep-alive interval in milliseconds. */
  ka: number;
  lim: ConnectionLimits;
  /** The stream's session secret: give it in a later `hello` with `u` to take the stream over. */
  s: string;
  /**
   * When the connection's credential expires, ms since the Unix epoch: refresh it before then
   * with an `auth` frame, or the broker closes the connection with 4007 (`tokenExpired`).
   */
  x?: number;
  /**
   * The broker's stream epoch: event positions (`s`) count within it. A client that comes back
   * to a different epoch (a restarted broker without shared history) cannot resume from them.
   */
  ep?: string;
  /** Present when the hello asked to resume (`rp`): what was restored and replayed. */
  rs?: ResumeOutcome;
}

/** Client → broker: a new credential for a live connection (in-band refresh, nothing lost). */
export interface AuthFrame {
  t: typeof FrameType.auth;
  r: number;
  tk: string;
}

export interface SubscribeFrame {
  t: typeof FrameType.subscribe;
  r: number;
  /** Channel name or pattern. */
  p: string;
  /** Server-side filter: only events that pass it are sent through this subscription. */
  f?: SubscriptionFilter;
  /**
   * Rewind: start with retained events, sent in an `events` frame (with this `r`) before the
   * ack and before anything live. `w` > 0: the last `w` matching events (at most 1000);
   * `w` = 0: the last event of each matching channel (an MQTT retained message).
   */
  w?: number;
  /**
   * Queue group: this subscription joins the group `g` of pattern `p` (a group is (name, pattern),
   * as NATS's subject + queue name), and each event the group's pattern matches goes to **one**
   * member whose filter it passes, not to every one (subscriptions without `g` still get every
   * event). 1-64 characters of `A-Za-z0-9_.-` (else `bad_frame`). The same pattern with and without
   * a group, or in two groups, is that many subscriptions (each counts in `mc`). At-most-once: an
   * event the chosen member does not take is not given to another one. No `w` with `g`.
   */
  g?: string;
  /**
   * Presence notices: this subscription (of a channel name) also gets a `presenceChange` frame
   * whenever a connection starts or stops subscribing to that channel.
   */
  pe?: boolean;
}

/**
 * Client → broker: who subscribes to `p` (a channel name or a pattern), answered with a
 * `presence` frame (same `r`), across the nodes of a deployment.
 */
export interface PresenceFrame {
  t: typeof FrameType.presence;
  r: number;
  p: string;
  /** Ask for the principal ids too (given only with a grant that allows it). */
  m?: boolean;
}

/** Broker → client: the answer to a `presence` frame. */
export interface PresenceAnswerFrame {
  t: typeof FrameType.presence;
  r: number;
  p: string;
  /**
   * Connections subscribed: for a channel name, those an event on it reaches (by any of their
   * subscriptions); for a pattern, those subscribed with exactly that pattern.
   */
  n: number;
  /** The authenticated principals among them (ids, never uuids), when asked and granted. */
  m?: string[];
  /** True when a node of the deployment did not answer in time: its subscribers are not counted. */
  pa?: boolean;
}

/**
 * Broker → client: a connection started (`j` true) or stopped subscribing to channel `c`, for a
 * subscription made with `pe`; `n` subscribers now; `m` the principal's id, when granted.
 */
export interface PresenceChangeFrame {
  t: typeof FrameType.presenceChange;
  c: string;
  j: boolean;
  n: number;
  m?: string;
}

/** Client → broker: a channel's retained events, answered with an `events` frame (same `r`). */
export interface HistoryFrame {
  t: typeof FrameType.history;
  r: number;
  c: string;
  /** After this position of the channel (`e`: its epoch, `o`: an offset); all retained without it. */
  e?: string;
  o?: number;
  /** At most this many (default and maximum: the broker's `historySize`). */
  n?: number;
}

/**
 * Broker → client: retained events answering request `r` (a `history` frame, or a subscribe's
 * rewind), each an `event` frame's bytes, oldest first.
 */
export interface EventsFrame {
  t: typeof FrameType.events;
  r: number;
  ev: Uint8Array[];
  /** For `history`: the channel's epoch and latest offset now. */
  e?: string;
  o?: number;
  /** For `history` from a position: false when events after it were lost. */
  ok?: boolean;
  /** More retained events follow the last one (ask again after it). */
  m?: boolean;
}

export interface UnsubscribeFrame {
  t: typeof FrameType.unsubscribe;
  r: number;
  p: string;
  /** The filter of the subscription to remove; without it, the subscription of `p` with no filter. */
  f?: SubscriptionFilter;
  /** The queue group of the subscription to remove; without it, the subscription of `p` in no group. */
  g?: string;
}

export interface PublishFrame {
  t: typeof FrameType.publish;
  /**
   * Priority: 1 for high. Towards each connection, high-priority events have their own bounded
   * lane: sent ahead of queued normal events, and dropped last. Absent or 0: normal.
   */
  pr?: number;
  /** Request id; absent for fire-and-forget (no ack; errors come without `r`). */
  r?: number;
  c: string;
  d: Uint8Array;
  l?: string[];
  k?: string;
  /**
   * The publish's message id (1-64 characters): a publish with an id the broker has seen from the
   * same publisher within its idempotency window is acknowledged with the first one's
   * `{id, offset, epoch}` and not delivered again.
   */
  i?: string;
}

/**
 * Client → broker: a request to whoever subscribes to `c` (NATS-style request/reply). The
 * broker hands it to every matching subscription as an `event` with `rp` (a queue group: to one
 * member), and answers this frame (same `r`) with the first `reply` a responder sends, or an
 * error: `no_responders` at once when no subscription anywhere matches `c`, `timeout` when no
 * reply came within `to`. A request is not sequenced, kept in history, or replayed on resume.
 */
export interface RequestFrame {
  t: typeof FrameType.request;
  r: number;
  c: string;
  d: Uint8Array;
  l?: string[];
  k?: string;
  /** How long to wait for a reply, ms (the broker's `maxRequestTimeout` bounds it). */
  to?: number;
}

/**
 * Client → broker: a responder's answer to a request event, naming its `rp`. Fire-and-forget: a
 * reply to a request already answered, timed out or whose requester left is dropped (counted).
 */
export interface ReplyFrame {
  t: typeof FrameType.reply;
  rp: string;
  d: Uint8Array;
  l?: string[];
}

/** Broker → client: the reply to the client's request `r`. */
export interface ReplyAnswerFrame {
  t: typeof FrameType.reply;
  r: number;
  /** The request's channel. */
  c: string;
  d: Uint8Array;
  /** The reply's id, and when the broker took it (ms since the Unix epoch). */
  id: string;
  ts: number;
  l?: string[];
}

export interface QuitFrame {
  t: typeof FrameType.quit;
}

export interface PingFrame {
  t: typeof FrameType.ping;
}

export interface PongFrame {
  t: typeof FrameType.pong;
}

/** Broker → client: the request `r` succeeded. Publish acks carry the event's id, offset and epoch. */
export interface AckFrame {
  t: typeof FrameType.ack;
  r: number;
  id?: string;
  o?: number;
  e?: string;
  /** For an `auth` frame: when the new credential expires (ms since the Unix epoch). */
  x?: number;
}

/** Broker → client: a request failed (`r` present) or a fire-and-forget publish failed. */
export interface ErrorFrame {
  t: typeof FrameType.error;
  r?: number;
  code: string;
  msg: string;
}

/** Broker → client: one event. Nothing in it is per-recipient, so it is encoded once per publish. */
export interface EventFrame {
  t: typeof FrameType.event;
  c: string;
  d: Uint8Array;
  id: string;
  /** Offset of the event in its channel, starting at 1 in each epoch. */
  o: number;
  /** The channel's offset epoch: when it changes, offsets restarted. */
  e: string;
  /** Publish time, milliseconds since the Unix epoch. */
  ts: number;
  /**
   * The event's position in the broker's whole stream (every channel): increasing within the
   * stream epoch of the `welcome` (`ep`). What a client presents to resume after a reconnect.
   */
  s?: number;
  l?: string[];
  k?: string;
  /**
   * Present on a request (see {@link RequestFrame}): answer it with a `reply` frame carrying this
   * token. A request event has `o` 0, `e` '' and no `s`: it is not sequenced or retained.
   */
  rp?: string;
  /** 1: published with high priority (it may arrive ahead of normal events queued before it). */
  pr?: number;
}

/** Broker → client: events were dropped because the connection's queue was full. */
export interface DroppedFrame {
  t: typeof FrameType.dropped;
  /** Total events dropped since the last notice. */
  n: number;
  /** Per channel: `[channel, count]` pairs (at most 100; the rest only count in `n`). */
  c: [string, number][];
}

export type ClientFrame =
  | HelloFrame
  | SubscribeFrame
  | UnsubscribeFrame
  | PublishFrame
  | QuitFrame
  | PingFrame
  | PongFrame
  | AuthFrame
  | HistoryFrame
  | RequestFrame
  | ReplyFrame
  | PresenceFrame;

export type BrokerFrame =
  | WelcomeFrame
  | AckFrame
  | ErrorFrame
  | EventFrame
  | DroppedFrame
  | EventsFrame
  | ReplyAnswerFrame
  | PresenceAnswerFrame
  | PresenceChangeFrame
  | PingFrame
  | PongFrame;

export type Frame = ClientFrame | BrokerFrame;
