import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { LATENCY_BUCKETS_MS, type LatencyHistogram } from './latency.js';
import { REFUSAL_REASONS, type Refusals } from './refusals.js';

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
  parkedSessions: number;
  resumesRecovered: number;
  resumesNotRecovered: number;
}

/** What the metrics read from the broker at a scrape. */
export interface MetricsSource {
  readonly refusals: Refusals;
  counts(): BrokerCounts;
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
    connections: 0, sseStreams: 0, subscriptions: 0, channels: 0, slowConsumers: 0, published: 0, delivered: 0, dropped: 0, receivedBytes: 0, sentBytes: 0,
    parkedSessions: 0, resumesRecovered: 0, resumesNotRecovered: 0,
  };

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
    counter('sent_bytes_total', 'Bytes written to client sockets (WebSocket frames, headers included).', (c) => c.sentBytes);
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
    this.snapshot = this.core.counts();
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
