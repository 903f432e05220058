import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { LATENCY_BUCKETS_MS, type LatencyHistogram } from './latency.js';
import { REFUSAL_REASONS, type Refusals } from './refusals.js';
import type { EngineStats, RequestStats } from '../types.js';

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
  /** High-priority events queued to connections (their lane), and dropped because it was full. */
  highQueued: number;
  highDropped: number;
  parkedSessions: number;
  resumesRecovered: number;
  resumesNotRecovered: number;
  requests: RequestStats;
  /** Queue groups: counts now, figures since start (see GroupsStats). */
  groups: { groups: number; members: number; delivered: number; skipped: number; missed: number };
}

/** What the metrics read from the broker at a scrape. */
export interface MetricsSource {
  readonly refusals: Refusals;
  counts(): BrokerCounts;
  /** The engine's state and figures. */
  engineStats(): EngineStats;
  /** Brings the engine's figures (parked sessions…) up to date before a scrape reads them. */
  refreshFigures(): unknown;
  latencyHistogram(): LatencyHistogram;
}

/** Prefix of every metric, the Node process metrics included. */
export const METRIC_PREFIX = 'crier_';

/**
 * prom-client's default metrics that are gauges named like counters (`_total`): `promtool check
 * metrics` warns about each. Their per-type gauges (`crier_nodejs_active_handles{type}`, …) stay,
 * and sum to the same value.
 */
const GAUGES_NAMED_TOTAL = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * The Node process metrics (event-loop lag, heap, GC, CPU, handles…), shared by every broker of
 * the process: they describe the process, not a broker, and each registration starts an
 * event-loop monitor and a GC observer that nothing could stop, so one per broker would leak.
 * Its own registry, never prom-client's global one (the application's to use).
 */
let processRegistry: Registry | undefined;

function sharedProcessRegistry(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: METRIC_PREFIX });
    for (const name of GAUGES_NAMED_TOTAL) processRegistry.removeSingleMetric(METRIC_PREFIX + name);
  }
  return processRegistry;
}

/**
 * The broker's Prometheus metrics, in a registry of its own. Nothing is counted here on the hot
 * path: every value is kept by the core and read when scraped, through prom-client's `collect()`
 * hook (called by the registry before it reads a metric): gauges are set to the core's value, and
 * counters raised by what the core counted since the previous scrape (prom-client's own pattern
 * for totals kept elsewhere, as its `process_cpu_seconds_total`: a Counter cannot be set).
 */
export class BrokerMetrics {
  private readonly registry = new Registry();
  // The core's counters, read once per scrape so that one scrape is consistent.
  private snapshot: BrokerCounts = {
    connections: 0, sseStreams: 0, subscriptions: 0, channels: 0, slowConsumers: 0, published: 0, delivered: 0, dropped: 0, receivedBytes: 0, sentBytes: 0, highQueued: 0, highDropped: 0,
    parkedSessions: 0, resumesRecovered: 0, resumesNotRecovered: 0,
    requests: { pending: 0, sent: 0, delivered: 0, answered: 0, noResponders: 0, timedOut: 0, repliesDropped: 0 },
    groups: { groups: 0, members: 0, delivered: 0, skipped: 0, missed: 0 },
  };
  private engine: EngineStats = { kind: 'memory', ready: true };

  constructor(private readonly core: MetricsSource) {
    const registers = [this.registry];
    const metrics = this;
    const gauge = (name: string, help: string, read: (c: BrokerCounts) => number): void => {
      new Gauge({ name: METRIC_PREFIX + name, help, registers, collect() { this.set(read(metrics.snapshot)); } });
    };
    const counter = (name: string, help: string, read: (c: BrokerCounts) => number): void => {
      let seen = 0;
      new Counter({
        name: METRIC_PREFIX + name, help, registers,
        collect() {
          const total = read(metrics.snapshot);
          this.inc(total - seen);
          seen = total;
        },
      });
    };
    gauge('connections', 'Open WebSocket connections (before hello included).', (c) => c.connections);
    gauge('sse_streams', 'Open SSE streams (GET /events); they count against maxConnections with the connections.', (c) => c.sseStreams);
    gauge('subscriptions', 'Subscriptions held: (subscriber, pattern) pairs, in-process subscribers and SSE streams included.', (c) => c.subscriptions);
    gauge('channels', 'Distinct subscribed channel names and patterns.', (c) => c.channels);
    gauge('slow_consumers', 'Connections and SSE streams losing events right now.', (c) => c.slowConsumers);
    gauge('parked_sessions', 'Streams kept after their connection dropped, for a resume within resumeWindow.', (c) => c.parkedSessions);
    counter('resumes_recovered_total', 'Resumes (a reconnect with the stream position) that got every missed event.', (c) => c.resumesRecovered);
    counter('resumes_not_recovered_total', 'Resumes told recovered: false (window passed, history evicted, broker restarted, replay limit).', (c) => c.resumesNotRecovered);
    counter('events_published_total', 'Events published.', (c) => c.published);
    counter('events_delivered_total', 'Events queued to a subscriber (one per subscriber per event).', (c) => c.delivered);
    counter('events_dropped_total', 'Events subscribers lost to a full queue.', (c) => c.dropped);
    counter('received_bytes_total', 'Bytes of WebSocket messages received from clients (payloads).', (c) => c.receivedBytes);
    counter('priority_events_queued_total', 'High-priority events queued to connections (their own lane, sent ahead of normal events).', (c) => c.highQueued);
    counter('priority_events_dropped_total', 'High-priority events dropped because a connection\'s high lane was full (also in events_dropped_total).', (c) => c.highDropped);
    counter('sent_bytes_total', 'Bytes written to client sockets (WebSocket frames, headers included).', (c) => c.sentBytes);
    gauge('requests_pending', 'Requests (request/reply) of this node waiting for a reply now.', (c) => c.requests.pending);
    counter('requests_total', 'Requests sent by this node\'s requesters (WebSocket and HTTP).', (c) => c.requests.sent);
    counter('request_events_delivered_total', 'Request events queued to this node\'s subscribers (one per subscriber per request, from any node).', (c) => c.requests.delivered);
    counter('replies_total', 'Requests of this node answered by a reply.', (c) => c.requests.answered);
    counter('requests_no_responders_total', 'Requests of this node that no subscription anywhere matched (no_responders).', (c) => c.requests.noResponders);
    counter('requests_timed_out_total', 'Requests of this node that got no reply within their timeout.', (c) => c.requests.timedOut);
    counter('replies_dropped_total', 'Replies dropped: a second or late reply, one whose requester left, or a forged or unknown token.', (c) => c.requests.repliesDropped);
    gauge('queue_groups', 'Queue groups (name, pattern) with a member on this node.', (c) => c.groups.groups);
    gauge('queue_group_members', 'Members of queue groups on this node.', (c) => c.groups.members);
    counter('queue_group_deliveries_total', 'Events and requests handed to one member of a queue group.', (c) => c.groups.delivered);
    counter('queue_group_skips_total', 'Queue group members passed over as busy (slow, or queued past a quarter of bufferSize).', (c) => c.groups.skipped);
    counter('queue_group_missed_total', 'Events a queue group\'s pattern matched that no member on this node could take (filters, or no responder).', (c) => c.groups.missed);
    const engineGauge = (name: string, help: string, read: (e: EngineStats) => number): void => {
      new Gauge({ name: METRIC_PREFIX + name, help, registers, collect() { this.set(read(metrics.engine)); } });
    };
    const engineCounter = (name: string, help: string, read: (e: EngineStats) => number | undefined): void => {
      let seen = 0;
      new Counter({
        name: METRIC_PREFIX + name, help, registers,
        collect() {
          const total = read(metrics.engine) ?? 0;
          this.inc(Math.max(0, total - seen));
          seen = total;
        },
      });
    };
    engineGauge('engine_ready', 'Whether the engine can sequence events (the Redis engine: both its Redis connections up); 0 fails /readyz.', (e) => (e.ready ? 1 : 0));
    engineGauge('engine_redis_rtt_seconds', 'The last PING round trip to Redis (the Redis engine; 0 otherwise).', (e) => (e.rttMs ?? 0) / 1000);
    engineGauge('engine_pending_publishes', 'Publishes waiting on Redis.', (e) => e.pending ?? 0);
    engineCounter('engine_received_total', 'Events this node received from Redis pub/sub (once each).', (e) => e.received);
    engineCounter('engine_refiltered_total', 'Events received from Redis that no local subscription matched (a Redis glob is wider than a crier pattern): dropped.', (e) => e.refiltered);
    engineCounter('engine_gap_fills_total', 'Reconnects of the Redis subscriber connection followed by a read of what it missed.', (e) => e.fills);
    engineCounter('engine_gap_events_total', 'Events handed over by gap fills (published while this node was not subscribed).', (e) => e.filled);
    engineCounter('engine_gap_lost_total', 'Events a gap fill found trimmed from history already: lost to this node.', (e) => e.lostInFills);
    engineCounter('engine_disconnects_total', 'Times the Redis subscriber connection dropped.', (e) => e.disconnects);
    engineCounter('engine_presence_news_sent_total', 'Presence join/leave news this node sent to nodes watching a channel (one message per watching node per turn at most; Redis engine).', (e) => e.presence?.newsSent);
    engineCounter('engine_presence_news_received_total', 'Presence join/leave news this node received from other nodes for the channels watched here (Redis engine).', (e) => e.presence?.newsReceived);
    engineCounter('engine_presence_malformed_total', 'Presence messages from other nodes that did not parse or could not be handled, ignored (Redis engine; the warning is rate-limited).', (e) => e.presence?.malformed);
    engineCounter('engine_epoch_changes_total', 'Times Redis was found to have lost the stream (restarted without persistence).', (e) => e.epochChanges);
    const seenRefusals = new Map<string, number>();
    new Counter({
      name: `${METRIC_PREFIX}refused_total`,
      help: 'WebSocket upgrades, SSE streams and HTTP publishes refused before they started, by reason (the error code the client got).',
      labelNames: ['reason'],
      registers,
      collect() {
        for (const reason of REFUSAL_REASONS) {
          const total = core.refusals.count(reason);
          this.inc({ reason }, total - (seenRefusals.get(reason) ?? 0));
          seenRefusals.set(reason, total);
        }
      },
    });
  }

  /** The content type of {@link render}'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric in the Prometheus text format: the broker's, then the process's. */
  async render(): Promise<string> {
    await this.core.refreshFigures();
    this.snapshot = this.core.counts();
    this.engine = this.core.engineStats();
    const own = await this.registry.metrics();
    const latency = histogramText(
      `${METRIC_PREFIX}publish_to_send_seconds`,
      'Publish-to-send latency: from a publish until its frames were handed to the sockets (or to in-process handlers), per event with a recipient.',
      this.core.latencyHistogram(),
    );
    return `${own}\n${latency}\n${await sharedProcessRegistry().metrics()}`;
  }
}

/**
 * `crier_publish_to_send_seconds` in the text format, from the bucket counts the core keeps itself
 * (a few binary searches per flush, nothing per event). prom-client cannot take them: its
 * Histogram is fed one `observe()` per sample, and it has no collector API for values aggregated
 * elsewhere (prometheus/client_js#241), so this one family is written here, in the registry's
 * own format (HELP, TYPE, cumulative `le` buckets ending at `+Inf` = `_count`, `_sum`, `_count`).
 */
function histogramText(name: string, help: string, h: LatencyHistogram): string {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
  LATENCY_BUCKETS_MS.forEach((ms, i) => lines.push(`${name}_bucket{le="${ms / 1000}"} ${h.counts[i]!}`));
  lines.push(`${name}_bucket{le="+Inf"} ${h.count}`, `${name}_sum ${h.sumMs / 1000}`, `${name}_count ${h.count}`);
  return `${lines.join('\n')}\n`;
}
