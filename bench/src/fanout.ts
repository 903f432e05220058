// Fan-out throughput: 1 publisher → N subscribers on one channel, 100-byte payloads, closed loop
// (at most `window` events in flight, freed by a sentinel subscriber), against crier and, in the
// same run, against a naive `ws` broadcast server (one send per subscriber per event).
//
//   node bench/dist/fanout.js [--subscribers 100] [--seconds 5] [--window 500]
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { mkdirSync, writeFileSync } from 'node:fs';
import WebSocket from 'ws';
import { FrameType, decodeFrame, encodeFrame } from '@crier/protocol';
import { hasTaskset, pinSelf, startServer } from './processes.js';

const { values } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '100' },
    seconds: { type: 'string', default: '5' },
    window: { type: 'string', default: '500' },
  },
});
const SUBSCRIBERS = Number(values.subscribers);
const SECONDS = Number(values.seconds);
const WINDOW = Number(values.window);
const CHANNEL = 'bench.fanout';
const payload = new Uint8Array(100).fill(42);

interface Result {
  server: string;
  deliveriesPerSecond: number;
  eventsPerSecond: number;
  loss: number;
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Sends `frame` and resolves with the next message (a crier handshake step). */
function request(ws: WebSocket, frame: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve) => {
    ws.once('message', (data: Buffer) => resolve(new Uint8Array(data)));
    ws.send(frame);
  });
}

async function crierClient(url: string, subscribe: boolean): Promise<WebSocket> {
  const ws = await open(url);
  await request(ws, encodeFrame({ t: FrameType.hello, v: 1 }));
  if (subscribe) {
    const ack = decodeFrame(await request(ws, encodeFrame({ t: FrameType.subscribe, r: 1, p: CHANNEL })));
    if (ack.t !== FrameType.ack) throw new Error(`subscribe failed: ${JSON.stringify(ack)}`);
  }
  return ws;
}

async function measure(name: string, subscribers: WebSocket[], publisher: WebSocket, frame: Uint8Array): Promise<Result> {
  const counts = new Array<number>(subscribers.length).fill(0);
  let sent = 0;
  let inFlight = 0;
  let running = true;
  const pump = (): void => {
    while (running && inFlight < WINDOW) {
      publisher.send(frame);
      sent++;
      inFlight++;
    }
  };
  subscribers.forEach((ws, i) => {
    const sentinel = i === subscribers.length - 1;
    ws.on('message', () => {
      counts[i]!++;
      if (sentinel) {
        inFlight--;
        if (inFlight <= WINDOW / 2) pump();
      }
    });
  });
  const total = (): number => counts.reduce((a, b) => a + b, 0);
  pump();
  await new Promise((r) => setTimeout(r, 1000)); // warm-up
  const start = performance.now();
  const before = total();
  const eventsBefore = counts.at(-1)!;
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const elapsed = (performance.now() - start) / 1000;
  const delivered = total() - before;
  const events = counts.at(-1)! - eventsBefore;
  running = false;
  // Drain: every subscriber should end with every event sent.
  const deadline = Date.now() + 10_000;
  while (total() < sent * subscribers.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return {
    server: name,
    deliveriesPerSecond: Math.round(delivered / elapsed),
    eventsPerSecond: Math.round(events / elapsed),
    loss: sent * subscribers.length - total(),
  };
}

async function benchCrier(): Promise<Result> {
  const cli = fileURLToPath(new URL('../../broker/dist/cli.js', import.meta.url));
  const server = await startServer(cli, ['--port', '0', '--host', '127.0.0.1', '--buffer-size', String(WINDOW * 4), '--log-level', 'warn'], 0);
  try {
    const subs = await Promise.all(Array.from({ length: SUBSCRIBERS }, () => crierClient(server.url, true)));
    const pub = await crierClient(server.url, false);
    const frame = encodeFrame({ t: FrameType.publish, c: CHANNEL, d: payload });
    const result = await measure('crier', subs, pub, frame);
    for (const ws of [...subs, pub]) ws.terminate();
    return result;
  } finally {
    await server.stop();
  }
}

async function benchNaive(): Promise<Result> {
  const script = fileURLToPath(new URL('./naive-server.js', import.meta.url));
  const server = await startServer(script, [], 0);
  try {
    const subs = await Promise.all(Array.from({ length: SUBSCRIBERS }, () => open(`${server.url}/sub`)));
    const pub = await open(`${server.url}/pub`);
    const result = await measure('naive ws broadcast', subs, pub, payload);
    for (const ws of [...subs, pub]) ws.terminate();
    return result;
  } finally {
    await server.stop();
  }
}

pinSelf(1);
const naive = await benchNaive();
const crier = await benchCrier();
const rows = [naive, crier];
console.log(`fan-out: 1 publisher → ${SUBSCRIBERS} subscribers, 100-byte payloads, window ${WINDOW}, ${SECONDS} s` +
  (hasTaskset ? ' (server on cpu 0, load generator on cpu 1)' : ''));
console.log('server                 deliveries/s    events/s   loss   vs naive');
for (const r of rows) {
  console.log(`${r.server.padEnd(22)} ${String(r.deliveriesPerSecond).padStart(12)} ${String(r.eventsPerSecond).padStart(11)} ${String(r.loss).padStart(6)}   ${(r.deliveriesPerSecond / naive.deliveriesPerSecond).toFixed(2)}×`);
}
const dir = fileURLToPath(new URL('../results/', import.meta.url));
mkdirSync(dir, { recursive: true });
writeFileSync(`${dir}fanout.json`, JSON.stringify({ subscribers: SUBSCRIBERS, seconds: SECONDS, window: WINDOW, rows }, null, 2));
process.exit(0);
