import { Presence } from './presence.js';
import type { Logger } from 'pino';
import { compileFilter, toWireFilter, type SubscribeFilter } from '@crier/protocol';
import type { Clock, TimerHandle } from '../clock.js';
import type { ResolvedOptions } from '../config/options.js';
import type { Engine, PublishRequest } from '../engine/engine.js';
import type { StreamEvent } from '../engine/stream-event.js';
import { LatencyRecorder, type LatencyHistogram } from '../observe/latency.js';
import type { BrokerEvent, PublishResult, SlowConsumer } from '../types.js';
import type { QueueGroup } from './groups.js';
import { LocalSubscriber } from './local-subscriber.js';
import { SubscriptionRegistry } from './registry.js';
import type { Flushable, IndexEntry, SlowSubscriber, Subscriber } from './subscriber.js';

/**
 * The publish pipeline and what it needs, whatever the transport:
 *
 *   publish → engine (sequence: id, offset, epoch, seq; store: history; carry to every node)
 *           → route (the registry's index, filters) → deliver (each subscriber, its encoding)
 *           → flush (once per turn, every subscriber with queued output)
 *
 * The engine hands each sequenced event to {@link route} (its sink), on every node. Transports
 * (WebSocket connections, SSE streams) sit above this file and register their subscribers here;
 * nothing here knows what a socket is.
 */
export class BrokerCore {
  readonly registry: SubscriptionRegistry;
  /** Who subscribes to what, and join/leave notices (see presence.ts). */
  readonly presence: Presence;
  /** Published, delivered (queued to a subscriber), dropped (a full queue): since start. */
  published = 0;
  delivered = 0;
  dropped = 0;
  readonly startedAt: number;

  private readonly latency = new LatencyRecorder();
  /** Subscribers in a slow spell right now (a set, so the dashboard can list them cheaply). */
  private readonly slow = new Set<SlowSubscriber>();

  // Routing: a sequence stamp dedupes subscribers matched by several patterns, and the matches
  // go into one reused array (routing never runs inside another: handlers run in the flush). Its
  // first `recipientCount` slots are this event's; the array keeps its storage between events
  // (setting its length to 0 per event dropped it, and the next push allocated it again).
  private routeSeq = 0;
  private readonly recipients: (Subscriber | undefined)[] = [];
  private recipientCount = 0;
  private matching: StreamEvent | undefined;
  private readonly collect = (entry: IndexEntry): void => {
    const sub = entry.sub;
    if (sub.stamp === this.routeSeq) return;
    // A filtered-out entry does not stamp: another subscription of the same subscriber may pass.
    if (entry.filter !== undefined && !entry.filter.passes(this.matching!.labels, this.matching!.key)) return;
    sub.stamp = this.routeSeq;
    this.recipients[this.recipientCount++] = sub;
  };
  /** The queue groups this node delivers the event being routed to (`undefined`: every group here). */
  private chosen: ReadonlySet<string> | undefined;
  private readonly pickGroup = (group: QueueGroup): void => {
    if (this.chosen !== undefined && !this.chosen.has(group.key)) return; // another node's turn
    const event = this.matching!;
    const sub = this.registry.groups.pick(group, event.labels, event.key);
    if (sub === undefined || sub.stamp === this.routeSeq) return; // it has the event already
    sub.stamp = this.routeSeq;
    this.recipients[this.recipientCount++] = sub;
  };

  // Flush scheduling: items with queued output, and one deferred call per turn for all of them.
  private dirty: Flushable[] = [];
  private flushing: Flushable[] = [];
  private scheduled: TimerHandle | undefined;
  private readonly flushBound = (): void => this.flush();

  constructor(
    readonly options: ResolvedOptions,
    readonly log: Logger,
    readonly clock: Clock,
    readonly engine: Engine,
  ) {
    this.startedAt = clock.now();
    // A queue group passes over a member with a quarter of its queue waiting: a consumer that
    // has stopped reading is skipped long before it would drop events.
    this.registry = new SubscriptionRegistry(Math.max(1, Math.floor(options.bufferSize / 4)));
    this.presence = new Presence(this.registry, (item) => this.markDirty(item));
    engine.onPresence((pattern, members) => this.presence.count(pattern, members));
  }

  /**
   * Connects the pipeline to the engine: from now on, every sequenced event is routed here, and
   * the engine hears when this node's interest in a name or pattern begins and ends.
   */
  async start(): Promise<void> {
    await this.engine.start((event, chosen) => this.route(event, chosen));
    this.registry.onInterest((pattern, present) => this.engine.interest(pattern, present));
    this.registry.groups.onMembers((name, pattern, members) => this.engine.groupMembers?.(name, pattern, members));
  }

  // ---- publish ----------------------------------------------------------------------------

  /**
   * Publishes a validated, allowed event through the engine. The memory engine answers at once
   * (the event is routed before this returns); another may answer with a promise.
   */
  publish(request: PublishRequest): PublishResult | Promise<PublishResult> {
    return this.engine.publish(request);
  }

  /**
   * The engine's sink: one sequenced event to every matching local subscriber, and to one member
   * of each matching queue group (of those in `chosen` when the engine says: see EventSink).
   */
  route(event: StreamEvent, chosen?: ReadonlySet<string>): void {
    this.routeSeq++;
    this.published++;
    this.matching = event;
    this.registry.match(event.channel, this.collect);
    if (this.registry.groups.size > 0) {
      this.chosen = chosen;
      this.registry.groups.match(event.channel, this.pickGroup);
    }
    const recipients = this.recipients;
    const count = this.recipientCount;
    if (count > 0) {
      let queued = 0;
      try {
        for (let i = 0; i < count; i++) {
          if (recipients[i]!.deliver(event)) queued++;
          else this.dropped++;
        }
      } finally {
        // Cleared whatever happens: a stale entry would receive the next event (or keep a
        // subscriber that is gone alive).
        for (let i = 0; i < count; i++) recipients[i] = undefined;
        this.recipientCount = 0;
        this.matching = undefined;
      }
      this.delivered += queued;
      if (queued > 0) this.latency.markPublished(this.clock.now());
    }
    if (this.options.logPublishedEvents) {
      this.log.info({ channel: event.channel, id: event.id, offset: event.offset, epoch: event.epoch, bytes: event.data.length }, 'event published');
    }
  }

  /** Adds an in-process subscriber for a valid pattern. Throws `bad_filter` for a bad filter. */
  subscribeLocal(pattern: string, handler: (event: BrokerEvent) => void, filter?: SubscribeFilter): LocalSubscriber {
    const sub = new LocalSubscriber(pattern, handler, this);
    this.registry.add(sub, pattern, compileFilter(toWireFilter(filter)));
    return sub;
  }

  unsubscribeLocal(sub: LocalSubscriber): void {
    if (!sub.active) return;
    sub.deactivate();
    this.registry.removeAll(sub);
  }

  // ---- slow subscribers -------------------------------------------------------------------

  /** `sub` just started losing events. */
  onSlow(sub: SlowSubscriber): void {
    this.slow.add(sub);
    this.registry.groups.slowChanged(sub.subscriptions);
    if (this.options.logSlowConsumers) {
      this.log.warn({ uuid: sub.uuid, ...sub.backlog(), bufferSize: this.options.bufferSize, maxBufferBytes: this.options.maxBufferBytes },
        'slow consumer: dropping events for this connection until it drains');
    }
  }

  /** `sub` drained after losing `dropped` events; `channels` is what it was told. */
  onRecovered(sub: SlowSubscriber, dropped: number, channels: [string, number][]): void {
    this.slow.delete(sub);
    this.registry.groups.slowChanged(sub.subscriptions);
    if (this.options.logSlowConsumers) {
      this.log.warn({ uuid: sub.uuid, dropped, channels: channels.slice(0, 10) }, 'slow consumer recovered');
    }
  }

  /** `sub` is gone: it is no longer a slow consumer. */
  forgetSlow(sub: SlowSubscriber): void {
    this.slow.delete(sub);
  }

  /** Subscribers losing events right now. */
  get slowCount(): number {
    return this.slow.size;
  }

  /** The slow consumers, most events dropped first, at most `limit`. */
  slowConsumers(limit: number): SlowConsumer[] {
    const slow: SlowConsumer[] = [];
    for (const sub of this.slow) {
      const { events, bytes, dropped } = sub.backlog();
      slow.push({ uuid: sub.uuid, events, bytes, dropped, since: sub.drops.since });
    }
    slow.sort((a, b) => b.dropped - a.dropped || (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0));
    return slow.slice(0, limit);
  }

  /** Counts one event a subscriber lost outside the pipeline's delivery. */
  countDrop(): void {
    this.dropped++;
  }

  // ---- flush ------------------------------------------------------------------------------

  /** Schedules `item` for the flush of this turn. */
  markDirty(item: Flushable): void {
    item.dirty = true;
    this.dirty.push(item);
    this.scheduled ??= this.clock.defer(this.flushBound);
  }

  /**
   * Hands every queued frame to its socket: one write per connection per turn, then the
   * in-process handlers. Anything queued meanwhile (a handler publishing) waits for the next turn.
   */
  flush(): void {
    this.scheduled = undefined;
    const items = this.dirty;
    this.dirty = this.flushing;
    this.flushing = items;
    this.latency.beginFlush();
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      item.dirty = false;
      try {
        item.flush();
      } catch (err) {
        this.log.error({ err }, 'flush failed for one subscriber');
      }
    }
    items.length = 0;
    this.latency.endFlush(this.clock.now());
  }

  /** Stops the pending flush (the broker is closed). */
  dispose(): void {
    if (this.scheduled !== undefined) this.clock.clearDefer(this.scheduled);
    this.scheduled = undefined;
  }

  /** Seconds since start. */
  uptime(): number {
    return Math.round(this.clock.now() - this.startedAt) / 1000;
  }

  /** Publish-to-send latency since start, as a histogram. */
  latencyHistogram(): LatencyHistogram {
    return this.latency.histogram();
  }

  /** Publish-to-send latency: mean and recent p99. */
  latencySummary(): { avgMs: number; p99Ms: number } {
    return this.latency.summary();
  }
}

/** A publish's answer as it is given out: its three fields, not the event that carries them. */
export function publishResult({ id, offset, epoch }: PublishResult): PublishResult {
  return { id, offset, epoch };
}
