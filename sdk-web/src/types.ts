import type { CrierError, SubscribeFilter } from '@crier/protocol';
import type { WebSocketConstructor } from './websocket.js';

/** Clock and timers, injectable so tests of keep-alive, backoff and timeouts are exact. */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /**
   * Milliseconds since the Unix epoch (`Date.now` by default): compared with the broker's
   * credential expiry, and used for intervals.
   */
  now(): number;
}

/** Exponential backoff between reconnect attempts, with full jitter (see {@link backoffDelay}). */
export interface ReconnectOptions {
  /** Upper bound of the first delay, in ms. @default 250 */
  initialDelay?: number;
  /** Upper bound of any delay, in ms. @default 30_000 */
  maxDelay?: number;
  /** Growth of the upper bound per failed attempt. @default 2 */
  factor?: number;
}

/**
 * What the client does on its own as a browser page goes through its lifecycle. Each field is
 * optional; `lifecycle: false` turns all of it off. Outside a browser (no `addEventListener` on the
 * global object, as in Node) nothing is listened to.
 */
export interface LifecycleOptions {
  /**
   * On `pagehide` when the page is really going away (`persisted` false): send `quit`, so the
   * broker frees the stream at once instead of waiting for the keep-alive, and close for good.
   * @default true
   */
  quitOnUnload?: boolean;
  /**
   * On `pagehide` when the page enters the back/forward cache (`persisted` true): close the socket
   * (an open WebSocket keeps a page out of the cache) without quitting the stream or closing the
   * client, which waits in `'reconnecting'` without retrying; on `pageshow` with `persisted`:
   * reconnect at once and subscribe every pattern again (handlers and iterators keep working).
   * @default true
   */
  reconnectOnPageShow?: boolean;
  /**
   * On `visibilitychange` to visible and on `online`: check the connection now. When connected,
   * send a `ping`; if nothing arrives within `min(keepAliveInterval, 3 s)` the socket is taken
   * for dead and the client reconnects at once. When waiting for a reconnect attempt, try now.
   * @default true
   */
  probeOnWake?: boolean;
}

/**
 * The part of `window` the page lifecycle listens to. A browser's `window` satisfies it; tests
 * pass an `EventTarget` (with a `document` when they need a visibility state).
 */
export interface LifecycleTarget {
  addEventListener(type: string, listener: LifecycleListener): void;
  removeEventListener(type: string, listener: LifecycleListener): void;
  /** Read on `visibilitychange`: only a page that is not `'hidden'` probes its connection. */
  readonly document?: { readonly visibilityState?: string } | undefined;
}

/** What the client reads from a lifecycle event: `persisted` on `pagehide` and `pageshow`. */
export type LifecycleListener = (event: { readonly type: string; readonly persisted?: boolean }) => void;

/** Options of {@link connect}. */
export interface ClientOptions {
  /**
   * The WebSocket class to use. In Node 20 there is none built in: use `@crier/sdk-node`, which
   * passes the `ws` package's.
   * @default globalThis.WebSocket
   */
  WebSocket?: WebSocketConstructor;
  /**
   * The stream uuid to ask for (to name a worker, or to take a stream over). After the first
   * `welcome` the client always reconnects with the uuid the broker gave it, and its secret.
   * @default undefined (the broker assigns one)
   */
  uuid?: string;
  /**
   * The session secret of `uuid` (`client.secret` of the client that held it, kept by a page in
   * `sessionStorage` across a reload, say): the broker lets a connection take over a live
   * stream only with it, or when it is the same authenticated principal.
   * @default undefined
   */
  secret?: string;
  /**
   * Resume a stream another client held: its {@link CrierClient.session} (saved by a page on
   * `pagehide`, say, and read back after the reload). The first `hello` then asks the broker to
   * resume it: the broker restores the stream's subscriptions and replays what they missed
   * right after the `welcome` (a `'resumed'` event says how it went). It takes the place of
   * `uuid` and `secret`. The page that saved it must not have quit the stream: give it
   * `lifecycle: { quitOnUnload: false }`, so that the broker keeps the stream for its resume window.
   * @default undefined
   */
  resume?: ClientSession;
  /**
   * The credential sent in every `hello`: a JWT or a static token. Alone, it cannot be renewed:
   * when it expires (close code 4007) the client emits an `'error'` (`unauthorized`) and closes
   * for good. With {@link ClientOptions.getToken} it is the first credential used.
   * @default undefined (no credential)
   */
  token?: string;
  /**
   * Fetches a credential (sync or async). Asked before a hello when no credential is held (the
   * first connect, unless `token` is given), after a close with 4007 (expired), and when the one
   * held is past its expiry. With `withTokenRefresh()` of `@crier/sdk-web/refresh` (built into
   * the full client and sdk-node), also a little before the expiry the broker gives (a tenth of
   * its lifetime, at most 30 s), to refresh it in band with an `auth` frame: no reconnect, nothing
   * lost. A throw or rejection is an `'error'` event (`unauthorized`, "getToken failed: …"):
   * before a hello the client retries with backoff; a refresh is tried again up to 3 times before
   * the credential expires.
   * @default undefined
   */
  getToken?: () => string | Promise<string>;
  /**
   * Reconnect after a connection is lost (unless the close code says it would only repeat
   * itself: see `shouldReconnect`), or `false` to close for good on the first loss.
   * @default { initialDelay: 250, maxDelay: 30_000, factor: 2 }
   */
  reconnect?: false | ReconnectOptions;
  /**
   * Milliseconds to wait for the answer to a request (acked publish, subscribe, unsubscribe),
   * counted from when it is sent; past it the request rejects with `timeout`. Also bounds the
   * handshake: a socket without a `welcome` this long after it was created is abandoned.
   * @default 10_000
   */
  requestTimeout?: number;
  /**
   * Publishing while not connected: `'queue'` keeps the publish (bounded by
   * {@link ClientOptions.offlineQueueSize}) and sends it after the next `welcome`; `'fail'` rejects
   * it at once with `disconnected`.
   * @default 'queue'
   */
  offline?: 'queue' | 'fail';
  /** Max publishes queued while offline; past it a publish rejects with `queue_full`. @default 1000 */
  offlineQueueSize?: number;
  /**
   * Max events buffered by one async iterator of a subscription that is not being read fast
   * enough. Past it the oldest buffered event is discarded and reported as a `'dropped'` notice
   * with `source: 'iterator'`.
   * @default 1000
   */
  iteratorBufferSize?: number;
  /** Timers and clock. @default the global `setTimeout`, `clearTimeout` and `Date.now` */
  timers?: Timers;
  /** Random numbers in [0, 1) for the backoff jitter. @default Math.random */
  random?: () => number;
  /**
   * Page lifecycle handling (quit on unload, back/forward cache, probe on wake), or `false` for
   * none. See {@link LifecycleOptions}.
   * @default { quitOnUnload: true, reconnectOnPageShow: true, probeOnWake: true }
   */
  lifecycle?: LifecycleOptions | false;
  /**
   * Where page lifecycle events (`pagehide`, `pageshow`, `visibilitychange`, `online`) are
   * listened to; its `document.visibilityState` is read on `visibilitychange`. Injectable for tests.
   * @default globalThis, when it has `addEventListener` (a browser's `window`); else none
   */
  lifecycleTarget?: LifecycleTarget;
}

/**
 * `connecting`: before the first `welcome`. `connected`: a `welcome` arrived on the current
 * socket. `reconnecting`: the connection was lost and the client is waiting or trying again.
 * `closed`: for good (after `quit()`, a close code that forbids reconnecting, or a loss with
 * `reconnect: false`).
 */
export type ClientState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** Why the state changed: the close code and reason of the socket, when one closed. */
export interface StateInfo {
  code?: number;
  reason?: string;
}

/** The broker's limits for this connection, from its `welcome`. */
export interface ClientLimits {
  /** Max distinct subscription patterns. */
  maxChannels: number;
  /** Max bytes of event data. */
  maxPayload: number;
  /** Events the broker queues towards this connection before it drops them. */
  bufferSize: number;
  /** Milliseconds between the broker's pings. */
  keepAliveInterval: number;
}

/** One event, as delivered to handlers and iterators. */
export interface CrierEvent {
  readonly channel: string;
  readonly data: Uint8Array;
  /** The event's id, unique on the broker. */
  readonly id: string;
  /** Position in its channel, from 1 in each epoch. */
  readonly offset: number;
  /** The channel's offset epoch: when it changes, offsets restarted. */
  readonly epoch: string;
  /** Publish time, milliseconds since the Unix epoch. */
  readonly time: number;
  readonly labels?: string[] | undefined;
  readonly key?: string | undefined;
  /**
   * `'high'` on an event published with high priority: it may arrive ahead of normal events
   * published before it (see `publish()`'s `priority`).
   */
  readonly priority?: 'high' | undefined;
  /**
   * Present on a request (`request()` of `@crier/sdk-web/request`): the token its answer names.
   * A handler of `respond()`, or any subscription handler that returns data, answers it.
   */
  readonly replyTo?: string | undefined;
}

/**
 * Where a client's stream stands (`client.session`): its uuid and secret, and the last position
 * it received (`epoch`, `seq`). Give it back as {@link ClientOptions.resume} to continue the
 * stream in another client (a reloaded page).
 */
export interface ClientSession {
  uuid: string;
  secret: string;
  /** The broker's stream epoch, from the latest `welcome`. */
  epoch: string;
  /** The highest stream position of an event received (0 before the first). */
  seq: number;
}

/**
 * How a resume went (the `'resumed'` event, after each `welcome` that answers a resume): the
 * broker restored the stream's subscriptions and replayed `replayed` events right after the
 * welcome, before anything live. `recovered` is false when some of what was missed could not
 * be replayed: `reason` says why (`window_passed`, `broker_restarted`, `history_evicted`,
 * `replay_limit`, `forbidden`), `patterns` which subscriptions lost events.
 */
export interface ResumedInfo {
  recovered: boolean;
  reason?: string;
  replayed: number;
  patterns?: string[];
}

/** Options of a subscription. */
export interface SubscribeOptions {
  /**
   * Rewind: start with retained events, before anything live. A number N (1 to 1000): the last N
   * events the subscription matches; `'last'`: the last event of each matching channel (a
   * retained value, as MQTT has). They go to this subscription's handler and iterator alone, not
   * to others that match them, nor to `onEvent`. Nothing is rewound again after a reconnect:
   * the stream resumes instead. Needs `withRewind()` of `@crier/sdk-web/rewind` (built into the
   * full client and sdk-node): without it the subscription fails with `bad_frame`.
   * @default none (live events only)
   */
  since?: number | 'last';
  /**
   * A queue group to join: each event the group's pattern matches goes to one member of the
   * group (on any node of a deployment), picked round-robin among the members that keep up, and
   * to every subscription without a group as usual. A group is its name and pattern: members
   * subscribe with both the same. 1-64 characters of `A-Za-z0-9_.-`. Delivery stays at most
   * once (not a work queue: nothing is acknowledged or sent again). Not with `since`.
   * @default none
   */
  group?: string;
}

/** Options of {@link CrierClientFull.history}. */
export interface HistoryOptions {
  /**
   * Only the events after this position of the channel (`epoch` and `offset`, as events carry
   * them); all those retained without it.
   */
  since?: { epoch: string; offset: number };
  /** At most this many, oldest first. @default the broker's `historySize` (its maximum) */
  limit?: number;
}

/** A page of a channel's retained events. */
export interface HistoryPage {
  /** Oldest first, each as subscribers get it. */
  events: CrierEvent[];
  /** The channel's epoch and latest offset now. */
  epoch: string;
  offset: number;
  /** False when events after `since` were lost (trimmed from history, or another epoch). */
  complete: boolean;
  /** More retained events follow the last one: ask again with `since` set to it. */
  more: boolean;
}

/** The broker's answer to an acknowledged publish. */
export interface PublishAck {
  id: string;
  offset: number;
  epoch: string;
}

/** Options of an acknowledged publish. */
export interface PublishOptions {
  /** Labels carried by the event (for subscribers' filters). @default none */
  labels?: string[];
  /** A key carried by the event. @default none */
  key?: string;
  /**
   * `'high'`: towards each subscriber the event has its own bounded lane, sent ahead of normal
   * events queued there and dropped last (an alert reaches a slow subscriber losing routine
   * updates). @default 'normal'
   */
  priority?: 'high' | 'normal';
  /** Wait for the broker's ack. @default true */
  ack?: true;
}

/** Options of a fire-and-forget publish: no ack; a failure arrives as an `'error'` event. */
export interface FireAndForgetOptions {
  /** Labels carried by the event. @default none */
  labels?: string[];
  /** A key carried by the event. @default none */
  key?: string;
  /** `'high'`: see {@link PublishOptions.priority}. @default 'normal' */
  priority?: 'high' | 'normal';
  /** No ack: resolve once the frame is handed to the socket (or queued offline). */
  ack: false;
}

/** Events lost without being delivered. */
export interface DroppedNotice {
  /** Events lost since the previous notice. */
  total: number;
  /** Per channel (the broker lists at most 100 channels; the rest only count in `total`). */
  channels: Map<string, number>;
  /**
   * `'broker'`: the broker's queue for this connection was full (a slow consumer).
   * `'iterator'`: a subscription's async iterator buffer was full.
   */
  source: 'broker' | 'iterator';
}

// A server-side filter on a subscription: the protocol's, shared with the broker.
export type { SubscribeFilter };

export type EventHandler = (event: CrierEvent) => void;
export type StateListener = (state: ClientState, info: StateInfo) => void;
export type DroppedListener = (notice: DroppedNotice) => void;
export type ErrorListener = (error: CrierError) => void;
export type ResumedListener = (info: ResumedInfo) => void;

/**
 * One handle on a pattern. Read its events with its handler; or with `for await` (on a client of
 * `@crier/sdk-web/full`, whose subscriptions are {@link IterableSubscription}s, or through
 * `events()` of `@crier/sdk-web/stream`), where `break` unsubscribes it.
 */
export interface Subscription {
  readonly pattern: string;
  /**
   * Resolves when the broker acknowledged the pattern (at once if it already had). Rejects with a
   * `CrierError` (`bad_pattern`, `max_channels`, `timeout`, ...), and the subscription is then
   * removed; or with `closed` when the subscription is unsubscribed, or the client closed, before
   * the ack. It never causes an unhandled rejection if you do not look at it.
   */
  readonly ready: Promise<void>;
  /** Removes this handle; the broker-side subscription goes when the last handle goes. */
  unsubscribe(): Promise<void>;
}

/** A crier client: one connection stream, kept alive and reconnected in the background. */
export interface CrierClient {
  readonly state: ClientState;
  /** The stream's uuid, from the latest `welcome`. */
  readonly uuid: string | undefined;
  /** The stream's session secret, from the latest `welcome`: keep it to take the stream over. */
  readonly secret: string | undefined;
  /** The broker's limits, from the latest `welcome`. */
  readonly limits: ClientLimits | undefined;
  /**
   * The stream's uuid, secret and last position received, to resume it in another client
   * ({@link ClientOptions.resume}); `undefined` before the first `welcome` (and with a broker
   * that does not resume).
   */
  readonly session: ClientSession | undefined;
  /** Resolves when connected (now or at the next `welcome`); rejects with `closed` if closed. */
  ready(): Promise<void>;
  /**
   * Publishes and resolves with the broker's ack. The publish carries a message id: if the
   * connection drops before the ack, it is sent again after the next `welcome` (before newer
   * publishes) with the same id, and the broker, which remembers ids for its idempotency window,
   * delivers it once.
   */
  publish(channel: string, data: Uint8Array, options?: PublishOptions): Promise<PublishAck>;
  /** Publishes without an ack: resolves once handed to the socket (or queued offline). */
  publish(channel: string, data: Uint8Array, options: FireAndForgetOptions): Promise<void>;
  /**
   * Subscribes to a channel or pattern; `handler` gets every matching event. With
   * `options.since`, it starts with retained events (see {@link SubscribeOptions}).
   */
  subscribe(pattern: string, handler?: EventHandler, options?: SubscribeOptions): Subscription;
  /**
   * Subscribes with a server-side filter: the broker sends only matching events that pass it, and
   * `handler` gets only those. (pattern, filter) is one subscription, counted once in `maxChannels`;
   * it is renewed with its filter after every reconnect. Rejects `ready` with `bad_filter` for a
   * filter out of bounds.
   */
  subscribe(pattern: string, filter: SubscribeFilter, handler?: EventHandler, options?: SubscribeOptions): Subscription;
  /** Drops every local handle for the pattern, whatever their filters, and the broker-side subscriptions. */
  unsubscribe(pattern: string): Promise<void>;
  /** Every event on the stream, once each. Returns the function that removes the handler. */
  onEvent(handler: EventHandler): () => void;
  on(type: 'state', listener: StateListener): () => void;
  on(type: 'dropped', listener: DroppedListener): () => void;
  on(type: 'error', listener: ErrorListener): () => void;
  on(type: 'resumed', listener: ResumedListener): () => void;
  /**
   * Ends the stream: sends `quit`, closes the socket, never reconnects, rejects pending requests
   * and queued publishes with `closed`, ends iterators. Resolves when the socket has closed.
   */
  quit(): Promise<void>;
}

/** Options of a request (`request()` of `@crier/sdk-web/request`, `client.request()` of a full client). */
export interface RequestOptions {
  /** Ms to wait for the reply; the broker's `maxRequestTimeout` (30 s by default) bounds it. @default 5000 */
  timeout?: number;
  /** Labels carried by the request (for responders' filters). @default none */
  labels?: string[];
  /** A key carried by the request. @default none */
  key?: string;
}

/** A reply: its data, or its data with labels. */
export type Reply = Uint8Array | { data: Uint8Array; labels?: string[] };

/** Answers a request: the reply (or a promise of it), or `undefined` for none. */
export type Responder = (request: CrierEvent) => Reply | undefined | Promise<Reply | undefined>;

/** A subscription of a full client: also read with `for await`; `break` unsubscribes it. */
export interface IterableSubscription extends Subscription, AsyncIterable<CrierEvent> {}

/**
 * The client of `@crier/sdk-web/full` (and of `@crier/sdk-node`): the core client with every
 * optional entry point built in as a method.
 */
export interface CrierClientFull extends CrierClient {
  subscribe(pattern: string, handler?: EventHandler, options?: SubscribeOptions): IterableSubscription;
  subscribe(pattern: string, filter: SubscribeFilter, handler?: EventHandler, options?: SubscribeOptions): IterableSubscription;
  /**
   * A channel's retained events (the broker keeps a bounded history of each channel), oldest
   * first: all of them, or those after `options.since`, at most `options.limit`. Waits until
   * connected. Rejects with a `CrierError`: `bad_channel` (a pattern or a malformed name, before
   * anything is sent), `forbidden`, `timeout`, `disconnected`, `closed`.
   */
  history(channel: string, options?: HistoryOptions): Promise<HistoryPage>;
  /**
   * Sends a request to whoever subscribes to `channel`; resolves with the first reply. See
   * `request()` of `@crier/sdk-web/request`.
   */
  request(channel: string, data: Uint8Array, options?: RequestOptions): Promise<CrierEvent>;
  /** Answers the requests on `pattern` with what `handler` returns. See `respond()` of `@crier/sdk-web/request`. */
  respond(pattern: string, handler: Responder, options?: SubscribeOptions): Subscription;
  /**
   * Who subscribes to a channel or a pattern (their principal ids with `members`, when granted).
   * See `presence()` of `@crier/sdk-web/presence`.
   */
  presence(channelOrPattern: string, options?: PresenceOptions): Promise<PresenceInfo>;
  /** Join/leave notices of `channel`. See `watchPresence()` of `@crier/sdk-web/presence`. */
  watchPresence(channel: string, listener: PresenceListener): Subscription;
}

// Presence (`@crier/sdk-web/presence`): here, so that the client types need not import the entry point.

/** Options of `presence()`. */
export interface PresenceOptions {
  /**
   * Ask for the principal ids of the subscribers too: given only when your credential's presence
   * grant covers the channel or pattern (else `members` is absent), at most 1000 (sorted), and
   * never an anonymous subscriber's.
   */
  members?: boolean;
}

export interface PresenceInfo {
  /**
   * Connections subscribed, over every node: for a channel name, those an event on it reaches (by
   * any of their subscriptions); for a pattern, those subscribed with exactly that pattern.
   */
  subscribers: number;
  /** The authenticated principals among them, when asked and granted. */
  members?: string[];
  /** Present when a node of the deployment did not answer in time: its subscribers are not counted. */
  partial?: true;
}

/** A join or leave on a watched channel. */
export interface PresenceChange {
  channel: string;
  /** true: a connection started subscribing to the channel; false: it stopped. */
  joined: boolean;
  /** Subscribers of the channel (on the broker node that told you) after the change. */
  subscribers: number;
  /** Its principal's id, when your presence grant covers the channel and it is authenticated. */
  member?: string;
}

export type PresenceListener = (change: PresenceChange) => void;
