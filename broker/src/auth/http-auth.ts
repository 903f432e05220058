import type { IncomingMessage, ServerResponse } from 'node:http';
import { CrierError, ErrorCode } from '@crier/protocol';
import { clientAddress } from '../admission/client-address.js';
import { isLoopbackAddress } from '../http/cors.js';
import { sendJson } from '../http/response.js';
import type { Door, Refusals } from '../observe/refusals.js';
import { AuthFailure, type Authenticator } from './authenticator.js';
import { Principal } from './principal.js';

// The HTTP doors' side of authentication: the credential of a request, and the answer to a refusal.

/** What the doors' authentication needs of the broker: this much of the core, no more. */
export interface IngressHost {
  readonly auth: Authenticator;
  readonly options: { readonly allowAnonymous: boolean };
  readonly trustedProxies: ReadonlySet<string>;
  readonly refusals: Refusals;
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * The credential of a request: `Authorization: Bearer <token>`, or (where `query` allows, for
 * `EventSource`, which cannot set headers) the `token` query parameter.
 */
export function credentialOf(req: IncomingMessage, query: boolean): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) return BEARER.exec(header)?.[1] ?? '';
  if (!query) return undefined;
  return new URL(req.url ?? '/', 'http://x').searchParams.get('token') ?? undefined;
}

/**
 * The principal of a request: anonymous without a configured credential (from loopback, or
 * anywhere with `allowAnonymous`). Rejects with an AuthFailure, or a `forbidden` CrierError.
 */
export function authenticateRequest(core: IngressHost, req: IncomingMessage, query: boolean): Promise<Principal> {
  if (!core.auth.enabled) {
    const address = clientAddress(req, core.trustedProxies);
    const refusal = anonymousRefusal(core, address);
    if (refusal) return Promise.reject(refusal);
    // Anyone may come in (allowAnonymous), but the broker's inner workings stay with loopback.
    return Promise.resolve(isLoopbackAddress(address) ? Principal.ANONYMOUS : Principal.ANONYMOUS_REMOTE);
  }
  return core.auth.authenticate(credentialOf(req, query));
}

/**
 * Why a client without a credential at `remoteAddress` may not come in, or `undefined` when it
 * may: a broker with no credential configured serves loopback clients only, unless
 * `allowAnonymous` opens it deliberately. `remoteAddress` is the request's {@link clientAddress}:
 * behind a trusted proxy, the forwarded client's, so a proxy on loopback opens nothing.
 */
export function anonymousRefusal(
  core: { readonly auth: { readonly enabled: boolean }; readonly options: { readonly allowAnonymous: boolean } },
  remoteAddress: string | undefined,
): CrierError | undefined {
  if (core.auth.enabled || core.options.allowAnonymous || isLoopbackAddress(remoteAddress)) return undefined;
  return new CrierError(ErrorCode.forbidden, LOOPBACK_ONLY);
}

const LOOPBACK_ONLY = 'this broker serves clients without a credential on loopback only: '
  + 'configure credentials (--jwt-secret, --jwt-key-file, --jwks-url or --tokens-file), or --allow-anonymous';

/**
 * Answers a refused request: 401 `unauthorized` (with `WWW-Authenticate: Bearer`) or 403
 * `forbidden`, counted and logged as a refusal at `door`.
 */
export function refuseRequest(core: IngressHost, req: IncomingMessage, res: ServerResponse, door: Door, err: unknown, headers: Record<string, string> = {}): void {
  const e: CrierError = err instanceof AuthFailure || (err as CrierError | undefined)?.code === ErrorCode.forbidden
    ? (err as CrierError) : new AuthFailure('token refused');
  const reason = e.code === ErrorCode.forbidden ? ErrorCode.forbidden : ErrorCode.unauthorized;
  core.refusals.refuse(reason, door, req);
  const extra = reason === ErrorCode.unauthorized ? { ...headers, 'WWW-Authenticate': 'Bearer' } : headers;
  sendJson(req, res, reason === ErrorCode.unauthorized ? 401 : 403, { code: reason, message: e.message }, extra);
}
