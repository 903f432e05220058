import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import {
  CloseCode,
  FrameType,
  compileFilter,
  encodeFrame,
  limitsForPayload,
  patternOfSubscriptionKey,
  toWireFilter,
  type DecodeLimits,
  type SubscribeFilter,
} from '@crier/protocol';
import type { Authenticator } from '../auth/authenticator.js';
import { AddressAdmission } from '../admission/address-admission.js';
import { trustedProxySet } from '../admission/client-address.js';
import { ChannelIndex } from './channel-index.js';
import { Connection, type ConnectionHost, type Flushable } from '../transport/connection.js';
import { LatencyRecorder, type LatencyHistogram } from '../observe/latency.js';
import { LocalSubscriber, type LocalHost } from './local-subscriber.js';
import { ChannelCounters } from '../engine/offsets.js';
import type { ResolvedOptions } from '../config/options.js';
import { closeReason, type CrierSocket } from '../transport/socket.js';
import type { IndexEntry } from './filter.js';
import { ReadTurns, type MessageHandler } from '../transport/read-turns.js';
import { Refusals } from '../observe/refusals.js';
import { SseHub, SseStream, encodeSseEvent } from '../transport/sse.js';
import { AddressBuckets, TokenBucket } from '../admission/token-bucket.js';
import type { BrokerEvent, BrokerStats, BrokerTop, PublishResult, SlowConsumer } from '../types.js';

/** `stats()` lists this many channels in `eventsByChannel` unless told otherwise. */
export const DEFAULT_STATS_CHANNELS = 10;

/** Counters and sizes read at a metrics scrape. */
export interface BrokerCounts {
  connections: number;
  sseStreams: number;
  subscriptions: number;
  channels: number;
  slowConsumers: number;
  published: number;
  delivered: number;
  dropped: number;
  receivedBytes: number;
  sentBytes: number;
}

type Subscriber = Connection | LocalSubscriber | SseStream;

/**
 * The broker's state and its hot path: the connection registry, the channel index, offsets,
 * publish, and the one flush per tick that hands every connection's queued frames to its socket.
 * Transport concerns (upgrade, HTTP, socket listeners) live in their own files and call in here.
 */
export class BrokerCore implements ConnectionHost, LocalHost {
  readonly bufferSize: number;
  readonly maxBufferBytes: number;
  readonly maxTotalBufferBytes: number;
  /**
   * Bytes queued towards every WebSocket connection together (queued, or written and not yet
   * taken by the kernel): kept by the connections, bounded by `maxTotalBufferBytes`.
   */
  bufferedBytes = 0;
  /**
   * Decode limits, one object for the broker's life.
   * Binary fields may be as long as a whole frame, so that data past `maxPayload` inside an
   * acceptable frame decodes and gets a `payload_too_large` answer carrying its request id,
   * instead of a `frame_too_large` without one.
   */
  readonly limits: DecodeLimits;
  /** Subscriptions: a subscriber with its filter (a subscriber without one is its own entry). */
  readonly index = new ChannelIndex<IndexEntry<Subscriber>>();
  /** The SSE streams of `GET /events`. */
  readonly sse: SseHub = new SseHub(this);
  /** Upgrades, streams and publishes refused before they started: counted and logged. */
  readonly refusals: Refusals;
  /** `trustedProxies`, normalized for clientAddress. */
  readonly trustedProxies: ReadonlySet<string>;
  /** Sockets, pending sockets, streams and handshakes per client address. */
  readonly admission: AddressAdmission;
  /** HTTP publishes per client address: the same rate and burst as a connection's. */
  readonly httpPublishBuckets: AddressBuckets;
  /**
   * The clock of every rate limit, in ms (monotonic). Time is an input: tests replace it to
   * decide when a bucket refills.
   */
  now: () => number = () => performance.now();
  /** Connections not yet freed (before and after hello). */
  readonly connections = new Set<Connection>();
  /** Connections whose socket has not closed yet (freed ones included): what `close()` waits for. */
  readonly sockets = new Set<Connection>();
  /** Connections after hello, by uuid. */
  readonly registry = new Map<string, Connection>();
  /** Keep-alive tick, advanced by the keep-alive timer; connections record it on every frame. */
  tick = 0;
  /** Each connection's read budget per event-loop turn (fair reading). */
  readonly reads: ReadTurns;
  closing = false;
  /** Bytes of WebSocket messages received from clients (payloads), since start. */
  receivedBytes = 0;
  /** Bytes written to client sockets by the flush (frames with their WebSocket headers), since start. */
  sentBytes = 0;

  private readonly counters: ChannelCounters;
  private readonly latency = new LatencyRecorder();
  private readonly startedAt = performance.now();
  private published = 0;
  private delivered = 0;
  private dropped = 0;
  /** Connections in a slow spell right now (a set, so the dashboard can list them cheaply). */
  private readonly slow = new Set<Connection | SseStream>();

  // Publish path: a sequence stamp dedupes subscribers matched by several patterns, and the
  // matches go into one reused array (a publish never runs inside another: handlers run in flush).
  private publishSeq = 0;
  private readonly recipients: Subscriber[] = [];
  // The event's labels and key, for the filters of the entries being matched.
  private matchLabels: string[] | undefined;
  private matchKey: string | undefined;
  private readonly collect = (entry: IndexEntry<Subscriber>): void => {
    const sub = entry.sub;
    if (sub.stamp === this.publishSeq) return;
    // A filtered-out entry does not stamp: another subscription of the same subscriber may pass.
    if (entry.filter !== undefined && !entry.filter.passes(this.matchLabels, this.matchKey)) return;
    sub.stamp = this.publishSeq;
    this.recipients.push(sub);
  };

  // Flush scheduling: items with queued frames, and one setImmediate per tick for all of them.
  private dirty: Flushable[] = [];
  private flushing: Flushable[] = [];
  private immediate: NodeJS.Immediate | undefined;
  private readonly flushBound = (): void => this.flush();
  private closeWaiters: (() => void)[] = [];

  constructor(
    readonly options: ResolvedOptions,
    readonly log: Logger,
    /** Turns credentials into principals, for every door. */
    readonly auth: Authenticator,
    /** Handles a client's message: the frame handlers, above the core (they call into it). */
    handleMessage: MessageHandler,
  ) {
    this.reads = new ReadTurns(this, handleMessage);
    this.bufferSize = options.bufferSize;
    this.maxBufferBytes = options.maxBufferBytes;
    this.maxTotalBufferBytes = options.maxTotalBufferBytes;
    this.counters = new ChannelCounters(options.channelCacheSize);
    this.limits = limitsForPayload(options.maxPayload);
    this.trustedProxies = trustedProxySet(options.trustedProxies);
    this.refusals = new Refusals(log, options.maxConnections, this.trustedProxies);
    this.httpPublishBuckets = new AddressBuckets(options.publishRate, options.publishBurst);
    this.admission = new AddressAdmission(options);
  }

  // ---- publish ----------------------------------------------------------------------------

  /** Publishes a validated event to every matching subscriber. */
  publish(channel: string, data: Uint8Array, labels?: string[], key?: string): PublishResult {
    this.publishSeq++;
    this.matchLabels = labels;
    this.matchKey = key;
    this.index.match(channel, this.collect);
    const counters = this.counters;
    const id = counters.next(channel);
    const offset = counters.offset;
    const epoch = counters.epoch;
    const ts = Date.now();
    this.published++;
    const recipients = this.recipients;
    if (recipients.length > 0) {
      // Encoded once, lazily: the same bytes go to every connection, and a publish that only
      // reaches in-process subscribers (or only full queues) never encodes at all.
      let frame: Uint8Array | undefined;
      let event: BrokerEvent | undefined;
      let sse: Buffer | undefined;
      let queued = 0;
      try {
        for (let i = 0; i < recipients.length; i++) {
          const sub = recipients[i]!;
          if (sub instanceof Connection) {
            // One budget check, inside enqueueEvent (which also counts a drop).
            frame ??= encodeFrame({ t: FrameType.event, c: channel, d: data, id, o: offset, e: epoch, ts, l: labels, k: key });
            if (sub.enqueueEvent(frame, channel)) queued++;
            else this.dropped++;
          } else if (sub instanceof LocalSubscriber) {
            event ??= makeEvent(channel, data, id, offset, epoch, ts, labels, key);
            if (sub.enqueue(event)) queued++;
          } else {
            sse ??= encodeSseEvent(channel, data, offset);
            if (sub.enqueueEvent(sse, channel)) queued++;
            else this.dropped++;
          }
        }
      } finally {
        // Cleared whatever happens: a stale entry would receive the next publish.
        recipients.length = 0;
      }
      this.delivered += queued;
      if (queued > 0) this.latency.markPublished(performance.now());
    }
    if (this.options.logPublishedEvents) {
      this.log.info({ channel, id, offset, epoch, bytes: data.length }, 'event published');
    }
    return { id, offset, epoch };
  }

  /** Adds an in-process subscriber for a valid pattern. Throws `bad_filter` for a bad filter. */
  subscribeLocal(pattern: string, handler: (event: BrokerEvent) => void, filter?: SubscribeFilter): LocalSubscriber {
    const sub = new LocalSubscriber(pattern, handler, this, compileFilter(toWireFilter(filter)));
    this.index.add(pattern, sub);
    return sub;
  }

  unsubscribeLocal(sub: LocalSubscriber): void {
    if (!sub.active) return;
    sub.deactivate();
    this.index.remove(sub.pattern, sub);
  }

  // ---- connections ------------------------------------------------------------------------

  /** Registers a freshly upgraded socket (before its hello). */
  addConnection(ws: CrierSocket, socket: Duplex, remoteAddress: string): Connection {
    const { publishRate, publishBurst } = this.options;
    const conn = new Connection(ws, socket, this, remoteAddress, new TokenBucket(publishRate, publishBurst, this.now()));
    ws.connection = conn;
    this.connections.add(conn);
    this.sockets.add(conn);
    this.admission.opened(remoteAddress, true);
    return conn;
  }

  /** Makes `conn` the stream of `uuid`, replacing whichever connection held it. */
  register(conn: Connection, uuid: string): void {
    const previous = this.registry.get(uuid);
    if (previous) {
      this.log.debug({ uuid }, 'uuid taken over by a new connection');
      this.closeConnection(previous, CloseCode.replaced, 'replaced: another connection took over this uuid');
    }
    conn.uuid = uuid;
    if (conn.state === 'pending') this.admission.settled(conn.remoteAddress);
    conn.state = 'open';
    conn.seenTick = this.tick;
    this.registry.set(uuid, conn);
  }

  /** Frees `conn` at once (subscriptions, registry entry), then closes its socket. */
  closeConnection(conn: Connection, code: number, reason: string): void {
    if (conn.state === 'freed') return;
    // Frames queued before the decision (an error answer, say) go out ahead of the close frame.
    conn.flush();
    this.free(conn);
    conn.ws.close(code, closeReason(reason));
    // A socket paused (a hello being verified, a spent read budget) must read again, or the
    // peer's close frame would wait behind the pause until ws gives up on the handshake.
    conn.ws.resume();
  }

  /** Drops every subscription and the registry entry of `conn`. Idempotent. */
  free(conn: Connection): void {
    if (conn.state === 'freed') return;
    if (conn.state === 'pending') this.admission.settled(conn.remoteAddress);
    conn.state = 'freed';
    if (conn.helloTimer) clearTimeout(conn.helloTimer);
    conn.helloTimer = undefined;
    if (conn.expiryTimer) clearTimeout(conn.expiryTimer);
    conn.expiryTimer = undefined;
    conn.early = undefined;
    for (const [key, entry] of conn.subscriptions) this.index.remove(patternOfSubscriptionKey(key), entry);
    conn.subscriptions.clear();
    conn.filterChars = 0;
    if (conn.uuid && this.registry.get(conn.uuid) === conn) this.registry.delete(conn.uuid);
    this.connections.delete(conn);
    this.slow.delete(conn);
    conn.clearQueue();
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

  // ---- ConnectionHost / LocalHost ---------------------------------------------------------

  onSlow(conn: Connection | SseStream): void {
    this.slow.add(conn);
    if (this.options.logSlowConsumers) {
      this.log.warn({ uuid: conn.uuid, ...conn.backlog(), bufferSize: this.bufferSize, maxBufferBytes: this.maxBufferBytes },
        'slow consumer: dropping events for this connection until it drains');
    }
  }

  onRecovered(conn: Connection | SseStream, dropped: number, channels: [string, number][]): void {
    this.slow.delete(conn);
    if (this.options.logSlowConsumers) {
      this.log.warn({ uuid: conn.uuid, dropped, channels: channels.slice(0, 10) }, 'slow consumer recovered');
    }
  }

  onOverflow(conn: Connection): void {
    this.log.warn({ uuid: conn.uuid, ...conn.backlog() }, 'connection does not read its answers: terminated');
    this.free(conn);
    conn.ws.terminate();
  }

  /** A stream is gone: it is no longer a slow consumer. */
  forgetSlow(stream: SseStream): void {
    this.slow.delete(stream);
  }

  countDrop(): void {
    this.dropped++;
  }

  markDirty(item: Flushable): void {
    item.dirty = true;
    this.dirty.push(item);
    this.immediate ??= setImmediate(this.flushBound);
  }

  /**
   * Hands every queued frame to its socket: one write per connection per tick, then the
   * in-process handlers. Anything queued meanwhile (a handler publishing) waits for the next tick.
   */
  flush(): void {
    this.immediate = undefined;
    const items = this.dirty;
    this.dirty = this.flushing;
    this.flushing = items;
    this.latency.beginFlush();
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      item.dirty = false;
      try {
        item.flush();
      } catch (err) {
        this.log.error({ err }, 'flush failed for one subscriber');
      }
    }
    items.length = 0;
    this.latency.endFlush(performance.now());
  }

  /** Stops the pending flush timer (the broker is closed). */
  dispose(): void {
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = undefined;
    this.reads.dispose();
  }

  /** The cumulative counters and current sizes, without the costlier parts of {@link stats}. */
  counts(): BrokerCounts {
    return {
      connections: this.connections.size,
      sseStreams: this.sse.size,
      subscriptions: this.index.subscriptions,
      channels: this.index.channels,
      slowConsumers: this.slow.size,
      published: this.published,
      delivered: this.delivered,
      dropped: this.dropped,
      receivedBytes: this.receivedBytes,
      sentBytes: this.sentBytes,
    };
  }

  /** Publish-to-send latency since start, as a histogram. */
  latencyHistogram(): LatencyHistogram {
    return this.latency.histogram();
  }

  /** The largest queue towards one connection right now, in events (one pass over connections). */
  maxQueueDepth(): number {
    let max = 0;
    for (const conn of this.connections) if (conn.queueDepth > max) max = conn.queueDepth;
    return max;
  }

  stats(topChannels = DEFAULT_STATS_CHANNELS): BrokerStats {
    return {
      connections: this.connections.size,
      sseStreams: this.sse.size,
      subscriptions: this.index.subscriptions,
      channels: this.index.channels,
      published: this.published,
      delivered: this.delivered,
      dropped: this.dropped,
      slowConsumers: this.slow.size,
      uptime: Math.round(performance.now() - this.startedAt) / 1000,
      channelCounters: this.counters.size,
      memory: { rss: process.memoryUsage.rss(), heapUsed: process.memoryUsage().heapUsed },
      latency: this.latency.summary(),
      maxQueueDepth: this.maxQueueDepth(),
      eventsByChannel: this.counters.top(topChannels),
    };
  }

  /** The busiest subscribed names and patterns, and the slow consumers, `limit` of each at most. */
  top(limit: number): BrokerTop {
    const slow: SlowConsumer[] = [];
    for (const conn of this.slow) {
      const { events, bytes, dropped } = conn.backlog();
      slow.push({ uuid: conn.uuid, events, bytes, dropped, since: conn.drops.since });
    }
    slow.sort((a, b) => b.dropped - a.dropped || (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0));
    return {
      channels: { total: this.index.channels, top: this.index.top(limit) },
      slowConsumers: { total: this.slow.size, top: slow.slice(0, limit) },
    };
  }
}

function makeEvent(
  channel: string, data: Uint8Array, id: string, offset: number, epoch: string, time: number,
  labels: string[] | undefined, key: string | undefined,
): BrokerEvent {
  // Data from a socket is a Buffer view; handlers get a plain Uint8Array, as from any publish.
  const bytes = Buffer.isBuffer(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : data;
  const event: BrokerEvent = { channel, data: bytes, id, offset, epoch, time };
  if (labels !== undefined) event.labels = labels;
  if (key !== undefined) event.key = key;
  // One object is shared by every in-process handler of the event: none may change it for the others.
  return Object.freeze(event);
}
