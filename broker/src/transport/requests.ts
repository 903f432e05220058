import { nanoid } from 'nanoid';
import { CrierError, ErrorCode, FrameType, encodeFrame } from '@crier/protocol';
import { secretMatches } from '../auth/secret.js';
import type { TimerHandle } from '../clock.js';
import type { BrokerCore } from '../core/core.js';
import type { QueueGroup } from '../core/groups.js';
import type { IndexEntry, Subscriber } from '../core/subscriber.js';
import type { ReplyMessage, RequestMessage } from '../engine/engine.js';
import type { RequestStats } from '../types.js';
import { Connection } from './connection.js';

// Request/reply (NATS-style), whatever the door: a request goes to every matching subscription
// as an `event` carrying a reply token (`rp`); the first `reply` naming the token answers the
// requester, later ones are dropped. The token is the capability: it names this node's instance,
// the requester and the request, plus random bits, so nobody can answer a request they did not get:
//
//   <node instance>:<requester serial>:<request serial>:<16 random characters>
//
// A requester's inbox is not a channel: nobody can subscribe to it, it costs no `maxChannels`;
// replies are routed by the token (to another node through the engine when it names another).

/** The timeout of a request that names none, in ms (bounded by `maxRequestTimeout`). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;
/** How often the one sweep of the pending requests runs while any is pending, in ms. */
export const REQUEST_SWEEP_MS = 50;
/** Random characters of a token: nanoid's alphabet, 96 bits. */
const SECRET_LENGTH = 16;
const TOKEN = /^([A-Za-z0-9_.#-]{1,80}):([0-9a-z]{1,11}):([0-9a-z]{1,11}):([A-Za-z0-9_-]{16})$/;

/** Who waits for replies: a WebSocket connection, or the HTTP requests of one client address. */
export interface Requester {
  /** Names it in tokens (unique on this node). */
  readonly serial: number;
  /** Its requests waiting now (`maxPendingRequests` bounds them). */
  readonly pending: Set<PendingRequest>;
}

/** How a request ended: the reply, or the error its requester gets (`no_responders`, `timeout`, `unavailable`…). */
export type RequestOutcome = { reply: ReplyMessage } | { error: CrierError };

/** A request validated and allowed, as a door hands it over. */
export interface NewRequest {
  channel: string;
  data: Uint8Array;
  labels?: string[] | undefined;
  key?: string | undefined;
  /** How long to wait for a reply, ms, as asked (`undefined`: the default), bounded here. */
  timeout: number | undefined;
}

interface PendingRequest {
  readonly serial: string;
  readonly secret: string;
  readonly requester: Requester;
  readonly channel: string;
  /** Its sweep bucket: the deadline (monotonic ms) rounded up to REQUEST_SWEEP_MS. */
  readonly bucket: number;
  readonly done: (outcome: RequestOutcome) => void;
}

/**
 * The requests this node's requesters wait on, and the delivery of every request (from any node)
 * to this node's subscribers. One timer sweeps the deadlines, armed only while a request waits.
 */
export class RequestTable {
  private readonly pending = new Map<string, PendingRequest>();
  /** Pending requests by deadline bucket: a sweep looks at the buckets, not at every request. */
  private readonly buckets = new Map<number, Set<PendingRequest>>();
  private readonly connections = new WeakMap<Connection, Requester>();
  private sweeper: TimerHandle | undefined;
  private requestSerial = 0;
  private requesterSerial = 0;
  readonly counts = { sent: 0, delivered: 0, answered: 0, noResponders: 0, timedOut: 0, repliesDropped: 0 };
  /** Routing's dedupe: a subscriber matched by several patterns gets a request once. */
  private readonly recipients = new Set<Connection>();
  private matching: RequestMessage | undefined;
  private readonly collect = (entry: IndexEntry): void => {
    const sub = entry.sub;
    if (!canReply(sub)) return;
    const m = this.matching!;
    if (entry.filter !== undefined && !entry.filter.passes(m.labels, m.key)) return;
    this.recipients.add(sub);
  };
  /** A queue group's responders share its requests: one member of each group gets one. */
  private readonly pickGroup = (group: QueueGroup): void => {
    const m = this.matching!;
    if (m.chosen !== undefined && !m.chosen.has(group.key)) return; // another node's turn
    const sub = this.core.registry.groups.pick(group, m.labels, m.key, canReply);
    if (sub !== undefined) this.recipients.add(sub as Connection);
  };

  constructor(private readonly core: BrokerCore) {
    core.engine.onRequests((request) => this.deliver(request), (reply) => this.take(reply));
  }

  /** A new requester (an HTTP client address). */
  requester(): Requester {
    return { serial: this.requesterSerial++, pending: new Set() };
  }

  /** The requester of a connection, made on its first request. */
  requesterOf(conn: Connection): Requester {
    let requester = this.connections.get(conn);
    if (requester === undefined) this.connections.set(conn, (requester = this.requester()));
    return requester;
  }

  /** The connection is gone: its requests are forgotten at once (their replies will be dropped). */
  release(conn: Connection): void {
    const requester = this.connections.get(conn);
    if (requester === undefined) return;
    this.connections.delete(conn);
    for (const request of [...requester.pending]) this.finish(request);
  }

  /**
   * Sends a validated, allowed request for `requester` (which must have room: see
   * {@link hasRoom}); `done` is called once, with the first reply or the error, unless the
   * returned function is called first (the requester stopped waiting: `done` is never called).
   */
  start(requester: Requester, request: NewRequest, done: (outcome: RequestOutcome) => void): () => void {
    const { clock, engine, options } = this.core;
    const timeout = Math.min(Math.max(request.timeout ?? DEFAULT_REQUEST_TIMEOUT_MS, 1), options.maxRequestTimeout);
    const serial = (this.requestSerial++).toString(36);
    const secret = nanoid(SECRET_LENGTH);
    const token = `${engine.instance}:${requester.serial.toString(36)}:${serial}:${secret}`;
    const bucket = Math.ceil((clock.now() + timeout) / REQUEST_SWEEP_MS);
    const pending: PendingRequest = { serial, secret, requester, channel: request.channel, bucket, done };
    this.pending.set(serial, pending);
    requester.pending.add(pending);
    let set = this.buckets.get(bucket);
    if (set === undefined) this.buckets.set(bucket, (set = new Set()));
    set.add(pending);
    this.sweeper ??= clock.setInterval(() => this.sweep(), REQUEST_SWEEP_MS);
    this.counts.sent++;
    const frame = encodeFrame({
      t: FrameType.event, c: request.channel, d: request.data, id: nanoid(), o: 0, e: '', ts: clock.wall(), l: request.labels, k: request.key, rp: token,
    });
    const cancel = (): void => this.finish(pending);
    let routed: boolean | Promise<boolean>;
    try {
      routed = engine.request({ channel: request.channel, labels: request.labels, key: request.key, frame });
    } catch (err) {
      this.fail(pending, err);
      return cancel;
    }
    if (routed instanceof Promise) routed.then((delivered) => this.routed(pending, delivered), (err: unknown) => this.fail(pending, err));
    else this.routed(pending, routed);
    return cancel;
  }

  /** Whether `requester` may have one more request waiting. */
  hasRoom(requester: Requester): boolean {
    return requester.pending.size < this.core.options.maxPendingRequests;
  }

  /**
   * A responder's reply (validated: size, labels). Throws `bad_frame` for a token that is not
   * one; an unknown, expired or answered one is dropped and counted, as a forged one is.
   */
  reply(token: string, data: Uint8Array, labels: string[] | undefined): void {
    const parts = TOKEN.exec(token);
    if (parts === null) throw new CrierError(ErrorCode.badFrame, 'rp is not a reply token: give back the rp of the request event as it came');
    const reply: ReplyMessage = { token, data, labels, id: nanoid(), time: this.core.clock.wall() };
    const instance = parts[1]!;
    if (instance === this.core.engine.instance) this.take(reply, parts);
    else if (!this.core.engine.reply(instance, reply)) this.counts.repliesDropped++;
  }

  /** Every request waiting is ended with `shutting_down` (the broker closes). */
  closeAll(): void {
    for (const request of [...this.pending.values()]) {
      this.finish(request);
      request.done({ error: new CrierError(ErrorCode.shuttingDown, 'the broker is shutting down') });
    }
  }

  stats(): RequestStats {
    const c = this.counts;
    return {
      pending: this.pending.size, sent: c.sent, delivered: c.delivered, answered: c.answered, noResponders: c.noResponders,
      timedOut: c.timedOut, repliesDropped: c.repliesDropped,
    };
  }

  /**
   * The engine's request sink: the request to every local subscription matching its channel and
   * passing its filter, and to one member of each matching queue group, once per connection.
   * A full queue drops it as it drops events. Answers how many connections got it.
   */
  private deliver(request: RequestMessage): number {
    this.matching = request;
    const recipients = this.recipients;
    let delivered = 0;
    try {
      this.core.registry.match(request.channel, this.collect);
      if (this.core.registry.groups.size > 0) this.core.registry.groups.match(request.channel, this.pickGroup);
      for (const conn of recipients) {
        if (conn.enqueueEvent(request.frame, request.channel)) delivered++;
        else this.core.countDrop();
      }
    } finally {
      recipients.clear();
      this.matching = undefined;
    }
    this.counts.delivered += delivered;
    return delivered;
  }

  /** A reply to a token naming this node (from a local responder, or forwarded by another node). */
  private take(reply: ReplyMessage, parts: RegExpExecArray | null = TOKEN.exec(reply.token)): void {
    const pending = parts === null ? undefined : this.pending.get(parts[3]!);
    if (pending === undefined || pending.requester.serial.toString(36) !== parts![2] || !secretMatches(parts![4], pending.secret)) {
      this.counts.repliesDropped++; // answered, timed out, its requester gone, or forged
      return;
    }
    this.finish(pending);
    this.counts.answered++;
    pending.done({ reply });
  }

  private routed(pending: PendingRequest, delivered: boolean): void {
    if (delivered || !this.pending.has(pending.serial)) return;
    this.finish(pending);
    this.counts.noResponders++;
    pending.done({ error: new CrierError(ErrorCode.noResponders, `no subscription matches ${pending.channel}: nobody would answer`) });
  }

  private fail(pending: PendingRequest, err: unknown): void {
    if (!this.pending.has(pending.serial)) return;
    this.finish(pending);
    const error = err instanceof CrierError ? err : new CrierError(ErrorCode.internal, 'internal broker error');
    if (!(err instanceof CrierError)) this.core.log.error({ err }, 'a request failed in the engine');
    pending.done({ error });
  }

  /** The deadlines passed: those requests get `timeout`. */
  private sweep(): void {
    const now = this.core.clock.now();
    for (const [bucket, set] of this.buckets) {
      if (bucket * REQUEST_SWEEP_MS > now) continue;
      for (const request of [...set]) {
        this.finish(request);
        this.counts.timedOut++;
        request.done({ error: new CrierError(ErrorCode.timeout, `no reply to the request on ${request.channel} in time`) });
      }
    }
  }

  private finish(request: PendingRequest): void {
    if (!this.pending.delete(request.serial)) return;
    request.requester.pending.delete(request);
    const set = this.buckets.get(request.bucket);
    set?.delete(request);
    if (set?.size === 0) this.buckets.delete(request.bucket);
    if (this.pending.size === 0 && this.sweeper !== undefined) {
      this.core.clock.clearTimer(this.sweeper);
      this.sweeper = undefined;
    }
  }
}

/** Only an open WebSocket connection can reply: SSE streams and in-process handlers are no responders. */
function canReply(sub: Subscriber): sub is Connection {
  return sub instanceof Connection && sub.state === 'open';
}
