import type { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import {
  FrameType,
  PROTOCOL_VERSION,
  decodeFrames,
  DEFAULT_DECODE_LIMITS,
  encodeFrame,
  type EventFrame,
  type Frame,
  type WelcomeFrame,
} from '@crier/protocol';
import { createBroker, type Broker, type BrokerOptions } from '../src/index.js';

/** Default deadline of every wait. Generous: a wait ends as soon as its condition holds. */
export const DEADLINE_MS = 5000;

/**
 * Waiters to wake, for a source that many waits share at once (a client with 250 requests in
 * flight has 250): a set has no listener limit to outgrow, where an emitter warns past 10.
 */
export class Signal {
  private readonly waiters = new Set<() => void>();

  add(waiter: () => void): void {
    this.waiters.add(waiter);
  }

  delete(waiter: () => void): void {
    this.waiters.delete(waiter);
  }

  /** Tells every waiter to re-check. */
  notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

/** What wakes a wait: an emitter's event, or a {@link Signal}. */
export type WakeSource = [EventEmitter, string] | Signal;

/**
 * The one way tests wait: until `check` returns something other than `undefined`/`false`,
 * re-checking whenever one of `wakeOn` fires (and every few ms for state no event announces,
 * such as a broker's counters). Fails naming `what` after `timeoutMs`; removes its listeners.
 */
export function waitFor<T>(
  what: string,
  check: () => T | undefined | false,
  options: { timeoutMs?: number; wakeOn?: WakeSource[] } = {},
): Promise<T> {
  const { timeoutMs = DEADLINE_MS, wakeOn = [] } = options;
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const finish = (): void => {
      done = true;
      clearTimeout(deadline);
      clearInterval(poll);
      for (const source of wakeOn) {
        if (source instanceof Signal) source.delete(recheck);
        else source[0].off(source[1], recheck);
      }
    };
    const recheck = (): void => {
      if (done) return;
      let value: T | undefined | false;
      try {
        value = check();
      } catch (err) {
        finish();
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (value !== undefined && value !== false) {
        finish();
        resolve(value);
      }
    };
    const deadline = setTimeout(() => {
      finish();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const poll = setInterval(recheck, 5);
    for (const source of wakeOn) {
      if (source instanceof Signal) source.add(recheck);
      else source[0].on(source[1], recheck);
    }
    recheck();
  });
}

const brokers: Broker[] = [];
const clients: RawClient[] = [];

/** A broker on 127.0.0.1 and a free port, silent; closed by {@link cleanup}. */
export async function startBroker(options: BrokerOptions = {}): Promise<Broker> {
  const broker = await createBroker({ host: '127.0.0.1', port: 0, logger: false, ...options });
  brokers.push(broker);
  return broker;
}

/** Closes every client and broker the test opened (call in afterEach). */
export async function cleanup(): Promise<void> {
  for (const c of clients.splice(0)) c.ws.terminate();
  await Promise.all(brokers.splice(0).map((b) => b.close()));
}

/**
 * A raw `ws` client speaking crier frames by hand (no SDK): it records every message, decoded
 * when it decodes, and how the socket closed.
 */
export class RawClient {
  readonly frames: Frame[] = [];
  /** Raw bytes of each binary message, in order (parallel to `frames` for decodable ones). */
  readonly raw: Buffer[] = [];
  closed: { code: number; reason: string } | undefined;
  opened = false;
  /** The welcome, once `connect` said hello. */
  welcome: WelcomeFrame | undefined;
  /** Notified on open, on every message and on close: what this client's waits wake on. */
  readonly changed = new Signal();
  private nextRequest = 1;

  private constructor(readonly ws: WebSocket) {
    // One listener per event, however many waits are pending (see Signal).
    ws.on('open', () => {
      this.opened = true;
      this.changed.notify();
    });
    ws.on('message', (data: Buffer) => {
      this.raw.push(data);
      // A message holds one or more frames: the broker batches a tick's frames.
      decodeFrames(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), DEFAULT_DECODE_LIMITS, (f) => this.frames.push(f));
      this.changed.notify();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString() };
      this.changed.notify();
    });
    ws.on('error', () => {}); // a refused or reset socket is an outcome the tests look at
  }

  /** Opens a socket to `url` (nothing sent yet). */
  static async open(url: string): Promise<RawClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const client = new RawClient(ws);
    clients.push(client);
    await waitFor(`the socket to ${url} to open`, () => client.opened || (ws.readyState === WebSocket.CLOSED && 'closed'), {
      wakeOn: [client.changed],
    });
    if (!client.opened) throw new Error(`could not open ${url}`);
    return client;
  }

  /** Opens a socket and says hello; resolves with the welcome. */
  static async connect(url: string, uuid?: string, secret?: string): Promise<RawClient> {
    const client = await RawClient.open(url);
    client.welcome = await client.hello(uuid, secret);
    return client;
  }

  send(frame: Frame | Uint8Array | string): void {
    this.ws.send(typeof frame === 'string' || frame instanceof Uint8Array ? frame : encodeFrame(frame));
  }

  async hello(uuid?: string, secret?: string): Promise<WelcomeFrame> {
    this.send({ t: FrameType.hello, v: PROTOCOL_VERSION, ...(uuid === undefined ? {} : { u: uuid }), ...(secret === undefined ? {} : { s: secret }) });
    const f = await this.waitFrame('welcome', (f) => f.t === FrameType.welcome);
    return f as WelcomeFrame;
  }

  /** Sends a frame with a fresh request id and resolves with its answer (ack or error). */
  async request(frame: Frame & { r?: number }): Promise<Frame> {
    const r = this.nextRequest++;
    this.send({ ...frame, r } as Frame);
    return this.waitFrame(`the answer to request ${r} (type ${frame.t})`, (f) => (f.t === FrameType.ack || f.t === FrameType.error) && f.r === r);
  }

  async subscribe(pattern: string): Promise<void> {
    const answer = await this.request({ t: FrameType.subscribe, r: 0, p: pattern });
    if (answer.t !== FrameType.ack) throw new Error(`subscribe ${pattern} failed: ${JSON.stringify(answer)}`);
  }

  /** The first frame received so far, or from now on, that matches. */
  waitFrame(what: string, match: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame> {
    return waitFor(what, () => this.frames.find(match), { timeoutMs, wakeOn: [this.changed] });
  }

  events(channel?: string): EventFrame[] {
    return this.frames.filter((f): f is EventFrame => f.t === FrameType.event && (channel === undefined || f.c === channel));
  }

  /** Resolves once `n` events (on `channel`, if given) arrived. */
  waitEvents(n: number, channel?: string, timeoutMs?: number): Promise<EventFrame[]> {
    return waitFor(`${n} events${channel ? ` on ${channel}` : ''}`, () => {
      const e = this.events(channel);
      return e.length >= n && e;
    }, { timeoutMs, wakeOn: [this.changed] });
  }

  waitClose(timeoutMs?: number): Promise<{ code: number; reason: string }> {
    return waitFor('the socket to close', () => this.closed, { timeoutMs, wakeOn: [this.changed] });
  }
}

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/**
 * Publishes 8 KiB events with `publish`, in rounds of 8, waiting after each round until `fast` has
 * every one, until `done()` (a frozen subscriber has become slow) or 1000 rounds. Returns how many
 * were published. The fast reader never falls behind, however slow the machine.
 */
export async function publishUntil(fast: RawClient, publish: (payload: Uint8Array) => void, done: () => boolean): Promise<number> {
  const payload = new Uint8Array(8 * 1024);
  let n = 0;
  for (let round = 0; round < 1000 && !done(); round++) {
    for (let i = 0; i < 8; i++) publish(payload);
    n += 8;
    await fast.waitEvents(n);
  }
  return n;
}
