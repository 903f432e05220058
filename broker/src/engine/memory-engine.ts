import { LRUCache } from 'lru-cache';
import { nanoid } from 'nanoid';
import type { Clock } from '../clock.js';
import type { ChannelEvents, PublishResult } from '../types.js';
import { ChannelStore, type StoreLimits } from './channel-store.js';
import { secretMatches } from '../auth/secret.js';
import type {
  Accept, ChannelPosition, Engine, EngineStats, EventSink, StreamClaimAnswer, HistoryPage, LocalPresence, ParkedSession, PresenceCount,
  PublishRequest, ReplayPage, RequestMessage, RequestSink, SessionClaim, SessionTake,
} from './engine.js';
import { StreamEvent } from './stream-event.js';

/** What the memory engine is made of. */
export interface MemoryEngineOptions extends StoreLimits {
  /** How long a publish's message id is remembered, in ms (0: publishes are not deduplicated). */
  idempotencyWindow: number;
  /** Message ids remembered at most (least recent forgotten first). */
  idempotencyKeys: number;
}

/** Sessions parked at most; past it the oldest is freed first. */
export const MAX_PARKED_SESSIONS = 100_000;

interface Parked {
  session: ParkedSession;
  expires: number;
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
  /** Parked sessions by uuid, oldest first (one TTL for all: also the expiry order). */
  private readonly parked = new Map<string, Parked>();

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
    const { channel, data, labels, key, idempotency, priority } = request;
    let dedupe: string | undefined;
    if (idempotency !== undefined && this.seen !== undefined) {
      dedupe = `${idempotency.scope}\u0000${idempotency.id}`;
      const first = this.seen.get(dedupe);
      if (first !== undefined && this.clock.now() - first.at <= this.options.idempotencyWindow) return first.result;
    }
    const store = this.store;
    const log = store.sequence(channel);
    // Its message is written where history keeps it (see ChannelStore.reserve).
    const event = new StreamEvent(channel, data, store.idOrNames(log), log.offset, log.epoch, store.seq, this.clock.wall(), labels, key, undefined, priority, store.room(log));
    store.retain(log, event);
    if (dedupe !== undefined) this.seen!.set(dedupe, { result: { id: event.id, offset: event.offset, epoch: event.epoch }, at: this.clock.now() });
    this.sink(event);
    return event;
  }

  history(channel: string, since: ChannelPosition | undefined, limit: number): HistoryPage {
    return this.store.read(channel, since, limit);
  }

  replay(pattern: string, since: number, limit: number, accept?: Accept): ReplayPage {
    return this.store.replay(pattern, since, limit, accept);
  }

  rewind(pattern: string, count: number, maxBytes: number, accept?: Accept): ReplayPage {
    return this.store.rewind(pattern, count, maxBytes, accept);
  }

  position(): number {
    return this.store.seq;
  }

  parkSession(uuid: string, session: ParkedSession, ttl: number): void {
    this.sweep();
    this.parked.delete(uuid);
    if (this.parked.size >= MAX_PARKED_SESSIONS) this.parked.delete(this.parked.keys().next().value as string);
    this.parked.set(uuid, { session, expires: this.clock.now() + ttl });
  }

  takeSession(uuid: string, claim: SessionClaim): SessionTake {
    this.sweep();
    const parked = this.parked.get(uuid);
    if (parked === undefined) return { none: true };
    if (parked.expires <= this.clock.now()) {
      this.parked.delete(uuid);
      return { none: true };
    }
    const { session } = parked;
    const samePrincipal = claim.principal !== '' && claim.principal === session.principal;
    const secret = secretMatches(claim.secret, session.secret) || secretMatches(claim.secret, session.formerSecret);
    if (!samePrincipal && !secret) return { refused: true };
    this.parked.delete(uuid);
    return { session };
  }

  dropSession(uuid: string): void {
    this.parked.delete(uuid);
  }

  parkedSessions(): number {
    this.sweep(true);
    return this.parked.size;
  }

  /**
   * Frees the expired sessions: those at the front (parked first, so with one ttl the first to
   * expire), or, `all`, every one (sessions parked with different ttls).
   */
  private sweep(all = false): void {
    const now = this.clock.now();
    for (const [uuid, parked] of this.parked) {
      if (parked.expires > now) {
        if (all) continue;
        break;
      }
      this.parked.delete(uuid);
    }
  }

  channelCount(): number {
    return this.store.size;
  }

  busiestChannels(limit: number): ChannelEvents[] {
    return this.store.top(limit);
  }

  /** One node: every event reaches the sink, whatever the interest. */
  interest(): void {}

  /** One node: a live stream's session is the connection's own, parked when it drops. */
  readonly shared = false;

  saveSession(): void {}

  /** One node: the broker's own uuid map is the only holder of streams. */
  streamOpened(): void {}

  streamClosed(): void {}

  claimStream(): StreamClaimAnswer {
    return 'free';
  }

  onStreamClaim(): void {}

  /** Its epoch is its life's: it never changes while it runs. */
  onEpochChange(): void {}

  live(): undefined {
    return undefined;
  }

  readonly ready = true;

  // ---- request/reply: one node, so a request goes to this node's sink only ----

  readonly instance = `m${nanoid(10)}`;
  private requestSink: RequestSink = () => 0;

  onRequests(requests: RequestSink): void {
    this.requestSink = requests;
  }

  request(request: RequestMessage): boolean {
    return this.requestSink(request) > 0;
  }

  /** One node: a token naming another instance names nobody. */
  reply(): boolean {
    return false;
  }

  // ---- presence: one node, its own count ----

  private localPresence: LocalPresence = () => ({ n: 0 });

  onPresence(local: LocalPresence): void {
    this.localPresence = local;
  }

  presence(pattern: string, members: boolean): PresenceCount {
    return this.localPresence(pattern, members);
  }

  stats(): EngineStats {
    return { kind: this.kind, ready: true };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

