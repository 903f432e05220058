// What hostile input costs (issue 9): the worst messages we know how to build, with the figure
// each must hold. Not part of `npm run bench`'s table: run it on its own.
//
//   node bench/dist/hostile-cost.js [--only decode,broker,http,stats] [--protocol <dir>/index.js]
//
// decode: ms and bytes allocated to decode one 1 MiB message (target < 10 ms and < 4 MiB per
//         message beyond what its frames legitimately are). --protocol points at another build of
//         @crier/protocol (an older one, to compare).
// broker: 14 such messages sent to a broker after hello: its RSS and another client's ping time.
// http:   a 1 MB HTTP publish in one-byte chunks (1, then 4 in parallel): the broker's RSS growth
//         (target ≤ 2× the body cap per request); 50 oversize chunked bodies: how many got 413.
// stats:  /stats after publishes to 100,000 channels: ms per request, alone and 20 at once.
import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import * as current from '@crier/protocol';
import { startCrier, type BenchServer } from './servers.js';

type Protocol = Pick<typeof current, 'decodeFrames' | 'encodeFrame' | 'DEFAULT_DECODE_LIMITS' | 'FrameType'> &
  Partial<Pick<typeof current, 'decodeUntrustedFrames'>>;

// One decode must not be cut short by a scavenge: a young generation large enough for the old
// decoder's ~80 MiB, and gc() to start each measurement clean.
const NODE_FLAGS = ['--expose-gc', '--min-semi-space-size=256', '--max-semi-space-size=256'];
if (!process.execArgv.includes('--expose-gc')) {
  const child = spawnSync(process.execPath, [...NODE_FLAGS, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(child.status ?? 1);
}

const { values } = parseArgs({ options: { only: { type: 'string' }, protocol: { type: 'string' } } });
const only = values.only ? new Set(values.only.split(',')) : undefined;
const gc = (globalThis as { gc?: () => void }).gc!;
const MiB = 1024 * 1024;
const fmtMiB = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

// ---- messages -------------------------------------------------------------------------------

function cat(parts: (number[] | Uint8Array)[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
const text = (s: string): number[] => [...new TextEncoder().encode(s)];
const str = (s: string): number[] => [0xa0 | s.length, ...text(s)];

/** The finding's message: an array of 1,024 arrays of 1,024 empty maps. */
function grid(): Uint8Array {
  const row = [0xdc, 0x04, 0x00, ...new Array<number>(1024).fill(0x80)];
  return cat([[0xdc, 0x04, 0x00], ...new Array<number[]>(1024).fill(row)]);
}

/** Frames repeated up to ~1 MiB. */
function fill(frame: Uint8Array, bytes = MiB): Uint8Array {
  return cat(new Array<Uint8Array>(Math.floor(bytes / frame.length)).fill(frame));
}

function messages(p: Protocol): [string, Uint8Array][] {
  const T = p.FrameType;
  const labels1000 = cat([[0xdc, 0x03, 0xe8], ...new Array<number[]>(1000).fill(str('ab'))]);
  const pairs680 = cat([[0xdc, 0x02, 0xa8], ...new Array<number[]>(680).fill([0x92, ...str('ab'), 1])]);
  const keys1000 = cat([[0x81, ...str('k'), 0xdc, 0x03, 0xe8], ...new Array<number[]>(1000).fill(str('ab'))]);
  const event = p.encodeFrame({ t: T.event, c: 'user.created', d: new Uint8Array(40), id: 'abcdefghij-1a2b', o: 12345, e: 'abcdefghij.0', ts: Date.now() });
  return [
    ['finding: 1024 × 1024 empty maps (not a map)', grid()],
    ['ping with that in an unknown field', cat([[0x82, ...str('t'), T.ping, ...str('junk')], grid()])],
    ['publish with that in field c', cat([[0x83, ...str('t'), T.publish, ...str('d'), 0xc4, 0, ...str('c')], grid()])],
    ['1 MiB of pings (262,144 frames)', fill(p.encodeFrame({ t: T.ping }))],
    ['1 MiB of publishes with 1,000 labels each', fill(cat([[0x84, ...str('t'), T.publish, ...str('c'), ...str('a'), ...str('d'), 0xc4, 0, ...str('l')], labels1000]))],
    ['1 MiB of dropped with 680 pairs each', fill(cat([[0x83, ...str('t'), T.dropped, ...str('n'), 1, ...str('c')], pairs680]))],
    ['1 MiB of subscribes with 1,000 filter keys', fill(cat([[0x84, ...str('t'), T.subscribe, ...str('r'), 1, ...str('p'), ...str('a'), ...str('f')], keys1000]))],
    ['legit: 1 MiB of 100-byte event frames', fill(event)],
    ['legit: one publish of 1 MiB of data', p.encodeFrame({ t: T.publish, r: 1, c: 'a.b', d: new Uint8Array(MiB) })],
  ];
}

/** ms (median of runs) and bytes allocated by one decode of `bytes`. */
function measureDecode(p: Protocol, bytes: Uint8Array): { ms: number; allocated: number; frames: number; error: string } {
  let frames = 0;
  let error = '';
  const visit = (): void => void frames++;
  const once = (): void => {
    frames = 0;
    try {
      // The broker's path (hardened, for bytes from clients); an older build had only decodeFrames.
      (p.decodeUntrustedFrames ?? p.decodeFrames)(bytes, p.DEFAULT_DECODE_LIMITS, visit);
    } catch (err) {
      error = (err as Error).message.slice(0, 60);
    }
  };
  once(); // warm up
  gc();
  const before = process.memoryUsage().heapUsed;
  once();
  const allocated = process.memoryUsage().heapUsed - before;
  const times: number[] = [];
  for (let i = 0; i < 15; i++) {
    gc();
    const t0 = performance.now();
    once();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { ms: times[7]!, allocated, frames, error };
}

async function decodeSection(): Promise<void> {
  const p = (values.protocol ? await import(values.protocol) : current) as Protocol;
  console.log(`\n## decode: one message through the broker's decoder, decodeUntrustedFrames (${values.protocol ?? '@crier/protocol'})\n`);
  console.log('| message | bytes | frames | ms | allocated | outcome |\n|---|---|---|---|---|---|');
  for (const [name, bytes] of messages(p)) {
    const m = measureDecode(p, bytes);
    console.log(`| ${name} | ${bytes.length.toLocaleString('en-US')} | ${m.frames.toLocaleString('en-US')} | ${m.ms.toFixed(2)} | ${fmtMiB(m.allocated)} | ${m.error || 'decoded'} |`);
  }
}

// ---- broker ---------------------------------------------------------------------------------

function httpBase(server: BenchServer): string {
  return server.url.replace(/^ws/, 'http').replace(/\/$/, '');
}

async function openClient(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.on('error', () => {});
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('close', reject);
  });
  ws.send(current.encodeFrame({ t: current.FrameType.hello, v: current.PROTOCOL_VERSION }));
  await new Promise((resolve) => ws.once('message', resolve));
  return ws;
}

/** ms from a ping to its pong on `ws`. */
function pingTime(ws: WebSocket): Promise<number> {
  const t0 = performance.now();
  ws.send(current.encodeFrame({ t: current.FrameType.ping }));
  return new Promise((resolve) => ws.once('message', () => resolve(performance.now() - t0)));
}

async function brokerSection(): Promise<void> {
  console.log('\n## broker: 14 finding messages after hello, another client pinging\n');
  const server = await startCrier();
  try {
    const attacker = await openClient(server.url);
    const victim = await openClient(server.url);
    const rss0 = server.rss();
    const bytes = grid();
    let peak = rss0;
    const sampler = setInterval(() => (peak = Math.max(peak, server.rss())), 10);
    for (let i = 0; i < 14; i++) attacker.send(bytes);
    let worst = 0;
    for (let i = 0; i < 20; i++) worst = Math.max(worst, await pingTime(victim));
    clearInterval(sampler);
    console.log(`broker RSS ${fmtMiB(rss0)} → peak ${fmtMiB(peak)}; worst ping of the other client ${worst.toFixed(1)} ms`);
    attacker.terminate();
    victim.terminate();
  } finally {
    await server.stop();
  }
}

// ---- http -----------------------------------------------------------------------------------

/** POSTs `size` bytes in chunks of `chunk` bytes (chunked encoding); resolves with the status line or error. */
function chunkedPost(server: BenchServer, size: number, chunk: number): Promise<string> {
  const { hostname, port } = new URL(httpBase(server));
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(answer ? answer.split('\r\n')[0]! : err.code ?? err.message));
    socket.on('close', () => resolve(answer ? answer.split('\r\n')[0]! : 'closed without an answer'));
    socket.write('POST /publish/bench.http HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
    const piece = `${chunk.toString(16)}\r\n${'x'.repeat(chunk)}\r\n`;
    const perBlock = Math.max(1, Math.floor(65536 / piece.length));
    let sent = 0;
    const writeMore = (): void => {
      while (sent < size) {
        const n = Math.min(perBlock, Math.ceil((size - sent) / chunk));
        sent += n * chunk;
        if (!socket.write(piece.repeat(n))) return void socket.once('drain', writeMore);
      }
      socket.end('0\r\n\r\n');
    };
    writeMore();
  });
}

async function httpSection(): Promise<void> {
  console.log('\n## http: 1 MB published in one-byte chunks (body cap 1 MiB)\n');
  for (const parallel of [1, 4]) {
    const server = await startCrier();
    try {
      const rss0 = server.rss();
      let peak = rss0;
      const sampler = setInterval(() => (peak = Math.max(peak, server.rss())), 10);
      const t0 = performance.now();
      const answers = await Promise.all(Array.from({ length: parallel }, () => chunkedPost(server, 1_000_000, 1)));
      clearInterval(sampler);
      console.log(`${parallel} request(s): ${[...new Set(answers)].join(', ')} in ${((performance.now() - t0) / 1000).toFixed(1)} s; ` +
        `broker RSS ${fmtMiB(rss0)} → peak ${fmtMiB(peak)} (+${fmtMiB(peak - rss0)}, ${fmtMiB((peak - rss0) / parallel)} per request)`);
    } finally {
      await server.stop();
    }
  }
  console.log('\n## http: 50 clients sending 4 MiB chunked bodies past the cap\n');
  const server = await startCrier();
  try {
    const answers = await Promise.all(Array.from({ length: 50 }, () => chunkedPost(server, 4 * MiB, 16 * 1024)));
    const counts = new Map<string, number>();
    for (const a of answers) counts.set(a, (counts.get(a) ?? 0) + 1);
    console.log([...counts].map(([a, n]) => `${n} × ${a}`).join('; '));
  } finally {
    await server.stop();
  }
}

// ---- stats ----------------------------------------------------------------------------------

async function statsSection(): Promise<void> {
  console.log('\n## stats: after publishes to 100,000 distinct channels\n');
  const server = await startCrier();
  try {
    const ws = await openClient(server.url);
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 100_000; i++) frames.push(current.encodeFrame({ t: current.FrameType.publish, c: `ch.${i}`, d: new Uint8Array(1) }));
    for (let i = 0; i < frames.length; i += 1000) ws.send(cat(frames.slice(i, i + 1000)));
    const base = httpBase(server);
    const stats = async (query = ''): Promise<{ channelCounters: number }> =>
      (await (await fetch(`${base}/stats${query}`)).json()) as { channelCounters: number };
    while ((await stats()).channelCounters < 100_000) await new Promise((r) => setTimeout(r, 50));
    const time = async (n: number, query: string): Promise<number> => {
      const t0 = performance.now();
      await Promise.all(Array.from({ length: n }, () => stats(query)));
      return performance.now() - t0;
    };
    await new Promise((r) => setTimeout(r, 1100)); // past any cache window: the next request computes
    console.log(`GET /stats?channels=100, first after the cache window: ${(await time(1, '?channels=100')).toFixed(1)} ms`);
    console.log(`GET /stats?channels=100 again: ${(await time(1, '?channels=100')).toFixed(1)} ms`);
    console.log(`20 × GET /stats?channels=100 at once: ${(await time(20, '?channels=100')).toFixed(1)} ms`);
    console.log(`GET /stats: ${(await time(1, '')).toFixed(1)} ms`);
    await new Promise((r) => setTimeout(r, 1100));
    console.log(`20 × GET /stats at once, after the window: ${(await time(20, '')).toFixed(1)} ms`);
    ws.terminate();
  } finally {
    await server.stop();
  }
}

const sections: [string, () => Promise<void>][] = [['decode', decodeSection], ['broker', brokerSection], ['http', httpSection], ['stats', statsSection]];
for (const [name, run] of sections) if (!only || only.has(name)) await run();
