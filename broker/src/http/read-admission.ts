import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode } from '@crier/protocol';
import { authenticateRequest, refuseRequest } from '../auth/http-auth.js';
import type { Principal } from '../auth/principal.js';
import type { Door } from '../observe/refusals.js';
import type { Ingress } from '../transport/ingress.js';
import { applyCors, originAllowed } from './cors.js';
import { sendJson } from './response.js';

/**
 * The admission of the read-only endpoints (`GET /history`, `GET /presence`), in order: CORS (a
 * preflight is answered here), GET only, a broker shutting down (503), `allowedOrigins` (a page
 * from another site must not read what its visitor's credential or network position may), then
 * the credential: nothing of an unauthenticated request is read or checked. `read` gets the
 * principal; every refusal is answered, counted at `door` and logged.
 */
export function admitRead(
  ingress: Ingress, req: IncomingMessage, res: ServerResponse, door: Door, headers: Readonly<Record<string, string>>,
  read: (principal: Principal) => void,
): void {
  if (applyCors(req, res, ingress.options.corsOrigins)) return;
  if (req.method !== 'GET') {
    sendJson(req, res, 405, { code: 'method_not_allowed', message: `${door} answers GET only` }, { ...headers, Allow: 'GET, OPTIONS' });
    return;
  }
  if (ingress.closing) {
    ingress.refusals.refuse(ErrorCode.shuttingDown, door, req);
    sendJson(req, res, 503, { code: ErrorCode.shuttingDown, message: 'the broker is shutting down' }, headers);
    return;
  }
  if (!originAllowed(req, ingress.options.allowedOrigins)) {
    ingress.refusals.refuse(ErrorCode.forbiddenOrigin, door, req);
    sendJson(req, res, 403, { code: ErrorCode.forbiddenOrigin, message: `origin ${req.headers.origin} is not in allowedOrigins` }, headers);
    return;
  }
  authenticateRequest(ingress, req, false).then(read, (err: unknown) => refuseRequest(ingress, req, res, door, err, headers));
}
