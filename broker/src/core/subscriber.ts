import type { EventFilter } from '@crier/protocol';
import type { StreamEvent } from '../engine/stream-event.js';
import type { DropTally } from './drop-tally.js';

/**
 * Whatever receives events: a WebSocket connection, an SSE stream, an in-process handler. The
 * pipeline hands it each matching event once; it picks its own encoding from the event (each
 * encoding is made once per event, whoever needs it first) and queues it for the next flush.
 */
export interface Subscriber extends IndexEntry {
  /** The pipeline's publish sequence that last matched it: dedupes overlapping subscriptions. */
  stamp: number;
  /** As its own index entry (a subscription without a filter): itself, no filter. */
  readonly sub: Subscriber;
  readonly filter: undefined;
  /** Its subscriptions by subscription key: owned by the registry. */
  readonly subscriptions: Map<string, IndexEntry>;
  /** Queues `event` for the next flush. Returns false when it was dropped (a full queue). */
  deliver(event: StreamEvent): boolean;
  /** Losing events right now (a slow consumer): a queue group passes it over. */
  readonly slow?: boolean;
  /** Events queued towards it or in flight: a queue group passes it over past a threshold. */
  readonly queueDepth?: number;
  /** Who is on the other end (WebSocket connections): presence lists authenticated ones by id. */
  readonly principal?: { readonly id: string; readonly kind: string };
}

/**
 * What the channel index holds: a subscriber and the filter its events must pass. A subscriber
 * with no filter is its own entry, so unfiltered subscriptions cost nothing more; a filtered one
 * is a small {@link FilteredEntry}.
 */
export interface IndexEntry {
  readonly sub: Subscriber;
  readonly filter: EventFilter | undefined;
}

export class FilteredEntry implements IndexEntry {
  constructor(
    readonly sub: Subscriber,
    readonly filter: EventFilter,
  ) {}
}

/** A subscriber with a bounded queue that can fall behind: listed while it loses events. */
export interface SlowSubscriber {
  readonly uuid: string;
  readonly drops: DropTally;
  /** Its subscriptions (queue group memberships among them), when it has any. */
  readonly subscriptions?: ReadonlyMap<string, IndexEntry>;
  backlog(): { events: number; bytes: number; dropped: number };
}

/** Something with queued output to hand over in the broker's next flush. */
export interface Flushable {
  dirty: boolean;
  flush(): void;
}
