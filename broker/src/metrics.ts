import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { BrokerCore, BrokerCounts } from './core.js';
import { LATENCY_BUCKETS_MS } from './latency.js';

/** Prefix of every metric, the Node process metrics included. */
export const METRIC_PREFIX = 'crier_';

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
  }
  return processRegistry;
}

/**
 * The broker's Prometheus metrics, in a registry of its own. Nothing is counted here on the hot
 * path: every value is read from the core's counters when scraped (gauges set, counters reset and
 * raised to the core's total, the latency histogram taken from the core's bucket counts).
 */
export class BrokerMetrics {
  private readonly registry = new Registry();
  // The core's counters, read once per scrape so that one scrape is consistent.
  private snapshot: BrokerCounts = {
    connections: 0, subscriptions: 0, channels: 0, slowConsumers: 0, published: 0, delivered: 0, dropped: 0, receivedBytes: 0, sentBytes: 0,
  };

  constructor(private readonly core: BrokerCore) {
    const registers = [this.registry];
    const gauge = (name: string, help: string, read: (c: BrokerCounts) => number): void => {
      const metrics = this;
      new Gauge({ name: METRIC_PREFIX + name, help, registers, collect() { this.set(read(metrics.snapshot)); } });
    };
    const counter = (name: string, help: string, read: (c: BrokerCounts) => number): void => {
      const metrics = this;
      new Counter({
        name: METRIC_PREFIX + name, help, registers,
        // A prom-client Counter cannot be set: zero it and raise it to the core's total.
        collect() {
          this.reset();
          this.inc(read(metrics.snapshot));
        },
      });
    };
    gauge('connections', 'Open WebSocket connections (before hello included).', (c) => c.connections);
    gauge('subscriptions', 'Subscriptions held: (subscriber, pattern) pairs, in-process subscribers included.', (c) => c.subscriptions);
    gauge('channels', 'Distinct subscribed channel names and patterns.', (c) => c.channels);
    gauge('slow_consumers', 'Connections losing events right now.', (c) => c.slowConsumers);
    counter('events_published_total', 'Events published.', (c) => c.published);
    counter('events_delivered_total', 'Events queued to a subscriber (one per subscriber per event).', (c) => c.delivered);
    counter('events_dropped_total', 'Events subscribers lost to a full queue.', (c) => c.dropped);
    counter('received_bytes_total', 'Bytes of WebSocket messages received from clients (payloads).', (c) => c.receivedBytes);
    counter('sent_bytes_total', 'Bytes written to client sockets (WebSocket frames, headers included).', (c) => c.sentBytes);
    this.registry.registerMetric(latencyHistogram(core) as unknown as Metric);
  }

  /** The content type of {@link render}'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric in the Prometheus text format: the broker's, then the process's. */
  async render(): Promise<string> {
    this.snapshot = this.core.counts();
    const own = await this.registry.metrics();
    return `${own}\n${await sharedProcessRegistry().metrics()}`;
  }
}

/**
 * `crier_publish_to_send_seconds` as a prom-client metric object: the core keeps the bucket
 * counts itself (a few binary searches per flush, nothing per event), which a prom-client
 * Histogram could only be fed one `observe` per event.
 */
function latencyHistogram(core: BrokerCore) {
  const name = `${METRIC_PREFIX}publish_to_send_seconds`;
  const help = 'Publish-to-send latency: from a publish until its frames were handed to the sockets (or to in-process handlers), per event with a recipient.';
  return {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    reset(): void {},
    async get() {
      const h = core.latencyHistogram();
      const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
      LATENCY_BUCKETS_MS.forEach((ms, i) => {
        values.push({ metricName: `${name}_bucket`, labels: { le: ms / 1000 }, value: h.counts[i]! });
      });
      values.push({ metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: h.count });
      values.push({ metricName: `${name}_sum`, labels: {}, value: h.sumMs / 1000 });
      values.push({ metricName: `${name}_count`, labels: {}, value: h.count });
      return { name, help, type: 'histogram', values, aggregator: 'sum' };
    },
  };
}
