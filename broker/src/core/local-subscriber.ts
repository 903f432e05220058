import type { Logger } from 'pino';
import type { EventFilter } from '@crier/protocol';
import type { Flushable } from '../transport/connection.js';
import type { BrokerEvent } from '../types.js';

/** What an in-process subscriber needs from the broker around it. */
export interface LocalHost {
  readonly bufferSize: number;
  readonly log: Logger;
  markDirty(item: Flushable): void;
  /** Counts one event lost by an in-process subscriber. */
  countDrop(): void;
}

/**
 * An in-process subscription. It sits in the channel index beside the connections and gets the
 * same treatment: each matching event once, handed over in the broker's flush (never inside
 * `publish`, so a handler that publishes cannot recurse), at most `bufferSize` per flush.
 */
export class LocalSubscriber implements Flushable {
  /** Publish sequence that last matched: dedupes like a connection's. */
  stamp = 0;
  dirty = false;
  active = true;
  /** As an index entry: itself, with its filter. */
  readonly sub = this;
  private queue: BrokerEvent[] = [];
  // The array being dispatched; swapped with `queue` so events published by a handler wait for
  // the next flush instead of growing the array under iteration.
  private spare: BrokerEvent[] = [];
  private warned = false;

  constructor(
    readonly pattern: string,
    private readonly handler: (event: BrokerEvent) => void,
    private readonly host: LocalHost,
    readonly filter: EventFilter | undefined = undefined,
  ) {}

  /** Queues `event`, or drops it when a flush's worth is already waiting. */
  enqueue(event: BrokerEvent): boolean {
    if (this.queue.length >= this.host.bufferSize) {
      this.host.countDrop();
      if (!this.warned) {
        this.warned = true;
        this.host.log.warn({ pattern: this.pattern, bufferSize: this.host.bufferSize },
          'in-process subscriber is losing events: more than bufferSize published within one tick');
      }
      return false;
    }
    this.queue.push(event);
    if (!this.dirty) this.host.markDirty(this);
    return true;
  }

  flush(): void {
    const batch = this.queue;
    this.queue = this.spare;
    this.spare = batch;
    this.warned = false;
    for (let i = 0; i < batch.length && this.active; i++) {
      try {
        this.handler(batch[i]!);
      } catch (err) {
        // A throwing handler is the embedder's bug; it must not break delivery to anyone else.
        this.host.log.error({ err, pattern: this.pattern }, 'in-process subscriber threw');
      }
    }
    batch.length = 0;
  }

  /** Stops delivery, dropping whatever is queued. */
  deactivate(): void {
    this.active = false;
    this.queue.length = 0;
  }
}
