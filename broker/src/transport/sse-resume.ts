import { ResumeReason } from '@crier/protocol';
import { MAX_REPLAY_EVENTS, mergeReplays, when, type CatchUp, type ReplayBounds } from '../core/replay.js';
import type { Accept, Engine, ReplayPage } from '../engine/engine.js';
import type { StreamEvent } from '../engine/stream-event.js';

// The resume of an SSE stream: every event's `id:` is its position in the broker's stream,
// `<engine epoch>:<seq>`; an EventSource sends the last one back as `Last-Event-ID` when it
// reconnects, and the new stream starts with what the old one missed.

/** A position in the broker's stream, as an SSE `id:` carries it. */
export interface SsePosition {
  /** The engine's stream epoch: `seq` counts within it. */
  epoch: string;
  seq: number;
}

/**
 * `<epoch>:<seq>`: the epoch is the engine's (any characters but white space; the last `:` ends
 * it), the seq a decimal integer. A bounded length: the header is the client's to write.
 */
const POSITION = /^(\S{1,128}):(\d{1,15})$/;

export function formatSsePosition(epoch: string, seq: number): string {
  return `${epoch}:${seq}`;
}

/** The position in an SSE id, or undefined when it is not one the broker writes. */
export function parseSsePosition(value: string): SsePosition | undefined {
  const m = POSITION.exec(value);
  return m === null ? undefined : { epoch: m[1]!, seq: Number(m[2]) };
}

/**
 * The replay bounds of a stream: its own queue's (`bufferSize` events, 10,000 at most, and
 * `maxBufferBytes`), so that a reconnect never makes the broker hold more for one stream than a
 * burst of live events could.
 */
export function replayBounds(bufferSize: number, maxBufferBytes: number): ReplayBounds {
  return { events: Math.max(1, Math.min(bufferSize, MAX_REPLAY_EVENTS)), bytes: maxBufferBytes };
}

/**
 * What a stream of `patterns` (and `accept`, its filter) missed after `position`: nothing, with
 * the reason, for a position that is not one (`null`) or of another epoch; else each pattern's
 * replay, merged (see {@link mergeReplays}). A value at once from the memory engine, no promise.
 */
export function readMissed(
  engine: Engine,
  patterns: readonly string[],
  accept: Accept | undefined,
  position: SsePosition | null,
  bounds: ReplayBounds,
  size: (event: StreamEvent) => number,
): CatchUp | Promise<CatchUp> {
  if (position === null) return { events: [], reason: ResumeReason.badPosition };
  if (position.epoch !== engine.epoch) return { events: [], reason: ResumeReason.brokerRestarted };
  const pages = patterns.map((p) => engine.replay(p, position.seq, bounds.events, accept));
  const all = pages.some((p) => p instanceof Promise) ? Promise.all(pages) : (pages as ReplayPage[]);
  return when(all, (done) => mergeReplays(done, bounds, size));
}

/**
 * A catch-up with the live events held while an engine answered (none with the memory engine):
 * held events within the replay's range that it did not carry (published while one of several
 * patterns' replays was read) join it in stream order; later ones (`after`) follow as live.
 * `last` is the replay's last position (0: none).
 */
export function joinHeld(events: StreamEvent[], held: readonly StreamEvent[]): { replay: StreamEvent[]; after: StreamEvent[]; last: number } {
  const last = events.length > 0 ? events[events.length - 1]!.seq : 0;
  if (held.length === 0) return { replay: events, after: [], last };
  const carried = new Set(events.map((e) => e.seq));
  const within = held.filter((e) => e.seq <= last && !carried.has(e.seq));
  const after = held.filter((e) => e.seq > last);
  const replay = within.length === 0 ? events : [...events, ...within].sort((a, b) => a.seq - b.seq);
  return { replay, after, last };
}

/**
 * `event: resumed`, written after the replay: `{recovered, reason?, replayed}`, and as its `id:`
 * the position the client now has (so a drop before the next event resumes from there).
 */
export function resumedEvent(id: string, reason: ResumeReason | undefined, replayed: number): Buffer {
  const data = reason === undefined ? { recovered: true, replayed } : { recovered: false, reason, replayed };
  return Buffer.from(`event: resumed\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`, 'utf8');
}
