// The six workloads of `pnpm bench`. Each runs against a server started fresh for it, crier and
// the naive reference alike, so every ratio compares figures from the same run.
import type WebSocket from 'ws';
import { connect } from '@crier/sdk-node';
import { ClosedLoop, CpuMeter, OpenLoop, type Latency, type Throughput } from './measure.js';
import { openMany, publisher, subscriber } from './clients.js';
import type { BenchServer } from './servers.js';

export interface Settings {
  seconds: number;
}

const payload100 = new Uint8Array(100).fill(42);

/** Runs `loop` with the server's and the load generator's CPU use read over its measured window. */
async function metered(server: BenchServer, loop: ClosedLoop, s: Settings): Promise<Throughput> {
  const meter = new CpuMeter(() => server.cpuTimeMs());
  const result = await loop.run(s.seconds, 1, meter);
  return { ...result, cpu: meter.use(result.deliveriesPerSecond) };
}

async function closeAll(sockets: WebSocket[]): Promise<void> {
  for (const ws of sockets) ws.terminate();
}

/** Events a fan-out keeps in flight by default: 1,000 up to 100 subscribers, fewer past that. */
const fanoutWindow = (n: number): number => Math.max(100, Math.min(1000, 100_000 / n));

/** W1: 1 publisher, 1 channel, `n` subscribers, closed loop (`window` events in flight). */
export async function fanout(server: BenchServer, n: number, s: Settings, window = fanoutWindow(n)): Promise<Throughput> {
  const pub = await publisher(server, false);
  const frame = pub.frame('bench.fanout', payload100);
  const loop = new ClosedLoop(() => pub.send(frame), n, window, pub.batch);
  const subs = await openMany(n, 200, () => subscriber(server, ['bench.fanout'], loop.hits));
  const result = await metered(server, loop, s);
  await closeAll(subs);
  pub.close();
  return result;
}

/**
 * W2: `n` subscribers on one channel, `rate` publishes per second, publish-to-receive latency,
 * after one unrecorded second at the same rate (both servers alike, as W7 does): the first second
 * of a fresh process is its JIT compiling the path, and it made a run's p99 by itself.
 */
export async function latency(server: BenchServer, n: number, rate: number, s: Settings): Promise<Latency> {
  const pub = await publisher(server, false);
  const send = (_i: number, payload: Buffer): void => pub.send(pub.frame('bench.latency', payload));
  let loop = new OpenLoop(send, rate, n, 1);
  const subs = await openMany(n, 200, () => subscriber(server, ['bench.latency'], (data) => loop.record(data)));
  await loop.run();
  loop = new OpenLoop(send, rate, n, s.seconds);
  const result = await loop.run();
  await closeAll(subs);
  pub.close();
  return result;
}

/** W3: `n` subscribers, each on its own channel, one publisher round-robin over the channels. */
export async function manyChannels(server: BenchServer, n: number, s: Settings): Promise<Throughput> {
  const pub = await publisher(server, false);
  const frames = Array.from({ length: n }, (_, i) => pub.frame(`bench.ch${i}`, payload100));
  const loop = new ClosedLoop((i) => pub.send(frames[i % n]!), 1, 1000, pub.batch);
  const subs = await openMany(n, 200, (i) => subscriber(server, [`bench.ch${i}`], loop.hits));
  const result = await metered(server, loop, s);
  await closeAll(subs);
  pub.close();
  return result;
}

/**
 * W3 wildcard: 10 subscribers each hold one pattern `bench.<i>.*.x`, and the publisher goes
 * round-robin over channels `bench.<i>.y.x`, each matched by exactly one of them; 100 idle
 * subscribers hold the other `patterns - 10` distinct patterns (`bench.f<k>.*.x`), which never
 * match. The figure shows whether matching slows down as stored patterns grow.
 */
export async function wildcard(server: BenchServer, patterns: number, s: Settings): Promise<Throughput> {
  const active = 10;
  const pub = await publisher(server, false);
  const frames = Array.from({ length: active }, (_, i) => pub.frame(`bench.${i}.y.x`, payload100));
  const loop = new ClosedLoop((i) => pub.send(frames[i % active]!), 1, 1000, pub.batch);
  const fillers = patterns - active;
  const idle = fillers > 0 ? 100 : 0;
  const perIdle = Math.ceil(fillers / Math.max(1, idle));
  const subs = [
    ...(await openMany(active, active, (i) => subscriber(server, [`bench.${i}.*.x`], loop.hits))),
    ...(await openMany(idle, 20, (i) =>
      subscriber(
        server,
        Array.from({ length: Math.min(perIdle, fillers - i * perIdle) }, (_, k) => `bench.f${i * perIdle + k}.*.x`),
        () => {},
      ),
    )),
  ];
  const result = await metered(server, loop, s);
  await closeAll(subs);
  pub.close();
  return result;
}

export interface Memory {
  connections: number;
  rssPerConnectionKB: number;
  heapPerConnectionKB: number;
}

/** W4: `n` idle connections with one subscription each; the server's growth per connection. */
export async function idleMemory(server: BenchServer, n: number): Promise<Memory> {
  const rss0 = server.rss();
  const heap0 = await server.heapUsed();
  const subs = await openMany(n, 500, (i) => subscriber(server, [`idle.c${i}`], () => {}));
  // Let the server settle (its handshake garbage collected) before reading.
  await new Promise((r) => setTimeout(r, 2000));
  const rss1 = server.rss();
  const heap1 = await server.heapUsed();
  await closeAll(subs);
  return {
    connections: n,
    rssPerConnectionKB: round1((rss1 - rss0) / n / 1024),
    heapPerConnectionKB: round1((heap1 - heap0) / n / 1024),
  };
}

const round1 = (x: number): number => Math.round(x * 10) / 10;

export interface PublishRate {
  ackedPerSecond: number;
  fireAndForgetPerSecond: number;
}

/** W5: acked publishes per second from one client (100 in flight), and fire-and-forget. */
export async function publishPath(server: BenchServer, s: Settings): Promise<PublishRate> {
  const acked = await publisher(server, true);
  const frame = acked.frame('bench.publish', payload100, 1);
  const ackLoop = new ClosedLoop(() => acked.send(frame), 1, 100);
  acked.onAck(ackLoop.hits);
  const a = await ackLoop.run(s.seconds);
  acked.close();

  const ff = await publisher(server, false);
  const ffFrame = ff.frame('bench.publish', payload100);
  const ffLoop = new ClosedLoop(() => ff.send(ffFrame), 1, 1000);
  const sink = await subscriber(server, ['bench.publish'], ffLoop.hits);
  const f = await ffLoop.run(s.seconds);
  sink.terminate();
  ff.close();
  return { ackedPerSecond: a.eventsPerSecond, fireAndForgetPerSecond: f.eventsPerSecond };
}

/** W6: W1 with sdk-node subscribers (decode and dispatch included). Crier only. */
export async function sdkFanout(server: BenchServer, n: number, s: Settings, window = fanoutWindow(n)): Promise<Throughput> {
  const pub = await publisher(server, false);
  const frame = pub.frame('bench.fanout', payload100);
  const loop = new ClosedLoop(() => pub.send(frame), n, window, pub.batch);
  const clients = await openMany(n, 100, async () => {
    const client = connect(server.url);
    await client.subscribe('bench.fanout', loop.hit).ready;
    return client;
  });
  const result = await loop.run(s.seconds);
  await Promise.all(clients.map((c) => c.quit()));
  pub.close();
  return result;
}
