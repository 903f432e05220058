// A TCP relay that a test controls, set between a client and the broker: it adds latency, caps
// throughput, swallows traffic (a half-dead network), resets connections (mid-frame if asked) and
// refuses new ones, so a test can prove that clients behind it keep every event across faults.
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Signal, waitFor } from './wait-for.js';

export interface FaultProxy {
  /** The port it listens on, on 127.0.0.1, picked by the OS. */
  readonly port: number;
  /** `ws://127.0.0.1:${port}/`, for a WebSocket client to connect through the proxy. */
  readonly url: string;
  /** Live relayed connections: accepted and not refused, until both of their sockets closed. */
  readonly connections: number;
  /**
   * Delays every chunk by `ms` in each direction (a round trip takes at least twice `ms`), in
   * order: a later chunk never overtakes an earlier one. Applies to bytes read from now on.
   * @default 0
   */
  latency(ms: number): void;
  /**
   * Caps each direction of each connection at `bytesPerSecond`: N bytes take at least
   * N / bytesPerSecond seconds to go through. `undefined` turns the cap off.
   * @default undefined
   */
  throttle(bytesPerSecond: number | undefined): void;
  /**
   * While on, forwards nothing either way: bytes read meanwhile, and those the proxy held back
   * (latency, throttle), are discarded, and the sockets stay open (a half-dead network, which only
   * a heartbeat notices). A half-close is held until it is off. Once off, new bytes flow again; a
   * stream that lived through it has a hole, so a WebSocket on it is likely broken.
   */
  blackhole(on: boolean): void;
  /**
   * Destroys every relayed connection now, both sides, with a TCP RST. With `midFrame`, each
   * connection first forwards part of its next server->client chunk (at least one byte, not all
   * of it) and is reset after it, so the client is left with half a WebSocket frame; connections
   * accepted after the call are not affected.
   */
  reset(opts?: { midFrame?: boolean }): void;
  /** While on, new connections are accepted and reset at once, never relayed. */
  refuse(on: boolean): void;
  /** Resolves when `connections === n`; rejects after `timeoutMs`. @default timeoutMs 5000 */
  whenConnections(n: number, timeoutMs?: number): Promise<void>;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

/** A relay to `target` (host defaults to 127.0.0.1) listening on 127.0.0.1 and a free port. */
export async function startFaultProxy(target: { host?: string; port: number }): Promise<FaultProxy> {
  const proxy = new TcpFaultProxy(target.host ?? '127.0.0.1', target.port);
  await proxy.listen();
  return proxy;
}

/**
 * Bytes one direction holds before it stops reading its source, so that a throttled or delayed
 * receiver slows its sender (as TCP would), instead of the proxy buffering without bound.
 */
const HIGH_WATER = 256 * 1024;

/** The faults in force, read live by every pipe. */
interface Faults {
  latencyMs: number;
  bytesPerSecond: number | undefined;
  blackholed: boolean;
}

class TcpFaultProxy implements FaultProxy {
  private readonly server: Server;
  private readonly relays = new Set<Relay>();
  private readonly changed = new Signal();
  private readonly faults: Faults = { latencyMs: 0, bytesPerSecond: undefined, blackholed: false };
  private refusing = false;
  /** Kept from `listen`: `server.address()` is null once closed, and tests dial the port after. */
  private listeningPort = 0;

  constructor(
    private readonly host: string,
    private readonly targetPort: number,
  ) {
    // Half-open: an end from one side is forwarded after the bytes before it, not at once.
    this.server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.server.off('error', reject);
        this.listeningPort = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  get port(): number {
    return this.listeningPort;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/`;
  }

  get connections(): number {
    return this.relays.size;
  }

  latency(ms: number): void {
    if (!(ms >= 0 && Number.isFinite(ms))) throw new RangeError(`latency: ${ms} is not a number of milliseconds >= 0`);
    this.faults.latencyMs = ms;
  }

  throttle(bytesPerSecond: number | undefined): void {
    if (bytesPerSecond !== undefined && !(bytesPerSecond > 0 && Number.isFinite(bytesPerSecond))) {
      throw new RangeError(`throttle: ${bytesPerSecond} is not a rate > 0 (or undefined for none)`);
    }
    this.faults.bytesPerSecond = bytesPerSecond;
    for (const relay of this.relays) relay.eachPipe((pipe) => pipe.rethrottle());
  }

  blackhole(on: boolean): void {
    this.faults.blackholed = on;
    for (const relay of this.relays) relay.eachPipe((pipe) => (on ? pipe.drop() : pipe.pump()));
  }

  reset(opts: { midFrame?: boolean } = {}): void {
    for (const relay of this.relays) {
      if (opts.midFrame === true) relay.cutMidFrame();
      else relay.reset();
    }
  }

  refuse(on: boolean): void {
    this.refusing = on;
  }

  async whenConnections(n: number, timeoutMs = 5000): Promise<void> {
    await waitFor(`${n} relayed connections`, () => this.relays.size === n, {
      timeoutMs,
      wake: this.changed,
      seen: () => `${this.relays.size} now`,
    });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const relay of this.relays) relay.destroy();
    await Promise.all([closed, this.whenConnections(0)]);
  }

  private accept(client: Socket): void {
    if (this.refusing) {
      client.on('error', () => {});
      hardClose(client);
      return;
    }
    const relay = new Relay(client, connect({ host: this.host, port: this.targetPort, allowHalfOpen: true }), this.faults, () => {
      this.relays.delete(relay);
      this.changed.notify();
    });
    this.relays.add(relay);
    this.changed.notify();
  }
}

/** One relayed connection: the accepted client socket, its upstream socket, a pipe each way. */
class Relay {
  private readonly up: Pipe;
  private readonly down: Pipe;
  private open = 2;

  constructor(
    private readonly client: Socket,
    private readonly upstream: Socket,
    faults: Faults,
    onClosed: () => void,
  ) {
    this.up = new Pipe(client, upstream, faults);
    this.down = new Pipe(upstream, client, faults);
    for (const socket of [client, upstream]) {
      socket.setNoDelay(true);
      // A reset or a refused upstream on one side is a reset on the other: as the network would.
      socket.on('error', () => this.reset());
      socket.on('close', () => {
        if (--this.open > 0) return;
        this.eachPipe((pipe) => pipe.stop());
        onClosed();
      });
    }
  }

  eachPipe(f: (pipe: Pipe) => void): void {
    f(this.up);
    f(this.down);
  }

  reset(): void {
    this.eachPipe((pipe) => pipe.stop());
    hardClose(this.client);
    hardClose(this.upstream);
  }

  destroy(): void {
    this.eachPipe((pipe) => pipe.stop());
    this.client.destroy();
    this.upstream.destroy();
  }

  /** The next server->client piece goes out halved, then the connection is reset. */
  cutMidFrame(): void {
    this.down.cut = () => this.reset();
  }
}

/** A queued chunk: the bytes still to write, and when its latency is served. */
interface Chunk {
  bytes: Buffer;
  dueAt: number;
}

/** One direction of a relay: reads `from`, writes `to`, in order, through the faults in force. */
class Pipe {
  /** Set by a mid-frame reset: the next piece is written halved, then this is called. */
  cut: (() => void) | undefined;
  private readonly queue: Chunk[] = [];
  private queued = 0;
  private timer: NodeJS.Timeout | undefined;
  private draining = false;
  private ended = false;
  private stopped = false;
  /** The throttle's clock: when the link is next free, and the slice paid for but not yet due. */
  private freeAt = 0;
  private slice: { size: number; at: number } | undefined;

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly faults: Faults,
  ) {
    from.on('data', (bytes: Buffer) => this.take(bytes));
    from.on('end', () => {
      this.ended = true;
      this.pump();
    });
    to.on('drain', () => {
      this.draining = false;
      this.pump();
    });
  }

  /** Forgets what is held back (a blackhole swallowed it) and reads on, to swallow the rest. */
  drop(): void {
    this.clearTimer();
    this.queue.length = 0;
    this.queued = 0;
    this.slice = undefined;
    if (!this.from.destroyed) this.from.resume();
  }

  /** A new rate: the slice waiting under the old one is re-priced. */
  rethrottle(): void {
    this.clearTimer();
    this.slice = undefined;
    this.freeAt = 0;
    this.pump();
  }

  stop(): void {
    this.stopped = true;
    this.cut = undefined;
    this.drop();
  }

  /** Writes every piece that is due, then waits for the next deadline or for `to` to drain. */
  pump(): void {
    if (this.stopped || this.faults.blackholed || this.timer !== undefined || this.draining) return;
    if (this.to.destroyed || this.to.writableEnded) return;
    const now = performance.now();
    for (let head = this.queue[0]; head !== undefined; head = this.queue[0]) {
      if (head.dueAt > now) return this.wake(head.dueAt);
      let size = head.bytes.length;
      const rate = this.faults.bytesPerSecond;
      if (rate !== undefined) {
        // Pay for a slice before sending it, so N bytes never go out faster than N / rate.
        if (this.slice === undefined) {
          const sliceSize = Math.min(size, Math.max(1, Math.min(64 * 1024, Math.floor(rate / 20))));
          this.freeAt = Math.max(now, this.freeAt) + (sliceSize * 1000) / rate;
          this.slice = { size: sliceSize, at: this.freeAt };
        }
        if (this.slice.at > now) return this.wake(this.slice.at);
        size = this.slice.size;
        this.slice = undefined;
      }
      const piece = head.bytes.subarray(0, size);
      if (this.cut !== undefined) return this.writeHalf(piece, this.cut);
      head.bytes = head.bytes.subarray(size);
      if (head.bytes.length === 0) this.queue.shift();
      this.queued -= size;
      if (this.queued < HIGH_WATER / 2 && this.from.isPaused()) this.from.resume();
      if (!this.to.write(piece)) {
        this.draining = true;
        return;
      }
    }
    if (this.ended) this.to.end();
  }

  private take(bytes: Buffer): void {
    if (this.stopped || this.faults.blackholed) return;
    this.queue.push({ bytes, dueAt: performance.now() + this.faults.latencyMs });
    this.queued += bytes.length;
    if (this.queued >= HIGH_WATER) this.from.pause();
    this.pump();
  }

  private writeHalf(piece: Buffer, cut: () => void): void {
    this.stop();
    // Reset once the half is with the kernel: an RST sent earlier could discard it unsent.
    this.to.write(piece.subarray(0, Math.max(1, Math.floor(piece.length / 2))), () => cut());
  }

  /** Pumps again at `at` (performance.now() time); pump re-checks, as a timer may fire early. */
  private wake(at: number): void {
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.pump();
      },
      Math.max(1, Math.ceil(at - performance.now())),
    );
  }

  private clearTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** Closes with a TCP RST where Node can (resetAndDestroy, Node >= 18.3), else plainly. */
function hardClose(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting || typeof socket.resetAndDestroy !== 'function') socket.destroy();
  else socket.resetAndDestroy();
}
