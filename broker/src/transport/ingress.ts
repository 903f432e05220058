import { CloseCode, limitsForPayload, type DecodeLimits } from '@crier/protocol';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Logger } from 'pino';
import { AddressAdmission } from '../admission/address-admission.js';
import { trustedProxySet } from '../admission/client-address.js';
import { AddressBuckets, TokenBucket } from '../admission/token-bucket.js';
import type { Authenticator } from '../auth/authenticator.js';
import type { Clock, TimerHandle } from '../clock.js';
import type { ResolvedOptions } from '../config/options.js';
import type { BrokerCore } from '../core/core.js';
import type { Flushable, SlowSubscriber } from '../core/subscriber.js';
import type { ParkedSession, SessionClaim } from '../engine/engine.js';
import type { BrokerCounts } from '../observe/metrics.js';
import type { LatencyHistogram } from '../observe/latency.js';
import { Refusals } from '../observe/refusals.js';
import type { BrokerStats, BrokerTop, ChannelEvents, EngineStats } from '../types.js';
import { when, type Maybe } from '../core/replay.js';
import { secretMatches } from '../auth/secret.js';
import { Connection, principalKey, type ConnectionHost } from './connection.js';
import { ReadTurns, type MessageHandler } from './read-turns.js';
import { RequestTable, type Requester } from './requests.js';
import { withGroups } from '../core/groups.js';

/** Queue groups listed in `/stats` (those with the most members on this node). */
const TOP_GROUPS = 10;
/** `stats()` lists this many channels in `eventsByChannel` unless told otherwise. */
export const DEFAULT_STATS_CHANNELS = 10;
/** How long a changed session waits to be recorded with the others changed meanwhile, in ms. */
const SESSION_SAVE_DELAY_MS = 20;
/** A stream handed to another node is parked at least this long, for its claimant to take (even with resume off). */
const MIN_HANDOVER_MS = 10_000;

/**
 * Where clients come in, whatever the door (WebSocket, SSE, HTTP): the credentials, the caps and
 * refusals, and the WebSocket connections by uuid, with their lifecycle (upgraded, welcomed,
 * replaced, closed, freed). Everything a transport shares with another sits here; the publish
 * pipeline is the core's, reached through {@link core}.
 */
export class Ingress implements ConnectionHost {
  readonly options: ResolvedOptions;
  readonly log: Logger;
  readonly clock: Clock;
  /**
   * Decode limits, one object for the broker's life. Binary fields may be as long as a whole
   * frame, so that data past `maxPayload` inside an acceptable frame decodes and gets a
   * `payload_too_large` answer carrying its request id, instead of a `frame_too_large` without one.
   */
  readonly limits: DecodeLimits;
  /** Upgrades, streams and publishes refused before they started: counted and logged. */
  readonly refusals: Refusals;
  /** `trustedProxies`, normalized for clientAddress. */
  readonly trustedProxies: ReadonlySet<string>;
  /** Sockets, pending sockets, streams and handshakes per client address. */
  readonly admission: AddressAdmission;
  /** HTTP publishes per client address: the same rate and burst as a connection's. */
  readonly httpPublishBuckets: AddressBuckets;
  /** Requests (request/reply) waiting for replies, and their delivery to this node's subscribers. */
  readonly requests: RequestTable;
  /** HTTP requests waiting per client address: what `maxPendingRequests` bounds over HTTP. */
  readonly httpRequesters = new Map<string, Requester>();
  /** Connections not yet freed (before and after hello). */
  readonly connections = new Set<Connection>();
  /** Connections whose socket has not closed yet (freed ones included): what `close()` waits for. */
  readonly sockets = new Set<Connection>();
  /** Connections after hello, by uuid. */
  readonly byUuid = new Map<string, Connection>();
  /** Open SSE streams: kept by the SSE hub, counted against `maxConnections` with the sockets. */
  sseStreams = 0;
  /** Keep-alive tick, advanced by the keep-alive timer; connections record it on every frame. */
  tick = 0;
  /** Each connection's read budget per event-loop turn (fair reading). */
  readonly reads: ReadTurns;
  closing = false;
  /**
   * Set by `drain()`: newcomers (upgrades, SSE streams, HTTP publishes) are refused with 503
   * `shutting_down` and `/readyz` answers 503, while the connections already here are closed over
   * `drainWindow` with 4009. `closing` follows, in `close()`.
   */
  draining = false;
  /**
   * Bytes queued towards every WebSocket connection together (queued, or written and not yet
   * taken by the kernel): kept by the connections, bounded by `maxTotalBufferBytes`.
   */
  bufferedBytes = 0;
  /** Bytes of WebSocket messages received from clients (payloads), since start. */
  receivedBytes = 0;
  /** Bytes written to client sockets by the flush (frames with their WebSocket headers), since start. */
  sentBytes = 0;
  /** High-priority events queued towards connections, and dropped (their lane was full), since start. */
  highQueued = 0;
  highDropped = 0;
  /** Resumes that recovered every missed event, and those that did not, since start. */
  resumesRecovered = 0;
  resumesNotRecovered = 0;
  private closeWaiters: (() => void)[] = [];
  /** Connections whose session changed since it was last recorded (see {@link sessionChanged}). */
  private readonly unsaved = new Set<Connection>();
  private saveTimer: TimerHandle | undefined;
  /** The engine's figures as last answered (see {@link refreshFigures}). */
  private figures: { channels: number; parked: number; busiest: ChannelEvents[] } = { channels: 0, parked: 0, busiest: [] };

  constructor(
    readonly core: BrokerCore,
    /** Turns credentials into principals, for every door. */
    readonly auth: Authenticator,
    /** Handles a client's message: the frame handlers, above this file (they call into it). */
    handleMessage: MessageHandler,
  ) {
    const options = (this.options = core.options);
    this.log = core.log;
    this.clock = core.clock;
    this.reads = new ReadTurns(handleMessage, core.clock);
    this.limits = limitsForPayload(options.maxPayload);
    this.trustedProxies = trustedProxySet(options.trustedProxies);
    this.refusals = new Refusals(core.log, options.maxConnections, this.trustedProxies);
    this.httpPublishBuckets = new AddressBuckets(options.publishRate, options.publishBurst);
    this.admission = new AddressAdmission(options);
    this.requests = new RequestTable(core);
    core.engine.onStreamClaim((uuid, claim) => this.releaseStream(uuid, claim));
  }

  /** The clock of every rate limit, in ms (monotonic). */
  now(): number {
    return this.clock.now();
  }

  get bufferSize(): number {
    return this.options.bufferSize;
  }

  get maxBufferBytes(): number {
    return this.options.maxBufferBytes;
  }

  get maxTotalBufferBytes(): number {
    return this.options.maxTotalBufferBytes;
  }

  /** WebSocket sockets and SSE streams open now: what `maxConnections` bounds. */
  get openCount(): number {
    return this.sockets.size + this.sseStreams;
  }

  // ---- connections ------------------------------------------------------------------------

  /** Registers a freshly upgraded socket (before its hello). */
  addConnection(ws: WebSocket, socket: Duplex, remoteAddress: string): Connection {
    const { publishRate, publishBurst } = this.options;
    const conn = new Connection(ws, socket, this, remoteAddress, new TokenBucket(publishRate, publishBurst, this.now()));
    this.connections.add(conn);
    this.sockets.add(conn);
    this.admission.opened(remoteAddress, true);
    return conn;
  }

  /** Makes `conn` the stream of `uuid`, replacing whichever connection held it. */
  register(conn: Connection, uuid: string): void {
    const previous = this.byUuid.get(uuid);
    if (previous) {
      this.log.debug({ uuid }, 'uuid taken over by a new connection');
      previous.parkable = false; // the stream lives on in `conn`
      this.closeConnection(previous, CloseCode.replaced, 'replaced: another connection took over this uuid');
    }
    conn.uuid = uuid;
    if (conn.state === 'pending') this.admission.settled(conn.remoteAddress);
    conn.state = 'open';
    conn.seenTick = this.tick;
    this.byUuid.set(uuid, conn);
    this.core.engine.streamOpened(uuid);
  }

  /**
   * Another node claims the live stream `uuid` (its client reconnected there): let go of it as a
   * takeover on one node does, if the claim proves it (its session secret, or the same
   * authenticated principal): the connection closed `replaced`, its session parked for the claimant.
   */
  releaseStream(uuid: string, claim: SessionClaim): Maybe<'released' | 'refused' | 'absent'> {
    const conn = this.byUuid.get(uuid);
    if (conn === undefined || conn.state !== 'open') return 'absent';
    const samePrincipal = claim.principal !== '' && claim.principal === principalKey(conn.principal);
    if (!samePrincipal && !secretMatches(claim.secret, conn.secret) && !secretMatches(claim.secret, conn.formerSecret)) return 'refused';
    const session = withGroups(conn.session(), conn.subscriptions);
    conn.parkable = false;
    this.log.debug({ uuid }, 'uuid taken over by a connection on another node');
    this.closeConnection(conn, CloseCode.replaced, 'replaced: another connection took over this uuid');
    return when(this.core.engine.parkSession(uuid, session, Math.max(this.options.resumeWindow, MIN_HANDOVER_MS)), () => 'released' as const);
  }

  /** Frees `conn` at once (subscriptions, uuid), then closes its socket. */
  closeConnection(conn: Connection, code: number, reason: string): void {
    if (conn.state === 'freed') return;
    // Frames queued before the decision (an error answer, say) go out ahead of the close frame.
    conn.flush(true);
    this.free(conn);
    conn.close(code, reason);
  }

  /** Drops every subscription and the uuid of `conn`. Idempotent. */
  free(conn: Connection): void {
    if (conn.state === 'freed') return;
    if (conn.state === 'pending') this.admission.settled(conn.remoteAddress);
    if (conn.state === 'open') {
      if (conn.parkable && this.options.resumeWindow > 0) this.park(conn);
      else if (this.core.engine.shared) this.forgetSession(conn.uuid); // a quit, or handed to another connection
    }
    this.unsaved.delete(conn);
    conn.state = 'freed';
    if (conn.helloTimer !== undefined) this.clock.clearTimer(conn.helloTimer);
    conn.helloTimer = undefined;
    if (conn.expiryTimer !== undefined) this.clock.clearTimer(conn.expiryTimer);
    conn.expiryTimer = undefined;
    conn.early = undefined;
    this.requests.release(conn);
    this.core.registry.removeAll(conn);
    conn.clearFloors();
    conn.holding = undefined;
    conn.filterChars = 0;
    if (conn.uuid && this.byUuid.get(conn.uuid) === conn) {
      this.byUuid.delete(conn.uuid);
      this.core.engine.streamClosed(conn.uuid);
    }
    this.connections.delete(conn);
    this.core.forgetSlow(conn);
    conn.clearQueue();
  }

  /**
   * Keeps the stream of `conn` (going away without `quit`) in the engine for `resumeWindow`: its
   * uuid, secret, principal and subscriptions, for a resume on any node.
   */
  private park(conn: Connection): void {
    this.parkSession(conn.uuid, withGroups(conn.session(), conn.subscriptions));
  }

  /**
   * With an engine shared by nodes, records the session of `conn` (now live, or its
   * subscriptions changed) for a resume on another node if this one dies: once per connection
   * per few ms, however many subscriptions change meanwhile.
   */
  sessionChanged(conn: Connection): void {
    if (!this.core.engine.shared || this.options.resumeWindow === 0 || conn.state !== 'open') return;
    this.unsaved.add(conn);
    this.saveTimer ??= this.clock.setTimeout(() => {
      this.saveTimer = undefined;
      const engine = this.core.engine;
      for (const c of this.unsaved) if (c.state === 'open') engine.saveSession(c.uuid, withGroups(c.session(), c.subscriptions), this.options.resumeWindow);
      this.unsaved.clear();
    }, SESSION_SAVE_DELAY_MS);
  }

  private forgetSession(uuid: string): void {
    const dropped = this.core.engine.dropSession(uuid);
    if (dropped instanceof Promise) dropped.catch((err: unknown) => this.log.debug({ err, uuid }, 'could not forget a session'));
  }

  /** Parks `session` under `uuid` for `resumeWindow` (an engine failure is logged, not thrown). */
  parkSession(uuid: string, session: ParkedSession): void {
    const parked = this.core.engine.parkSession(uuid, session, this.options.resumeWindow);
    if (parked instanceof Promise) parked.catch((err: unknown) => this.log.warn({ err, uuid }, 'could not park a session for resume'));
  }

  /** The socket of `conn` closed: whatever the reason, it is gone. */
  socketClosed(conn: Connection, code: number, reason: string): void {
    this.free(conn);
    if (this.sockets.delete(conn)) this.admission.closed(conn.remoteAddress);
    this.log.debug({ uuid: conn.uuid || undefined, code, reason }, 'connection closed');
    if (this.sockets.size === 0) for (const resolve of this.closeWaiters.splice(0)) resolve();
  }

  /** Resolves once every socket has closed. */
  whenSocketsClosed(): Promise<void> {
    if (this.sockets.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  /** Counts one resume (a hello with `rp`), by whether it recovered everything. */
  countResume(recovered: boolean): void {
    if (recovered) this.resumesRecovered++;
    else this.resumesNotRecovered++;
  }

  // ---- ConnectionHost ---------------------------------------------------------------------

  markDirty(item: Flushable): void {
    this.core.markDirty(item);
  }

  onSlow(sub: SlowSubscriber): void {
    this.core.onSlow(sub);
  }

  onRecovered(sub: SlowSubscriber, dropped: number, channels: [string, number][]): void {
    this.core.onRecovered(sub, dropped, channels);
  }

  onOverflow(conn: Connection): void {
    this.log.warn({ uuid: conn.uuid, ...conn.backlog() }, 'connection does not read its answers: terminated');
    conn.parkable = false;
    this.free(conn);
    conn.ws.terminate();
  }

  // ---- observation ------------------------------------------------------------------------

  /** The cumulative counters and current sizes, without the costlier parts of {@link stats}. */
  counts(): BrokerCounts {
    const core = this.core;
    return {
      connections: this.connections.size,
      sseStreams: this.sseStreams,
      subscriptions: core.registry.subscriptions,
      channels: core.registry.channels,
      slowConsumers: core.slowCount,
      published: core.published,
      delivered: core.delivered,
      dropped: core.dropped,
      receivedBytes: this.receivedBytes,
      sentBytes: this.sentBytes,
      highQueued: this.highQueued,
      highDropped: this.highDropped,
      parkedSessions: this.figures.parked,
      resumesRecovered: this.resumesRecovered,
      resumesNotRecovered: this.resumesNotRecovered,
      requests: this.requests.stats(),
      groups: core.registry.groups.figures(),
    };
  }

  engineStats(): EngineStats {
    return this.core.engine.stats();
  }

  latencyHistogram(): LatencyHistogram {
    return this.core.latencyHistogram();
  }

  /** The largest queue towards one connection right now, in events (one pass over connections). */
  maxQueueDepth(): number {
    let max = 0;
    for (const conn of this.connections) if (conn.queueDepth > max) max = conn.queueDepth;
    return max;
  }

  /**
   * The engine's figures (channels, parked sessions, busiest channels) as of now: at once from
   * an engine that answers at once; from one that answers later (Redis), when it does, the last
   * ones kept meanwhile for the synchronous readers ({@link stats}, {@link counts}).
   */
  refreshFigures(topChannels = DEFAULT_STATS_CHANNELS): Maybe<void> {
    const engine = this.core.engine;
    const channels = engine.channelCount();
    const parked = engine.parkedSessions();
    const busiest = engine.busiestChannels(topChannels);
    if (!(channels instanceof Promise) && !(parked instanceof Promise) && !(busiest instanceof Promise)) {
      this.figures = { channels, parked, busiest };
      return;
    }
    return Promise.all([channels, parked, busiest]).then(
      ([c, p, b]) => void (this.figures = { channels: c, parked: p, busiest: b }),
      (err: unknown) => this.log.debug({ err }, 'engine figures not refreshed'),
    );
  }

  /** {@link stats} with the engine's figures fresh, however it answers. */
  async freshStats(topChannels = DEFAULT_STATS_CHANNELS): Promise<BrokerStats> {
    await this.refreshFigures(topChannels);
    return this.stats(topChannels, false);
  }

  stats(topChannels = DEFAULT_STATS_CHANNELS, refresh = true): BrokerStats {
    const { core } = this;
    if (refresh) void this.refreshFigures(topChannels);
    const c = this.counts();
    return {
      connections: c.connections,
      sseStreams: c.sseStreams,
      subscriptions: c.subscriptions,
      channels: c.channels,
      published: c.published,
      delivered: c.delivered,
      dropped: c.dropped,
      slowConsumers: c.slowConsumers,
      uptime: core.uptime(),
      channelCounters: this.figures.channels,
      memory: { rss: process.memoryUsage.rss(), heapUsed: process.memoryUsage().heapUsed },
      latency: core.latencySummary(),
      maxQueueDepth: this.maxQueueDepth(),
      sessions: { parked: c.parkedSessions, resumed: c.resumesRecovered, notRecovered: c.resumesNotRecovered },
      eventsByChannel: this.figures.busiest.slice(0, topChannels),
      engine: core.engine.stats(),
      requests: c.requests,
      groups: { ...c.groups, top: core.registry.groups.top(TOP_GROUPS) },
      presence: { ...core.presence.stats(), top: core.registry.top(topChannels) },
    };
  }

  /** The busiest subscribed names and patterns, and the slow consumers, `limit` of each at most. */
  top(limit: number): BrokerTop {
    const core = this.core;
    return {
      channels: { total: core.registry.channels, top: core.registry.top(limit) },
      slowConsumers: { total: core.slowCount, top: core.slowConsumers(limit) },
    };
  }
}
