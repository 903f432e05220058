import type { CrierError } from '@crier/protocol';
import type { CrierEvent } from './types.js';

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
export class EventStream implements AsyncIterator<CrierEvent, undefined> {
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
