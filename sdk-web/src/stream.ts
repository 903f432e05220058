// An optional entry point (`@crier/sdk-web/stream`): subscriptions read with `for await`. The
// core bundle leaves it out; `@crier/sdk-web/full` makes every subscription iterable with it.
import type { CrierError } from '@crier/protocol';
import type { Client } from './client.js';
import { emit } from './listeners.js';
import type { Handle, Tap } from './subscriptions.js';
import type { CrierClient, CrierEvent, Subscription } from './types.js';

interface Waiter {
  resolve(result: IteratorResult<CrierEvent, undefined>): void;
  reject(error: CrierError): void;
}

const DONE: IteratorResult<CrierEvent, undefined> = Object.freeze({ done: true, value: undefined });

/**
 * One async iterator over a subscription's events, with a bounded buffer between the socket
 * (which never waits) and the reader. When the buffer holds `capacity` events and another comes,
 * the oldest is discarded and passed to `onOverflow`: the reader keeps up with the most recent
 * events rather than the oldest, as a live UI wants.
 *
 * `end()` finishes it: buffered events are still yielded, then the iterator is done (or throws
 * `error` once, when the subscription failed).
 */
export class EventStream implements AsyncIterableIterator<CrierEvent, undefined>, Tap {
  /** At most `capacity` events, oldest first: `shift()` on an array this small is cheap. */
  private buffered: CrierEvent[] = [];
  private waiters: Waiter[] = [];
  private ended = false;
  private error: CrierError | undefined;

  constructor(
    private readonly capacity: number,
    private readonly onOverflow: (discarded: CrierEvent) => void,
    /** Called when the reader stops early (`break` in a `for await`). */
    private readonly onReturn: () => void,
  ) {}

  push(event: CrierEvent): void {
    if (this.ended) return;
    const waiter = this.waiters.shift();
    if (waiter) return waiter.resolve({ done: false, value: event });
    if (this.buffered.push(event) > this.capacity) this.onOverflow(this.buffered.shift()!);
  }

  end(error?: CrierError): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    // Waiters exist only while the buffer is empty.
    for (const waiter of this.waiters.splice(0)) this.finish(waiter);
  }

  next(): Promise<IteratorResult<CrierEvent, undefined>> {
    const event = this.buffered.shift();
    if (event) return Promise.resolve({ done: false, value: event });
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      if (this.ended) this.finish(waiter);
      else this.waiters.push(waiter);
    });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  return(): Promise<IteratorResult<CrierEvent, undefined>> {
    const early = !this.ended;
    this.buffered = [];
    this.end();
    if (early) this.onReturn();
    return Promise.resolve(DONE);
  }

  private finish(waiter: Waiter): void {
    const error = this.error;
    this.error = undefined; // thrown once; later calls are plain `done`
    if (error) waiter.reject(error);
    else waiter.resolve(DONE);
  }
}

/**
 * The events of `subscription` (of `client`), as an async iterator: `for await (const event of
 * events(client, sub))`. It buffers up to the client's `iteratorBufferSize` events not read yet;
 * past it the oldest is discarded and reported as a `'dropped'` notice with `source: 'iterator'`.
 * `break` (or `return()`) unsubscribes the handle; the iterator ends when the handle is
 * unsubscribed or the client closes, and throws the `CrierError` of a subscription that failed.
 */
export function events(client: CrierClient, subscription: Subscription): AsyncIterableIterator<CrierEvent, undefined> {
  const c = client as Client;
  const handle = subscription as Handle;
  const stream: EventStream = new EventStream(
    c.connection.options.iteratorMax,
    (event) => emit(c.droppedListeners, { total: 1, channels: new Map([[event.channel, 1]]), source: 'iterator' }),
    () => {
      handle.taps.delete(stream);
      handle.unsubscribe().catch(() => {});
    },
  );
  if (handle.ended) stream.end(handle.failure);
  else handle.taps.add(stream);
  return stream;
}
