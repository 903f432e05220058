import type { SubscribeFilter } from '@crier/protocol';

/** One event as an in-process subscriber sees it. */
export interface BrokerEvent {
  channel: string;
  /** The published bytes, as published (never decoded by the broker). */
  data: Uint8Array;
  /** The event's id: unique within this broker process, opaque. */
  id: string;
  /** Offset of the event in its channel: 1, 2, 3… within one epoch. */
  offset: number;
  /** The channel's offset epoch: when it changes, offsets restarted at 1. */
  epoch: string;
  /** Publish time, milliseconds since the Unix epoch. */
  time: number;
  labels?: string[];
  key?: string;
}

/** Options of an in-process {@link Broker.publish}. */
export interface PublishOptions {
  /** Up to 16 labels of 1-64 characters, forwarded with the event. */
  labels?: string[];
  /** A key of 1-256 characters, forwarded with the event. */
  key?: string;
  /**
   * `'high'`: the event goes in each WebSocket connection's high lane, ahead of queued normal
   * events and dropped last (see Priority lanes in the README). Default `'normal'`.
   */
  priority?: 'high' | 'normal';
}

/** What a publish returns (and what a remote publish is acknowledged with). */
export interface PublishResult {
  id: string;
  offset: number;
  epoch: string;
}

/** The handle of an in-process subscription. */
export interface BrokerSubscription {
  /** Stops delivery at once (events already queued for the handler are discarded). Idempotent. */
  unsubscribe(): void;
}

/** Counters of a broker, as served at `GET /stats`. */
export interface BrokerStats {
  /** Open WebSocket connections (those that have not said `hello` yet included). */
  connections: number;
  /** Open SSE streams (`GET /events`), not counted in `connections`. */
  sseStreams: number;
  /** Subscriptions held: (subscriber, pattern, filter) triples, in-process subscribers and SSE streams included. */
  subscriptions: number;
  /** Distinct subscribed channel names and patterns. */
  channels: number;
  /** Events published since start. */
  published: number;
  /** Events queued to a subscriber (one per subscriber per event) since start. */
  delivered: number;
  /** Events a subscriber lost because its queue was full, since start. */
  dropped: number;
  /** Connections currently in the slow-consumer state. */
  slowConsumers: number;
  /** Seconds since the broker started. */
  uptime: number;
  /** Channels whose offset counter is held (at most `channelCacheSize`). */
  channelCounters: number;
  /** The broker process's memory, in bytes. */
  memory: {
    /** Resident set size. */
    rss: number;
    /** V8 heap in use. */
    heapUsed: number;
  };
  /**
   * Publish-to-send latency: from a publish until its frames were handed to the sockets (or to
   * in-process handlers), per published event with at least one recipient.
   */
  latency: {
    /** Mean over every sample since start, in milliseconds. */
    avgMs: number;
    /** 99th percentile over the last 4096 samples, in milliseconds. */
    p99Ms: number;
  };
  /** The largest queue towards one connection right now, in events (queued or in flight). */
  maxQueueDepth: number;
  /** Streams kept for a resume, and resumes since start by outcome. */
  sessions: {
    /** Streams parked now (their connection dropped without `quit`, within `resumeWindow`). */
    parked: number;
    /** Resumes that got every missed event. */
    resumed: number;
    /** Resumes told `recovered: false`. */
    notRecovered: number;
  };
  /**
   * The busiest channels by events published (10 unless asked otherwise), most first, ties by
   * name. A channel counts from its offset epoch: the events of its current offset counter.
   */
  eventsByChannel: ChannelEvents[];
  /**
   * The engine: its kind and whether it is ready; with Redis, this node's name, the Redis URL
   * (no password), round-trip time, events received and re-filtered, gap fills, disconnects.
   */
  engine: EngineStats;
  /** Request/reply on this node: see {@link RequestStats}. */
  requests: RequestStats;
  /** Queue groups on this node: see {@link GroupsStats}. */
  groups: GroupsStats;
  /** Presence on this node: see {@link PresenceStats}. */
  presence: PresenceStats;
}

/**
 * Queue groups of this node: counts now, figures since start (groups gone included), and the
 * groups with the most members (at most 10).
 */
export interface GroupsStats {
  /** Groups (name, pattern) with a member on this node now, and their members. */
  groups: number;
  members: number;
  /** Events (and requests) handed to one member of a group. */
  delivered: number;
  /** Members passed over because they were busy (slow, or queued past a quarter of bufferSize). */
  skipped: number;
  /** Events a group's pattern matched that no member here could take (none passed its filter, or none could reply). */
  missed: number;
  top: GroupStats[];
}

/** One queue group (name, pattern) on this node, as {@link GroupsStats.top} lists it. */
export interface GroupStats {
  group: string;
  pattern: string;
  members: number;
  delivered: number;
  skipped: number;
  missed: number;
}

/** Request/reply figures of one node, since start (`pending`: now). */
export interface RequestStats {
  /** Requests of this node's requesters waiting for a reply now. */
  pending: number;
  /** Requests this node's requesters sent (WebSocket and HTTP). */
  sent: number;
  /** Request events queued to this node's subscribers (one per subscriber per request, from any node). */
  delivered: number;
  /** Requests of this node answered by a reply. */
  answered: number;
  /** Requests of this node that no subscription anywhere matched. */
  noResponders: number;
  /** Requests of this node that got no reply in time. */
  timedOut: number;
  /** Replies dropped: a second reply, a late one, one whose requester left, or one with a forged or unknown token. */
  repliesDropped: number;
}

/**
 * Presence on this node: join/leave notices and questions since start, and the most subscribed
 * names and patterns (as many as `/stats?channels=` asks, 10 by default; counts of other nodes and
 * of one name or pattern: `GET /presence/<channel-or-pattern>`).
 */
export interface PresenceStats {
  /** Channels with at least one subscription asking for notices (`pe`). */
  watched: number;
  /** Notices queued (one per watcher), and changes folded into a summary notice (more than 64 in one turn). */
  notices: number;
  folded: number;
  /** Presence questions this node counted (its clients', and other nodes' over Redis). */
  queries: number;
  /** The names and patterns with the most subscriptions here, most first. */
  top: ChannelCount[];
}

/** A channel and the events published to it, as listed in {@link BrokerStats.eventsByChannel}. */
export interface ChannelEvents {
  channel: string;
  /** Events published in the channel's current epoch (its latest offset). */
  events: number;
}

/** A subscribed name or pattern, as listed at `GET /stats/top`. */
export interface ChannelCount {
  /** The channel name or pattern, as subscribed. */
  name: string;
  /** Whether `name` is a wildcard pattern (`*` or `>`). */
  pattern: boolean;
  /** Subscribers holding it (connections and in-process subscribers). */
  subscribers: number;
}

/** A connection losing events right now, as listed at `GET /stats/top`. */
export interface SlowConsumer {
  uuid: string;
  /** Events queued towards it or written but not yet taken by the kernel. */
  events: number;
  /** The same in bytes. */
  bytes: number;
  /** Events it lost in the current slow spell. */
  dropped: number;
  /** When the spell started, milliseconds since the Unix epoch. */
  since: number;
}

/** The answer of `GET /stats/top?limit=N`: bounded lists for the dashboard. */
export interface BrokerTop {
  channels: {
    /** Distinct subscribed names and patterns (the `channels` of the stats). */
    total: number;
    /** At most `limit`, most subscribers first, ties by name. */
    top: ChannelCount[];
  };
  slowConsumers: {
    /** Connections losing events right now (the `slowConsumers` of the stats). */
    total: number;
    /** At most `limit`, most events dropped first. */
    top: SlowConsumer[];
  };
}

/** A running broker. */
export interface Broker {
  /** The WebSocket URL clients connect to, e.g. `ws://127.0.0.1:10102/`. */
  readonly url: string;
  /** The TCP port the broker (or the server it is attached to) listens on. */
  readonly port: number;
  /**
   * Publishes an event from this process, no network hop to the broker. Resolves with the
   * event's `{id, offset, epoch}` once the engine has sequenced it: with the memory engine the
   * event is already routed to its subscribers when `publish` returns, and the promise is
   * resolved; an engine that sequences over the network (Redis) resolves after the round trip.
   * Publishes are sequenced in call order, awaited or not. Rejects with a `CrierError`
   * (`bad_channel`, `payload_too_large`, `bad_frame` for bad labels or key, `shutting_down`).
   */
  publish(channel: string, data: Uint8Array, options?: PublishOptions): Promise<PublishResult>;
  /**
   * Subscribes a handler in this process, with a remote client's semantics: each matching event
   * once, asynchronously (in the broker's next flush), bounded by `bufferSize` per flush. Throws
   * `bad_pattern`. With `filter`, only the events that pass it (labels, keys); a bad one throws
   * `bad_filter`.
   */
  subscribe(pattern: string, handler: (event: BrokerEvent) => void, filter?: SubscribeFilter): BrokerSubscription;
  /** The current counters (the same as `GET /stats`). */
  stats(): BrokerStats;
  /**
   * Re-reads the `tlsCert` and `tlsKey` files and serves the new pair to new connections; open
   * ones keep theirs (what `crier-broker` does on SIGHUP). Rejects naming the file at fault, and
   * then the previous pair stays in service; rejects too on a broker without `tlsCert`/`tlsKey`.
   */
  reloadTls(): Promise<void>;
  /**
   * Drains the broker (what `crier-broker` does on SIGTERM), as a deploy or restart wants: at once
   * `/readyz` answers 503 `{"status":"draining"}` and new sockets, SSE streams and HTTP publishes
   * get 503 `shutting_down` with `Retry-After`; then the WebSocket connections are closed with
   * 4009 `draining: reconnect after <ms> ms`, spread evenly over `drainWindow`, each told its own
   * delay (from 0 to half the window) so that they do not all come back at once; SSE streams end
   * last. Resolves once every socket has closed, or at the latest when the window and the close
   * deadline (3 s) have passed; the broker still listens: call {@link close} to finish. Idempotent;
   * a `close()` meanwhile closes the rest at once (1001) and resolves the drain.
   */
  drain(): Promise<void>;
  /**
   * Closes every connection with 1001 at once, stops listening (when the broker owns the server).
   * After {@link drain}, what is left of the connections. Idempotent.
   */
  close(): Promise<void>;
}

/** An engine's state and figures (`/stats` shows them as they are; `/metrics` the counters). */
export interface EngineStats {
  kind: string;
  ready: boolean;
  /** This node's name, where nodes share the engine. */
  node?: string;
  /** Where the shared store is (credentials left out). */
  redis?: string;
  /** Events received from the shared store, and those dropped by re-filtering (wider than a pattern). */
  received?: number;
  refiltered?: number;
  /** Gap fills after reconnects, the events they handed over, and the events they found lost. */
  fills?: number;
  filled?: number;
  lostInFills?: number;
  /** The last round trip to the shared store, ms. */
  rttMs?: number;
  disconnects?: number;
  epochChanges?: number;
  pending?: number;
  interest?: number;
  lastError?: string;
  /**
   * Request/reply traffic between nodes: requests this node sent through Redis, request copies it
   * took from Redis (once each), replies it forwarded to the node of their token.
   */
  requests?: { sent: number; received: number; forwarded: number };
  /** Queue groups over the nodes: groups and members in the deployment's registry as this node knows it, node choices it wrote into messages. */
  groups?: { groups: number; members: number; slow: number; chosen: number };
  /**
   * Presence traffic between nodes: questions this node asked, answered (others' and its own), and
   * answered partial; join/leave news sent to watching nodes and received from others (one message
   * per node per turn at most), syncs asked, nodes found dead with watches or holders known here,
   * and the channels other nodes watch now (this node sends them its changes of those); messages
   * from other nodes that did not parse or could not be handled (ignored, the warning rate-limited);
   * syncs waiting for answers now (64 at most).
   */
  presence?: {
    asked: number; answered: number; partial: number; malformed: number;
    newsSent: number; newsReceived: number; syncs: number; nodesLost: number; watchedElsewhere: number; syncsWaiting: number;
  };
}
