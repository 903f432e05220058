import type { Logger } from 'pino';
import { Encoding, type StreamEvent } from '../engine/stream-event.js';
import type { BrokerEvent } from '../types.js';
import type { Flushable, IndexEntry, Subscriber } from './subscriber.js';

/** What an in-process subscriber needs from the broker around it. */
export interface LocalHost {
  readonly options: { readonly bufferSize: number };
  readonly log: Logger;
  markDirty(item: Flushable): void;
}

/** The event as in-process handlers get it: one frozen object per event, shared by all of them. */
class LocalEncoding extends Encoding<BrokerEvent> {
  encode(e: StreamEvent): BrokerEvent {
    // Data from a socket is a Buffer view; handlers get a plain Uint8Array, as from any publish.
    const data = Buffer.isBuffer(e.data) ? new Uint8Array(e.data.buffer, e.data.byteOffset, e.data.byteLength) : e.data;
    const event: BrokerEvent = { channel: e.channel, data, id: e.id, offset: e.offset, epoch: e.epoch, time: e.time };
    if (e.labels !== undefined) event.labels = e.labels;
    if (e.key !== undefined) event.key = e.key;
    // None may change it for the others.
    return Object.freeze(event);
  }
}
const LOCAL = new LocalEncoding();

/**
 * An in-process subscription. It sits in the registry beside the connections and gets the same
 * treatment: each matching event once, handed over in the broker's flush (never inside
 * `publish`, so a handler that publishes cannot recurse), at most `bufferSize` per flush.
 */
export class LocalSubscriber implements Subscriber, Flushable {
  stamp = 0;
  dirty = false;
  active = true;
  readonly sub = this;
  readonly filter = undefined;
  readonly subscriptions = new Map<string, IndexEntry>();
  private queue: BrokerEvent[] = [];
  // The array being dispatched; swapped with `queue` so events published by a handler wait for
  // the next flush instead of growing the array under iteration.
  private spare: BrokerEvent[] = [];
  private warned = false;

  constructor(
    readonly pattern: string,
    private readonly handler: (event: BrokerEvent) => void,
    private readonly host: LocalHost,
  ) {}

  /** Queues `event`, or drops it when a flush's worth is already waiting. */
  deliver(event: StreamEvent): boolean {
    if (this.queue.length >= this.host.options.bufferSize) {
      if (!this.warned) {
        this.warned = true;
        this.host.log.warn({ pattern: this.pattern, bufferSize: this.host.options.bufferSize },
          'in-process subscriber is losing events: more than bufferSize published within one tick');
      }
      return false;
    }
    this.queue.push(event.as(LOCAL));
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
