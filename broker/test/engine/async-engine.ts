import type { ChannelEvents, EngineStats, PublishResult } from '../../src/types.js';
import type {
  ChannelPosition, Engine, EventSink, HistoryPage, LocalPresence, ParkedSession, PresenceCount, PublishRequest, ReplayPage, ReplyMessage, ReplySink, RequestMessage, RequestSink, SessionClaim,
  SessionTake, StreamClaimAnswer, StreamClaimHandler,
} from '../../src/engine/engine.js';

type Accept = (labels: string[] | undefined, key: string | undefined) => boolean;

/** The methods of an engine that may answer later. */
export type LaterMethod = 'publish' | 'history' | 'replay' | 'rewind' | 'parkSession' | 'takeSession' | 'dropSession' | 'request' | 'presence';

/** How {@link AsyncEngine} answers. */
export interface AsyncEngineOptions {
  /**
   * When an answer comes: on a later microtask, or after the I/O of the turn (`setImmediate`,
   * as a network round trip would: other sockets' frames are read in between).
   * @default 'immediate'
   */
  defer?: 'microtask' | 'immediate';
  /**
   * What a read (history, replay, rewind) sees: the store as of the call, or as of the answer
   * (then it holds events published while it was pending, which the caller also got live).
   * Publishes and sessions always act at the answer: that is when the remote store would.
   * @default 'at-answer'
   */
  reads?: 'at-call' | 'at-answer';
}

/**
 * An engine that answers every method with a promise, settled on a later microtask or turn: the
 * shape of one that sequences over the network (a Redis engine), made of a synchronous one. A
 * publish is sequenced, and handed to the sink, only when it answers, as a remote engine hands it
 * back from its pub/sub before its command's answer. Calls answer in call order.
 *
 * A test can also hold the answers of some methods ({@link hold}) and let them go when it says
 * ({@link release}), to act while the broker waits on the engine.
 */
export class AsyncEngine implements Engine {
  readonly kind: string;
  private readonly defer: 'microtask' | 'immediate';
  private readonly reads: 'at-call' | 'at-answer';
  private readonly holding = new Set<LaterMethod>();
  private readonly held: (() => void)[] = [];
  /** Calls answered so far, per method (what a test checks the broker went through). */
  readonly calls = new Map<LaterMethod, number>();

  constructor(
    readonly inner: Engine,
    options: AsyncEngineOptions = {},
  ) {
    this.kind = inner.kind;
    this.defer = options.defer ?? 'immediate';
    this.reads = options.reads ?? 'at-answer';
  }

  get epoch(): string {
    return this.inner.epoch;
  }

  /** From now on, the answers of `methods` wait for {@link release}. */
  hold(...methods: LaterMethod[]): void {
    for (const method of methods) this.holding.add(method);
  }

  /** Answers the calls held so far, in call order (methods still held hold their next calls). */
  release(): void {
    for (const answer of this.held.splice(0)) answer();
  }

  /** Stops holding every method and answers what was held. */
  unhold(): void {
    this.holding.clear();
    this.release();
  }

  /** Calls held now, waiting for {@link release}. */
  get pending(): number {
    return this.held.length;
  }

  start(sink: EventSink): Promise<void> {
    return this.inner.start(sink);
  }

  publish(request: PublishRequest): Promise<PublishResult> {
    return this.later('publish', () => this.inner.publish(request));
  }

  history(channel: string, since: ChannelPosition | undefined, limit: number): Promise<HistoryPage> {
    return this.read('history', () => this.inner.history(channel, since, limit));
  }

  replay(pattern: string, since: number, limit: number, accept?: Accept): Promise<ReplayPage> {
    return this.read('replay', () => this.inner.replay(pattern, since, limit, accept));
  }

  rewind(pattern: string, count: number, maxBytes: number, accept?: Accept): Promise<ReplayPage> {
    return this.read('rewind', () => this.inner.rewind(pattern, count, maxBytes, accept));
  }

  position(): number {
    return this.inner.position();
  }

  parkSession(uuid: string, session: ParkedSession, ttl: number): Promise<void> {
    return this.later('parkSession', () => this.inner.parkSession(uuid, session, ttl));
  }

  takeSession(uuid: string, claim: SessionClaim): Promise<SessionTake> {
    return this.later('takeSession', () => this.inner.takeSession(uuid, claim));
  }

  dropSession(uuid: string): Promise<void> {
    return this.later('dropSession', () => this.inner.dropSession(uuid));
  }

  parkedSessions(): number | Promise<number> {
    return this.inner.parkedSessions();
  }

  channelCount(): number | Promise<number> {
    return this.inner.channelCount();
  }

  busiestChannels(limit: number): ChannelEvents[] | Promise<ChannelEvents[]> {
    return this.inner.busiestChannels(limit);
  }

  get shared(): boolean {
    return this.inner.shared;
  }

  saveSession(uuid: string, session: ParkedSession, ttl: number): void {
    this.inner.saveSession(uuid, session, ttl);
  }

  streamOpened(uuid: string): void {
    this.inner.streamOpened(uuid);
  }

  streamClosed(uuid: string): void {
    this.inner.streamClosed(uuid);
  }

  claimStream(uuid: string, claim: SessionClaim): StreamClaimAnswer | Promise<StreamClaimAnswer> {
    return this.inner.claimStream(uuid, claim);
  }

  onEpochChange(listener: () => void): void {
    this.inner.onEpochChange(listener);
  }

  onStreamClaim(handler: StreamClaimHandler): void {
    this.inner.onStreamClaim(handler);
  }

  interest(pattern: string, present: boolean): void {
    this.inner.interest(pattern, present);
  }

  live(pattern: string): Promise<void> | undefined {
    return this.inner.live(pattern);
  }

  get instance(): string {
    return this.inner.instance;
  }

  onRequests(requests: RequestSink, replies: ReplySink): void {
    this.inner.onRequests(requests, replies);
  }

  /** Handed to the sinks at the answer, as a remote engine's pub/sub would. */
  request(request: RequestMessage): Promise<boolean> {
    return this.later('request', () => this.inner.request(request));
  }

  onPresence(local: LocalPresence): void {
    this.inner.onPresence(local);
  }

  presence(pattern: string, members: boolean): Promise<PresenceCount> {
    return this.later('presence', () => this.inner.presence(pattern, members));
  }

  reply(instance: string, reply: ReplyMessage): boolean {
    return this.inner.reply(instance, reply);
  }

  get ready(): boolean {
    return this.inner.ready;
  }

  stats(): EngineStats {
    return this.inner.stats();
  }

  close(): Promise<void> {
    this.unhold();
    return this.inner.close();
  }

  /** A read: done now or at the answer, as configured; answered later either way. */
  private read<T>(method: LaterMethod, act: () => T | Promise<T>): Promise<T> {
    if (this.reads === 'at-answer') return this.later(method, act);
    const now = Promise.resolve(act());
    return this.later(method, () => now);
  }

  /** `act` done on a later microtask or turn (or at the release, when `method` is held). */
  private later<T>(method: LaterMethod, act: () => T | Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const answer = (): void => {
        this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
        try {
          resolve(act());
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      };
      const answerLater = (): void => {
        if (this.holding.has(method)) this.held.push(answer);
        else if (this.defer === 'microtask') queueMicrotask(answer);
        else setImmediate(answer);
      };
      answerLater();
    });
  }
}
