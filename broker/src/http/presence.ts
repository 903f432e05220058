import type { IncomingMessage, ServerResponse } from 'node:http';
import { CrierError, ErrorCode, assertPattern } from '@crier/protocol';
import { refuseRequest } from '../auth/http-auth.js';
import type { Principal } from '../auth/principal.js';
import type { PresenceCount } from '../engine/engine.js';
import type { Ingress } from '../transport/ingress.js';
import { presenceAccess } from '../transport/presence.js';
import { admitRead } from './read-admission.js';
import { UNAVAILABLE_RETRY_AFTER_SECONDS, sendJson } from './response.js';

/** What every presence answer adds to the defaults of `sendJson`: nothing in it may load. */
const PRESENCE_HEADERS = { 'Content-Security-Policy': "default-src 'none'" } as const;

/** The answer of `GET /presence/<channel-or-pattern>`. */
export interface PresenceJson {
  /** Subscribers (see the `presence` frame: a name counts those an event reaches, a pattern those holding it). */
  n: number;
  /** Principal ids, with `?members` and a presence grant: distinct, sorted, at most 1000. */
  m?: string[];
  /** A node did not answer in time: its subscribers are not counted. */
  partial?: true;
}

/**
 * `GET <base>/presence/<channel-or-pattern>[?members]`: how many subscribe to it over every node,
 * as JSON. Admitted like `GET /history`: CORS, `allowedOrigins`, then a credential whose subscribe
 * grants cover it; the ids only with a presence grant covering it too.
 */
export function handlePresenceRequest(ingress: Ingress, req: IncomingMessage, res: ServerResponse, raw: string): void {
  admitRead(ingress, req, res, 'presence', PRESENCE_HEADERS, (principal) => countAs(ingress, req, res, raw, principal));
}

function countAs(ingress: Ingress, req: IncomingMessage, res: ServerResponse, raw: string, principal: Principal): void {
  let pattern: string;
  let members: boolean;
  try {
    try {
      pattern = decodeURIComponent(raw);
    } catch {
      throw new CrierError(ErrorCode.badChannel, 'the channel in the path is not valid percent-encoding');
    }
    assertPattern(pattern);
    members = presenceAccess(principal, pattern, membersAsked(req.url));
  } catch (err) {
    if (err instanceof CrierError && err.code === ErrorCode.forbidden) return refuseRequest(ingress, req, res, 'presence', err, PRESENCE_HEADERS);
    if (err instanceof CrierError) return sendJson(req, res, 400, { code: err.code, message: err.message }, PRESENCE_HEADERS);
    throw err;
  }
  const answer = (count: PresenceCount): void => {
    const json: PresenceJson = { n: count.n };
    if (members) json.m = count.m ?? [];
    if (count.partial === true) json.partial = true;
    sendJson(req, res, 200, json, PRESENCE_HEADERS);
  };
  const failed = (err: unknown): void => {
    if (err instanceof CrierError && err.code === ErrorCode.unavailable) {
      ingress.refusals.refuse(ErrorCode.unavailable, 'presence', req);
      sendJson(req, res, 503, { code: err.code, message: err.message }, { ...PRESENCE_HEADERS, 'Retry-After': String(UNAVAILABLE_RETRY_AFTER_SECONDS) });
      return;
    }
    ingress.log.error({ err, pattern }, 'presence count failed');
    sendJson(req, res, 500, { code: 'internal', message: 'the broker could not count the subscribers' }, PRESENCE_HEADERS);
  };
  let counted: PresenceCount | Promise<PresenceCount>;
  try {
    counted = ingress.core.engine.presence(pattern, members);
  } catch (err) {
    return failed(err);
  }
  if (counted instanceof Promise) counted.then(answer, failed);
  else answer(counted);
}

/** `?members` (or `members=1`/`true`): the ids are asked for. */
function membersAsked(url: string | undefined): boolean {
  const q = url?.indexOf('?') ?? -1;
  if (q === -1) return false;
  const v = new URLSearchParams(url!.slice(q + 1)).get('members');
  return v !== null && v !== '0' && v !== 'false';
}
