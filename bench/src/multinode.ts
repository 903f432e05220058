// W7: crier as 2 nodes on one Redis against 1 node (memory engine), in the same run. W1's fan-out
// and W2's latency with the subscribers split over the nodes and the publisher on node 1, plus the
// servers' CPU time per delivery (/proc/<pid>/stat over the measured window): each event crosses
// Redis once per interested node, so a node's cost per delivery should not double.
import type WebSocket from 'ws';
import { ClosedLoop, OpenLoop, type Latency, type Marks, type Throughput } from './measure.js';
import { openMany, publisher, subscriber } from './clients.js';
import { cpuTimeMs } from './processes.js';
import { startCrier, type BenchServer } from './servers.js';
import { startRedis, type BenchRedis } from './redis-server.js';
import type { Settings } from './workloads.js';

/** Where W7's processes run: a cpu each, or `undefined` (not pinned). */
export interface Layout {
  name: string;
  node1: number | undefined;
  node2: number | undefined;
  redis: number | undefined;
  loadGenerator: number | undefined;
  /** What it is, for the output. */
  text: string;
}

export const layouts: Record<string, Layout> = {
  shared: {
    name: 'shared',
    node1: 0,
    node2: 0,
    redis: 0,
    loadGenerator: 1,
    text: 'servers on cpu 0 (1 node; or both nodes and redis-server), the load generator on cpu 1, as in W1-W6: both setups get one core',
  },
  spread: {
    name: 'spread',
    node1: 0,
    node2: 1,
    redis: 1,
    loadGenerator: 1,
    text: 'one node per core: node 1 on cpu 0; node 2, redis-server and the load generator on cpu 1 (they compete); 1 node on cpu 0',
  },
  none: {
    name: 'none',
    node1: undefined,
    node2: undefined,
    redis: undefined,
    loadGenerator: undefined,
    text: 'nothing pinned: the kernel spreads the servers and the load generator over the cpus',
  },
};

/** 1 crier node (memory engine), or 2 nodes on a fresh redis-server. */
export interface Deployment {
  nodes: BenchServer[];
  redis: BenchRedis | undefined;
  /** CPU time used so far, in ms: each node's, redis-server's (0 without), this process's. */
  cpu(): CpuTimes;
  stop(): Promise<void>;
}

export interface CpuTimes {
  nodes: number[];
  redis: number;
  loadGenerator: number;
}

export async function deploy(count: 1 | 2, layout: Layout, crierArgs: string[]): Promise<Deployment> {
  const nodes: BenchServer[] = [];
  let redis: BenchRedis | undefined;
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop()));
    await redis?.stop();
  };
  try {
    if (count === 1) {
      nodes.push(await startCrier(crierArgs, layout.node1));
    } else {
      redis = await startRedis(layout.redis);
      for (const [i, cpu] of [layout.node1, layout.node2].entries()) {
        nodes.push(await startCrier([...crierArgs, '--redis', redis.url, '--node-name', `n${i + 1}`], cpu));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const redisPid = redis?.pid;
  return {
    nodes,
    redis,
    cpu: () => {
      const own = process.cpuUsage();
      return {
        nodes: nodes.map((n) => n.cpuTimeMs()),
        redis: redisPid === undefined ? 0 : cpuTimeMs(redisPid),
        loadGenerator: (own.user + own.system) / 1000,
      };
    },
    stop,
  };
}

/** CPU time over a measured window and what it costs per delivery. */
export interface Cost {
  /** ms of CPU over the window: each node's, redis-server's, the load generator's. */
  cpuMs: CpuTimes;
  /** Deliveries in the window, to the subscribers of each node. */
  deliveries: number[];
  /** ns of CPU per delivery: all nodes together, each node (its CPU / its subscribers' deliveries), redis-server, nodes + redis-server. */
  ns: { nodes: number; perNode: number[]; redis: number; servers: number };
}

/** Reads CPU times and per-node delivery counts when a loop's window opens and closes. */
class Meter implements Marks {
  readonly counts: number[];
  private cpu0: CpuTimes | undefined;
  private counts0: number[] = [];
  cost: Cost | undefined;

  constructor(private readonly d: Deployment) {
    this.counts = d.nodes.map(() => 0);
  }

  start(): void {
    this.counts0 = [...this.counts];
    this.cpu0 = this.d.cpu();
  }

  end(): void {
    const cpu1 = this.d.cpu();
    const cpu0 = this.cpu0!;
    const deliveries = this.counts.map((c, i) => c - this.counts0[i]!);
    const total = deliveries.reduce((a, b) => a + b, 0);
    const nodes = cpu1.nodes.map((c, i) => c - cpu0.nodes[i]!);
    const nodesMs = nodes.reduce((a, b) => a + b, 0);
    const redis = cpu1.redis - cpu0.redis;
    const ns = (ms: number, n: number): number => (n > 0 ? Math.round((ms * 1e6) / n) : NaN);
    this.cost = {
      cpuMs: { nodes, redis, loadGenerator: Math.round(cpu1.loadGenerator - cpu0.loadGenerator) },
      deliveries,
      ns: { nodes: ns(nodesMs, total), perNode: nodes.map((ms, i) => ns(ms, deliveries[i]!)), redis: ns(redis, total), servers: ns(nodesMs + redis, total) },
    };
  }
}

const payload100 = new Uint8Array(100).fill(42);

/** Subscriber i on node i mod nodes (as even a split as `n` allows). */
const nodeOf = (d: Deployment, i: number): number => i % d.nodes.length;

function closeAll(sockets: WebSocket[]): void {
  for (const ws of sockets) ws.terminate();
}

/** W7 fan-out: W1 (1 publisher on node 1, 1 channel, `n` subscribers) over the deployment's nodes. */
export async function fanoutNodes(d: Deployment, n: number, s: Settings): Promise<Throughput & Cost & { redisMessagesPerEvent: number[] }> {
  const pub = await publisher(d.nodes[0]!, false);
  const frame = pub.frame('bench.fanout', payload100);
  const loop = new ClosedLoop(() => pub.send(frame), n, Math.max(100, Math.min(1000, 100_000 / n)), pub.batch);
  const meter = new Meter(d);
  const subs = await openMany(n, 200, (i) => {
    const k = nodeOf(d, i);
    return subscriber(d.nodes[k]!, ['bench.fanout'], (data, events) => {
      meter.counts[k]! += events;
      loop.hits(data, events);
    });
  });
  const result = await loop.run(s.seconds, 1, meter);
  const perEvent = await redisMessagesPerEvent(d, meter.counts, n);
  closeAll(subs);
  pub.close();
  return { ...result, ...meter.cost!, redisMessagesPerEvent: perEvent };
}

/**
 * Per node: the events it took from Redis (its engine's `received` in /stats) per event its
 * subscribers got, over the whole run; 1 when an event crosses Redis once per interested node.
 * Empty for 1 node (the memory engine receives nothing).
 */
async function redisMessagesPerEvent(d: Deployment, counts: number[], n: number): Promise<number[]> {
  if (d.redis === undefined) return [];
  return Promise.all(
    d.nodes.map(async (node, k) => {
      const stats = (await (await fetch(`${node.url.replace(/^ws/, 'http').replace(/\/$/, '')}/stats`)).json()) as { engine?: { received?: number } };
      const subscribers = Math.floor(n / d.nodes.length) + (k < n % d.nodes.length ? 1 : 0);
      const events = counts[k]! / subscribers;
      return Math.round(((stats.engine?.received ?? NaN) / events) * 1000) / 1000;
    }),
  );
}

/**
 * W7 latency: W2 (`rate` publishes/s on node 1, `n` subscribers of one channel) over the
 * deployment's nodes, after 1 s at the same rate that is not recorded (both setups alike: the
 * first second of a fresh process is its JIT compiling the path, Redis client included).
 */
export async function latencyNodes(d: Deployment, n: number, rate: number, s: Settings): Promise<Latency & Cost> {
  const pub = await publisher(d.nodes[0]!, false);
  const send = (_i: number, payload: Buffer): void => pub.send(pub.frame('bench.latency', payload));
  let loop = new OpenLoop(send, rate, n, 1);
  const meter = new Meter(d);
  const subs = await openMany(n, 200, (i) => {
    const k = nodeOf(d, i);
    return subscriber(d.nodes[k]!, ['bench.latency'], (data, events) => {
      meter.counts[k]! += events;
      loop.record(data);
    });
  });
  await loop.run();
  loop = new OpenLoop(send, rate, n, s.seconds);
  const result = await loop.run(meter);
  closeAll(subs);
  pub.close();
  return { ...result, ...meter.cost! };
}
