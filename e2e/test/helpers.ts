import { createBroker, type Broker, type BrokerOptions } from '@crier/broker';
import { connect, type ClientOptions, type CrierClient, type CrierEvent } from '@crier/sdk-node';
import { Signal, waitFor } from './wait-for.js';

// The layer's one wait, for the tests that import their helpers from here.
export { Signal, waitFor, type WaitOptions } from './wait-for.js';

/** Collects a client's events for a pattern; tests wait for a count, woken by each arrival. */
export class Inbox {
  readonly events: CrierEvent[] = [];
  readonly subscription: ReturnType<CrierClient['subscribe']>;
  private readonly arrived = new Signal();

  constructor(client: CrierClient, pattern: string) {
    this.subscription = client.subscribe(pattern, (e) => {
      this.events.push(e);
      this.arrived.notify();
    });
  }

  texts(): string[] {
    return this.events.map((e) => new TextDecoder().decode(e.data));
  }

  /** Resolves once `n` events arrived; fails naming `what` after `timeoutMs`. */
  waitForCount(n: number, what = `${n} events`, timeoutMs = 5000): Promise<CrierEvent[]> {
    return waitFor(what, () => this.events.length >= n && this.events, {
      timeoutMs,
      wake: this.arrived,
      seen: () => `got ${this.events.length}`,
    });
  }
}

const quiet: BrokerOptions = { host: '127.0.0.1', port: 0, logger: false };

/** A broker on 127.0.0.1 and a free port, closed by `stop`. */
export async function startBroker(options: BrokerOptions = {}): Promise<Broker> {
  return createBroker({ ...quiet, ...options });
}

/** An sdk-node client connected to `broker`, waiting for its welcome. */
export async function connectClient(broker: Broker | string, options: ClientOptions = {}): Promise<CrierClient> {
  const url = typeof broker === 'string' ? broker : broker.url;
  const client = connect(url, options);
  await client.ready();
  return client;
}

export async function getStats(broker: Broker): Promise<Record<string, unknown>> {
  const res = await fetch(broker.url.replace(/^ws/, 'http').replace(/\/?$/, '/stats'));
  return (await res.json()) as Record<string, unknown>;
}

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);
