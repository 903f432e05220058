// Resume latency: a stream subscribed to `r.>` drops (its socket terminated), `--missed` events are
// published meanwhile over `--channels` channels, then it reconnects with its uuid, secret and last
// stream position. Measured: from the new socket's `open` call to the last replayed event, and
// from the hello to the welcome. The broker runs in its own process (as in `npm run bench`).
//   node bench/dist/resume.js [--missed 1000] [--channels 10] [--runs 7]
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { FrameType, PROTOCOL_VERSION, decodeFrames, encodeFrame, limitsForPayload, type Frame, type WelcomeFrame } from '@crier/protocol';
import { open } from './clients.js';
import { startCrier } from './servers.js';

const { values } = parseArgs({
  options: { missed: { type: 'string', default: '1000' }, channels: { type: 'string', default: '10' }, runs: { type: 'string', default: '7' } },
});
const missed = Number(values.missed);
const channels = Number(values.channels);
const runs = Number(values.runs);
const LIMITS = limitsForPayload(1 << 20);

/** A socket that records every frame and wakes waiters on each message. */
class Peer {
  readonly frames: Frame[] = [];
  private wake: (() => void) | undefined;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      decodeFrames(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), LIMITS, (f) => this.frames.push(f));
      this.wake?.();
    });
  }
  async until<T>(find: () => T | undefined): Promise<T> {
    for (;;) {
      const found = find();
      if (found !== undefined) return found;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
  events(): number {
    return this.frames.filter((f) => f.t === FrameType.event).length;
  }
}

const server = await startCrier(['--history-size', String(Math.max(100, missed)), '--history-bytes', '64MiB']);
const base = server.url.replace(/^ws/, 'http').replace(/\/$/, '');
const parked = async (): Promise<number> => ((await (await fetch(`${base}/stats`)).json()) as { sessions: { parked: number } }).sessions.parked;
const samples: { total: number; welcome: number; replayed: number }[] = [];
const publisher = new Peer(await open(server.url));
publisher.ws.send(encodeFrame({ t: FrameType.hello, v: PROTOCOL_VERSION }));
await publisher.until(() => publisher.frames.find((f) => f.t === FrameType.welcome));
const payload = Buffer.from(JSON.stringify({ id: 42, status: 'shipped', note: 'x'.repeat(80) }));

for (let run = 0; run < runs; run++) {
  const stream = new Peer(await open(server.url));
  stream.ws.send(encodeFrame({ t: FrameType.hello, v: PROTOCOL_VERSION }));
  const welcome = (await stream.until(() => stream.frames.find((f) => f.t === FrameType.welcome))) as WelcomeFrame;
  stream.ws.send(encodeFrame({ t: FrameType.subscribe, r: 1, p: 'r.>' }));
  await stream.until(() => stream.frames.find((f) => f.t === FrameType.ack));
  const before = await parked();
  stream.ws.terminate();
  while ((await parked()) <= before) await new Promise((resolve) => setTimeout(resolve, 5)); // a bench may poll
  // Published and acked while the stream is away.
  for (let i = 0; i < missed; i++) publisher.ws.send(encodeFrame({ t: FrameType.publish, r: 2 + i, c: `r.c${i % channels}`, d: payload }));
  const acks = publisher.frames.length + missed;
  await publisher.until(() => (publisher.frames.length >= acks ? true : undefined));

  const t0 = performance.now();
  const back = new Peer(new WebSocket(server.url, { perMessageDeflate: false }));
  await new Promise((resolve) => back.ws.once('open', resolve));
  const hello = performance.now();
  back.ws.send(encodeFrame({ t: FrameType.hello, v: PROTOCOL_VERSION, u: welcome.u, s: welcome.s, rp: { e: welcome.ep!, s: 0 } }));
  const resumed = (await back.until(() => back.frames.find((f) => f.t === FrameType.welcome))) as WelcomeFrame;
  const welcomed = performance.now();
  await back.until(() => (back.events() >= missed ? true : undefined));
  const done = performance.now();
  if (resumed.rs?.n !== missed || resumed.rs.why !== undefined) throw new Error(`run ${run}: resume said ${JSON.stringify(resumed.rs)}`);
  samples.push({ total: done - t0, welcome: welcomed - hello, replayed: done - welcomed });
  back.ws.terminate();
  publisher.frames.length = 0;
}
publisher.ws.terminate();
await server.stop();

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (xs: number[]): string => `median ${median(xs).toFixed(1)} ms (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)})`;
console.log(`resume of ${missed} missed events over ${channels} channels (${payload.length} B each), ${runs} runs:`);
console.log(`  reconnect to last replayed event: ${fmt(samples.map((s) => s.total))}`);
console.log(`  hello to welcome (restore + read history): ${fmt(samples.map((s) => s.welcome))}`);
console.log(`  welcome to last replayed event: ${fmt(samples.map((s) => s.replayed))}`);
