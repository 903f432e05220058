import { CrierError, ErrorCode, FrameType, assertPattern, encodeFrame, isWildcard, type PresenceFrame, type SubscribeFrame } from '@crier/protocol';
import type { Principal } from '../auth/principal.js';
import type { PresenceCount } from '../engine/engine.js';
import { when } from '../core/replay.js';
import type { Connection } from './connection.js';
import type { Ingress } from './ingress.js';

// Presence over a socket: the `presence` question (18), and the `pe` of a subscribe (notices, 19).

/**
 * Who may ask about `pattern` (its subscribe grant covering it: the same as subscribing, since a
 * count says how many would get its events), and whether the ids of its subscribers may be given
 * too (asked, and a presence grant covering it). Throws `forbidden`.
 */
export function presenceAccess(principal: Principal, pattern: string, asked: boolean): boolean {
  if (!principal.subscribe.covers(pattern)) {
    throw new CrierError(ErrorCode.forbidden, `no grant of ${principal.id} covers ${pattern}: asking who subscribes needs its subscribe grant`);
  }
  return asked && principal.presence.covers(pattern);
}

/** The `presence` frame: answered with a `presence` frame of the same `r` (or an `error`). */
export function handlePresence(ingress: Ingress, conn: Connection, frame: PresenceFrame): void {
  assertPattern(frame.p);
  const members = presenceAccess(conn.principal, frame.p, frame.m === true);
  const { r, p } = frame;
  const answer = (count: PresenceCount): void => {
    conn.enqueueControl(encodeFrame({
      t: FrameType.presence, r, p, n: count.n, m: members ? (count.m ?? []) : undefined, pa: count.partial === true ? true : undefined,
    }));
  };
  let counted;
  try {
    counted = when(ingress.core.engine.presence(p, members), answer);
  } catch (err) {
    throw err instanceof CrierError ? err : new CrierError(ErrorCode.unavailable, 'presence could not be counted');
  }
  if (counted instanceof Promise) {
    counted.catch((err: unknown) => {
      const e = err instanceof CrierError ? err : new CrierError(ErrorCode.unavailable, 'presence could not be counted');
      conn.enqueueControl(encodeFrame({ t: FrameType.error, r, code: e.code, msg: e.message }));
    });
  }
}

/** Throws `bad_frame` for a subscribe asking notices (`pe`) of a wildcard pattern: notices are per channel. */
export function assertPresenceNotices(frame: SubscribeFrame): void {
  if (frame.pe === true && isWildcard(frame.p)) {
    throw new CrierError(ErrorCode.badFrame, 'presence notices (pe) are for a channel name, not a pattern');
  }
}

/** A subscribe with `pe`, once it holds the subscription: notices of its channel from now on. */
export function watchPresence(ingress: Ingress, conn: Connection, frame: SubscribeFrame): void {
  if (frame.pe !== true) return;
  ingress.core.presence.watch(conn, frame.p, {
    maySee: (channel) => conn.principal.presence.covers(channel),
    enqueueControl: (bytes) => conn.enqueueControl(bytes),
    get gone() {
      return conn.state === 'freed';
    },
  });
}
