import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { FrameType } from '@crier/protocol';
import { RawClient, cleanup, startBroker, text, waitFor } from './helpers.js';

afterEach(cleanup);

const httpUrl = (wsUrl: string, path: string): string => new URL(path, wsUrl.replace(/^ws/, 'http')).toString();

interface Family {
  type: string;
  help: string;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

// Values as Go's ParseFloat reads them (prom-client writes `Nan` before the first event-loop sample).
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?(?:\d+(?:\.\d+)?(?:e[+-]?\d+)?|nan|\+inf|-inf))$/i;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/**
 * A small parser of the Prometheus text format (0.0.4): every line is a HELP, a TYPE, a sample
 * or blank, every sample belongs to a family declared before it, no family is declared twice.
 */
function parsePrometheus(body: string): Map<string, Family> {
  const families = new Map<string, Family>();
  for (const line of body.split('\n')) {
    if (line === '') continue;
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (help) {
      if (families.has(help[1]!)) throw new Error(`family declared twice: ${help[1]}`);
      families.set(help[1]!, { type: '', help: help[2]!, samples: [] });
      continue;
    }
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      const f = families.get(type[1]!);
      if (!f || f.type !== '') throw new Error(`TYPE without HELP, or twice: ${line}`);
      f.type = type[2]!;
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a Prometheus text line: ${JSON.stringify(line)}`);
    const [, name, rawLabels = '', value] = m;
    const family = [...families.entries()].find(([n, f]) =>
      name === n || (['histogram', 'summary'].includes(f.type) && [`${n}_bucket`, `${n}_sum`, `${n}_count`].includes(name!)));
    if (!family) throw new Error(`sample of an undeclared family: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of rawLabels.matchAll(LABEL)) labels[l[1]!] = l[2]!;
    family[1].samples.push({ name: name!, labels, value: Number(value) });
  }
  return families;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * What `promtool check metrics` would complain about, checked without it: every family has HELP
 * and TYPE (once, the parser checks), names are valid, counters end in `_total` and nothing else
 * does, no series appears twice, and each histogram has cumulative buckets in `le` order ending
 * at `+Inf`, equal to its `_count`, with a `_sum`.
 */
function lint(families: Map<string, Family>): string[] {
  const problems: string[] = [];
  for (const [name, f] of families) {
    if (!METRIC_NAME.test(name)) problems.push(`${name}: invalid metric name`);
    if (f.type === '') problems.push(`${name}: HELP without TYPE`);
    if (f.type === 'counter' && !name.endsWith('_total')) problems.push(`${name}: counter not named *_total`);
    if (f.type !== 'counter' && name.endsWith('_total')) problems.push(`${name}: ${f.type} named like a counter (*_total)`);
    const series = new Set<string>();
    for (const s of f.samples) {
      const id = `${s.name}{${Object.entries(s.labels).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v}`).join(',')}}`;
      if (series.has(id)) problems.push(`${id}: duplicate series`);
      series.add(id);
    }
    if (f.type !== 'histogram') continue;
    // One histogram per label set other than le.
    const groups = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
    for (const s of f.samples) {
      const { le, ...rest } = s.labels;
      const key = JSON.stringify(Object.entries(rest).sort());
      const g = groups.get(key) ?? { buckets: [] };
      groups.set(key, g);
      if (s.name === `${name}_bucket`) g.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value]);
      else if (s.name === `${name}_sum`) g.sum = s.value;
      else if (s.name === `${name}_count`) g.count = s.value;
    }
    for (const [key, g] of groups) {
      const les = g.buckets.map(([le]) => le);
      if (les.some((le, i) => Number.isNaN(le) || (i > 0 && le <= les[i - 1]!))) problems.push(`${name}${key}: le bounds not increasing`);
      if (g.buckets.some(([, v], i) => i > 0 && v < g.buckets[i - 1]![1])) problems.push(`${name}${key}: bucket counts not cumulative`);
      if (les.at(-1) !== Infinity) problems.push(`${name}${key}: no +Inf bucket`);
      if (g.count === undefined || g.sum === undefined) problems.push(`${name}${key}: _sum or _count missing`);
      if (g.buckets.at(-1)?.[1] !== g.count) problems.push(`${name}${key}: +Inf bucket ${g.buckets.at(-1)?.[1]} is not _count ${g.count}`);
    }
  }
  return problems;
}

async function scrapeText(wsUrl: string): Promise<string> {
  const res = await fetch(httpUrl(wsUrl, '/metrics'));
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  return res.text();
}

async function scrape(wsUrl: string): Promise<Map<string, Family>> {
  return parsePrometheus(await scrapeText(wsUrl));
}

const value = (families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number => {
  for (const f of families.values()) {
    const s = f.samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
    if (s) return s.value;
  }
  throw new Error(`no sample ${name}`);
};

describe('GET /metrics', () => {
  it('is Prometheus text with the broker families, typed, and the Node process metrics', async () => {
    const b = await startBroker();
    const m = await scrape(b.url);
    const types = Object.fromEntries([...m].filter(([n]) => n.startsWith('crier_')).map(([n, f]) => [n, f.type]));
    expect(types).toMatchObject({
      crier_connections: 'gauge',
      crier_sse_streams: 'gauge',
      crier_subscriptions: 'gauge',
      crier_channels: 'gauge',
      crier_slow_consumers: 'gauge',
      crier_events_published_total: 'counter',
      crier_events_delivered_total: 'counter',
      crier_events_dropped_total: 'counter',
      crier_received_bytes_total: 'counter',
      crier_sent_bytes_total: 'counter',
      crier_refused_total: 'counter',
      crier_publish_to_send_seconds: 'histogram',
      crier_nodejs_eventloop_lag_seconds: 'gauge',
      crier_process_resident_memory_bytes: 'gauge',
    });
    expect(lint(m)).toEqual([]);
    // No per-channel labels anywhere in the broker's own families: only le and a refusal's reason.
    for (const [name, f] of m) {
      if (!name.startsWith('crier_nodejs') && !name.startsWith('crier_process')) {
        for (const s of f.samples) expect(Object.keys(s.labels).filter((k) => k !== 'le' && !(name === 'crier_refused_total' && k === 'reason'))).toEqual([]);
      }
    }
    expect(m.get('crier_refused_total')!.samples.map((s) => s.labels['reason']).sort()).toEqual(['forbidden', 'forbidden_origin', 'rate_limited', 'shutting_down', 'too_many_connections', 'unauthorized', 'unavailable']);
    expect((await fetch(httpUrl(b.url, '/metrics'), { method: 'POST' })).status).toBe(405);
  });

  it('counters, gauges, bytes and the latency histogram move with traffic', async () => {
    const b = await startBroker();
    const before = await scrape(b.url);
    expect(value(before, 'crier_events_published_total')).toBe(0);
    expect(value(before, 'crier_publish_to_send_seconds_count')).toBe(0);

    const sub = await RawClient.connect(b.url);
    const pub = await RawClient.connect(b.url);
    await sub.subscribe('m.*');
    for (let i = 0; i < 5; i++) await pub.request({ t: FrameType.publish, c: 'm.x', d: text(`event ${i}`) });
    b.publish('nobody.listens', text('x'));
    await sub.waitEvents(5);

    const after = await scrape(b.url);
    expect(value(after, 'crier_connections')).toBe(2);
    expect(value(after, 'crier_subscriptions')).toBe(1);
    expect(value(after, 'crier_channels')).toBe(1);
    expect(value(after, 'crier_slow_consumers')).toBe(0);
    expect(value(after, 'crier_events_published_total')).toBe(6);
    expect(value(after, 'crier_events_delivered_total')).toBe(5);
    expect(value(after, 'crier_events_dropped_total')).toBe(0);
    const stats = b.stats();
    expect(value(after, 'crier_events_published_total')).toBe(stats.published);
    // hello ×2, subscribe, 5 publishes, each frame at least a few bytes.
    expect(value(after, 'crier_received_bytes_total')).toBeGreaterThan(8 * 4);
    // welcomes, acks and 5 events went out, framed.
    expect(value(after, 'crier_sent_bytes_total')).toBeGreaterThan(sub.raw.reduce((n, m) => n + m.length, 0));
    // One sample per event that had a recipient; buckets are cumulative up to +Inf.
    expect(value(after, 'crier_publish_to_send_seconds_count')).toBe(5);
    expect(value(after, 'crier_publish_to_send_seconds_bucket', { le: '+Inf' })).toBe(5);
    const buckets = after.get('crier_publish_to_send_seconds')!.samples.filter((s) => s.name.endsWith('_bucket')).map((s) => s.value);
    expect(buckets).toEqual([...buckets].sort((x, y) => x - y));
    expect(value(after, 'crier_publish_to_send_seconds_sum')).toBeGreaterThanOrEqual(0);
    expect(value(after, 'crier_publish_to_send_seconds_sum')).toBeCloseTo((stats.latency.avgMs * 5) / 1000, 3);
  });

  it('passes the lint after traffic too (histogram filled, every family with values)', async () => {
    const b = await startBroker();
    const sub = await RawClient.connect(b.url);
    await sub.subscribe('l.*');
    for (let i = 0; i < 20; i++) b.publish('l.x', text('x'));
    await sub.waitEvents(20);
    expect(lint(await scrape(b.url))).toEqual([]);
    expect(lint(await scrape(b.url))).toEqual([]); // a second scrape adds no series and loses none
  });

  it('the lint itself catches what promtool warns about', () => {
    const bad = [
      '# HELP x_total a gauge named like a counter', '# TYPE x_total gauge', 'x_total 1',
      '# HELP y a counter without _total', '# TYPE y counter', 'y 1',
      '# HELP z twice', '# TYPE z gauge', 'z{a="1"} 1', 'z{a="1"} 2',
      '# HELP h h', '# TYPE h histogram', 'h_bucket{le="1"} 3', 'h_bucket{le="2"} 2', 'h_bucket{le="+Inf"} 4', 'h_sum 1', 'h_count 5',
    ].join('\n');
    expect(lint(parsePrometheus(bad))).toEqual([
      'x_total: gauge named like a counter (*_total)',
      'y: counter not named *_total',
      'z{a=1}: duplicate series',
      'h[]: bucket counts not cumulative',
      'h[]: +Inf bucket 4 is not _count 5',
    ]);
  });

  it('passes promtool check metrics with no warning (when promtool is installed)', async (ctx) => {
    const b = await startBroker();
    b.publish('p.x', text('x'));
    const body = await scrapeText(b.url);
    const run = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8', timeout: 20_000 });
    if ((run.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') ctx.skip('promtool is not installed (apt-get install prometheus)');
    expect({ status: run.status, output: `${run.stdout}${run.stderr}` }).toEqual({ status: 0, output: '' });
  });

  it('crier_sse_streams counts open SSE streams (crier_connections does not)', async () => {
    const b = await startBroker();
    const req = request(httpUrl(b.url, '/events?channels=a.b'));
    req.on('error', () => {});
    req.end();
    await waitFor('the stream', () => b.stats().sseStreams === 1);
    const m = await scrape(b.url);
    expect(value(m, 'crier_sse_streams')).toBe(1);
    expect(value(m, 'crier_connections')).toBe(0);
    req.destroy();
    await waitFor('the stream to be freed', () => b.stats().sseStreams === 0);
    expect(value(await scrape(b.url), 'crier_sse_streams')).toBe(0);
  });

  it('crier_refused_total counts refusals by reason, across scrapes', async () => {
    const b = await startBroker({ allowedOrigins: ['https://app.example.com'], maxConnections: 1 });
    const refusedUpgrade = (origin?: string): Promise<number> => new Promise((resolve) => {
      const ws = new WebSocket(b.url, origin ? { origin } : {});
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('open', () => resolve(101));
      ws.once('error', () => {});
    });
    expect(await refusedUpgrade('https://evil.example')).toBe(403);
    const post = await fetch(httpUrl(b.url, '/publish/a.b'), { method: 'POST', body: 'x', headers: { Origin: 'https://evil.example' } });
    expect(post.status).toBe(403);
    let m = await scrape(b.url);
    expect(value(m, 'crier_refused_total', { reason: 'forbidden_origin' })).toBe(2);
    expect(value(m, 'crier_refused_total', { reason: 'too_many_connections' })).toBe(0);
    const first = await RawClient.connect(b.url);
    expect(await refusedUpgrade()).toBe(503);
    m = await scrape(b.url);
    expect(value(m, 'crier_refused_total', { reason: 'forbidden_origin' })).toBe(2);
    expect(value(m, 'crier_refused_total', { reason: 'too_many_connections' })).toBe(1);
    expect(value(m, 'crier_refused_total', { reason: 'shutting_down' })).toBe(0);
    first.ws.close();
  });

  it('has a registry per broker: two brokers count apart', async () => {
    const [one, two] = await Promise.all([startBroker(), startBroker()]);
    one.publish('a.b', text('x'));
    one.publish('a.b', text('x'));
    two.publish('a.b', text('x'));
    expect(value(await scrape(one.url), 'crier_events_published_total')).toBe(2);
    expect(value(await scrape(two.url), 'crier_events_published_total')).toBe(1);
  });
});

describe('GET /stats, new fields', () => {
  it('eventsByChannel lists the busiest channels by events published, bounded', async () => {
    const b = await startBroker();
    const publish = (channel: string, n: number): void => {
      for (let i = 0; i < n; i++) b.publish(channel, text('x'));
    };
    publish('a.b', 3);
    publish('c.d', 1);
    publish('e.f', 5);
    for (let i = 0; i < 12; i++) publish(`many.c${String(i).padStart(2, '0')}`, 2);
    const stats = (await (await fetch(httpUrl(b.url, '/stats'))).json()) as { eventsByChannel: unknown[]; published: number };
    expect(stats.published).toBe(3 + 1 + 5 + 24);
    expect(stats.eventsByChannel).toEqual([
      { channel: 'e.f', events: 5 },
      { channel: 'a.b', events: 3 },
      ...Array.from({ length: 8 }, (_, i) => ({ channel: `many.c0${i}`, events: 2 })),
    ]);
    const two = (await (await fetch(httpUrl(b.url, '/stats?channels=2'))).json()) as { eventsByChannel: unknown[] };
    expect(two.eventsByChannel).toEqual([{ channel: 'e.f', events: 5 }, { channel: 'a.b', events: 3 }]);
    expect(b.stats().eventsByChannel).toHaveLength(10);
    const bad = await fetch(httpUrl(b.url, '/stats?channels=101'));
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ code: 'bad_request', message: expect.any(String) });
  });

  it('maxQueueDepth is the largest queue towards one connection right now', async () => {
    const bufferSize = 32;
    const b = await startBroker({ bufferSize, maxBufferBytes: 64 * 1024 * 1024 });
    expect(b.stats().maxQueueDepth).toBe(0);
    const slow = await RawClient.connect(b.url);
    await slow.subscribe('q.>');
    slow.ws.pause();
    const payload = new Uint8Array(64 * 1024);
    for (let round = 0; round < 2000 && b.stats().slowConsumers === 0; round++) {
      for (let i = 0; i < 8; i++) b.publish('q.x', payload);
      await new Promise((resolve) => setImmediate(resolve)); // let the flush write
    }
    expect(b.stats().slowConsumers).toBe(1);
    const depth = b.stats().maxQueueDepth;
    expect(depth).toBeGreaterThan(0);
    expect(depth).toBeLessThanOrEqual(bufferSize);
    slow.ws.resume();
    await waitFor('the queue to drain', () => b.stats().maxQueueDepth === 0, { timeoutMs: 15_000 });
  }, 30_000);
});
