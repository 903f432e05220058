import type { IncomingMessage, ServerResponse } from 'node:http';
import { nanoid } from 'nanoid';
import { CrierError, ErrorCode, EventFilter, assertPattern, canonicalFilter, type SubscriptionFilter } from '@crier/protocol';
import { clientAddress } from '../admission/client-address.js';
import { authenticateRequest, refuseRequest } from '../auth/http-auth.js';
import type { Clock } from '../clock.js';
import { DropTally } from '../core/drop-tally.js';
import type { Flushable, IndexEntry, SlowSubscriber, Subscriber } from '../core/subscriber.js';
import { Encoding, type StreamEvent } from '../engine/stream-event.js';
import { applyCors, originAllowed } from '../http/cors.js';
import { dataAsText } from '../http/event-data.js';
import { sendJson } from '../http/response.js';
import { type CatchUp } from '../core/replay.js';
import { formatSsePosition, joinHeld, parseSsePosition, readMissed, replayBounds, resumedEvent, type SsePosition } from './sse-resume.js';
import type { Ingress } from './ingress.js';

/** Sent first on every stream: how long a browser's EventSource waits before reconnecting (ms). */
export const SSE_RETRY_MS = 2000;
/** A stream whose socket has not drained for more than this many keep-alive ticks is closed. */
const STALL_TICKS = 2;

const KEEP_ALIVE = Buffer.from(': keep-alive\n\n');
const LINE_BREAK = /\r\n|\r|\n/g;

/**
 * One event as SSE text: `id:`, `event:` (the channel), then the data as {@link dataAsText} gives
 * it (text, or `base64:…`), one `data:` line per line of text.
 */
export function encodeSseEvent(channel: string, data: Uint8Array, id: string | number): Buffer {
  return Buffer.from(`id: ${id}\nevent: ${channel}\ndata: ${dataAsText(data).replace(LINE_BREAK, '\ndata: ')}\n\n`, 'utf8');
}

/**
 * The SSE text of an event, made once per event for every stream of a broker (nothing in it is
 * per recipient). Its `id:` is the event's position in the broker's stream, `<epoch>:<seq>`,
 * which a reconnecting EventSource sends back as `Last-Event-ID`.
 */
export class SseEncoding extends Encoding<Buffer> {
  constructor(private readonly engine: { readonly epoch: string }) {
    super();
  }

  encode(event: StreamEvent): Buffer {
    return encodeSseEvent(event.channel, event.data, formatSsePosition(this.engine.epoch, event.seq));
  }
}

/** What `GET <base>/events` subscribes to, from its query string. */
export interface SseQuery {
  patterns: string[];
  filter: SubscriptionFilter | undefined;
  /** The `lastEventId` parameter: where to resume from when no `Last-Event-ID` header says it. */
  lastEventId: string | undefined;
}

/** Comma-separated values of a query parameter, which may also be repeated. */
function listParam(params: URLSearchParams, name: string): string[] | undefined {
  const raw = params.getAll(name);
  if (raw.length === 0) return undefined;
  return raw.flatMap((v) => v.split(','));
}

/** Parses and checks the query of `GET /events`. Throws the `CrierError` that answers it (400). */
export function parseSseQuery(url: string | undefined, maxChannels: number): SseQuery {
  const q = url?.indexOf('?') ?? -1;
  const params = new URLSearchParams(q === -1 ? '' : url!.slice(q + 1));
  const channels = listParam(params, 'channels');
  if (channels === undefined) {
    throw new CrierError(ErrorCode.badPattern, 'the channels parameter is required: ?channels=user.*,order.completed');
  }
  const patterns = [...new Set(channels)];
  for (const p of patterns) assertPattern(p);
  if (patterns.length > maxChannels) {
    throw new CrierError(ErrorCode.maxChannels, `at most ${maxChannels} channels per stream (maxChannels), got ${patterns.length}`);
  }
  const match = params.get('labelMatch');
  if (match !== null && match !== 'any' && match !== 'all') {
    throw new CrierError(ErrorCode.badFilter, `labelMatch must be any or all, got ${JSON.stringify(match.slice(0, 16))}`);
  }
  const filter = canonicalFilter({ l: listParam(params, 'labels'), la: match === 'all', k: listParam(params, 'keys') });
  return { patterns, filter, lastEventId: params.get('lastEventId') || undefined };
}

/** What a stream needs from the broker around it. */
export interface SseHost {
  readonly clock: Clock;
  readonly bufferSize: number;
  readonly maxBufferBytes: number;
  markDirty(item: Flushable): void;
  onSlow(stream: SlowSubscriber): void;
  onRecovered(stream: SlowSubscriber, dropped: number, channels: [string, number][]): void;
}

/**
 * One SSE response as a subscriber. It sits in the channel index under each of its patterns, as
 * its own index entry (one filter for all of them), and gets each matching event once. Its queue
 * has the bounds of a WebSocket connection's (`bufferSize` events, `maxBufferBytes` bytes); the
 * queue is written once per tick while the response takes it (`res.write()` returns true), and
 * held while it does not (until `'drain'`). Past the bounds its events are dropped and counted;
 * after the drain it gets an `event: dropped`.
 */
export class SseStream implements Subscriber, SlowSubscriber, Flushable {
  /** A name for logs and the slow-consumer list. */
  readonly uuid = `sse-${nanoid(12)}`;
  readonly sub = this;
  readonly filter = undefined;
  readonly subscriptions = new Map<string, IndexEntry>();
  /** The filter of every pattern of the stream. */
  readonly eventFilter: EventFilter | undefined;
  stamp = 0;
  dirty = false;
  slow = false;
  /** What the current slow spell cost, and when it started (as a WebSocket connection's). */
  readonly drops = new DropTally();
  closed = false;
  /** Keep-alive ticks spent waiting for a drain. */
  stalledTicks = 0;
  /** The client's address (clientAddress), counted against its per-address caps. */
  address = '';
  /**
   * Live events held while a resume waits for the engine's replay (an engine that answers later;
   * never with the memory engine): written after the replay, those it did not carry.
   */
  holding: StreamEvent[] | undefined;

  private queue: Buffer[] = [];
  private queuedBytes = 0;
  /** `res.write()` returned false and no `'drain'` came yet. */
  private waiting = false;

  constructor(
    readonly res: ServerResponse,
    readonly patterns: readonly string[],
    filter: SubscriptionFilter | undefined,
    private readonly host: SseHost,
    /** The broker's SSE text of an event (made once per event for all its streams). */
    readonly encoding: Encoding<Buffer>,
  ) {
    this.eventFilter = filter === undefined ? undefined : new EventFilter(filter);
    res.on('drain', () => this.drained());
  }

  /** The pipeline's delivery: the event's SSE text, queued or dropped (or held, during a resume). */
  deliver(event: StreamEvent): boolean {
    const held = this.holding;
    if (held === undefined) return this.enqueueEvent(event.as(this.encoding), event.channel);
    if (this.closed) return false;
    // Bounded like the queue: past it, dropped and counted, and told once the stream drains.
    if (held.length >= this.host.bufferSize) return this.drop(event.channel);
    held.push(event);
    return true;
  }

  /** Queues one encoded event, or drops and counts it. Returns whether it was queued. */
  enqueueEvent(bytes: Buffer, channel: string): boolean {
    if (this.closed) return false;
    if (this.slow) {
      if (this.waiting) return this.drop(channel);
      this.recover(); // the response took everything since: the spell is over
    }
    if (!this.hasRoom(bytes.length)) {
      // A burst within one tick: write now rather than drop, when the response takes it.
      this.flush();
      if (!this.hasRoom(bytes.length)) return this.drop(channel);
    }
    this.queue.push(bytes);
    this.queuedBytes += bytes.length;
    if (!this.dirty) this.host.markDirty(this);
    return true;
  }

  private hasRoom(bytes: number): boolean {
    if (this.queue.length >= this.host.bufferSize) return false;
    // While the response is not draining, what it has not handed to the kernel counts too.
    const held = this.queuedBytes + (this.waiting ? this.res.writableLength : 0);
    return held === 0 || held + bytes <= this.host.maxBufferBytes;
  }

  private drop(channel: string): false {
    if (!this.slow) {
      this.slow = true;
      this.drops.start(this.host.clock.wall());
      this.host.onSlow(this);
    }
    this.drops.count(channel);
    return false;
  }

  /** Writes the queue in one `res.write()`, unless the response asked to wait for a drain. */
  flush(): void {
    if (this.waiting || this.closed || this.queue.length === 0) return;
    const chunk = this.queue.length === 1 ? this.queue[0]! : Buffer.concat(this.queue, this.queuedBytes);
    this.queue = [];
    this.queuedBytes = 0;
    this.writeChunk(chunk);
  }

  /**
   * `res.write()`, and whether to wait for `'drain'`. The response corks its socket until the next
   * tick, so a large write always looks pending: uncork now, and wait only when the kernel did not
   * take everything (as a WebSocket connection checks `bufferedAmount`), so a fast reader hit by a
   * burst larger than the bounds within one tick loses nothing.
   */
  private writeChunk(chunk: string | Buffer): void {
    if (this.res.write(chunk)) return;
    const socket = this.res.socket;
    socket?.uncork();
    if (!socket || this.res.writableLength > 0) this.waiting = true;
  }

  private drained(): void {
    this.waiting = false;
    this.stalledTicks = 0;
    this.flush();
    if (this.slow && !this.waiting) this.recover();
  }

  private recover(): void {
    const n = this.drops.total;
    const channels = this.drops.end();
    this.slow = false;
    this.flush(); // what was queued before the gap goes first
    this.write(`event: dropped\ndata: ${JSON.stringify({ n, channels })}\n\n`);
    this.host.onRecovered(this, n, channels);
  }

  /** Writes a control line (never dropped: it is small, and one per interval or per spell). */
  write(chunk: string | Buffer): void {
    if (this.closed) return;
    this.writeChunk(chunk);
  }

  /** Every keep-alive interval: a comment line, or, for a stream stalled too long, false (close it). */
  keepAlive(): boolean {
    if (this.waiting) return ++this.stalledTicks <= STALL_TICKS;
    this.flush();
    this.write(KEEP_ALIVE);
    return true;
  }

  backlog(): { events: number; bytes: number; dropped: number } {
    return { events: this.queue.length, bytes: this.queuedBytes + this.res.writableLength, dropped: this.drops.total };
  }

  /** Forgets the queue and stops writing. */
  dispose(): void {
    this.closed = true;
    this.holding = undefined;
    this.queue = [];
    this.queuedBytes = 0;
  }
}

/** Every SSE stream of a broker. The broker's keep-alive timer calls {@link SseHub.tick}. */
export class SseHub {
  readonly streams = new Set<SseStream>();
  /** Every stream's event text, made once per event. */
  readonly encoding: SseEncoding;

  constructor(private readonly ingress: Ingress) {
    this.encoding = new SseEncoding(ingress.core.engine);
  }

  get size(): number {
    return this.streams.size;
  }

  /** Answers `GET <base>/events`: CORS, the query, then the stream until the client goes. */
  handle(req: IncomingMessage, res: ServerResponse, corsOrigins: readonly string[]): void {
    if (applyCors(req, res, corsOrigins)) return;
    const ingress = this.ingress;
    if (req.method !== 'GET') {
      return sendJson(req, res, 405, { code: 'method_not_allowed', message: 'events answers GET only' }, { Allow: 'GET, OPTIONS' });
    }
    if (ingress.closing || ingress.draining) {
      ingress.refusals.refuse(ErrorCode.shuttingDown, 'sse', req);
      return sendJson(req, res, 503, { code: ErrorCode.shuttingDown, message: 'the broker is shutting down' }, { 'Retry-After': '5' });
    }
    if (!originAllowed(req, ingress.options.allowedOrigins)) {
      ingress.refusals.refuse(ErrorCode.forbiddenOrigin, 'sse', req);
      return sendJson(req, res, 403, { code: ErrorCode.forbiddenOrigin, message: `origin ${req.headers.origin} is not in allowedOrigins` });
    }
    // SSE streams count against maxConnections with the sockets: each holds a queue and subscriptions.
    if (ingress.openCount >= ingress.options.maxConnections) {
      ingress.refusals.refuse(ErrorCode.tooManyConnections, 'sse', req);
      return sendJson(req, res, 503, { code: ErrorCode.tooManyConnections, message: 'the broker is at its connection limit' }, { 'Retry-After': '5' });
    }
    if (ingress.bufferedBytes >= ingress.maxTotalBufferBytes) {
      ingress.refusals.refuse(ErrorCode.tooManyConnections, 'sse', req, 'maxTotalBufferBytes');
      return sendJson(req, res, 503, { code: ErrorCode.tooManyConnections, message: 'the broker holds maxTotalBufferBytes of outbound data' }, { 'Retry-After': '5' });
    }
    const address = clientAddress(req, ingress.trustedProxies);
    const perAddress = ingress.admission.admit(address, false, ingress.now());
    if (perAddress) {
      ingress.refusals.refuse(perAddress.code, 'sse', req, perAddress.limit);
      return sendJson(req, res, 503, { code: perAddress.code, message: perAddress.message }, { 'Retry-After': String(perAddress.retryAfter) });
    }
    let query: SseQuery;
    try {
      query = parseSseQuery(req.url, ingress.options.maxChannels);
    } catch (err) {
      if (!(err instanceof CrierError)) throw err;
      return sendJson(req, res, 400, { code: err.code, message: err.message });
    }
    // Where to resume from: the header an EventSource sends on every reconnect wins over the
    // parameter, which the URL keeps (stale) across reconnects. `null`: not a position.
    const header = req.headers['last-event-id'];
    const lastEventId = (typeof header === 'string' && header !== '' ? header : undefined) ?? query.lastEventId;
    const position = lastEventId === undefined ? undefined : parseSsePosition(lastEventId) ?? null;
    authenticateRequest(ingress, req, true).then(
      (principal) => {
        const denied = query.patterns.find((p) => !principal.subscribe.covers(p));
        if (denied !== undefined) {
          return refuseRequest(ingress, req, res, 'sse', new CrierError(ErrorCode.forbidden, `no grant of ${principal.id} covers subscribing to ${denied}`));
        }
        if (!req.destroyed) this.open(req, res, query, address, position);
      },
      (err: unknown) => refuseRequest(ingress, req, res, 'sse', err),
    );
  }

  /**
   * Starts the stream of an admitted request: `subscribed`, then (with a `position`) what the
   * client missed and `resumed`, then live events.
   */
  private open(req: IncomingMessage, res: ServerResponse, query: SseQuery, address: string, position: SsePosition | null | undefined): void {
    const ingress = this.ingress;
    const stream = new SseStream(res, query.patterns, query.filter, ingress, this.encoding);
    stream.address = address;
    ingress.admission.opened(address, false);
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      // Proxies that buffer responses (nginx) would hold events back.
      'X-Accel-Buffering': 'no',
    });
    req.socket.setNoDelay(true);
    const f = query.filter;
    const subscribed = { channels: query.patterns, labels: f?.l ?? [], labelMatch: f?.la ? 'all' : 'any', keys: f?.k ?? [] };
    const engine = ingress.core.engine;
    // Without a position to resume from, `subscribed` carries where the stream starts: a client
    // that reconnects before its first event still gets what it missed.
    const opening = (): string => {
      const start = position === undefined ? `id: ${formatSsePosition(engine.epoch, engine.position())}\n` : '';
      return `retry: ${SSE_RETRY_MS}\n\nevent: subscribed\n${start}data: ${JSON.stringify(subscribed)}\n\n`;
    };
    // Live from here: during a resume, live events are held until the replay is written.
    if (position !== undefined) stream.holding = [];
    for (const pattern of query.patterns) ingress.core.registry.add(stream, pattern, stream.eventFilter);
    // With nodes on Redis, `subscribed` waits until every pattern is live there (a subscribe's
    // ack): nothing published after it is missed. Events of the patterns arriving meanwhile wait behind it.
    const live = position === undefined ? query.patterns.map((p) => engine.live(p)).filter((p) => p !== undefined) : [];
    if (live.length === 0) {
      stream.write(opening());
    } else {
      stream.holding = [];
      void Promise.all(live).then(() => {
        const held = stream.holding ?? [];
        stream.holding = undefined;
        if (stream.closed) return;
        stream.write(opening());
        for (const e of held) stream.deliver(e);
      });
    }
    this.streams.add(stream);
    ingress.sseStreams = this.streams.size;
    res.on('close', () => this.remove(stream));
    ingress.log.debug({ uuid: stream.uuid, channels: query.patterns, remoteAddress: address }, 'sse stream open');
    if (position !== undefined) this.resume(stream, position);
  }

  /**
   * Replays what a resuming stream missed after `position`, merged over its patterns, then
   * `resumed`, then the live events held meanwhile. The memory engine answers at once, so
   * nothing is held and nothing is published between the read and the write.
   */
  private resume(stream: SseStream, position: SsePosition | null): void {
    const engine = this.ingress.core.engine;
    // The position the stream is live from: what `resumed` says the client has once caught up.
    const live = engine.position();
    const filter = stream.eventFilter;
    const accept = filter === undefined ? undefined : (labels: string[] | undefined, key: string | undefined) => filter.passes(labels, key);
    const bounds = replayBounds(this.ingress.bufferSize, this.ingress.maxBufferBytes);
    let read: CatchUp | Promise<CatchUp>;
    try {
      read = readMissed(engine, stream.patterns, accept, position, bounds, (event) => event.as(this.encoding).length);
    } catch (err) {
      return this.resumeFailed(stream, err);
    }
    if (read instanceof Promise) read.then((done) => this.catchUp(stream, done, live), (err: unknown) => this.resumeFailed(stream, err));
    else this.catchUp(stream, read, live);
  }

  /** Writes the replay and `resumed` in one write (bounded: see replayBounds), then ends the holding. */
  private catchUp(stream: SseStream, catchUp: CatchUp, live: number): void {
    const held = stream.holding ?? [];
    stream.holding = undefined;
    if (stream.closed) return;
    const { replay, after, last } = joinHeld(catchUp.events, held);
    const chunks = replay.map((e) => e.as(this.encoding));
    const id = formatSsePosition(this.ingress.core.engine.epoch, Math.max(live, last));
    chunks.push(resumedEvent(id, catchUp.reason, replay.length));
    stream.write(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    this.ingress.countResume(catchUp.reason === undefined);
    for (const e of after) stream.deliver(e);
  }

  /**
   * The engine could not read the replay (a lost connection to its store): the stream is cut, so
   * the client reconnects with the same `Last-Event-ID` and tries again, rather than go on with a
   * gap it would not be told about.
   */
  private resumeFailed(stream: SseStream, err: unknown): void {
    this.ingress.log.error({ err, uuid: stream.uuid }, 'sse resume: the replay could not be read; stream closed for a retry');
    this.remove(stream);
    stream.res.destroy();
  }

  /** Frees a stream whose response closed (or is being closed). Idempotent. */
  remove(stream: SseStream): void {
    if (!this.streams.delete(stream)) return;
    this.ingress.sseStreams = this.streams.size;
    this.ingress.admission.closed(stream.address);
    stream.dispose();
    this.ingress.core.registry.removeAll(stream);
    this.ingress.core.forgetSlow(stream);
    this.ingress.log.debug({ uuid: stream.uuid }, 'sse stream closed');
  }

  /**
   * Every keep-alive interval: a `: keep-alive` comment to each stream, and closes those that
   * have not drained for more than two intervals.
   */
  tick(): void {
    for (const stream of this.streams) {
      if (!stream.keepAlive()) {
        this.ingress.log.warn({ uuid: stream.uuid, ...stream.backlog() }, 'sse stream did not drain for two keep-alive intervals: closed');
        this.remove(stream);
        stream.res.destroy();
      }
    }
  }

  /** Ends every stream (the broker is closing): what was queued goes out first. */
  closeAll(): void {
    for (const stream of [...this.streams]) {
      stream.flush();
      this.remove(stream);
      stream.res.end();
    }
  }
}
