// Measurement loops shared by the workloads. Every loop is bounded in count and time.

export interface Throughput {
  deliveriesPerSecond: number;
  eventsPerSecond: number;
  /** Deliveries that never arrived (expected: sent × fanout). */
  loss: number;
  /** CPU use over the measured window, when the workload metered it. */
  cpu?: CpuUse;
}

/**
 * Who was busy over a measured window: a closed loop runs as fast as the slower side, and with
 * one core each a ratio of throughputs means little when the load generator is the one at 100%.
 */
export interface CpuUse {
  /** Fraction of one core the server process used (user + system, /proc, 10 ms resolution). */
  server: number;
  /** Fraction of one core this process (the load generator) used. */
  loadGenerator: number;
  /** Server CPU per delivery, in ns: the cost that does not depend on who the bottleneck is. */
  serverNsPerDelivery: number;
}

/** Marks that read the server's and this process's CPU time over a loop's measured window. */
export class CpuMeter implements Marks {
  private server0 = 0;
  private load0 = 0;
  private t0 = 0;
  private window: { serverMs: number; loadMs: number; ms: number } | undefined;

  constructor(private readonly serverCpuMs: () => number) {}

  start(): void {
    this.server0 = this.serverCpuMs();
    this.load0 = ownCpuMs();
    this.t0 = performance.now();
  }

  end(): void {
    this.window = { serverMs: this.serverCpuMs() - this.server0, loadMs: ownCpuMs() - this.load0, ms: performance.now() - this.t0 };
  }

  /** The window's CPU use, given the deliveries per second measured over it. */
  use(deliveriesPerSecond: number): CpuUse | undefined {
    const w = this.window;
    if (w === undefined || !(w.ms > 0)) return undefined;
    const deliveries = (deliveriesPerSecond * w.ms) / 1000;
    return {
      server: Math.round((w.serverMs / w.ms) * 100) / 100,
      loadGenerator: Math.round((w.loadMs / w.ms) * 100) / 100,
      serverNsPerDelivery: deliveries > 0 ? Math.round((w.serverMs * 1e6) / deliveries) : NaN,
    };
  }
}

function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Called when a loop's measured window opens and when it closes (to read CPU times over it). */
export interface Marks {
  start(): void;
  end(): void;
}

/**
 * A closed loop: keep at most `window` events in flight (sent but not yet delivered to all
 * `fanout` receivers) so the server is measured, not overflowed. Subscribers call `hit()` once per
 * delivery; `send(i)` publishes event number i.
 */
export class ClosedLoop {
  private sent = 0;
  private delivered = 0;
  private running = false;

  constructor(
    private readonly send: (i: number) => void,
    private readonly fanout: number,
    private readonly window: number,
    /**
     * Wraps each refill (up to half a window of sends): a publisher corks its socket around it,
     * so a refill leaves the load generator in one write, whatever the server.
     */
    private readonly batch?: { begin(): void; end(): void },
  ) {}

  /** Count one delivery; refill the window when half of it came back. */
  readonly hit = (): void => this.hits(undefined, 1);

  /** Count `n` deliveries (one message may carry several events). */
  readonly hits = (_data: unknown, n: number): void => {
    this.delivered += n;
    if (this.running && this.sent - this.delivered / this.fanout <= this.window / 2) this.refill();
  };

  private refill(): void {
    this.batch?.begin();
    try {
      while (this.sent - this.delivered / this.fanout < this.window) this.send(this.sent++);
    } finally {
      this.batch?.end();
    }
  }

  async run(seconds: number, warmupSeconds = 1, marks?: Marks): Promise<Throughput> {
    this.running = true;
    this.refill();
    await pause(warmupSeconds * 1000);
    marks?.start();
    const d0 = this.delivered;
    const t0 = performance.now();
    await pause(seconds * 1000);
    const elapsed = (performance.now() - t0) / 1000;
    const delivered = this.delivered - d0;
    marks?.end();
    this.running = false;
    // Drain: wait until everything sent arrived, or nothing moved for a second.
    const expected = this.sent * this.fanout;
    let last = -1;
    for (let quiet = 0; this.delivered < expected && quiet < 10; ) {
      await pause(100);
      quiet = this.delivered === last ? quiet + 1 : 0;
      last = this.delivered;
    }
    return {
      deliveriesPerSecond: Math.round(delivered / elapsed),
      eventsPerSecond: Math.round(delivered / this.fanout / elapsed),
      loss: expected - this.delivered,
    };
  }
}

export interface Latency {
  p50: number;
  p99: number;
  p999: number;
  max: number;
  samples: number;
  /** Deliveries expected but not received. */
  loss: number;
}

/** 4 magic bytes, then the send time as float64 (performance.now() of this process). */
export const STAMP = Buffer.from('CRB1', 'latin1');

export function stampedPayload(size: number): Buffer {
  const b = Buffer.alloc(size, 42);
  STAMP.copy(b, 0);
  return b;
}

/**
 * An open loop at a fixed rate: `send(i, payload)` every 1/rate s for `seconds`, each payload
 * stamped with its send time; receivers call `record(message)` and the publish-to-receive latency
 * is read back from the stamp.
 */
export class OpenLoop {
  private readonly samples: Float64Array;
  private n = 0;

  constructor(
    private readonly send: (i: number, payload: Buffer) => void,
    private readonly rate: number,
    private readonly fanout: number,
    private readonly seconds: number,
    private readonly payloadSize = 100,
  ) {
    this.samples = new Float64Array(Math.ceil(rate * seconds * fanout * 1.05) + 16);
  }

  /** Records the latency of every stamped event in `message` (it may carry several). */
  readonly record = (message: Buffer): void => {
    const now = performance.now();
    for (let at = message.indexOf(STAMP); at >= 0 && this.n < this.samples.length; at = message.indexOf(STAMP, at + 12)) {
      this.samples[this.n++] = now - message.readDoubleLE(at + 4);
    }
  };

  /** `marks`: from the first publish to the last. */
  async run(marks?: Marks): Promise<Latency> {
    const total = Math.round(this.rate * this.seconds);
    marks?.start();
    const start = performance.now();
    let sent = 0;
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * this.rate));
        while (sent < due) {
          const payload = stampedPayload(this.payloadSize);
          payload.writeDoubleLE(performance.now(), STAMP.length);
          this.send(sent++, payload);
        }
        if (sent < total) setTimeout(tick, 1);
        else resolve();
      };
      tick();
    });
    marks?.end();
    const expected = total * this.fanout;
    let last = -1;
    for (let quiet = 0; this.n < expected && quiet < 10; ) {
      await pause(100);
      quiet = this.n === last ? quiet + 1 : 0;
      last = this.n;
    }
    const sorted = this.samples.slice(0, this.n).sort();
    const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
    return { p50: at(0.5), p99: at(0.99), p999: at(0.999), max: sorted[sorted.length - 1] ?? NaN, samples: this.n, loss: expected - this.n };
  }
}
