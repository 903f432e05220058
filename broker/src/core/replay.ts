import { ResumeReason } from '@crier/protocol';
import type { ReplayPage } from '../engine/engine.js';
import type { StreamEvent } from '../engine/stream-event.js';

// What a resume replays, whatever the transport: the engine's replay of each pattern, merged.

/** Events one resume replays at most; past it the resume says `replay_limit`. */
export const MAX_REPLAY_EVENTS = 10_000;

/** A value now, or later: what engines answer. */
export type Maybe<T> = T | Promise<T>;

/** `then` without a promise when the value is already there (the memory engine's case). */
export function when<T, U>(value: Maybe<T>, next: (value: T) => Maybe<U>): Maybe<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}

/** What a resume writes before the stream goes live: the missed events, and why not all of them. */
export interface CatchUp {
  /** In stream order, each once. */
  events: StreamEvent[];
  /** Undefined when nothing missed is left out. */
  reason: ResumeReason | undefined;
}

/** How much one resume replays at most: past either bound it says `replay_limit`. */
export interface ReplayBounds {
  events: number;
  bytes: number;
}

/**
 * The replays of a stream's patterns as one: in stream order, an event two patterns match once,
 * within `bounds` (at least one event, however large; `size` is its SSE length). A page cut by
 * its limit (`more`) ends the merge at its last event: the other pages may hold events after it,
 * and what is written must have no hole behind its last event.
 */
export function mergeReplays(pages: readonly ReplayPage[], bounds: ReplayBounds, size: (event: StreamEvent) => number): CatchUp {
  let evicted = false;
  let limited = false;
  let horizon = Infinity;
  for (const page of pages) {
    if (!page.complete) evicted = true;
    if (page.more) {
      limited = true;
      horizon = Math.min(horizon, page.events.length > 0 ? page.events[page.events.length - 1]!.seq : 0);
    }
  }
  const bySeq = new Map<number, StreamEvent>();
  for (const page of pages) for (const event of page.events) if (event.seq <= horizon) bySeq.set(event.seq, event);
  const events = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
  let n = 0;
  let bytes = 0;
  for (; n < events.length && n < bounds.events; n++) {
    bytes += size(events[n]!);
    if (n > 0 && bytes > bounds.bytes) break;
  }
  if (n < events.length) {
    events.length = n;
    limited = true;
  }
  const reason = evicted ? ResumeReason.historyEvicted : limited ? ResumeReason.replayLimit : undefined;
  return { events, reason };
}

