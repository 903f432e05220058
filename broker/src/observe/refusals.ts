import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { ErrorCode } from '@crier/protocol';
import { clientAddress } from '../admission/client-address.js';
import { RateLimitedLog } from './logger.js';

/**
 * What the broker refuses before a connection, a stream or a publish exists: the client gets the
 * code (HTTP status and `{code, message}`, or a close), `crier_refused_total{reason}` counts it,
 * and the operator gets a rate-limited log line. A small fixed set: it is a metric label.
 */
export const REFUSAL_REASONS = [
  ErrorCode.forbiddenOrigin, ErrorCode.tooManyConnections, ErrorCode.shuttingDown, ErrorCode.unauthorized, ErrorCode.forbidden,
  ErrorCode.rateLimited, ErrorCode.unavailable,
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/**
 * Where a request was refused: a WebSocket upgrade, `GET /events`, `POST /publish`, `GET /history`,
 * `POST /request`, `GET /session` (the HTTP session, sdk-web's fallback transport).
 */
export type Door = 'websocket' | 'sse' | 'publish' | 'admin' | 'history' | 'request' | 'session' | 'presence';


/** One line per key and 10 s at most: a page retrying a refused handshake cannot flood the log. */
const LOG_INTERVAL_MS = 10_000;
/** An `Origin` header is the client's to write: at most this many characters of it reach a log. */
const MAX_LOGGED_ORIGIN = 200;

const MESSAGES: Readonly<Record<RefusalReason, string>> = {
  [ErrorCode.forbiddenOrigin]: 'refused: origin not in allowedOrigins',
  [ErrorCode.tooManyConnections]: 'refused: maxConnections reached',
  [ErrorCode.shuttingDown]: 'refused: the broker is shutting down',
  [ErrorCode.unauthorized]: 'refused: no valid credential',
  [ErrorCode.forbidden]: 'refused: not granted',
  [ErrorCode.rateLimited]: 'refused: over a rate limit',
  [ErrorCode.unavailable]: 'refused: the engine cannot reach Redis',
};

/** Who was refused: an HTTP request, or what a socket knows of its peer. */
export type RefusedPeer = IncomingMessage | { remoteAddress: string; origin?: string };

/** The refusals of one broker: counted per reason, logged at most once per key and interval. */
export class Refusals {
  private readonly counts = new Map<RefusalReason, number>(REFUSAL_REASONS.map((r) => [r, 0]));
  private readonly log: RateLimitedLog;

  constructor(
    logger: Logger,
    private readonly maxConnections: number,
    /** `trustedProxies`, so that a refusal names the client behind a proxy (see clientAddress). */
    private readonly trustedProxies?: ReadonlySet<string>,
  ) {
    this.log = new RateLimitedLog(logger, LOG_INTERVAL_MS);
  }

  /**
   * Counts one refusal and logs it (rate-limited): `forbidden_origin` at warn, one line per origin;
   * `too_many_connections` at warn and `shutting_down` at info, one line per door; with `limit`
   * (the per-address option that refused it), one line per limit and address.
   */
  refuse(reason: RefusalReason, door: Door, peer: RefusedPeer, limit?: string): void {
    this.counts.set(reason, this.counts.get(reason)! + 1);
    const http = 'headers' in peer;
    const raw = http ? peer.headers.origin : peer.origin;
    const origin = raw === undefined ? undefined : raw.slice(0, MAX_LOGGED_ORIGIN);
    const fields: Record<string, unknown> = { reason, door, remoteAddress: http ? clientAddress(peer, this.trustedProxies) : peer.remoteAddress };
    if (origin !== undefined) fields['origin'] = origin;
    if (limit !== undefined) fields['limit'] = limit;
    else if (reason === ErrorCode.tooManyConnections) fields['maxConnections'] = this.maxConnections;
    // One line per origin for origins; per peer address for credentials (one noisy client cannot
    // hide another); per door for the rest.
    // A per-address limit: one line per limit and address.
    const key = limit !== undefined ? `${reason} ${door} ${limit} ${String(fields['remoteAddress'])}`
      : reason === ErrorCode.forbiddenOrigin ? `${reason} ${origin}`
      : reason === ErrorCode.unauthorized || reason === ErrorCode.forbidden || reason === ErrorCode.rateLimited
        ? `${reason} ${door} ${String(fields['remoteAddress'])}`
        : `${reason} ${door}`;
    this.log.write(reason === ErrorCode.shuttingDown ? 'info' : 'warn', key, fields, MESSAGES[reason]);
  }

  /** Refusals of `reason` since start. */
  count(reason: RefusalReason): number {
    return this.counts.get(reason)!;
  }
}
