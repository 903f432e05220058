import {
  ErrorCode,
  ResumeReason,
  compileFilter,
  type ResumeOutcome,
  type StreamPosition,
} from '@crier/protocol';
import type { ParkedSession, ReplayPage, SessionTake } from '../engine/engine.js';
import type { StreamEvent } from '../engine/stream-event.js';
import { filterChars } from '../core/filter.js';
import { memberKey, withGroups } from '../core/groups.js';
import { MAX_REPLAY_EVENTS, mergeReplays, when, type Maybe } from '../core/replay.js';
import { principalKey, type Connection } from './connection.js';
import type { Ingress } from './ingress.js';


/** What a resume restores and replays, before the welcome is sent. */
export interface Resumption {
  outcome: ResumeOutcome;
  /** The replay, in stream order: sent right behind the welcome. */
  events: StreamEvent[];
}

/**
 * The session a hello with `rp` resumes: the live holder's, when the uuid is still held (a client
 * that saw its socket die before the broker did), else the one the engine kept for the resume
 * window. Counted as not recovered when there is none.
 */
export function takeSession(ingress: Ingress, conn: Connection, uuid: string, secret: string | undefined, holder: Connection | undefined): Maybe<SessionTake> {
  if (holder !== undefined) {
    // The caller already checked the claim on the live holder (its secret or principal).
    holder.parkable = false;
    return { session: withGroups(holder.session(), holder.subscriptions) };
  }
  return ingress.core.engine.takeSession(uuid, { secret, principal: principalKey(conn.principal) });
}

/**
 * Restores `session`'s subscriptions on `conn` (those its principal may still hold) and reads
 * what each missed after the client's position `rp` (and never before the subscription was
 * live), merged in stream order, each event once. With an engine that answers later, live events
 * of the restored subscriptions are held on `conn` meanwhile: {@link releaseHeld} sends those the
 * replay did not carry.
 */
export function restore(ingress: Ingress, conn: Connection, session: ParkedSession | undefined, rp: StreamPosition): Maybe<Resumption> {
  const engine = ingress.core.engine;
  conn.hold(); // released by sendReplay
  if (session === undefined) {
    const why = rp.e === engine.epoch ? ResumeReason.windowPassed : ResumeReason.brokerRestarted;
    return { outcome: { n: 0, why }, events: [] };
  }
  const failed: string[] = [];
  let why: string | undefined;
  const fail = (pattern: string, reason: string): void => {
    failed.push(pattern);
    why ??= reason;
  };
  const sameEpoch = rp.e === engine.epoch;
  // Positions of another epoch say nothing here, even for a stream without subscriptions.
  if (!sameEpoch) why = ResumeReason.brokerRestarted;
  const reads: { pattern: string; page: Maybe<ReplayPage> }[] = [];
  for (const sub of session.subscriptions) {
    if (!conn.principal.subscribe.covers(sub.pattern)) {
      fail(sub.pattern, ErrorCode.forbidden);
      continue;
    }
    const filter = compileFilter(sub.filter);
    if (!ingress.core.registry.add(conn, sub.pattern, filter, sub.group)) continue;
    conn.filterChars += filterChars(filter);
    // Live since it was first made (a second resume from inside this one's replay needs that),
    // unless its positions were of another epoch.
    conn.setFloor(memberKey(sub.pattern, filter, sub.group), sameEpoch ? sub.since : engine.position());
    // A queue group member is not replayed what the group got meanwhile: other members had it
    // (or it was lost, at most once), as NATS JetStream does not redeliver to the member that left.
    if (sub.group !== undefined) continue;
    if (!sameEpoch) {
      fail(sub.pattern, ResumeReason.brokerRestarted);
      continue;
    }
    const since = Math.max(rp.s, sub.since);
    const accept = filter === undefined ? undefined : (labels: string[] | undefined, key: string | undefined) => filter.passes(labels, key);
    reads.push({ pattern: sub.pattern, page: engine.replay(sub.pattern, since, MAX_REPLAY_EVENTS, accept) });
  }
  // The welcome waits until every restored subscription is live on this node (with nodes on
  // Redis: its subscription there made), replayed or not, as a subscribe's ack does.
  const live = session.subscriptions.map((s) => engine.live(s.pattern)).filter((p) => p !== undefined);
  const pages = live.length > 0 || reads.some((r) => r.page instanceof Promise)
    ? Promise.all([...reads.map((r) => r.page), ...live]).then((all) => all.slice(0, reads.length) as ReplayPage[])
    : reads.map((r) => r.page as ReplayPage);
  return when(pages, (done) => {
    const { events } = mergeReplays(done, { events: MAX_REPLAY_EVENTS, bytes: Infinity }, () => 0);
    // Per pattern: trimmed history, or events past what one replay carries.
    const last = events.length > 0 ? events[events.length - 1]!.seq : 0;
    for (let i = 0; i < done.length; i++) {
      const page = done[i]!;
      const cut = page.more || (page.events.length > 0 && page.events[page.events.length - 1]!.seq > last);
      if (!page.complete) fail(reads[i]!.pattern, ResumeReason.historyEvicted);
      else if (cut) fail(reads[i]!.pattern, ResumeReason.replayLimit);
    }
    const outcome: ResumeOutcome = { n: events.length };
    if (why !== undefined) outcome.why = why;
    if (failed.length > 0) outcome.f = failed;
    return { outcome, events };
  });
}

/**
 * Sends the replay (the welcome is already queued), then the live events held meanwhile that
 * it did not carry, and ends the holding: from now on events go straight to the queue.
 */
export function sendReplay(conn: Connection, events: readonly StreamEvent[]): void {
  for (const event of events) conn.enqueueReplayed(event.frame);
  conn.unhold(events);
}
