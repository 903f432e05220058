import { ResumeReason } from '@crier/protocol';
import type { Engine, ReplayPage } from '../engine/engine.js';
import type { StreamEvent } from '../engine/stream-event.js';
import { MAX_REPLAY_EVENTS, when } from '../transport/resume.js';

// The resume of an SSE stream: every event's `id:` is its position in the broker's stream,
// `<engine epoch>:<seq>`; an EventSource sends the last one back as `Last-Event-ID` when it
// reconnects, and the new stream starts with what the old one missed.

/** A position in the broker's stream, as an SSE `id:` carries it. */
export interface SsePosition {
  /** The engine's stream epoch: `seq` counts within it. */
  epoch: string;
  seq: number;
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
  accept: ((labels: string[] | undefined, key: string | undefined) => boolean) | undefined,
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
