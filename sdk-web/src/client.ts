import {
  CrierError,
  ErrorCode,
  FrameType,
  type AckFrame,
  type BrokerFrame,
  type ErrorFrame,
  type EventsFrame,
  type PresenceChangeFrame,
  type ReplyAnswerFrame,
  type ResumeOutcome,
} from '@crier/protocol';
import { Connection, type ConnectionHooks } from './connection.js';
import { Event } from './event.js';
import { emit, listen } from './listeners.js';
import { resolveOptions } from './options.js';
import { PendingRequests, errorFromFrame, type SendRequest } from './pending.js';
import { Publisher } from './publisher.js';
import { Subscriptions, type SubscriptionHost } from './subscriptions.js';
import type {
  ClientLimits,
  ClientOptions,
  ClientSession,
  ClientState,
  CrierClient,
  DroppedListener,
  ErrorListener,
  EventHandler,
  FireAndForgetOptions,
  PublishAck,
  PublishOptions,
  ResumedListener,
  StateInfo,
  StateListener,
  SubscribeFilter,
  SubscribeOptions,
  Subscription,
} from './types.js';

function describeClose(info: StateInfo): string {
  return info.code === undefined ? '' : ` (code ${info.code}${info.reason ? `: ${info.reason}` : ''})`;
}

/**
 * The client façade: wires the connection, pending requests, publisher and subscriptions.
 *
 * The members marked internal are not part of {@link CrierClient}: they are what the optional
 * entry points (history.ts, stream.ts, full.ts) build on, so that the core bundle carries none
 * of their code and a bundler drops the entry points a page does not import.
 */
export class Client implements CrierClient, ConnectionHooks, SubscriptionHost {
  /** @internal */
  readonly connection: Connection;
  private readonly pending: PendingRequests;
  private readonly publisher: Publisher;
  /** @internal */
  readonly subscriptions: Subscriptions;
  private readonly eventHandlers = new Set<EventHandler>();
  private readonly stateListeners = new Set<StateListener>();
  /** @internal */
  readonly droppedListeners = new Set<DroppedListener>();
  private readonly errorListeners = new Set<ErrorListener>();
  private readonly resumedListeners = new Set<ResumedListener>();
  /** @internal Emits an `'error'` event. */
  readonly fail = (error: CrierError): void => emit(this.errorListeners, error);
  private readyWaiters: { resolve(): void; reject(error: CrierError): void }[] = [];
  /** @internal Where presence notices go (set by `watchPresence` of `@crier/sdk-web/presence`). */
  notice?: (frame: PresenceChangeFrame) => void;
  /** @internal Why the client closed, once it has. */
  closedWith: CrierError | undefined;
  /** @internal Sends a request (its frame made with its id) when connected; false (nothing sent) when not. */
  readonly ask: SendRequest = (frame, answer, what, ms) =>
    this.connection.welcomed && this.connection.send(frame(this.pending.add(answer, what, ms)));
  /** Removes the page lifecycle listeners. */
  private unwatch = (): void => {};

  constructor(url: string, options: ClientOptions) {
    const resolved = resolveOptions(options);
    this.pending = new PendingRequests(resolved.clock, resolved.requestMs);
    // The client is the hooks of its parts: no object of closures for each.
    this.subscriptions = new Subscriptions(this);
    this.connection = new Connection(url, resolved, this);
    this.publisher = new Publisher(this.connection, this.pending, resolved, this.fail);
    if (resolved.page && this.connection.state !== 'closed') {
      this.unwatch = resolved.page(this.connection);
    }
  }

  get state(): ClientState {
    return this.connection.state;
  }

  get uuid(): string | undefined {
    return this.connection.uuid;
  }

  get secret(): string | undefined {
    return this.connection.secret;
  }

  get limits(): ClientLimits | undefined {
    return this.connection.limits;
  }

  get session(): ClientSession | undefined {
    const c = this.connection;
    return c.epoch ? { uuid: c.uuid!, secret: c.secret!, epoch: c.epoch, seq: c.seq } : undefined;
  }

  ready(): Promise<void> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (this.connection.state === 'connected') return Promise.resolve();
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  publish(channel: string, data: Uint8Array, options?: PublishOptions): Promise<PublishAck>;
  publish(channel: string, data: Uint8Array, options: FireAndForgetOptions): Promise<void>;
  publish(channel: string, data: Uint8Array, options?: PublishOptions | FireAndForgetOptions): Promise<PublishAck | void> {
    return this.publisher.publish(channel, data, options);
  }

  subscribe(pattern: string, handler?: EventHandler, options?: SubscribeOptions): Subscription;
  subscribe(pattern: string, filter: SubscribeFilter, handler?: EventHandler, options?: SubscribeOptions): Subscription;
  subscribe(pattern: string, a?: EventHandler | SubscribeFilter, b?: EventHandler | SubscribeOptions, c?: SubscribeOptions): Subscription {
    return typeof a === 'object' && a !== null
      ? this.subscriptions.add(pattern, a, b as EventHandler | undefined, c)
      : this.subscriptions.add(pattern, undefined, a, b as SubscribeOptions | undefined);
  }

  unsubscribe(pattern: string): Promise<void> {
    return this.subscriptions.removePattern(pattern);
  }

  onEvent(handler: EventHandler): () => void {
    return listen(this.eventHandlers, handler);
  }

  on(type: 'state', listener: StateListener): () => void;
  on(type: 'dropped', listener: DroppedListener): () => void;
  on(type: 'error', listener: ErrorListener): () => void;
  on(type: 'resumed', listener: ResumedListener): () => void;
  on(type: 'state' | 'dropped' | 'error' | 'resumed', listener: StateListener | DroppedListener | ErrorListener | ResumedListener): () => void {
    // Quoted: the bundle renames some of these names elsewhere (scripts/bundle.mjs), never a quoted
    // key. An inherited name ('toString') finds no Set either.
    const listeners: unknown = { 'state': this.stateListeners, 'dropped': this.droppedListeners, 'error': this.errorListeners, 'resumed': this.resumedListeners }[type];
    if (!(listeners instanceof Set)) throw new TypeError(`crier: unknown event ${JSON.stringify(type)}`);
    return listen(listeners, listener);
  }

  quit(): Promise<void> {
    return this.connection.quit();
  }

  /** @internal A welcome arrived (see {@link ConnectionHooks}). */
  welcome(): void {
    // Subscriptions first, so that a queued publish's own event reaches this client too.
    this.subscriptions.resubscribe();
    this.publisher.flush();
  }

  /** @internal The connection's state changed. */
  changed(state: ClientState, info: StateInfo): void {
    if (state === 'connected') for (const waiter of this.readyWaiters.splice(0)) waiter.resolve();
    emit(this.stateListeners, state, info);
  }

  /** @internal A welcome answered a resume. */
  resumed({ n, why, f }: ResumeOutcome): void {
    emit(this.resumedListeners, { recovered: !why, reason: why, replayed: n, patterns: f });
  }

  /** @internal A frame from the broker. */
  frame(frame: BrokerFrame | Event): void {
    if (frame instanceof Event) {
      emit(this.eventHandlers, frame);
      this.subscriptions.dispatch(frame);
    } else if (frame.t === FrameType.dropped) {
      emit(this.droppedListeners, { total: frame.n, channels: new Map(frame.c), source: 'broker' });
    } else if (frame.t === FrameType.presenceChange) {
      this.notice?.(frame);
    } else if (frame.t === FrameType.error && frame.r === undefined) {
      // Without a request id: a fire-and-forget publish failed.
      this.fail(errorFromFrame(frame));
    } else {
      // An ack, error or events frame answers a request (a late answer to one that already timed
      // out finds nothing to settle and is dropped); a pong answers none.
      this.pending.settle(frame as AckFrame | ErrorFrame | EventsFrame | ReplyAnswerFrame);
    }
  }

  /** @internal The socket was lost. */
  down(final: boolean, info: StateInfo): void {
    if (!final) {
      // Acked publishes in flight go back to the publisher's queue, to be sent again (same id).
      this.pending.rejectAll(ErrorCode.disconnected, `connection lost${describeClose(info)}`);
      return;
    }
    const error = new CrierError(ErrorCode.closed, `client closed${describeClose(info)}`);
    this.closedWith = error;
    this.unwatch();
    this.pending.rejectAll(ErrorCode.closed, error.message);
    this.publisher.close(error);
    this.subscriptions.close(error);
    for (const waiter of this.readyWaiters.splice(0)) waiter.reject(error);
  }
}

/**
 * Creates a client and connects in the background: it returns at once, and `ready()` tells when
 * the broker welcomed it. Throws a `TypeError` when there is no WebSocket to use (pass
 * `options.WebSocket`, or use `@crier/sdk-node` in Node), a `RangeError` for a bad option, and
 * whatever the WebSocket constructor throws for a malformed URL.
 */
export function connect(url: string, options: ClientOptions = {}): CrierClient {
  return new Client(url, options);
}
