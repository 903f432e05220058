import { CrierError, ErrorCode, FrameType, assertChannel, type AckFrame, type PublishFrame } from '@crier/protocol';
import type { Connection } from './connection.js';
import type { ResolvedOptions } from './options.js';
import type { PendingRequests } from './pending.js';
import type { FireAndForgetOptions, PublishAck, PublishOptions } from './types.js';

/** One publish, from the call to its ack (or to the socket, without one). */
interface Publish {
  channel: string;
  data: Uint8Array;
  labels: string[] | undefined;
  key: string | undefined;
  /** 1: high priority. */
  pr: number | undefined;
  /** The message id of an acked publish; `undefined` for fire-and-forget. */
  id: string | undefined;
  resolve(ack: PublishAck | undefined): void;
  reject(error: CrierError): void;
}

/** Bytes a socket may hold unsent before publishes reject with `queue_full`: 16 MiB. */
export const MAX_SOCKET_BUFFER = 16 * 1024 * 1024;

function toFrame(item: Publish, r: number | undefined): PublishFrame {
  // Undefined fields are left out by the encoder.
  return { t: FrameType.publish, r, c: item.channel, d: item.data, l: item.labels, k: item.key, i: item.id, pr: item.pr };
}

function refuse(code: ErrorCode, channel: string, why: string): CrierError {
  return new CrierError(code, `cannot publish to "${channel}": ${why}`);
}

function toAck(frame: AckFrame): PublishAck {
  return { id: frame.id ?? '', offset: frame.o ?? 0, epoch: frame.e ?? '' };
}

/**
 * Publishing: local checks that fail fast, acked and fire-and-forget sends, and the bounded queue
 * of publishes made while offline (sent, in order, after the next `welcome`).
 *
 * Every acked publish carries a message id (`i`): this client's random prefix and a counter.
 * One sent but not acked when the connection drops is not failed: it goes back to the head of
 * the queue and is sent again, with the same id, after the next `welcome`, before newer
 * publishes. The broker acks a repeated id with the first one's result and delivers it to nobody,
 * so a publish the application awaited is delivered once across a drop.
 */
export class Publisher {
  private queue: Publish[] = [];
  private closedWith: CrierError | undefined;
  /**
   * Unique across the clients of one principal (the broker keys ids by principal): not the
   * injectable `random`, which tests (and backoff) may make deterministic.
   */
  private readonly prefix = Math.random().toString(36).slice(2) + '.';
  private published = 0;

  constructor(
    private readonly connection: Connection,
    private readonly pending: PendingRequests,
    private readonly options: ResolvedOptions,
    /** Reports the failure of a fire-and-forget publish whose promise already resolved. */
    private readonly error: (error: CrierError) => void,
  ) {}

  publish(channel: string, data: Uint8Array, options: PublishOptions | FireAndForgetOptions = {}): Promise<PublishAck | undefined> {
    return new Promise((resolve, reject) => {
      assertChannel(channel); // a throw here rejects
      if (!(data instanceof Uint8Array)) throw new TypeError('crier: data must be a Uint8Array');
      const refused = this.closedWith ?? this.tooLarge(data);
      if (refused) throw refused;
      const id = options.ack === false ? undefined : this.prefix + (this.published++).toString(36);
      const item: Publish = { channel, data, labels: options.labels, key: options.key, pr: options.priority == 'high' ? 1 : undefined, id, resolve, reject };
      if (this.connection.welcomed) {
        const full = this.bufferFull(channel);
        if (full) throw full;
        return this.transmit(item);
      }
      if (this.options.offline === 'fail') throw refuse(ErrorCode.disconnected, channel, "not connected (offline: 'fail')");
      if (this.queue.length >= this.options.queueMax) {
        throw refuse(ErrorCode.queueFull, channel, `offline queue full (${this.options.queueMax})`);
      }
      this.queue.push(item);
      if (!id) resolve(undefined);
    });
  }

  /** After a `welcome`: sends the queued publishes, oldest first (those resent after a drop lead). */
  flush(): void {
    const queued = this.queue;
    this.queue = [];
    const failures: CrierError[] = [];
    for (const item of queued) {
      // The limits may have become known (or changed) since the publish was queued, and the
      // socket may have filled up with the publishes flushed before this one.
      const refused = this.tooLarge(item.data) ?? this.bufferFull(item.channel);
      if (refused === undefined) this.transmit(item);
      else if (item.id) item.reject(refused);
      // A fire-and-forget publish resolved when it was queued: its refusal can only be an event.
      else failures.push(refused);
    }
    // Reported once everything is sent: a listener may do anything, quit() included.
    for (const failure of failures) this.error(failure);
  }

  /** The client closed for good: queued publishes reject with `error`, and so will new ones. */
  close(error: CrierError): void {
    this.closedWith = error;
    const queued = this.queue;
    this.queue = [];
    for (const item of queued) if (item.id) item.reject(error);
  }

  /**
   * `queue_full` while the socket holds more than {@link MAX_SOCKET_BUFFER} unsent. `send` never
   * refuses: without this, a publisher faster than its network (fire-and-forget in a loop, above
   * all) would grow the socket's buffer without bound.
   */
  private bufferFull(channel: string): CrierError | undefined {
    const buffered = this.connection.bufferedAmount;
    if (buffered <= MAX_SOCKET_BUFFER) return undefined;
    return refuse(ErrorCode.queueFull, channel, `${buffered} bytes unsent: slow down`);
  }

  /**
   * Hands the publish to the socket (checks done). A fire-and-forget one resolves now; an acked
   * one with its ack, or goes back to the queue when the connection drops first (the queue is
   * empty while connected, and the requests are rejected in the order they were sent).
   */
  private transmit(item: Publish): void {
    if (!item.id) {
      this.connection.send(toFrame(item, undefined));
      return item.resolve(undefined);
    }
    const r = this.pending.add({
      resolve: (ack) => item.resolve(toAck(ack as AckFrame)),
      reject: (err) => (err.code === ErrorCode.disconnected ? this.queue.push(item) : item.reject(err)),
    }, `publish to "${item.channel}"`);
    this.connection.send(toFrame(item, r));
  }

  private tooLarge(data: Uint8Array): CrierError | undefined {
    const max = this.connection.limits?.maxPayload;
    if (max === undefined || data.length <= max) return undefined;
    return new CrierError(ErrorCode.payloadTooLarge, `${data.length} bytes of data > maxPayload ${max}`);
  }
}
