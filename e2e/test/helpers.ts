import { createBroker, type Broker, type BrokerOptions } from '@crier/broker';
import { connect, type ClientOptions, type CrierClient, type CrierEvent } from '@crier/sdk-node';

/**
 * Waits until `check` returns a value other than undefined/false, and fails naming `what` after
 * `timeoutMs`. For state the test cannot subscribe to (a broker process's HTTP stats, a client's
 * state): it re-checks every few milliseconds until the deadline. Events a test can listen to are
 * awaited directly instead (`Inbox.waitForCount`, Playwright's waitForFunction).
 */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Collects a client's events for a pattern; tests wait for a count, woken by each arrival. */
export class Inbox {
  readonly events: CrierEvent[] = [];
  readonly subscription: ReturnType<CrierClient['subscribe']>;
  private wake: (() => void) | undefined;

  constructor(client: CrierClient, pattern: string) {
    this.subscription = client.subscribe(pattern, (e) => {
      this.events.push(e);
      this.wake?.();
    });
  }

  texts(): string[] {
    return this.events.map((e) => new TextDecoder().decode(e.data));
  }

  /** Resolves once `n` events arrived; fails naming `what` after `timeoutMs`. */
  waitForCount(n: number, what = `${n} events`, timeoutMs = 5000): Promise<CrierEvent[]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (got ${this.events.length})`));
      }, timeoutMs);
      const check = (): void => {
        if (this.events.length < n) return;
        clearTimeout(timer);
        this.wake = undefined;
        resolve(this.events);
      };
      this.wake = check;
      check();
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
