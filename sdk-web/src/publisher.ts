import { CrierError, ErrorCode, FrameType, assertChannel, type AckFrame, type PublishFrame } from '@crier/protocol';
import type { Connection } from './connection.js';
import type { ResolvedOptions } from './options.js';
import type { PendingRequests } from './pending.js';
import type { FireAndForgetOptions, PublishAck, PublishOptions } from './types.js';

interface Publish {
  channel: string;
  data: Uint8Array;
  labels: string[] | undefined;
  key: string | undefined;
  ack: boolean;
}

interface Queued extends Publish {
  resolve(ack: PublishAck | undefined): void;
  reject(error: CrierError): void;
}

/** Bytes a socket may hold unsent before publishes reject with `queue_full`: 16 MiB. */
export const MAX_SOCKET_BUFFER = 16 * 1024 * 1024;

function toFrame(item: Publish, r: number | undefined): PublishFrame {
  // Undefined fields are left out by the encoder.
  return { t: FrameType.publish, r, c: item.channel, d: item.data, l: item.labels, k: item.key };
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
 * Delivery is at-most-once: an acked publish whose connection drops before its ack rejects with
 * `disconnected`, and is not sent again (the broker may or may not have it).
 */
export class Publisher {
  private queue: Queued[] = [];
  private closedWith: CrierError | undefined;

  constructor(
    private readonly connection: Connection,
    private readonly pending: PendingRequests,
    private readonly options: ResolvedOptions,
    /** Reports the failure of a fire-and-forget publish whose promise already resolved. */
    private readonly error: (error: CrierError) => void,
  ) {}

  publish(channel: string, data: Uint8Array, options: PublishOptions | FireAndForgetOptions = {}): Promise<PublishAck | undefined> {
    try {
      assertChannel(channel);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!(data instanceof Uint8Array)) {
      return Promise.reject(new TypeError('crier: data must be a Uint8Array (see encodeText, encodeJson)'));
    }
    const refused = this.closedWith ?? this.tooLarge(data);
    if (refused) return Promise.reject(refused);
    const item: Publish = { channel, data, labels: options.labels, key: options.key, ack: options.ack !== false };
    if (this.connection.isOpen) return this.send(item);
    if (this.options.offline === 'fail') {
      return Promise.reject(refuse(ErrorCode.disconnected, channel, "not connected (offline: 'fail')"));
    }
    if (this.queue.length >= this.options.offlineQueueSize) {
      return Promise.reject(refuse(ErrorCode.queueFull, channel, `offline queue full (${this.options.offlineQueueSize})`));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ ...item, resolve, reject });
      if (!item.ack) resolve(undefined);
    });
  }

  /** After a `welcome`: sends the queued publishes, oldest first. */
  flush(): void {
    const queued = this.queue;
    this.queue = [];
    const failures: CrierError[] = [];
    for (const item of queued) {
      // The limits may have become known (or changed) since the publish was queued, and the
      // socket may have filled up with the publishes flushed before this one.
      const refused = this.tooLarge(item.data) ?? this.bufferFull(item.channel);
      if (refused === undefined) this.transmit(item).then(item.resolve, item.reject);
      else if (item.ack) item.reject(refused);
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
    for (const item of queued) if (item.ack) item.reject(error);
  }

  private send(item: Publish): Promise<PublishAck | undefined> {
    const refused = this.bufferFull(item.channel);
    return refused === undefined ? this.transmit(item) : Promise.reject(refused);
  }

  /**
   * `queue_full` while the socket holds more than {@link MAX_SOCKET_BUFFER} unsent. `send` never
   * refuses: without this, a publisher faster than its network (fire-and-forget in a loop, above
   * all) would grow the socket's buffer without bound.
   */
  private bufferFull(channel: string): CrierError | undefined {
    const buffered = this.connection.bufferedAmount;
    if (buffered <= MAX_SOCKET_BUFFER) return undefined;
    return refuse(ErrorCode.queueFull, channel, `${buffered} bytes unsent (max ${MAX_SOCKET_BUFFER}): slow down`);
  }

  /** Hands the publish to the socket (checks done); an acked one resolves with its ack. */
  private transmit(item: Publish): Promise<PublishAck | undefined> {
    if (!item.ack) {
      this.connection.send(toFrame(item, undefined));
      return Promise.resolve(undefined);
    }
    return new Promise((resolve, reject) => {
      const r = this.pending.add({ resolve: (ack) => resolve(toAck(ack)), reject }, `publish to "${item.channel}"`);
      this.connection.send(toFrame(item, r));
    });
  }

  private tooLarge(data: Uint8Array): CrierError | undefined {
    const max = this.connection.limits?.maxPayload;
    if (max === undefined || data.length <= max) return undefined;
    return new CrierError(ErrorCode.payloadTooLarge, `data of ${data.length} bytes exceeds maxPayload (${max})`);
  }
}
