import type { Clock } from '../clock.js';
import type { ChannelEvents, PublishResult } from '../types.js';
import type { ChannelPosition, Engine, EventSink, HistoryPage, PublishRequest } from './engine.js';
import { ChannelCounters } from './offsets.js';
import { StreamEvent } from './stream-event.js';

/** What the memory engine is made of. */
export interface MemoryEngineOptions {
  /** Channels whose counter (and history) is kept, least recently published forgotten first. */
  channelCacheSize: number;
}

/**
 * The engine of one broker process: everything in memory, nothing shared, lost on restart (a new
 * stream epoch tells resuming clients so). Every method answers at once.
 */
export class MemoryEngine implements Engine {
  readonly kind = 'memory';
  readonly counters: ChannelCounters;
  private sink: EventSink = () => {};
  private seq = 0;

  constructor(options: MemoryEngineOptions, private readonly clock: Clock) {
    this.counters = new ChannelCounters(options.channelCacheSize, () => clock.now());
  }

  get epoch(): string {
    return this.counters.streamEpoch;
  }

  start(sink: EventSink): Promise<void> {
    this.sink = sink;
    return Promise.resolve();
  }

  publish(request: PublishRequest): PublishResult {
    const { channel, data, labels, key } = request;
    const counters = this.counters;
    const id = counters.next(channel);
    const event = new StreamEvent(channel, data, id, counters.offset, counters.epoch, ++this.seq, this.clock.wall(), labels, key);
    this.sink(event);
    return event;
  }

  history(channel: string, _since: ChannelPosition | undefined, _limit: number): HistoryPage {
    const counter = this.counters.peek(channel);
    return { events: [], epoch: counter?.epoch ?? '', offset: counter?.offset ?? 0, complete: false, more: false };
  }

  channelCount(): number {
    return this.counters.size;
  }

  busiestChannels(limit: number): ChannelEvents[] {
    return this.counters.top(limit);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
