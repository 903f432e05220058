import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import { FrameType, encodeFrame, patternOfSubscriptionKey, type Frame } from '@crier/protocol';
import type { TokenBucket } from '../admission/token-bucket.js';
import { Principal } from '../auth/principal.js';
import type { Clock, TimerHandle } from '../clock.js';
import { DropTally } from '../core/drop-tally.js';
import type { Flushable, IndexEntry, SlowSubscriber, Subscriber } from '../core/subscriber.js';
import type { ParkedSession } from '../engine/engine.js';
import { messageHeaderSize, writeMessageHeader, type StreamEvent } from '../engine/stream-event.js';

/** A message read past a connection's budget of one turn: handled in the next. */
export interface DeferredMessage {
  bytes: Buffer;
  isBinary: boolean;
}

/** What a connection needs from the broker around it. */
export interface ConnectionHost {
  readonly clock: Clock;
  readonly bufferSize: number;
  readonly maxBufferBytes: number;
  /** Bytes queued towards every connection together (queued or written, not yet taken by the kernel). */
  bufferedBytes: number;
  /** The broker-wide bound of {@link bufferedBytes} (`maxTotalBufferBytes`). */
  readonly maxTotalBufferBytes: number;
  /** Bytes written to sockets, for the metrics: the flush adds each write's size. */
  sentBytes: number;
  /** High-priority events queued towards connections (their lane), and dropped (it was full): metrics. */
  highQueued: number;
  highDropped: number;
  /** Schedules `item` for the broker-wide flush of this tick. */
  markDirty(item: Flushable): void;
  /** The connection just started losing events. */
  onSlow(conn: SlowSubscriber): void;
  /** The connection drained after losing `dropped` events; `channels` is what it was told. */
  onRecovered(conn: SlowSubscriber, dropped: number, channels: [string, number][]): void;
  /** The connection let control frames (acks, pongs) pile up past any reason: it must go. */
  onOverflow(conn: Connection): void;
}

// Control frames past this many bytes beyond `maxBufferBytes` mean a peer that requests and never
// reads: acks and pongs cannot be dropped like events, so the connection is cut instead.
const CONTROL_SLACK_BYTES = 64 * 1024;

/**
 * One WebSocket connection: its uuid, subscriptions, and outgoing queue. Frames are queued and
 * handed to the socket in one write per tick by the broker's flush. The queue is bounded
 * by `bufferSize` events and `maxBufferBytes` bytes, counting both what waits here and what was
 * written but not yet accepted by the kernel; past that the connection is a slow consumer: its
 * events are dropped and counted until it drains to half, then it gets a `dropped` frame.
 *
 * Three lanes, written in this order by each flush: control frames (never dropped, never behind
 * an event), high-priority events (their own bound: a quarter of `bufferSize` events and of
 * `maxBufferBytes` queued, on top of the normal budget), normal events. While the socket has not
 * taken the previous write (a slow reader), the flush holds the lanes back rather than piling
 * them into the socket's buffer, where nothing could overtake them any more; the write's callback
 * flushes again. So a high event overtakes the normal events still queued here.
 */
export class Connection implements Subscriber, SlowSubscriber, Flushable {
  /** The stream's uuid, set by `hello` (empty before). */
  uuid = '';
  /** The stream's session secret, given in its `welcome`: a takeover of the uuid must present it. */
  secret = '';
  /** Who is on the other end (anonymous until hello's credential is verified). */
  principal: Principal = Principal.ANONYMOUS;
  /**
   * While hello's credential is being verified: the socket is paused, and frames that arrived
   * behind the hello wait here, to be handled in order once it is welcomed.
   */
  early: Frame[] | undefined;
  /** Closes the connection with 4007 when its credential expires. */
  expiryTimer: TimerHandle | undefined;
  /** `pending` until hello, `open` after, `freed` once subscriptions and registry entry are gone. */
  state: 'pending' | 'open' | 'freed' = 'pending';
  /** Subscriptions held, by subscription key (the registry keeps them). */
  readonly subscriptions = new Map<string, IndexEntry>();
  /** Characters of labels and keys held by this connection's filters (bounded per connection). */
  filterChars = 0;
  /**
   * Per subscription key, the stream position from which the subscription was live: a resume
   * replays each subscription from there at the earliest.
   */
  floors: Map<string, number> | undefined;
  /**
   * The floor of the subscriptions not in {@link floors}: most connections subscribe at one
   * position (or once), and then hold no Map for it (bench W4: one subscription per connection).
   */
  private baseFloor: number | undefined;
  /** Whether its stream is parked for a resume when it goes away (not after `quit`, a takeover…). */
  parkable = true;
  /**
   * While a replay is being read from an engine that answers later: live events wait here, and
   * go out after the replay (those it did not carry).
   */
  holding: StreamEvent[] | undefined;
  /** Reads (a resume's replay, rewinds) the holding waits for, and what they carried. */
  private holds = 0;
  private carried: Set<number> | undefined;
  /**
   * The secret the client presented to resume this stream: kept valid beside the new one, so a
   * connection that dies before its welcome (the new secret) reached the client stays resumable.
   */
  formerSecret: string | undefined;
  /** As an index entry: a subscription without a filter. */
  readonly sub = this;
  readonly filter = undefined;
  /** Publish sequence that last matched this connection: dedupes overlapping patterns. */
  stamp = 0;
  /** Keep-alive tick in which a frame last arrived. */
  seenTick = 0;
  // Fair reading (see readMessage): the read turn these counts belong to, the frames and bytes
  // handled in it, the frames of the message being handled, and the messages waiting for the
  // next turn while the socket is paused (undefined while it reads).
  readTurn = -1;
  readFrames = 0;
  readBytes = 0;
  messageFrames = 0;
  deferred: DeferredMessage[] | undefined;
  helloTimer: TimerHandle | undefined;
  dirty = false;
  /** Whether the connection is losing events right now. */
  slow = false;
  /** What the current slow spell cost, and when it started. */
  readonly drops = new DropTally();

  /** The normal lane: events (live and replayed). */
  private readonly queue: Uint8Array[] = [];
  /** Control frames: written before both event lanes. */
  private readonly control: Uint8Array[] = [];
  /** The high lane: high-priority events, written after control frames, before normal events. */
  private readonly high: Uint8Array[] = [];
  private highBytes = 0;
  /**
   * When the queue holds one event frame and nothing else: that event's frame already framed as a
   * WebSocket message (StreamEvent.message), written as is by the flush.
   */
  private single: Buffer | undefined;
  /**
   * A normal event queued alone (nothing in any lane), with its message in {@link single}: kept
   * here rather than in {@link queue}, so the common turn of a subscriber (one event) touches no
   * lane array, and the queue's storage is not dropped and grown again per event. Anything queued
   * behind it puts it in its lane first ({@link spill}).
   */
  private lone: Uint8Array | undefined;
  private queuedEvents = 0;
  private queuedBytes = 0;
  private inflightEvents = 0;
  private inflightBytes = 0;
  // (events, bytes) of each written batch, in write order; callbacks complete them in that order.
  // batches[batchHead..batchTail) are in flight; the array keeps its storage when they are done.
  private readonly batches: number[] = [];
  private batchHead = 0;
  private batchTail = 0;
  // Batches at the head of `batches` already counted as written by settleWritten().
  private settledBatches = 0;
  private readonly onBatchWritten: (err?: Error | null) => void;

  constructor(
    readonly ws: WebSocket,
    // The raw socket, kept from the upgrade: the flush writes a tick's messages to it directly.
    private readonly socket: Duplex,
    private readonly host: ConnectionHost,
    readonly remoteAddress: string,
    /** Its publishes: `publishRate` per second, `publishBurst` at once. */
    readonly publishBucket: TokenBucket,
  ) {
    // One bound callback per connection, reused by every batch.
    this.onBatchWritten = this.batchWritten.bind(this);
  }

  /**
   * Whether an event of `bytes` bytes fits the budget now. When the budget looks full, it first
   * tries to make room without waiting for a tick: it writes what is queued at once and, if the
   * socket took everything (`bufferedAmount` 0), counts every written batch as accepted without
   * waiting for their callbacks. So a fast reader hit by a burst of more than `bufferSize` events
   * within one tick loses nothing, while a reader whose kernel buffers are full does.
   */
  accepts(bytes: number): boolean {
    if (!this.slow && this.hasRoom(bytes)) return true;
    if (this.queuedBytes > 0) this.flush(); // something queued (every frame has bytes)
    if (this.inflightEvents + this.inflightBytes > 0 && this.ws.bufferedAmount === 0) this.settleWritten();
    if (this.slow) {
      if (!this.drained()) return false;
      this.recover();
    }
    return this.hasRoom(bytes);
  }

  /** The pipeline's delivery: the event's frame, queued or dropped. */
  deliver(event: StreamEvent): boolean {
    if (this.holding !== undefined) {
      this.holding.push(event);
      return true;
    }
    return event.priority === 1 ? this.enqueueHigh(event) : this.enqueueEvent(event.frame, event.channel, event.message);
  }

  /**
   * Queues a high-priority event in its lane, or drops it when the lane itself is full: its
   * bound is its own (a quarter of the connection's budget), so a connection losing normal
   * events still gets high ones.
   */
  private enqueueHigh(event: StreamEvent): boolean {
    if (this.state === 'freed') return false;
    if (this.lone !== undefined) this.spill();
    const bytes = event.frame.length;
    // Full: a socket that takes writes at once (a burst within one turn) makes room now, as
    // accepts() does for normal events; one that does not keeps the lanes, and loses this event.
    if (this.highFull(bytes)) this.flush();
    if (this.highFull(bytes)) {
      this.host.highDropped++;
      this.drop(event.channel);
      return false;
    }
    this.single = this.queuedBytes === 0 ? event.message : undefined; // nothing else queued
    this.high.push(event.frame);
    this.highBytes += bytes;
    this.queuedEvents++;
    this.queuedBytes += bytes;
    this.host.bufferedBytes += bytes;
    this.host.highQueued++;
    if (!this.dirty) this.host.markDirty(this);
    return true;
  }

  /**
   * Queues a replayed event: outside the event budget (a replay is bounded by history and by its
   * own cap), but counted in it, so live events behind a large replay meet a full queue.
   */
  enqueueReplayed(frame: Uint8Array): void {
    if (this.state === 'freed') return;
    if (this.lone !== undefined) this.spill();
    this.single = undefined;
    this.queue.push(frame);
    this.queuedEvents++;
    this.queuedBytes += frame.length;
    this.host.bufferedBytes += frame.length;
    if (!this.dirty) this.host.markDirty(this);
  }

  /** Records that the subscription `key` is live from stream position `position` on. */
  setFloor(key: string, position: number): void {
    if (this.floors === undefined && (this.baseFloor === undefined || this.baseFloor === position)) this.baseFloor = position;
    else (this.floors ??= new Map()).set(key, position);
  }

  /** Forgets the subscriptions' floors (the connection is freed). */
  clearFloors(): void {
    this.floors = undefined;
    this.baseFloor = undefined;
  }

  /** Its stream as parked for a resume: secret, principal, and each subscription with its floor. */
  session(): ParkedSession {
    const subscriptions: ParkedSession['subscriptions'] = [];
    for (const [key, entry] of this.subscriptions) {
      subscriptions.push({ pattern: patternOfSubscriptionKey(key), filter: entry.filter?.wire, since: this.floors?.get(key) ?? this.baseFloor ?? 0 });
    }
    const session: ParkedSession = { secret: this.secret, principal: principalKey(this.principal), subscriptions };
    if (this.formerSecret !== undefined) session.formerSecret = this.formerSecret;
    return session;
  }

  /** Closes the socket with `code` and `reason` (cut to what a close frame holds). */
  close(code: number, reason: string): void {
    this.ws.close(code, closeReason(reason));
    // A socket paused (a hello being verified, a spent read budget) must read again, or the
    // peer's close frame would wait behind the pause until ws gives up on the handshake.
    this.ws.resume();
  }

  /** Holds live events until {@link unhold} is called as many times (reads an engine answers later). */
  hold(): void {
    this.holds++;
    this.holding ??= [];
  }

  /**
   * One read is sent (`carried`: the events it sent): once the last one is, the live events held
   * meanwhile go out, but those a read already carried.
   */
  unhold(carried: readonly StreamEvent[]): void {
    if (this.holding === undefined) return;
    if (carried.length > 0) {
      const set = (this.carried ??= new Set());
      for (const event of carried) set.add(event.seq);
    }
    if (--this.holds > 0) return;
    const held = this.holding;
    const sent = this.carried;
    this.holding = undefined;
    this.carried = undefined;
    this.holds = 0;
    for (const event of held) if (sent === undefined || !sent.has(event.seq)) this.deliver(event);
  }

  /** Whether the high lane has no room for an event of `bytes`: a quarter of either budget, and the broker's. */
  private highFull(bytes: number): boolean {
    const { bufferSize, maxBufferBytes } = this.host;
    return this.high.length >= Math.max(1, bufferSize >> 2) ||
      (this.highBytes > 0 && (this.highBytes + bytes > maxBufferBytes / 4 || this.host.bufferedBytes + bytes > this.host.maxTotalBufferBytes));
  }

  /**
   * Queues one event frame, or drops and counts it. Returns whether it was queued. `message`: the
   * same frame as a whole WebSocket message, when the caller has it (see {@link single}).
   */
  enqueueEvent(frame: Uint8Array, channel: string, message?: Buffer): boolean {
    if (!this.accepts(frame.length)) {
      this.drop(channel);
      return false;
    }
    if (this.lone !== undefined) this.spill();
    if (message !== undefined && this.queuedBytes === 0) { // nothing else queued (every frame has bytes)
      this.single = message;
      this.lone = frame;
    } else {
      this.single = undefined;
      this.queue.push(frame);
    }
    this.queuedEvents++;
    this.queuedBytes += frame.length;
    this.host.bufferedBytes += frame.length;
    if (!this.dirty) this.host.markDirty(this);
    return true;
  }

  private hasRoom(bytes: number): boolean {
    if (this.queuedEvents + this.inflightEvents >= this.host.bufferSize) return false;
    const held = this.queuedBytes + this.inflightBytes;
    // An event larger than the whole byte budget still goes through an empty queue. Past the
    // broker-wide budget, only connections holding nothing get events: the slow lose them first.
    return held === 0 || (held + bytes <= this.host.maxBufferBytes && this.host.bufferedBytes + bytes <= this.host.maxTotalBufferBytes);
  }

  /** Back under half of both budgets: the end of a slow spell. */
  private drained(): boolean {
    return (
      this.queuedEvents + this.inflightEvents <= this.host.bufferSize / 2 &&
      this.queuedBytes + this.inflightBytes <= this.host.maxBufferBytes / 2
    );
  }

  /** Every written batch is known to be in the kernel: zero the in-flight counts now. */
  private settleWritten(): void {
    // Their callbacks are still to come; they must not subtract a second time.
    this.settledBatches = (this.batchTail - this.batchHead) / 2;
    this.inflightEvents = 0;
    this.host.bufferedBytes -= this.inflightBytes;
    this.inflightBytes = 0;
  }

  /** Counts an event this connection will not get. */
  drop(channel: string): void {
    if (!this.slow) {
      this.slow = true;
      this.drops.start(this.host.clock.wall());
      this.host.onSlow(this);
    }
    this.drops.count(channel);
  }

  /** Queues a frame that is never dropped (welcome, ack, error, ping, pong, dropped). */
  enqueueControl(frame: Uint8Array): void {
    if (this.state === 'freed') return;
    if (this.lone !== undefined) this.spill();
    this.single = undefined;
    this.control.push(frame);
    this.queuedBytes += frame.length;
    this.host.bufferedBytes += frame.length;
    if (!this.dirty) this.host.markDirty(this);
    if (this.queuedBytes + this.inflightBytes > 2 * this.host.maxBufferBytes + CONTROL_SLACK_BYTES) {
      this.host.onOverflow(this);
    }
  }

  /** Puts the {@link lone} event in the normal lane: something is queued behind it. */
  private spill(): void {
    this.queue.push(this.lone!);
    this.lone = undefined;
    this.single = undefined;
  }

  /**
   * Hands every queued frame to the socket in one write. Frames are batched into WebSocket
   * messages of up to {@link BATCH_BYTES} (a message holds one or more frames), built here with
   * their header and written straight to the raw socket: one allocation and one write per
   * connection per tick (with a callback only when the kernel does not take it at once), and one
   * message for the client to parse instead of one per event. Server-to-client frames are
   * unmasked, so nothing in them depends on the recipient. Control frames go first, then the
   * high lane, then the normal one. `force`: write even if the socket has not taken the previous
   * write (a close follows).
   */
  flush(force = false): void {
    const lone = this.lone !== undefined;
    const queue = this.queue;
    const ahead = lone ? 0 : this.control.length + this.high.length;
    const n = lone ? 1 : queue.length + ahead;
    if (n === 0) return;
    if (this.state === 'freed' || this.ws.readyState !== OPEN) {
      // Whatever had to go out before a close was flushed by the close itself.
      this.clearQueue();
      return;
    }
    // A write of ours still waits in the socket's buffer (the kernel's is full): hold the lanes
    // here, in their order, until its callback (batchWritten) flushes again. A fast reader's
    // socket takes each write at once, so this never holds it.
    if (!force && this.batchTail > this.batchHead && this.socket.writableLength > 0) return;
    const out = n === 1 && this.single !== undefined
      ? this.single
      : frameMessages(ahead === 0 ? queue : this.control.concat(this.high, queue), this.queuedBytes);
    this.host.sentBytes += out.length;
    const socket = this.socket;
    if (socket.writableLength === 0) {
      // Nothing waits in the socket: the write goes to the kernel now, which most often takes all
      // of it at once. Then the batch is done here, with no callback: a write with one costs a
      // process.nextTick, its record and the callback per connection per turn (~3% of the
      // broker's time in bench W3, by profile: one event per connection per turn).
      socket.write(out);
      if (socket.writableLength === 0) {
        this.host.bufferedBytes -= this.queuedBytes;
        this.emptied(lone);
        if (this.slow && this.state === 'open' && this.drained()) this.recover();
        return;
      }
      // The kernel took part of it, the rest waits in the socket: an empty write queued behind it
      // calls back once it is gone (writes complete in order).
      this.inFlight();
      socket.write(EMPTY, this.onBatchWritten);
    } else {
      // When the callback fires, the kernel has taken the whole batch.
      this.inFlight();
      socket.write(out, this.onBatchWritten);
    }
    this.emptied(lone);
  }

  /** The queue is written and not yet taken by the kernel: one batch in flight, until its callback. */
  private inFlight(): void {
    // Recorded before the write: a socket may call back at once.
    this.batches[this.batchTail++] = this.queuedEvents;
    this.batches[this.batchTail++] = this.queuedBytes;
    this.inflightEvents += this.queuedEvents;
    this.inflightBytes += this.queuedBytes;
    // Now in flight: still counted in the host's bufferedBytes.
  }

  /** The queue after a write took it (`lone`: it held the lone event, the lanes are empty). */
  private emptied(lone: boolean): void {
    if (lone) {
      // The lanes are empty (see lone): nothing to read there, nothing to empty.
      this.lone = undefined;
      this.single = undefined;
      this.queuedEvents = 0;
      this.queuedBytes = 0;
    } else {
      this.resetQueue();
    }
  }

  /** Forgets whatever is queued (the connection is going away). */
  clearQueue(): void {
    this.host.bufferedBytes -= this.queuedBytes;
    this.resetQueue();
  }

  private resetQueue(): void {
    // Emptied only when used: setting a length is a runtime call, and it drops the array's storage.
    if (this.queue.length !== 0) this.queue.length = 0;
    if (this.control.length !== 0) this.control.length = 0;
    if (this.high.length !== 0) this.high.length = 0;
    this.highBytes = 0;
    this.lone = undefined;
    this.single = undefined;
    this.queuedEvents = 0;
    this.queuedBytes = 0;
  }

  /** Events queued towards this connection or written and not yet taken by the kernel. */
  get queueDepth(): number {
    return this.queuedEvents + this.inflightEvents;
  }

  /** Snapshot for logs. */
  backlog(): { events: number; bytes: number; dropped: number } {
    return {
      events: this.queuedEvents + this.inflightEvents,
      bytes: this.queuedBytes + this.inflightBytes,
      dropped: this.drops.total,
    };
  }

  private batchWritten(): void {
    // An error here means the socket died; its close handler frees the connection, and the
    // counters only need to stay consistent until then.
    if (this.settledBatches > 0) {
      this.settledBatches--;
      this.batchHead += 2;
    } else {
      this.inflightEvents -= this.batches[this.batchHead++]!;
      const bytes = this.batches[this.batchHead++]!;
      this.inflightBytes -= bytes;
      this.host.bufferedBytes -= bytes;
    }
    if (this.batchHead === this.batchTail) {
      this.batchHead = 0;
      this.batchTail = 0;
    }
    if (this.slow && this.state === 'open' && this.drained()) this.recover();
    // Lanes held while this write waited (see flush): their turn now.
    if (!this.dirty && this.state !== 'freed' && this.queuedBytes > 0) this.host.markDirty(this);
  }

  private recover(): void {
    const dropped = this.drops.total;
    const channels = this.drops.end();
    this.slow = false;
    this.enqueueControl(encodeFrame({ t: FrameType.dropped, n: dropped, c: channels }));
    this.host.onRecovered(this, dropped, channels);
  }
}

const OPEN = WebSocket.OPEN;
/** Written behind a batch the kernel did not take at once, for its callback (see flush). */
const EMPTY = Buffer.alloc(0);

/** A principal as a session remembers it: its id when authenticated, `''` when anonymous. */
export function principalKey(principal: Principal): string {
  return principal.kind === 'anonymous' ? '' : principal.id;
}

const reasonBytes = new Uint8Array(123);
const utf8 = new TextEncoder();

/**
 * `reason` cut to the 123 bytes a close frame allows, on a character boundary (`ws` throws on a
 * longer one).
 */
export function closeReason(reason: string): string {
  const { read } = utf8.encodeInto(reason, reasonBytes);
  return read === reason.length ? reason : reason.slice(0, read);
}

/** A WebSocket message carries at most this many bytes of frames (unless one frame is larger). */
export const BATCH_BYTES = 256 * 1024;

/**
 * `frames` (of `total` bytes) as binary WebSocket messages of at most {@link BATCH_BYTES} each,
 * back to back in one buffer.
 */
export function frameMessages(frames: readonly Uint8Array[], total: number): Buffer {
  // First pass: the size of every header, to allocate once.
  let size = total;
  let payload = 0;
  for (const frame of frames) {
    if (payload > 0 && payload + frame.length > BATCH_BYTES) {
      size += messageHeaderSize(payload);
      payload = 0;
    }
    payload += frame.length;
  }
  size += messageHeaderSize(payload);
  // Second pass: each message's header, then its frames.
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  let first = 0;
  payload = 0;
  for (let i = 0; i <= frames.length; i++) {
    const len = i < frames.length ? frames[i]!.length : 0;
    if (i === frames.length || (payload > 0 && payload + len > BATCH_BYTES)) {
      at = writeMessageHeader(out, at, payload);
      for (let j = first; j < i; j++) {
        out.set(frames[j]!, at);
        at += frames[j]!.length;
      }
      first = i;
      payload = 0;
    }
    payload += len;
  }
  return out;
}
