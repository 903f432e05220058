// `pnpm bench`: the workloads against crier and, in the same run, a reference: the naive `ws`
// broadcast server (W1-W5), raw clients (W6), 1 crier node with the memory engine (W7: 2 nodes on
// one Redis). Prints a table and writes bench/results/latest.json. Targets are shown, not asserted.
//
//   node bench/dist/run.js [--seconds 5] [--only W1,W4] [--quick] [--w7-layout shared|spread|none]
import { parseArgs } from 'node:util';
import { cpus, loadavg, totalmem } from 'node:os';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { hasTaskset, pinSelf } from './processes.js';
import { startCrier, startNaive, type BenchServer } from './servers.js';
import * as w from './workloads.js';
import type { Throughput } from './measure.js';
import { deploy, fanoutNodes, latencyNodes, layouts, type Deployment, type Layout } from './multinode.js';
import { redisAvailable } from './redis-server.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'w7-layout': { type: 'string', default: 'shared' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(
    'usage: pnpm bench [--seconds N] [--only W1,W2,...] [--quick] [--w7-layout shared|spread|none]\n' +
      '  --quick: 2 s per measurement and 2,000 idle connections in W4\n' +
      '  --w7-layout: where W7 runs its 2 nodes and redis-server:\n' +
      Object.values(layouts).map((l) => `    ${l.name.padEnd(7)} ${l.text}${l.name === 'shared' ? ' (default)' : ''}`).join('\n'),
  );
  process.exit(0);
}
const w7layout: Layout | undefined = layouts[values['w7-layout']];
if (w7layout === undefined) {
  console.error(`--w7-layout: one of ${Object.keys(layouts).join(', ')}`);
  process.exit(2);
}
const settings: w.Settings = { seconds: values.quick ? 2 : Number(values.seconds) };
const only = values.only ? new Set(values.only.toUpperCase().split(',')) : undefined;
const wants = (id: string): boolean => !only || only.has(id);

interface Row {
  workload: string;
  metric: string;
  crier: number;
  reference: number | undefined;
  referenceName: string;
  target: string;
  met: boolean | undefined;
}
const rows: Row[] = [];
const details: Record<string, unknown> = {};

/**
 * Every crier the workloads start. They measure the path, not the limits: one publisher here makes
 * far more than the default publishRate (10,000/s per connection), so the rate is lifted out of
 * the way (W6 once ran without it, and its SDK figure was that limit: ~10,000 events/s).
 */
const CRIER_ARGS = ['--max-channels', '1000', '--buffer-size', '4000', '--publish-rate', '1000000000'];

/** Runs `fn` against a fresh server of each kind, one after the other (never both at once). */
async function both<T>(fn: (server: BenchServer) => Promise<T>, crierArgs: string[] = []): Promise<{ crier: T; naive: T }> {
  const naiveServer = await startNaive();
  let naive: T;
  try {
    naive = await fn(naiveServer);
  } finally {
    await naiveServer.stop();
  }
  // The naive server can leave this process with seconds of backlog to chew through (W2 at 500k):
  // collect that garbage now, so it does not pause the load generator while crier is measured.
  settle();
  const crierServer = await startCrier([...CRIER_ARGS, ...crierArgs]);
  try {
    return { crier: await fn(crierServer), naive };
  } finally {
    await crierServer.stop();
  }
}

/** Runs `fn` against 1 crier node (memory engine), then 2 nodes on a fresh redis-server; each deployment fresh. */
async function oneAndTwo<T>(layout: Layout, fn: (d: Deployment) => Promise<T>): Promise<{ one: T; two: T }> {
  const run = async (count: 1 | 2): Promise<T> => {
    settle();
    const d = await deploy(count, layout, CRIER_ARGS);
    try {
      return await fn(d);
    } finally {
      await d.stop();
    }
  };
  const one = await run(1);
  return { one, two: await run(2) };
}

/** A full garbage collection of the load generator, when run with --expose-gc (`npm run bench` does). */
function settle(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function add(row: Omit<Row, 'referenceName'> & { referenceName?: string }): void {
  rows.push({ referenceName: 'naive ws', ...row });
  const r = rows.at(-1)!;
  const ratio = r.reference ? ` (${(r.crier / r.reference).toFixed(2)}× ${r.referenceName})` : '';
  console.error(`  ${r.workload} ${r.metric}: crier ${fmt(r.crier)}${r.reference !== undefined ? `, ${r.referenceName} ${fmt(r.reference)}` : ''}${ratio}`);
}

/** Who was busy in a closed loop: the server, or the load generator (one core each). */
function cpuLine(label: string, r: { crier: Throughput | undefined; naive: Throughput | undefined }): void {
  const one = (name: string, t: Throughput | undefined): string =>
    t?.cpu === undefined ? '' : `${name}: server ${pct(t.cpu.server)}, load generator ${pct(t.cpu.loadGenerator)} of a core, server ${fmt(t.cpu.serverNsPerDelivery)} ns/delivery`;
  console.error(`    ${label} CPU: ${[one('crier', r.crier), one('naive', r.naive)].filter(Boolean).join('; ')}`);
}
const pct = (x: number): string => `${Math.round(x * 100)}%`;

/** A row of the servers' CPU per delivery over the measured window (lower is cheaper). */
function cpuRow(workload: string, r: { crier: Throughput; naive: Throughput }): void {
  if (r.crier.cpu === undefined || r.naive.cpu === undefined) return;
  add({ workload, metric: 'server CPU ns/delivery', crier: r.crier.cpu.serverNsPerDelivery, reference: r.naive.cpu.serverNsPerDelivery, target: '', met: undefined });
}

/** The CPU's model name: /proc/cpuinfo's, else what Node reports. */
function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1]!.trim();
  } catch {
    // not Linux
  }
  return cpus()[0]?.model ?? 'unknown CPU';
}

const fmt = (x: number): string => (Number.isInteger(x) ? x.toLocaleString('en-US') : x.toFixed(2));

pinSelf(1);
const started = Date.now();
/** The machine, printed above the table and kept in latest.json: figures mean little without it. */
const machine = {
  cpuModel: cpuModel(),
  cores: cpus().length,
  node: process.version,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  // The bench shares the machine with whatever else runs: the load average says how much did.
  loadAverageAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
};
const machineLine = `${machine.cores} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, node ${machine.node}, ${settings.seconds} s per measurement, ` +
  (hasTaskset ? 'servers pinned to cpu 0 and the load generator to cpu 1' : 'no taskset: processes not pinned');
console.error(`crier bench: ${machineLine}; load average ${machine.loadAverageAtStart.join(' ')}`);

if (wants('W1')) {
  for (const n of [100, 1000]) {
    console.error(`W1 fan-out, ${n} subscribers…`);
    const r = await both((s) => w.fanout(s, n, settings));
    details[`W1-${n}`] = r;
    add({
      workload: `W1 fan-out ×${n}`,
      metric: 'deliveries/s',
      crier: r.crier.deliveriesPerSecond,
      reference: r.naive.deliveriesPerSecond,
      target: n === 1000 ? '≥ 5× naive and ≥ 1,000,000' : '',
      met: n === 1000 ? r.crier.deliveriesPerSecond >= 5 * r.naive.deliveriesPerSecond && r.crier.deliveriesPerSecond >= 1_000_000 : undefined,
    });
    cpuLine(`W1 ×${n}`, r);
    cpuRow(`W1 fan-out ×${n}`, r);
    add({ workload: `W1 fan-out ×${n}`, metric: 'loss', crier: r.crier.loss, reference: r.naive.loss, target: '0', met: r.crier.loss === 0 });
  }
}

if (wants('W2')) {
  for (const rate of [1000, 5000]) {
    console.error(`W2 latency, 100 subscribers at ${rate} publishes/s…`);
    const r = await both((s) => w.latency(s, 100, rate, settings));
    details[`W2-${rate}`] = r;
    for (const q of ['p50', 'p99', 'p999', 'max'] as const) {
      const target = q === 'p99' ? (rate === 1000 ? '≤ 1.0× naive' : '< 10 ms') : '';
      const met = q !== 'p99' ? undefined : rate === 1000 ? r.crier.p99 <= r.naive.p99 : r.crier.p99 < 10;
      add({ workload: `W2 latency ${rate * 100 / 1000}k deliveries/s`, metric: `${q} ms`, crier: round2(r.crier[q]), reference: round2(r.naive[q]), target, met });
    }
    add({ workload: `W2 latency ${rate * 100 / 1000}k deliveries/s`, metric: 'loss', crier: r.crier.loss, reference: r.naive.loss, target: '0', met: r.crier.loss === 0 });
  }
}

if (wants('W3')) {
  // Three rounds (one with --quick), each naive then crier back to back, and the table shows the
  // round whose ratio is the median: one round's ratio swung 0.73-1.01x on an idle machine here.
  const rounds = values.quick ? 1 : 3;
  const all: { crier: Throughput; naive: Throughput }[] = [];
  for (let round = 1; round <= rounds; round++) {
    console.error(`W3 many channels, 1000 subscribers on their own channels, round ${round}/${rounds}…`);
    all.push(await both((s) => w.manyChannels(s, 1000, settings)));
  }
  const ratio = (x: { crier: Throughput; naive: Throughput }): number => x.crier.deliveriesPerSecond / x.naive.deliveriesPerSecond;
  const r = [...all].sort((a, b) => ratio(a) - ratio(b))[all.length >> 1]!;
  details['W3-channels'] = { ...r, rounds: all.map((x) => ({ crier: x.crier.deliveriesPerSecond, naive: x.naive.deliveriesPerSecond })) };
  add({
    workload: 'W3 1000 channels',
    metric: `deliveries/s (median round of ${rounds})`,
    crier: r.crier.deliveriesPerSecond,
    reference: r.naive.deliveriesPerSecond,
    target: '≥ 1.0× naive',
    met: r.crier.deliveriesPerSecond >= r.naive.deliveriesPerSecond,
  });
  // A closed loop runs at the pace of its slower side: the servers' CPU per delivery says which
  // costs more whoever is the bottleneck (the load generator, on one core, often is).
  cpuRow('W3 1000 channels', r);
  cpuLine('W3 1000 channels', r);
  const wild: Record<number, { crier: number; naive: number }> = {};
  for (const patterns of [10, 10_000]) {
    console.error(`W3 wildcard, ${patterns} patterns…`);
    const x = await both((s) => w.wildcard(s, patterns, settings));
    details[`W3-wildcard-${patterns}`] = x;
    cpuLine(`W3 wildcard ${patterns}`, x);
    wild[patterns] = { crier: x.crier.deliveriesPerSecond, naive: x.naive.deliveriesPerSecond };
    add({
      workload: `W3 wildcard, ${patterns.toLocaleString('en-US')} patterns`,
      metric: 'deliveries/s',
      crier: x.crier.deliveriesPerSecond,
      reference: x.naive.deliveriesPerSecond,
      referenceName: 'naive linear scan',
      target: patterns === 10_000 ? '≥ 0.8× crier at 10 patterns' : '',
      met: patterns === 10_000 ? x.crier.deliveriesPerSecond >= 0.8 * wild[10]!.crier : undefined,
    });
  }
}

if (wants('W4')) {
  const n = values.quick ? 2000 : 10_000;
  console.error(`W4 memory, ${n} idle connections…`);
  const r = await both((s) => w.idleMemory(s, n));
  details['W4'] = r;
  add({ workload: `W4 ${n.toLocaleString('en-US')} idle connections`, metric: 'RSS KB/conn', crier: r.crier.rssPerConnectionKB, reference: r.naive.rssPerConnectionKB, target: '≤ 8 KB', met: r.crier.rssPerConnectionKB <= 8 });
  add({ workload: `W4 ${n.toLocaleString('en-US')} idle connections`, metric: 'heap KB/conn', crier: r.crier.heapPerConnectionKB, reference: r.naive.heapPerConnectionKB, target: '', met: undefined });
}

if (wants('W5')) {
  console.error('W5 publish path…');
  const r = await both((s) => w.publishPath(s, settings));
  details['W5'] = r;
  add({ workload: 'W5 publish, one client', metric: 'acked/s (100 in flight)', crier: r.crier.ackedPerSecond, reference: r.naive.ackedPerSecond, target: '', met: undefined });
  add({ workload: 'W5 publish, one client', metric: 'fire-and-forget/s', crier: r.crier.fireAndForgetPerSecond, reference: r.naive.fireAndForgetPerSecond, target: '', met: undefined });
}

/** Runs `fn` against a fresh crier (as W1 gets one), stopped after. */
async function onFreshCrier<T>(fn: (server: BenchServer) => Promise<T>): Promise<T> {
  settle();
  const server = await startCrier(CRIER_ARGS);
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

if (wants('W6')) {
  // The reference is W1 ×100 with raw clients, measured by W6 itself, alternating with the SDK
  // (raw, sdk, raw, sdk, …) and compared median to median: on this kind of machine one raw
  // figure swings 2× from run to run, and a ratio of two lone figures swung with it (0.35× to
  // 0.83× in back-to-back runs of one build).
  // Both with 3,000 events in flight, not W1's 1,000: at 1,000 the SDK's run was bound by the
  // loop's window (its process idle a fifth of the time; the SDK at 1.2-1.4 M deliveries/s in
  // three rounds), at 3,000 it reaches 1.4-2.9 M (nine rounds): W6 asks what an SDK subscriber
  // can take, so neither side may wait on the window. Within the bench's --buffer-size 4000:
  // nothing is dropped.
  const window = 3000;
  const rounds = values.quick ? 1 : 3;
  const raw: number[] = [];
  const sdk: number[] = [];
  for (let round = 1; round <= rounds; round++) {
    console.error(`W6 round ${round}/${rounds}: raw clients, then sdk-node subscribers, 100 each…`);
    raw.push((await onFreshCrier((server) => w.fanout(server, 100, settings, window))).deliveriesPerSecond);
    sdk.push((await onFreshCrier((server) => w.sdkFanout(server, 100, settings, window))).deliveriesPerSecond);
  }
  const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;
  details['W6'] = { rounds: raw.map((r, i) => ({ raw: r, sdk: sdk[i] })), raw: median(raw), sdk: median(sdk) };
  add({
    workload: 'W6 sdk-node fan-out ×100',
    metric: `deliveries/s (median of ${rounds})`,
    crier: median(sdk),
    reference: median(raw),
    referenceName: 'raw clients, alternating',
    target: '≥ 0.5× raw clients',
    met: median(sdk) >= median(raw) / 2,
  });
}

if (wants('W7')) {
  const layout = w7layout;
  const where = hasTaskset || layout.name === 'none' ? layout.text : 'no taskset: nothing pinned';
  if (!redisAvailable()) {
    console.error('W7 skipped: redis-server is not installed (bash e2e/scripts/ensure-redis.sh installs it)');
  } else {
    console.error(`W7 2 nodes + Redis vs 1 node (memory engine); --w7-layout ${layout.name}: ${where}`);
    details['W7-layout'] = { name: layout.name, text: where };
    pinSelf(layout.loadGenerator);
    try {
      await multiNode(layout);
    } finally {
      pinSelf(1);
    }
  }
}

/** W7: W1's fan-out and W2's latency on 2 nodes + Redis, 1 node (memory engine) the reference. */
async function multiNode(layout: Layout): Promise<void> {
  const ref = { referenceName: '1 node, memory', target: '', met: undefined };
  for (const n of [100, 1000]) {
    console.error(`W7 fan-out, ${n} subscribers over 2 nodes + Redis, and on 1 node…`);
    const r = await oneAndTwo(layout, (d) => fanoutNodes(d, n, settings));
    details[`W7-fanout-${n}`] = r;
    const workload = `W7 2 nodes + Redis, fan-out ×${n}`;
    add({ ...ref, workload, metric: 'deliveries/s', crier: r.two.deliveriesPerSecond, reference: r.one.deliveriesPerSecond });
    add({
      ...ref,
      workload,
      metric: 'node CPU ns/delivery (both nodes)',
      crier: r.two.ns.nodes,
      reference: r.one.ns.nodes,
      target: '< 2× 1 node',
      met: r.two.ns.nodes < 2 * r.one.ns.nodes,
    });
    add({ ...ref, workload, metric: 'node CPU ns/delivery, node 1 (publisher)', crier: r.two.ns.perNode[0]!, reference: r.one.ns.nodes });
    add({ ...ref, workload, metric: 'node CPU ns/delivery, node 2', crier: r.two.ns.perNode[1]!, reference: r.one.ns.nodes });
    add({ ...ref, workload, metric: 'redis-server CPU ns/delivery', crier: r.two.ns.redis, reference: undefined });
    add({ ...ref, workload, metric: 'server CPU ns/delivery (nodes + Redis)', crier: r.two.ns.servers, reference: r.one.ns.servers });
    add({
      ...ref,
      workload,
      metric: 'messages from Redis per event, each node',
      crier: Math.max(...r.two.redisMessagesPerEvent),
      reference: undefined,
      target: '1 per node (not per subscriber)',
      met: r.two.redisMessagesPerEvent.every((x) => x === 1),
    });
    add({ ...ref, workload, metric: 'loss', crier: r.two.loss, reference: r.one.loss, target: '0', met: r.two.loss === 0 });
  }
  console.error('W7 latency, 100 subscribers over 2 nodes + Redis, and on 1 node, 1000 publishes/s…');
  const r = await oneAndTwo(layout, (d) => latencyNodes(d, 100, 1000, settings));
  details['W7-latency'] = r;
  const workload = 'W7 2 nodes + Redis, latency 100k deliveries/s';
  for (const q of ['p50', 'p99', 'p999', 'max'] as const) {
    const target = q === 'p99' ? '< 10 ms' : '';
    add({ ...ref, workload, metric: `${q} ms`, crier: round2(r.two[q]), reference: round2(r.one[q]), target, met: q === 'p99' ? r.two.p99 < 10 : undefined });
  }
  // The same load on both setups: the cost per delivery without the closed loop's batching differences.
  add({ ...ref, workload, metric: 'node CPU ns/delivery (both nodes)', crier: r.two.ns.nodes, reference: r.one.ns.nodes, target: '< 2× 1 node', met: r.two.ns.nodes < 2 * r.one.ns.nodes });
  add({ ...ref, workload, metric: 'redis-server CPU ns/delivery', crier: r.two.ns.redis, reference: undefined });
  add({ ...ref, workload, metric: 'loss', crier: r.two.loss, reference: r.one.loss, target: '0', met: r.two.loss === 0 });
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

// The table (stdout), then the JSON file.
const header = ['workload', 'metric', 'crier', 'reference', 'ratio', 'target', 'met'];
const body = rows.map((r) => [
  r.workload,
  r.metric,
  fmt(r.crier),
  r.reference === undefined ? '' : `${fmt(r.reference)} (${r.referenceName})`,
  r.reference ? `${(r.crier / r.reference).toFixed(2)}×` : '',
  r.target,
  r.met === undefined ? '' : r.met ? 'yes' : 'NO',
]);
const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
console.log(`crier bench on ${machineLine}`);
console.log(`load average at start ${machine.loadAverageAtStart.join(' ')}, at end ${loadavg().map((x) => x.toFixed(2)).join(' ')} (other work on the machine skews the figures)\n`);
console.log(line(header));
console.log(`|${widths.map((n) => '-'.repeat(n + 2)).join('|')}|`);
for (const b of body) console.log(line(b));
console.log(`\n${((Date.now() - started) / 1000).toFixed(0)} s; ${machine.cores} × ${machine.cpuModel}; node ${process.version}`);
if (details['W7-layout'] !== undefined) console.log(`W7: 2 nodes + Redis; the reference, 1 node with the memory engine. --w7-layout ${w7layout.name}: ${(details['W7-layout'] as { text: string }).text}`);

const dir = fileURLToPath(new URL('../results/', import.meta.url));
mkdirSync(dir, { recursive: true });
writeFileSync(
  `${dir}latest.json`,
  JSON.stringify({ date: new Date().toISOString(), node: process.version, cpu: machine.cpuModel, machine: { ...machine, loadAverageAtEnd: loadavg() }, settings, rows, details }, null, 2),
);
process.exit(0);
