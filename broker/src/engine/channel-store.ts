import { nanoid } from 'nanoid';
import { isWildcard, matchPattern } from '@crier/protocol';
import { CachedTop, TopN } from '../observe/top-n.js';
import type { ChannelEvents } from '../types.js';
import type { Accept, HistoryPage, ReplayPage } from './engine.js';
import { StreamEvent, eventNames, memoryEventId, type EventNames } from './stream-event.js';

/** The bounds of the memory engine's state. */
export interface StoreLimits {
  /** Channels held (counter and history), least recently published forgotten first. */
  channelCacheSize: number;
  /** Events kept per channel; 0 keeps none (history off). */
  historySize: number;
  /** Bytes kept per channel (event frames); 0 keeps none. */
  historyBytes: number;
  /** Age of the oldest event kept, in ms; 0 keeps none. */
  historyTtl: number;
  /** Bytes kept over every channel; past it, the least recently published channels are forgotten. */
  historyTotalBytes: number;
}

/** Bytes a retained event costs beyond its frame (the record and its slot), for the byte bounds. */
export const RETAINED_OVERHEAD = 64;
/**
 * Channels forgotten whole (their counter and history) whose name and last position are still
 * remembered, so that a resume across them is known to have lost events. Past it, only the
 * newest position of the forgotten ones is kept, and any resume from before it is incomplete.
 */
export const REMEMBERED_EVICTIONS = 10_000;

/**
 * An event as history keeps it: its frame (data inside, stored once), at `at` in one of its
 * channel's chunks (see ChannelLog), and what routing needs. Its id is its seq's (see
 * {@link ChannelStore.idOf}). One object per event, no buffer of its own: a retained event used
 * to cost 6-7 (its own ArrayBuffer and backing store, two views, two id strings), which every
 * collection then copied, marked and swept; in bench W3 (100,000 events retained) garbage
 * collection was ~15% of the broker's CPU.
 */
interface Retained {
  seq: number;
  offset: number;
  time: number;
  /** Written once, never again: a view into it stays valid for as long as anyone holds it. */
  chunk: Buffer;
  at: number;
  length: number;
  labels: string[] | undefined;
  key: string | undefined;
}

/**
 * The record of the last event trimmed from any log, its references cleared: the next retained
 * event reuses it. A full channel trims one event per publish, so in the steady state a publish
 * allocates no record (and stores none new into an old array: no write barrier's slow path, no
 * promotion by the next collections). No record is held outside its log once trimmed (reads copy
 * its fields), so reusing it is safe.
 */
let spare: Retained | undefined;
const NO_CHUNK = Buffer.alloc(0);

/**
 * Bytes of a channel's first chunk, and of a new one at least (unless its message is larger);
 * a new chunk holds about as many bytes as the channel keeps, up to {@link MAX_CHUNK_BYTES}.
 */
export const MIN_CHUNK_BYTES = 256;
export const MAX_CHUNK_BYTES = 8 * 1024;

/** One channel: its counter, and the events it keeps, oldest first. */
export class ChannelLog {
  offset = 0;
  /** The newest event this log no longer has (trimmed or never kept): its offset and seq. */
  lostOffset = 0;
  lostSeq = 0;
  bytes = 0;
  /** Retained events are `events[head..]`. */
  readonly events: Retained[] = [];
  head = 0;
  /**
   * Events are written into chunks, back to back, oldest first (each as its WebSocket message:
   * header, then frame; see ChannelStore.room): `chunk` is the one written now (`used` bytes of
   * it), the others are held by the events in them and freed with the last one. `pinned` counts
   * the bytes of every chunk held, `frameBytes` those of the frames retained: chunks that dead
   * frames keep large are compacted (see compact).
   */
  chunk: Buffer | undefined;
  used = 0;
  pinned = 0;
  frameBytes = 0;
  /**
   * Its neighbours in the store's order of last publish (the eviction order): a list through the
   * logs themselves, so a publish to another channel than the last one moves its log with a few
   * pointer writes. (Keeping that order in the Map, deleted and set again per publish, cost ~3% of
   * the broker's time in bench W3, round-robin over 1000 channels.)
   */
  older: ChannelLog | undefined;
  newer: ChannelLog | undefined;
  /** Its names as its events' frames carry them, encoded at its first event (null: not ASCII). */
  names: EventNames | null | undefined;

  constructor(
    readonly channel: string,
    readonly epoch: string,
  ) {}

  get size(): number {
    return this.events.length - this.head;
  }

  /** Index of the first retained event with seq above `seq` (binary search: seqs increase). */
  firstAfterSeq(seq: number): number {
    let lo = this.head;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.events[mid]!.seq <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Drops the oldest retained event; returns its byte cost. */
  shift(): number {
    const gone = this.events[this.head]!;
    this.events[this.head++] = undefined as unknown as Retained;
    this.lostOffset = gone.offset;
    this.lostSeq = gone.seq;
    const cost = gone.length + RETAINED_OVERHEAD;
    this.bytes -= cost;
    this.frameBytes -= gone.length;
    const goneChunk = gone.chunk;
    gone.chunk = NO_CHUNK;
    gone.labels = undefined;
    gone.key = undefined;
    spare = gone;
    if (this.head === this.events.length) {
      // Nothing left: no chunk is held (the next event starts a small one).
      this.chunk = undefined;
      this.used = 0;
      this.pinned = 0;
    } else if (goneChunk !== this.events[this.head]!.chunk && goneChunk !== this.chunk) {
      this.pinned -= goneChunk.length; // its last event: the chunk is free
    }
    // Compact now and then: the array never holds more than twice what it retains.
    if (this.head > 64 && this.head * 2 > this.events.length) {
      this.events.splice(0, this.head);
      this.head = 0;
    }
    return cost;
  }
}

/**
 * The memory engine's channels: per-channel counters and bounded history, the stream's `seq`,
 * and what was lost, so that a reader from any position learns whether it got everything.
 *
 * Channels sit in a Map by name, and in a list in order of their last publish (oldest first: the
 * eviction order). A channel is forgotten whole (counter and history: its next event starts a new
 * epoch) when more than `channelCacheSize` are held, or when the history of every channel
 * together passes `historyTotalBytes`. Within a channel, the oldest events go first past
 * `historySize`, `historyBytes` or `historyTtl`. Ages are checked when a channel is published to
 * or read.
 */
export class ChannelStore {
  /** The stream epoch: this store's random prefix (ids and channel epochs start with it). */
  readonly epoch = nanoid(10);
  /** What every event id starts with (see {@link idOf}). */
  private readonly idPrefix = `${this.epoch}-`;
  /** The stream position of the last event sequenced. */
  seq = 0;
  /** History bytes held over every channel (frames plus RETAINED_OVERHEAD each). */
  totalBytes = 0;
  /** The busiest channels, ranked at most once a second when there are many. */
  readonly ranking: CachedTop<ChannelEvents>;

  private readonly channels = new Map<string, ChannelLog>();
  /** The ends of the list of logs by last publish. */
  private oldest: ChannelLog | undefined;
  private newest: ChannelLog | undefined;
  private epochSeq = 0;
  /** Forgotten channels, by name: the last seq each had. Oldest first, at most REMEMBERED_EVICTIONS. */
  private readonly evicted = new Map<string, number>();
  /** The newest seq of the forgotten channels no longer in `evicted`. */
  private forgottenSeq = 0;
  private readonly keeps: boolean;
  /** The log that {@link reserveBound} gives room in (see {@link room}), and the room it gave last. */
  private target: ChannelLog | undefined;
  private reserved: Buffer | undefined;
  private readonly reserveBound = (size: number): Buffer => (this.reserved = this.reserve(this.target!, size));

  constructor(
    private readonly limits: StoreLimits,
    /** Wall clock, ms since the Unix epoch (history ages). */
    private readonly wall: () => number,
    /** Monotonic clock, ms (the ranking's cache). */
    now: () => number,
  ) {
    this.keeps = limits.historySize > 0 && limits.historyBytes > 0 && limits.historyTtl > 0;
    this.ranking = new CachedTop((limit) => this.rank(limit), () => this.channels.size, now);
  }

  /** Channels held. */
  get size(): number {
    return this.channels.size;
  }

  /** The log of `channel`, if held, without touching the eviction order. */
  peek(channel: string): ChannelLog | undefined {
    return this.channels.get(channel);
  }

  /**
   * Sequences one event of `channel`: the channel's log (made, or moved to newest), its offset
   * advanced, the stream's seq advanced. Returns the log; `this.seq` is the event's seq.
   */
  sequence(channel: string): ChannelLog {
    let log = this.newest;
    if (log === undefined || log.channel !== channel) {
      log = this.channels.get(channel);
      if (log === undefined) {
        log = new ChannelLog(channel, `${this.epoch}.${(this.epochSeq++).toString(36)}`);
        if (this.channels.size >= this.limits.channelCacheSize) this.evictOldest();
        this.channels.set(channel, log);
      } else {
        this.unlink(log);
      }
      this.append(log);
    }
    log.offset++;
    this.seq++;
    return log;
  }

  /** The id of the event just sequenced (at `this.seq`): unique within the stream epoch. */
  nextId(): string {
    return this.idOf(this.seq);
  }

  /** The id of the event at stream position `seq` (the epoch, then seq - 1 in base 36). */
  idOf(seq: number): string {
    return memoryEventId(this.idPrefix, seq);
  }

  /**
   * What the next event of `log` (just sequenced) is given as its id: its channel's
   * {@link EventNames}, from which it writes and makes the id of its seq as {@link idOf} would,
   * or that id when the channel's names are not ASCII.
   */
  idOrNames(log: ChannelLog): string | EventNames {
    if (log.names === undefined) log.names = eventNames(log.channel, log.epoch, this.idPrefix) ?? null;
    return log.names ?? this.nextId();
  }

  /**
   * Where the next event of `log` (just sequenced) writes its message, for StreamEvent: with
   * history on, room in the log's chunk, which {@link retain} then keeps as is (no copy, and no
   * buffer per event: the message sent is a view of it; chunks are never written twice, so it
   * stays valid whoever holds it). Without history, `undefined`: a buffer of the event's own (a
   * chunk would stay alive for nothing but the last few messages of each channel).
   */
  room(log: ChannelLog): ((size: number) => Buffer) | undefined {
    if (!this.keeps) return undefined;
    this.target = log;
    return this.reserveBound;
  }

  /** `size` bytes at the end of `log`'s chunk (a new chunk when they do not fit), as a view. */
  private reserve(log: ChannelLog, size: number): Buffer {
    let chunk = log.chunk;
    let at = log.used;
    if (chunk === undefined || at + size > chunk.length) {
      // Not pooled: a pool's slab would stay alive for any frame in it, whoever's.
      chunk = Buffer.allocUnsafeSlow(Math.max(size, Math.min(MAX_CHUNK_BYTES, Math.max(MIN_CHUNK_BYTES, log.frameBytes))));
      log.chunk = chunk;
      log.pinned += chunk.length;
      at = 0;
    }
    log.used = at + size;
    return chunk.subarray(at, at + size);
  }

  /** Keeps `event` (just sequenced in `log`) in history, trimming to the bounds. */
  retain(log: ChannelLog, event: StreamEvent): void {
    if (!this.keeps) {
      log.lostOffset = event.offset;
      log.lostSeq = event.seq;
      return;
    }
    const frame = event.frame;
    const length = frame.length;
    const cost = length + RETAINED_OVERHEAD;
    let chunk: Buffer;
    let at: number;
    if (event.message !== undefined && event.message === this.reserved) {
      // Written in place (see room): the frame ends the room last given, at the end of the chunk.
      chunk = log.chunk!;
      at = log.used - length;
      this.reserved = undefined;
    } else {
      // An event written elsewhere: copied in.
      const room = this.reserve(log, length);
      room.set(frame);
      chunk = log.chunk!;
      at = room.byteOffset - chunk.byteOffset;
    }
    log.frameBytes += length;
    const r = spare;
    if (r !== undefined) {
      spare = undefined;
      r.seq = event.seq;
      r.offset = event.offset;
      r.time = event.time;
      r.chunk = chunk;
      r.at = at;
      r.length = length;
      r.labels = event.labels;
      r.key = event.key;
      log.events.push(r);
    } else {
      log.events.push({ seq: event.seq, offset: event.offset, time: event.time, chunk, at, length, labels: event.labels, key: event.key });
    }
    log.bytes += cost;
    this.totalBytes += cost;
    const { historySize, historyBytes } = this.limits;
    while (log.size > historySize || (log.bytes > historyBytes && log.size > 1)) this.totalBytes -= log.shift();
    this.trimExpired(log, event.time); // the event's own time: no second clock read per publish
    // Over the broker-wide bound: forget the channels published least recently, this one last.
    while (this.totalBytes > this.limits.historyTotalBytes) {
      if (this.oldest !== log) this.evictOldest();
      else if (log.size > 1) this.totalBytes -= log.shift();
      else break;
    }
    compact(log);
  }

  /**
   * The retained events of `channel` after `since` (all retained without it), oldest first, at
   * most `limit`. `complete` tells whether they follow `since` with nothing missing.
   */
  read(channel: string, since: { epoch: string; offset: number } | undefined, limit: number): HistoryPage {
    const log = this.channels.get(channel);
    if (log === undefined) {
      // Nothing held: complete from a position only if nothing was ever published after it here.
      return { events: [], epoch: '', offset: 0, complete: since === undefined, more: false };
    }
    this.trimExpired(log);
    const { from, to, complete } = historyWindow(log.size, firstOffset(log), log.epoch, log.lostOffset, since, limit);
    const events: StreamEvent[] = [];
    for (let i = from; i < to; i++) events.push(this.restore(channel, log.epoch, log.events[log.head + i]!));
    return { events, epoch: log.epoch, offset: log.offset, complete, more: to < log.size };
  }

  /**
   * The retained events after stream position `since` of every channel `pattern` (a name or a
   * wildcard pattern) matches, in stream order, at most `limit`; `complete` tells whether any
   * matching event after `since` was lost. `accept`, when given, filters (a subscription's filter):
   * a lost event is lost whatever its labels, so it does not change `complete`.
   */
  replay(pattern: string, since: number, limit: number, accept?: Accept): ReplayPage {
    let complete = since >= this.forgottenSeq || since >= this.seq;
    const sources: ChannelLog[] = [];
    if (!isWildcard(pattern)) {
      const log = this.channels.get(pattern);
      if (log !== undefined) sources.push(log);
      if ((this.evicted.get(pattern) ?? 0) > since) complete = false;
    } else {
      for (const log of this.channels.values()) if (matchPattern(pattern, log.channel)) sources.push(log);
      for (const [channel, last] of this.evicted) if (last > since && matchPattern(pattern, channel)) complete = false;
    }
    // One cursor per matching channel, merged by seq.
    const cursors: { log: ChannelLog; at: number }[] = [];
    for (const log of sources) {
      this.trimExpired(log);
      if (log.lostSeq > since) complete = false;
      const at = log.firstAfterSeq(since);
      if (at < log.events.length) cursors.push({ log, at });
    }
    const events: StreamEvent[] = [];
    let more = false;
    while (cursors.length > 0) {
      let best = 0;
      for (let i = 1; i < cursors.length; i++) {
        if (cursors[i]!.log.events[cursors[i]!.at]!.seq < cursors[best]!.log.events[cursors[best]!.at]!.seq) best = i;
      }
      const cursor = cursors[best]!;
      const retained = cursor.log.events[cursor.at++]!;
      if (cursor.at === cursor.log.events.length) cursors.splice(best, 1);
      if (accept !== undefined && !accept(retained.labels, retained.key)) continue;
      if (events.length === limit) {
        more = true;
        break;
      }
      events.push(this.restore(cursor.log.channel, cursor.log.epoch, retained));
    }
    return { events, complete, more };
  }

  /**
   * The newest retained events of every channel `pattern` matches, in stream order: the last
   * `count` of them all, or with `count` 0 the last of each channel (a retained message). `accept`
   * filters them (a subscription's filter), `maxBytes` bounds their frames (the oldest are left
   * out past it: `more`).
   */
  rewind(pattern: string, count: number, maxBytes: number, accept?: Accept): ReplayPage {
    const logs: ChannelLog[] = [];
    if (!isWildcard(pattern)) {
      const log = this.channels.get(pattern);
      if (log !== undefined) logs.push(log);
    } else {
      for (const log of this.channels.values()) if (matchPattern(pattern, log.channel)) logs.push(log);
    }
    const picked: { log: ChannelLog; retained: Retained }[] = [];
    const passes = (r: Retained): boolean => accept === undefined || accept(r.labels, r.key);
    if (count === 0) {
      for (const log of logs) {
        this.trimExpired(log);
        for (let i = log.events.length - 1; i >= log.head; i--) {
          if (passes(log.events[i]!)) {
            picked.push({ log, retained: log.events[i]! });
            break;
          }
        }
      }
    } else {
      // Newest first, one cursor per channel walking back.
      const cursors = logs.map((log) => (this.trimExpired(log), { log, at: log.events.length - 1 })).filter((c) => c.at >= c.log.head);
      while (picked.length < count && cursors.length > 0) {
        let best = 0;
        for (let i = 1; i < cursors.length; i++) {
          if (cursors[i]!.log.events[cursors[i]!.at]!.seq > cursors[best]!.log.events[cursors[best]!.at]!.seq) best = i;
        }
        const cursor = cursors[best]!;
        const retained = cursor.log.events[cursor.at--]!;
        if (cursor.at < cursor.log.head) cursors.splice(best, 1);
        if (passes(retained)) picked.push({ log: cursor.log, retained });
      }
    }
    picked.sort((a, b) => b.retained.seq - a.retained.seq); // newest first, to cut the oldest past maxBytes
    let bytes = 0;
    let kept = 0;
    while (kept < picked.length && bytes + picked[kept]!.retained.length <= maxBytes) bytes += picked[kept++]!.retained.length;
    const events = picked.slice(0, kept).reverse().map((p) => this.restore(p.log.channel, p.log.epoch, p.retained));
    return { events, complete: true, more: kept < picked.length };
  }

  /**
   * The `limit` channels with the most events in their current epoch, most first (ties by name),
   * from a ranking at most a second old when there are many.
   */
  top(limit: number): ChannelEvents[] {
    return this.ranking.top(limit);
  }

  private rank(limit: number): ChannelEvents[] {
    const best = new TopN<ChannelEvents>(limit, ranksBefore);
    for (const log of this.channels.values()) {
      // Most channels rank with none of the kept ones: turned away without an allocation.
      const worst = best.threshold;
      if (worst !== undefined && (log.offset < worst.events || (log.offset === worst.events && log.channel > worst.channel))) continue;
      best.offer({ channel: log.channel, events: log.offset });
    }
    return best.result();
  }

  private trimExpired(log: ChannelLog, now = this.wall()): void {
    if (log.size === 0) return;
    const oldest = now - this.limits.historyTtl;
    let trimmed = false;
    while (log.size > 0 && log.events[log.head]!.time < oldest) {
      this.totalBytes -= log.shift();
      trimmed = true;
    }
    if (trimmed) compact(log);
  }

  /** A retained event as a StreamEvent again: its frame as is (a view), its data read back only if needed. */
  private restore(channel: string, epoch: string, r: Retained): StreamEvent {
    const frame = r.chunk.subarray(r.at, r.at + r.length);
    return new StreamEvent(channel, undefined, this.idOf(r.seq), r.offset, epoch, r.seq, r.time, r.labels, r.key, frame);
  }

  /** Takes `log` out of the order of last publish. */
  private unlink(log: ChannelLog): void {
    if (log.older === undefined) this.oldest = log.newer;
    else log.older.newer = log.newer;
    if (log.newer === undefined) this.newest = log.older;
    else log.newer.older = log.older;
    log.older = undefined;
    log.newer = undefined;
  }

  /** Puts `log` (unlinked) at the newest end of the order of last publish. */
  private append(log: ChannelLog): void {
    log.older = this.newest;
    if (this.newest === undefined) this.oldest = log;
    else this.newest.newer = log;
    this.newest = log;
  }

  /** Forgets the least recently published channel whole, remembering where it stopped. */
  private evictOldest(): void {
    const log = this.oldest;
    if (log === undefined) return;
    this.channels.delete(log.channel);
    this.unlink(log);
    this.totalBytes -= log.bytes;
    const last = Math.max(log.lostSeq, log.size > 0 ? log.events[log.events.length - 1]!.seq : 0);
    this.evicted.delete(log.channel);
    this.evicted.set(log.channel, last);
    if (this.evicted.size > REMEMBERED_EVICTIONS) {
      const [channel, seq] = this.evicted.entries().next().value as [string, number];
      this.evicted.delete(channel);
      if (seq > this.forgottenSeq) this.forgottenSeq = seq;
    }
  }
}

/**
 * Which of a channel's `retained` events (oldest first, consecutive offsets from `first`) a
 * history read after `since` answers, at most `limit`: indices [from, to) among them, and whether
 * they follow `since` with nothing missing (its epoch, and nothing lost after it). Both engines'.
 */
export function historyWindow(
  retained: number, first: number, epoch: string, lostOffset: number, since: { epoch: string; offset: number } | undefined, limit: number,
): { from: number; to: number; complete: boolean } {
  let from = 0;
  let complete = true;
  if (since !== undefined) {
    if (since.epoch !== epoch) {
      complete = false;
    } else {
      complete = since.offset >= lostOffset;
      from = Math.min(retained, Math.max(0, since.offset - first + 1));
    }
  }
  return { from, to: Math.min(retained, from + limit), complete };
}

/** The offset of the oldest event retained in `log` (or the next one, when it retains none). */
function firstOffset(log: ChannelLog): number {
  return log.size > 0 ? log.events[log.head]!.offset : log.offset + 1;
}

/**
 * Copies the frames `log` retains into one chunk of their size when the chunks they keep alive
 * hold more than 4 times their bytes (dead frames around a few live ones): what history holds
 * stays within a small factor of what it counts. Views given out before (a replay being sent)
 * keep the old chunks, unchanged. Amortized: the chunks held after it are the frames' bytes.
 */
function compact(log: ChannelLog): void {
  if (log.pinned <= 4 * log.frameBytes + MIN_CHUNK_BYTES) return;
  const chunk = Buffer.allocUnsafeSlow(log.frameBytes);
  let at = 0;
  for (let i = log.head; i < log.events.length; i++) {
    const r = log.events[i]!;
    chunk.set(r.chunk.subarray(r.at, r.at + r.length), at);
    r.chunk = chunk;
    r.at = at;
    at += r.length;
  }
  log.chunk = chunk;
  log.used = at;
  log.pinned = chunk.length;
}

function ranksBefore(a: ChannelEvents, b: ChannelEvents): boolean {
  return a.events > b.events || (a.events === b.events && a.channel < b.channel);
}
