import { CloseCode, ErrorCode, FrameType, encodeFrame, type AuthFrame } from '@crier/protocol';
import type { Clock, TimerHandle } from '../clock.js';
import { AuthFailure, type Authenticator } from './authenticator.js';
import type { Principal } from './principal.js';

// A live connection's credential: it expires (4007, reconnectable: the SDK asks for a fresh one),
// unless an `auth` frame refreshes it in band first, with nothing lost.

/** What a connection's credential life needs of the connection (not the whole class: no import circle). */
export interface CredentialHolder {
  readonly state: string;
  principal: Principal;
  expiryTimer: TimerHandle | undefined;
  enqueueControl(frame: Uint8Array): void;
}

/** What it needs of the broker. */
export interface CredentialHost<C extends CredentialHolder> {
  readonly auth: Authenticator;
  readonly clock: Clock;
  closeConnection(conn: C, code: number, reason: string): void;
}

// setTimeout fires at once past 2^31-1 ms: a far expiry is watched in steps.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Closes `conn` with 4007 when its principal's credential expires; replaces an earlier watch. */
export function watchExpiry<C extends CredentialHolder>(core: CredentialHost<C>, conn: C): void {
  if (conn.expiryTimer !== undefined) core.clock.clearTimer(conn.expiryTimer);
  conn.expiryTimer = undefined;
  const expiresAt = conn.principal.expiresAt;
  if (expiresAt === undefined || conn.state !== 'open') return;
  const left = expiresAt - core.clock.wall();
  conn.expiryTimer = core.clock.setTimeout(() => {
    conn.expiryTimer = undefined;
    if (conn.principal.expiresAt !== expiresAt) return; // refreshed meanwhile
    if (left > MAX_TIMER_MS) return watchExpiry(core, conn);
    core.closeConnection(conn, CloseCode.tokenExpired, `${ErrorCode.unauthorized}: token expired`);
  }, Math.max(0, Math.min(left, MAX_TIMER_MS)));
}

/**
 * An `auth` frame: the new credential must verify and name the same principal; then it replaces
 * the old one (grants and expiry) and the answer is an ack carrying the new expiry. On a refusal
 * the connection keeps its current credential until that one expires.
 */
export function refreshCredential<C extends CredentialHolder>(core: CredentialHost<C>, conn: C, frame: AuthFrame): void {
  if (!core.auth.enabled) {
    conn.enqueueControl(encodeFrame({ t: FrameType.ack, r: frame.r }));
    return;
  }
  core.auth.authenticate(frame.tk).then(
    (principal) => {
      if (conn.state !== 'open') return;
      if (!principal.sameAs(conn.principal)) {
        conn.enqueueControl(encodeFrame({ t: FrameType.error, r: frame.r, code: ErrorCode.forbidden, msg: `a refreshed credential must name the same principal (${conn.principal.id})` }));
        return;
      }
      conn.principal = principal;
      watchExpiry(core, conn);
      conn.enqueueControl(encodeFrame({ t: FrameType.ack, r: frame.r, x: principal.expiresAt }));
    },
    (err: unknown) => {
      if (conn.state !== 'open') return;
      const msg = err instanceof AuthFailure ? err.message : 'token refused';
      conn.enqueueControl(encodeFrame({ t: FrameType.error, r: frame.r, code: ErrorCode.unauthorized, msg }));
    },
  );
}
