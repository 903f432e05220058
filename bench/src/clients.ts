// Load-generator clients for both servers: raw `ws` sockets, so the servers are measured and not
// an SDK (W6 measures the SDK on purpose).
import type { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { FrameType, decodeFrame, encodeFrame } from '@crier/protocol';
import type { BenchServer } from './servers.js';
import { countFrames } from './count-frames.js';

/** Called per WebSocket message with the number of events in it (crier batches a tick's events). */
export type OnMessage = (data: Buffer, events: number) => void;

export interface Publisher {
  /** The bytes to send for one event; pre-encode once when the payload does not change. */
  frame(channel: string, payload: Uint8Array, requestId?: number): Uint8Array;
  send(frame: Uint8Array): void;
  /**
   * Sends between `begin` and `end` leave in one socket write (the socket is corked): the load
   * generator's cost per publish, one syscall each otherwise, is not what a workload measures.
   */
  readonly batch: { begin(): void; end(): void };
  /** Called per message with the number of acks in it (acked publishers only). */
  onAck(listener: (data: unknown, acks: number) => void): void;
  close(): void;
}

/** Corks and uncorks the TCP socket under `ws` (ws has no API for it; its sends are writes on it). */
function corker(ws: WebSocket): { begin(): void; end(): void } {
  const socket = (ws as unknown as { _socket: Duplex })._socket;
  return { begin: () => socket.cork(), end: () => socket.uncork() };
}

export function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function nextMessage(ws: WebSocket): Promise<Uint8Array> {
  return new Promise((resolve) => ws.once('message', (data: Buffer) => resolve(new Uint8Array(data))));
}

async function crierSocket(url: string): Promise<WebSocket> {
  const ws = await open(url);
  const welcome = nextMessage(ws);
  ws.send(encodeFrame({ t: FrameType.hello, v: 1 }));
  await welcome;
  return ws;
}

/** Opens a subscriber holding `patterns`; resolves once the server has them all. */
export async function subscriber(server: BenchServer, patterns: string[], onMessage: OnMessage): Promise<WebSocket> {
  if (server.kind === 'naive') {
    const ws = await open(`${server.url}/sub?c=${patterns.join(',')}`);
    ws.on('message', (data: Buffer) => onMessage(data, 1));
    return ws;
  }
  const ws = await crierSocket(server.url);
  let r = 0;
  for (const p of patterns) {
    const answer = nextMessage(ws);
    ws.send(encodeFrame({ t: FrameType.subscribe, r: ++r, p }));
    const frame = decodeFrame(await answer);
    if (frame.t !== FrameType.ack) throw new Error(`subscribe ${p} failed: ${JSON.stringify(frame)}`);
  }
  ws.on('message', (data: Buffer) => onMessage(data, countFrames(data)));
  return ws;
}

export async function publisher(server: BenchServer, acked: boolean): Promise<Publisher> {
  const ackListeners: ((data: unknown, acks: number) => void)[] = [];
  const fire = (acks: number): void => {
    for (const l of ackListeners) l(undefined, acks);
  };
  if (server.kind === 'naive') {
    const ws = await open(`${server.url}/pub${acked ? '?ack=1' : ''}`);
    ws.on('message', () => fire(1));
    return {
      frame: (channel, payload) => Buffer.concat([Buffer.from(`${channel}\n`, 'latin1'), payload]),
      send: (frame) => ws.send(frame),
      batch: corker(ws),
      onAck: (l) => ackListeners.push(l),
      close: () => ws.terminate(),
    };
  }
  const ws = await crierSocket(server.url);
  // A publisher subscribes to nothing: every frame is an ack.
  ws.on('message', (data: Buffer) => fire(countFrames(data)));
  return {
    frame: (channel, payload, requestId) =>
      encodeFrame(acked ? { t: FrameType.publish, r: requestId ?? 1, c: channel, d: payload } : { t: FrameType.publish, c: channel, d: payload }),
    send: (frame) => ws.send(frame),
    batch: corker(ws),
    onAck: (l) => ackListeners.push(l),
    close: () => ws.terminate(),
  };
}

/** Opens `n` connections `at a time` in parallel batches, so 10,000 do not all race at once. */
export async function openMany<T>(n: number, batch: number, make: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i += batch) {
    const chunk = [];
    for (let j = i; j < Math.min(n, i + batch); j++) chunk.push(make(j));
    out.push(...(await Promise.all(chunk)));
  }
  return out;
}
