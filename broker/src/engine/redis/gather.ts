import type { TimerHandle } from '../../clock.js';

// Scatter-gather on pub/sub, for presence questions (presence.ts) and presence syncs
// (presence-notices.ts): a message goes to every node on the presence channel, each node answers
// on the asker's channel quoting the message's key, and the asker knows how many answers to wait
// for from the PUBLISH answer (the nodes it reached, the asker included).

/** What a gathering needs from the engine around it. */
export interface GatherLink {
  /** Publishes `message` on the presence channel: resolves with the nodes that got it. */
  broadcast(message: Buffer): Promise<number>;
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

/** How a gathering ended: `complete` when every node reached answered; `error` when its broadcast failed. */
export interface GatherEnd {
  complete: boolean;
  error?: unknown;
}

interface Open<T> {
  readonly state: T;
  /** Nodes the message reached (the PUBLISH answer), once known. */
  expected: number | undefined;
  answered: number;
  readonly timer: TimerHandle;
}

/**
 * The gatherings one node has open, each with its caller's `state`. One ends when every node
 * reached answered, after `timeoutMs`, when its broadcast fails, or at {@link close}; `onEnd` runs
 * once for each. Past `max` open, a message still goes but is not waited for: it ends at once,
 * incomplete (timers and state stay bounded whatever the rate of messages).
 */
export class Gatherings<T> {
  private readonly open = new Map<string, Open<T>>();
  private serial = 0;

  constructor(
    private readonly link: GatherLink,
    private readonly timeoutMs: number,
    private readonly max: number,
    private readonly onEnd: (state: T, end: GatherEnd) => void,
  ) {}

  /** Gatherings waiting for answers. */
  get size(): number {
    return this.open.size;
  }

  /** Broadcasts `message(key)` under a new key (base 36, lower case) and waits for the answers. */
  start(state: T, message: (key: string) => Buffer): void {
    const key = (this.serial++).toString(36);
    const sent = this.link.broadcast(message(key));
    if (this.open.size >= this.max) {
      sent.catch(() => {}); // not waited for: its answers come as late ones
      this.onEnd(state, { complete: false });
      return;
    }
    const entry: Open<T> = { state, expected: undefined, answered: 0, timer: this.link.setTimeout(() => this.end(key), this.timeoutMs) };
    this.open.set(key, entry);
    sent.then((nodes) => {
      if (this.open.get(key) !== entry) return;
      entry.expected = nodes;
      if (entry.answered >= nodes) this.end(key);
    }, (error: unknown) => {
      if (this.open.get(key) === entry) this.end(key, error);
    });
  }

  /** The state of the gathering open under `key` (undefined: over, or never this node's). */
  get(key: string): T | undefined {
    return this.open.get(key)?.state;
  }

  /** One node answered `key`: the gathering ends with the last answer expected. */
  answered(key: string): void {
    const entry = this.open.get(key);
    if (entry === undefined) return;
    entry.answered++;
    if (entry.expected !== undefined && entry.answered >= entry.expected) this.end(key);
  }

  /** Ends every open gathering now (the engine closes). */
  close(): void {
    for (const key of [...this.open.keys()]) this.end(key);
  }

  private end(key: string, error?: unknown): void {
    const entry = this.open.get(key);
    if (entry === undefined) return;
    this.open.delete(key);
    this.link.clearTimer(entry.timer);
    // Timed out with every node answered (the PUBLISH answer came last) is still complete.
    const complete = entry.expected !== undefined && entry.answered >= entry.expected;
    this.onEnd(entry.state, error === undefined ? { complete } : { complete, error });
  }
}
