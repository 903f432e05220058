import { LRUCache } from 'lru-cache';
import type { Clock } from '../clock.js';
import type { ChannelEvents, PublishResult } from '../types.js';
import { ChannelStore, type StoreLimits } from './channel-store.js';
import type { ChannelPosition, Engine, EventSink, HistoryPage, PublishRequest, ReplayPage } from './engine.js';
import { StreamEvent } from './stream-event.js';

/** What the memory engine is made of. */
export interface MemoryEngineOptions extends StoreLimits {
  /** How long a publish's message id is remembered, in ms (0: publishes are not deduplicated). */
  idempotencyWindow: number;
  /** Message ids remembered at most (least recent forgotten first). */
  idempotencyKeys: number;
}

interface Remembered {
  result: PublishResult;
  at: number;
}

/**
 * The engine of one broker process: everything in memory, nothing shared, lost on restart (a new
 * stream epoch tells resuming clients so). Every method answers at once.
 */
export class MemoryEngine implements Engine {
  readonly kind = 'memory';
  readonly store: ChannelStore;
  private sink: EventSink = () => {};
  private readonly seen: LRUCache<string, Remembered> | undefined;

  constructor(
    private readonly options: MemoryEngineOptions,
    private readonly clock: Clock,
  ) {
    this.store = new ChannelStore(options, () => clock.wall(), () => clock.now());
    this.seen = options.idempotencyWindow > 0 && options.idempotencyKeys > 0 ? new LRUCache({ max: options.idempotencyKeys }) : undefined;
  }

  get epoch(): string {
    return this.store.epoch;
  }

  start(sink: EventSink): Promise<void> {
    this.sink = sink;
    return Promise.resolve();
  }

  publish(request: PublishRequest): PublishResult {
    const { channel, data, labels, key, idempotency } = request;
    let dedupe: string | undefined;
    if (idempotency !== undefined && this.seen !== undefined) {
      dedupe = `${idempotency.scope}\u0000${idempotency.id}`;
      const first = this.seen.get(dedupe);
      if (first !== undefined && this.clock.now() - first.at <= this.options.idempotencyWindow) return first.result;
    }
    const store = this.store;
    const log = store.sequence(channel);
    const event = new StreamEvent(channel, data, store.nextId(), log.offset, log.epoch, store.seq, this.clock.wall(), labels, key);
    store.retain(log, event);
    if (dedupe !== undefined) this.seen!.set(dedupe, { result: { id: event.id, offset: event.offset, epoch: event.epoch }, at: this.clock.now() });
    this.sink(event);
    return event;
  }

  history(channel: string, since: ChannelPosition | undefined, limit: number): HistoryPage {
    return this.store.read(channel, since, limit);
  }

  replay(pattern: string, since: number, limit: number, accept?: (labels: string[] | undefined, key: string | undefined) => boolean): ReplayPage {
    return this.store.replay(pattern, since, limit, accept);
  }

  channelCount(): number {
    return this.store.size;
  }

  busiestChannels(limit: number): ChannelEvents[] {
    return this.store.top(limit);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
