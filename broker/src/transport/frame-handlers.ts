import { nanoid } from 'nanoid';
import {
  CloseCode,
  CrierError,
  ErrorCode,
  FrameType,
  MAX_HELLO_MESSAGE_BYTES,
  PROTOCOL_VERSION,
  assertChannel,
  assertPattern,
  compileFilter,
  decodeUntrustedFrames,
  encodeFrame,
  type Frame,
  type EventFilter,
  type HelloFrame,
  type HistoryFrame,
  type StreamPosition,
  type PresenceFrame,
  type PublishFrame,
  type ReplyFrame,
  type SubscribeFrame,
  type UnsubscribeFrame,
} from '@crier/protocol';
import { AuthFailure } from '../auth/authenticator.js';
import { Principal } from '../auth/principal.js';
import { secretMatches } from '../auth/secret.js';
import { refreshCredential, watchExpiry } from '../auth/session-credential.js';
import type { Accept, ParkedSession } from '../engine/engine.js';
import type { PublishResult } from '../types.js';
import { principalKey, type Connection } from './connection.js';
import { when } from '../core/replay.js';
import { restore, sendReplay, takeSession } from './resume.js';
import type { Ingress } from './ingress.js';
import { filterChars } from '../core/filter.js';
import { assertGroup, memberKey } from '../core/groups.js';
import { publishPriority, validatePublish } from '../core/publish-validation.js';
import { handleReply, handleRequest } from './request-handlers.js';
import { assertPresenceNotices, handlePresence, watchPresence } from './presence.js';

// Frames without a per-request field are encoded once for the process.
export const PING_FRAME = encodeFrame({ t: FrameType.ping });
const PONG_FRAME = encodeFrame({ t: FrameType.pong });

const UUID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** A publish's message id (`i`). */
const MESSAGE_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Frames a client may send behind its hello before the welcome (while its credential is verified). */
const MAX_EARLY_FRAMES = 64;
/**
 * Frames one client message may hold (as many as a connection's read budget of one turn, see
 * read-turns.ts). Its frames beyond are refused: one `error` `rate_limited` for the message, and
 * they are not decoded (200,000 pings in one message used to get 200,000 pongs in one turn). The
 * SDKs send one frame per message.
 */
export const MAX_FRAMES_PER_MESSAGE = 256;
/** Characters of a session secret: nanoid's alphabet, 192 bits. */
const SECRET_LENGTH = 32;

const TEXT_REFUSED = 'crier speaks binary msgpack: text messages are refused';

const brokerFrameNames: ReadonlyMap<number, string> = new Map([
  [FrameType.welcome, 'welcome'],
  [FrameType.ack, 'ack'],
  [FrameType.error, 'error'],
  [FrameType.event, 'event'],
  [FrameType.dropped, 'dropped'],
]);

/**
 * One WebSocket message from a client. Never throws: a frame that cannot be decoded closes a
 * connection that has not said hello (4000), and gets an `error` answer on one that has; the
 * connection, and every other one, goes on.
 */
export function handleMessage(ingress: Ingress, conn: Connection, bytes: Buffer, isBinary: boolean): void {
  if (conn.state === 'freed') return; // closed by us; its last frames are of no interest
  conn.seenTick = ingress.tick; // any frame at all proves the peer alive
  if (!isBinary) {
    if (conn.state === 'pending') ingress.closeConnection(conn, CloseCode.badFrame, `${ErrorCode.badFrame}: ${TEXT_REFUSED}`);
    else sendError(conn, ErrorCode.badFrame, TEXT_REFUSED, undefined);
    return;
  }
  if (conn.state === 'pending' && bytes.length > MAX_HELLO_MESSAGE_BYTES) {
    // A client that has not said hello gets nothing large decoded (or even looked at).
    ingress.closeConnection(conn, CloseCode.badFrame,
      `${ErrorCode.frameTooLarge}: a message before hello holds at most ${MAX_HELLO_MESSAGE_BYTES} bytes, not ${bytes.length}`);
    return;
  }
  try {
    // A message holds one or more frames; each is handled in order.
    decodeUntrustedFrames(bytes, ingress.limits, (frame) => handleDecoded(ingress, conn, frame));
  } catch (err) {
    // A frame before the malformed one may have closed the connection (TS cannot see the callback).
    if ((conn.state as Connection['state']) === 'freed') return;
    const e = asCrierError(ingress, err);
    if (conn.state === 'pending') ingress.closeConnection(conn, CloseCode.badFrame, `${e.code}: ${e.message}`);
    else sendError(conn, e.code, e.message, e.requestId);
  }
}

/**
 * One decoded frame. A failure is answered (or closes a connection before hello); it throws only
 * past MAX_FRAMES_PER_MESSAGE, to stop the decoder of its message.
 */
function handleDecoded(ingress: Ingress, conn: Connection, frame: Frame): void {
  if (conn.state === 'freed') return; // a quit earlier in the same message
  if (++conn.messageFrames > MAX_FRAMES_PER_MESSAGE) {
    // Thrown out of the decoder: the rest of the message is neither decoded nor handled.
    throw new CrierError(ErrorCode.rateLimited,
      `a message holds at most ${MAX_FRAMES_PER_MESSAGE} frames: the rest of this one was not handled`);
  }
  if (conn.early !== undefined) {
    // Behind a hello whose credential is being verified: handled in order once it is welcomed.
    if (conn.early.length < MAX_EARLY_FRAMES) conn.early.push(frame);
    else ingress.closeConnection(conn, CloseCode.badFrame, `${ErrorCode.helloRequired}: more than ${MAX_EARLY_FRAMES} frames before the welcome`);
    return;
  }
  try {
    if (conn.state === 'pending') handleFirstFrame(ingress, conn, frame);
    else handleFrame(ingress, conn, frame);
  } catch (err) {
    const e = asCrierError(ingress, err);
    if (conn.state === 'pending') ingress.closeConnection(conn, CloseCode.internalError, `${e.code}: ${e.message}`);
    else sendError(conn, e.code, e.message, e.requestId ?? requestIdOf(frame));
  }
}

function handleFirstFrame(ingress: Ingress, conn: Connection, frame: Frame): void {
  if (frame.t !== FrameType.hello) {
    sendError(conn, ErrorCode.helloRequired, 'the first frame must be hello', requestIdOf(frame));
    ingress.closeConnection(conn, CloseCode.helloRejected, `${ErrorCode.helloRequired}: the first frame must be hello`);
    return;
  }
  hello(ingress, conn, frame);
}

function hello(ingress: Ingress, conn: Connection, frame: HelloFrame): void {
  if (frame.v !== PROTOCOL_VERSION) {
    const why = `broker speaks protocol ${PROTOCOL_VERSION}, client asked for ${frame.v}`;
    ingress.closeConnection(conn, CloseCode.helloRejected, `${ErrorCode.unsupportedVersion}: ${why}`);
    return;
  }
  if (frame.u !== undefined && !UUID_PATTERN.test(frame.u)) {
    ingress.closeConnection(conn, CloseCode.helloRejected, `${ErrorCode.badUuid}: a uuid is 1-64 characters of A-Z a-z 0-9 _ -`);
    return;
  }
  if (!ingress.auth.enabled) return holdUntilWelcomed(ingress, conn, welcome(ingress, conn, frame, Principal.ANONYMOUS));
  // Verifying may take a while (a remote key set): the socket waits, paused, and the frames
  // already behind the hello are kept for later; the hello timeout still bounds it all.
  conn.early = [];
  conn.ws.pause();
  ingress.auth.authenticate(frame.tk).then(
    (principal) => {
      if (conn.state !== 'pending' || conn.early === undefined) return;
      holdUntilWelcomed(ingress, conn, welcome(ingress, conn, frame, principal));
    },
    (err: unknown) => {
      if (conn.state !== 'pending') return;
      const failure = err instanceof AuthFailure ? err : new AuthFailure('token refused');
      ingress.refusals.refuse(ErrorCode.unauthorized, 'websocket', { remoteAddress: conn.remoteAddress });
      ingress.closeConnection(conn, failure.expired ? CloseCode.tokenExpired : CloseCode.unauthorized, `${ErrorCode.unauthorized}: ${failure.message}`);
    },
  );
}

/**
 * Once the welcome is queued (now, or when `pending` settles: an engine answering a resume), the
 * frames that arrived behind the hello are handled in order and the socket reads again.
 */
function holdUntilWelcomed(ingress: Ingress, conn: Connection, pending: Promise<void> | undefined): void {
  if (pending === undefined) return handleEarly(ingress, conn);
  conn.early ??= [];
  conn.ws.pause();
  pending.then(
    () => handleEarly(ingress, conn),
    (err: unknown) => {
      const e = asCrierError(ingress, err);
      ingress.closeConnection(conn, CloseCode.internalError, `${e.code}: ${e.message}`);
    },
  );
}

function handleEarly(ingress: Ingress, conn: Connection): void {
  const early = conn.early;
  if (early === undefined) return;
  conn.early = undefined;
  if (conn.state === 'freed') return;
  conn.ws.resume();
  conn.messageFrames = 0; // at most MAX_EARLY_FRAMES: the per-message cap cannot throw here
  for (const f of early) handleDecoded(ingress, conn, f);
}

/**
 * Registers a connection whose hello passed, and sends its welcome; with `rp`, resumes the
 * stream first (see resume.ts). Returns a promise when the engine answers later: the caller
 * holds the connection's next frames until it settles.
 */
function welcome(ingress: Ingress, conn: Connection, frame: HelloFrame, principal: Principal): Promise<void> | undefined {
  const uuid = frame.u ?? nanoid();
  const holder = ingress.byUuid.get(uuid);
  if (holder !== undefined && !principal.sameAs(holder.principal) && !secretMatches(frame.s, holder.secret) && !secretMatches(frame.s, holder.formerSecret)) {
    // A uuid is not a credential: taking over a live stream needs the secret its welcome gave,
    // unless it is the same authenticated principal (a page reload).
    refuseTakeover(ingress, conn, uuid, 'is held by another connection');
    return undefined;
  }
  if (holder !== undefined || frame.u === undefined) return admit(ingress, conn, frame, principal, uuid, holder);
  // Another node may hold it (the client came back through another node): the same rules there.
  const claimed = when(ingress.core.engine.claimStream(uuid, { secret: frame.s, principal: principalKey(principal) }), (answer) => {
    if (answer === 'refused') return refuseTakeover(ingress, conn, uuid, 'is held by another connection');
    if (conn.state !== 'pending') return undefined; // gone while the other node answered
    return admit(ingress, conn, frame, principal, uuid, undefined);
  });
  return claimed instanceof Promise ? claimed : undefined;
}

/** {@link welcome} once nothing else holds the stream `uuid` (or `holder`, here, lets it go). */
function admit(
  ingress: Ingress, conn: Connection, frame: HelloFrame, principal: Principal, uuid: string, holder: Connection | undefined,
): Promise<void> | undefined {
  conn.principal = principal;
  if (conn.helloTimer !== undefined) ingress.clock.clearTimer(conn.helloTimer);
  conn.helloTimer = undefined;
  const rp = frame.u === undefined ? undefined : frame.rp;
  if (rp === undefined) {
    open(ingress, conn, uuid, undefined);
    return undefined;
  }
  const resumed = when(takeSession(ingress, conn, uuid, frame.s, holder), (take) => {
    if ('refused' in take) {
      refuseTakeover(ingress, conn, uuid, 'was parked by another client');
      return undefined;
    }
    // Registered first: the replay is read once the stream is this connection's.
    return open(ingress, conn, uuid, 'session' in take ? take.session : undefined, rp, frame.s);
  });
  return resumed instanceof Promise ? resumed : undefined;
}

/** Registers `conn` as the stream `uuid` and queues its welcome, resuming `session` from `rp`. */
function open(
  ingress: Ingress, conn: Connection, uuid: string, session: ParkedSession | undefined, rp?: StreamPosition, claimed?: string,
): void | Promise<void> {
  if (conn.state !== 'pending') {
    // Closed while an engine answered: a session taken for it is parked again, as it was.
    if (session !== undefined) ingress.parkSession(uuid, session);
    return undefined;
  }
  conn.secret = nanoid(SECRET_LENGTH);
  // Until the welcome reaches the client it holds only the secret it resumed with.
  conn.formerSecret = claimed;
  ingress.register(conn, uuid);
  const restored = rp === undefined ? undefined : restore(ingress, conn, session, rp);
  return when(restored, (resumption) => {
    if (conn.state !== 'open') return;
    const { keepAliveInterval, maxChannels, maxPayload, bufferSize, publishRate, publishBurst } = ingress.options;
    conn.enqueueControl(encodeFrame({
      t: FrameType.welcome,
      v: PROTOCOL_VERSION,
      u: uuid,
      ka: keepAliveInterval,
      lim: { mc: maxChannels, mp: maxPayload, bs: bufferSize, pr: publishRate, pb: publishBurst },
      s: conn.secret,
      x: conn.principal.expiresAt,
      ep: ingress.core.engine.epoch,
      rs: resumption?.outcome,
    }));
    if (resumption !== undefined) {
      sendReplay(conn, resumption.events);
      ingress.countResume(resumption.outcome.why === undefined);
    }
    watchExpiry(ingress, conn);
    ingress.sessionChanged(conn); // its secret is new, its subscriptions restored
    ingress.log.debug({ uuid, remoteAddress: conn.remoteAddress, resumed: resumption?.outcome }, 'connection open');
  });
}

function refuseTakeover(ingress: Ingress, conn: Connection, uuid: string, why: string): void {
  ingress.refusals.refuse(ErrorCode.forbidden, 'websocket', { remoteAddress: conn.remoteAddress });
  ingress.closeConnection(conn, CloseCode.helloRejected,
    `${ErrorCode.forbidden}: uuid ${uuid} ${why}; taking it over needs its session secret`);
}

/** A frame after hello. Throws the `CrierError` that answers it. */
function handleFrame(ingress: Ingress, conn: Connection, frame: Frame): void {
  switch (frame.t) {
    case FrameType.subscribe:
      return subscribe(ingress, conn, frame);
    case FrameType.unsubscribe:
      return unsubscribe(ingress, conn, frame);
    case FrameType.publish:
      return publish(ingress, conn, frame);
    case FrameType.quit:
      // The stream ends here: nothing is kept for a resume.
      conn.parkable = false;
      return ingress.closeConnection(conn, CloseCode.normal, 'quit');
    case FrameType.history:
      return history(ingress, conn, frame);
    case FrameType.request:
      return handleRequest(ingress, conn, frame);
    case FrameType.presence:
      // The client's shape: the broker's decoder yields no other for type 18.
      return handlePresence(ingress, conn, frame as PresenceFrame);
    case FrameType.reply:
      // The client's shape: the broker's decoder yields no other for type 17.
      return handleReply(ingress, conn, frame as ReplyFrame);
    case FrameType.ping:
      return conn.enqueueControl(PONG_FRAME);
    case FrameType.pong:
      return; // seenTick is all a pong is for
    case FrameType.auth:
      return refreshCredential(ingress, conn, frame);
    case FrameType.hello:
      throw new CrierError(ErrorCode.helloRequired, 'hello was already received on this connection');
    default:
      throw new CrierError(ErrorCode.unknownType,
        `frame type ${frame.t} (${brokerFrameNames.get(frame.t) ?? '?'}) is sent by the broker, never to it`);
  }
}

/** Characters of labels and keys that one connection's filters may hold in all. */
export const MAX_FILTER_CHARS_PER_CONNECTION = 64 * 1024;

/** Events a subscribe's rewind (`w`) may ask for at most. */
export const MAX_REWIND = 1000;

function subscribe(ingress: Ingress, conn: Connection, frame: SubscribeFrame): void {
  assertPattern(frame.p);
  assertPresenceNotices(frame);
  if (!conn.principal.subscribe.covers(frame.p)) {
    throw new CrierError(ErrorCode.forbidden, `no grant of ${conn.principal.id} covers subscribing to ${frame.p}`);
  }
  const filter = compileFilter(frame.f); // bad_filter
  if (frame.w !== undefined && frame.w > MAX_REWIND) {
    throw new CrierError(ErrorCode.badFrame, `a rewind asks for at most ${MAX_REWIND} events, not ${frame.w}`);
  }
  const group = frame.g;
  if (group !== undefined) {
    assertGroup(group);
    // Retained events are no work to share out: each member would get the same ones.
    if (frame.w !== undefined) throw new CrierError(ErrorCode.badFrame, 'a queue group member (g) cannot rewind (w)');
  }
  // A subscription is (pattern, canonical filter, group). One already held changes nothing and
  // is acknowledged all the same.
  const registry = ingress.core.registry;
  const held = registry.holds(conn, frame.p, filter, group);
  if (!held) {
    const max = ingress.options.maxChannels;
    if (conn.subscriptions.size >= max) {
      throw new CrierError(ErrorCode.maxChannels, `this connection already holds ${max} subscriptions (maxChannels)`);
    }
    // Filters may list 256 keys each: bound what one connection can make the broker hold.
    const size = filterChars(filter);
    if (conn.filterChars + size > MAX_FILTER_CHARS_PER_CONNECTION) {
      throw new CrierError(ErrorCode.badFilter,
        `this connection's filters would exceed ${MAX_FILTER_CHARS_PER_CONNECTION} characters of labels and keys`);
    }
  }
  const engine = ingress.core.engine;
  if (!held) {
    conn.filterChars += filterChars(filter);
    registry.add(conn, frame.p, filter, group);
    // Live from here: a resume replays this subscription from this position at the earliest.
    conn.setFloor(memberKey(frame.p, filter, group), engine.position());
    ingress.sessionChanged(conn);
  }
  watchPresence(ingress, conn, frame);
  // Made after the subscription (an engine shared by nodes reads once it is live there), and
  // before any event can arrive: live events wait behind a rewind that answers later.
  const rewound = frame.w === undefined ? undefined : engine.rewind(frame.p, frame.w, ingress.options.maxPayload, acceptOf(filter));
  if (rewound instanceof Promise) conn.hold();
  const r = frame.r;
  // Acknowledged once events of the pattern from every node reach this one.
  const answered = when(rewound ?? (engine.live(frame.p) as Promise<undefined> | undefined), (page) => {
    if (page !== undefined) {
      conn.enqueueControl(encodeFrame({ t: FrameType.events, r, ev: page.events.map((e) => e.frame), m: page.more }));
      if (rewound instanceof Promise) conn.unhold(page.events);
    }
    sendAck(conn, r);
  });
  if (answered instanceof Promise) {
    answered.catch((err: unknown) => {
      conn.unhold([]);
      answerFailure(ingress, conn, err, r);
    });
  }
}

/** A subscription filter as history's `accept`. */
function acceptOf(filter: EventFilter | undefined): Accept | undefined {
  return filter === undefined ? undefined : (labels, key) => filter.passes(labels, key);
}

/** A channel's retained events (`history` frame), answered with an `events` frame. */
function history(ingress: Ingress, conn: Connection, frame: HistoryFrame): void {
  assertChannel(frame.c);
  if (!conn.principal.subscribe.covers(frame.c)) {
    throw new CrierError(ErrorCode.forbidden, `no grant of ${conn.principal.id} covers reading ${frame.c}`);
  }
  if ((frame.e === undefined) !== (frame.o === undefined)) {
    throw new CrierError(ErrorCode.badFrame, 'a history position needs both e (epoch) and o (offset)');
  }
  const max = ingress.options.historySize;
  const limit = Math.max(1, Math.min(frame.n ?? max, max));
  const since = frame.e === undefined ? undefined : { epoch: frame.e, offset: frame.o! };
  const r = frame.r;
  const answered = when(ingress.core.engine.history(frame.c, since, limit), (page) => {
    // One frame, no larger than an event may be: the oldest first, `m` when some are left for a next ask.
    const ev: Uint8Array[] = [];
    let bytes = 0;
    for (const event of page.events) {
      if (ev.length > 0 && bytes + event.frame.length > ingress.options.maxPayload) break;
      bytes += event.frame.length;
      ev.push(event.frame);
    }
    conn.enqueueControl(encodeFrame({ t: FrameType.events, r, ev, e: page.epoch, o: page.offset, ok: page.complete, m: page.more || ev.length < page.events.length }));
  });
  if (answered instanceof Promise) answered.catch((err: unknown) => answerFailure(ingress, conn, err, r));
}

/** An engine that answered with a failure: the request gets its error. */
function answerFailure(ingress: Ingress, conn: Connection, err: unknown, r: number | undefined): void {
  const e = asCrierError(ingress, err);
  if (e.code === ErrorCode.unavailable) ingress.refusals.refuse(ErrorCode.unavailable, 'websocket', conn);
  sendError(conn, e.code, e.message, r);
}

function unsubscribe(ingress: Ingress, conn: Connection, frame: UnsubscribeFrame): void {
  // A valid pattern holds no space, so its key cannot be confused with another subscription's
  // (an unchecked one could name a filtered key and leave its index entry behind).
  assertPattern(frame.p);
  // Without `f`, the subscription of the pattern with no filter; with it, that filter's.
  const filter = compileFilter(frame.f);
  // Without `g`, the subscription in no group; with it, that group's membership.
  if (frame.g !== undefined) assertGroup(frame.g);
  if (ingress.core.registry.remove(conn, frame.p, filter, frame.g)) {
    conn.filterChars -= filterChars(filter);
    conn.floors?.delete(memberKey(frame.p, filter, frame.g));
    ingress.sessionChanged(conn);
  }
  sendAck(conn, frame.r);
}

function publish(ingress: Ingress, conn: Connection, frame: PublishFrame): void {
  // First, before any validation: a flooder's refused publish costs no more than this check.
  if (!conn.publishBucket.take(ingress.now())) return refusePublish(ingress, conn, frame.r);
  validatePublish(frame.c, frame.d, frame.l, frame.k, ingress.options.maxPayload);
  if (!conn.principal.publish.allows(frame.c)) {
    throw new CrierError(ErrorCode.forbidden, `no grant of ${conn.principal.id} allows publishing to ${frame.c}`);
  }
  if (frame.i !== undefined && !MESSAGE_ID.test(frame.i)) {
    throw new CrierError(ErrorCode.badFrame, 'a message id (i) is 1-64 characters of A-Z a-z 0-9 _ - . :');
  }
  // Idempotent per publisher: its principal when authenticated, else its stream.
  const idempotency = frame.i === undefined ? undefined : { scope: principalKey(conn.principal) || `u:${conn.uuid}`, id: frame.i };
  const priority = publishPriority(frame.pr);
  const result = ingress.core.publish({ channel: frame.c, data: frame.d, labels: frame.l, key: frame.k, idempotency, priority });
  const r = frame.r;
  if (!(result instanceof Promise)) {
    if (r !== undefined) ackPublish(conn, r, result);
    return;
  }
  // An engine that sequences over the network: the ack (or the error) when it answers.
  result.then((done) => r !== undefined && ackPublish(conn, r, done), (err: unknown) => answerFailure(ingress, conn, err, r));
}

function ackPublish(conn: Connection, r: number, { id, offset, epoch }: PublishResult): void {
  conn.enqueueControl(encodeFrame({ t: FrameType.ack, r, id, o: offset, e: epoch }));
}

/** A publish over the connection's rate: refused with its request id, counted and logged. */
function refusePublish(ingress: Ingress, conn: Connection, r: number | undefined): void {
  ingress.refusals.refuse(ErrorCode.rateLimited, 'websocket', conn);
  const { publishRate, publishBurst } = ingress.options;
  sendError(conn, ErrorCode.rateLimited, `over the publish rate of this connection: ${publishRate} per second, ${publishBurst} at once`, r);
}

function sendAck(conn: Connection, r: number): void {
  conn.enqueueControl(encodeFrame({ t: FrameType.ack, r }));
}

function sendError(conn: Connection, code: string, msg: string, r: number | undefined): void {
  conn.enqueueControl(encodeFrame({ t: FrameType.error, r, code, msg }));
}

function requestIdOf(frame: Frame): number | undefined {
  return 'r' in frame && typeof frame.r === 'number' ? frame.r : undefined;
}

/** Any failure as a CrierError: an unexpected one is logged and answered `internal`. */
function asCrierError(ingress: Ingress, err: unknown): CrierError {
  if (err instanceof CrierError) return err;
  ingress.log.error({ err }, 'unexpected failure handling a frame');
  return new CrierError(ErrorCode.internal, 'internal broker error');
}
