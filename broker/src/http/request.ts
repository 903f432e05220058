import type { IncomingMessage, ServerResponse } from 'node:http';
import { CrierError, ErrorCode } from '@crier/protocol';
import { clientAddress } from '../admission/client-address.js';
import { authenticateRequest, refuseRequest } from '../auth/http-auth.js';
import type { Principal } from '../auth/principal.js';
import { parseDuration } from '../config/units.js';
import { validatePublish } from '../core/publish-validation.js';
import type { ReplyMessage } from '../engine/engine.js';
import type { Ingress } from '../transport/ingress.js';
import type { Requester, RequestOutcome } from '../transport/requests.js';
import { readBody } from './body-buffer.js';
import { applyCors, originAllowed } from './cors.js';
import {
  BadRequest, PUBLISH_HEADERS, PUBLISH_STATUS_OF, RateLimited, answerFailure, decodeChannel, labelsAndKey,
} from './publish.js';
import { send, sendJson } from './response.js';

/** HTTP status of each error code a request over HTTP can answer: a publish's, and the two of waiting. */
const STATUS_OF: Readonly<Record<string, number>> = {
  ...PUBLISH_STATUS_OF,
  [ErrorCode.noResponders]: 503,
  [ErrorCode.timeout]: 504,
};

const EMPTY = new Uint8Array(0);

/**
 * `POST <base>/request/<channel>`: the body is a request's data (request/reply), sent to whoever
 * subscribes to `<channel>` as over a socket; the answer is the first reply: `200` with the
 * reply's data as the body and `Crier-Id`, `Crier-Time`, `Crier-Labels` headers; `503
 * no_responders` at once when no subscription matches, `504 timeout` when no reply came in
 * time (`?timeout=2s` or a `Crier-Timeout` header, bounded by `maxRequestTimeout`). Admitted
 * like `POST /publish` (credentials and a publish grant, origins and CORS, the publish rate per
 * client address, `maxPayload`), and at most `maxPendingRequests` waiting per client address.
 */
export function handleRequest(ingress: Ingress, req: IncomingMessage, res: ServerResponse, rawChannel: string): void {
  if (applyCors(req, res, ingress.options.corsOrigins)) return; // a preflight, answered
  if (res.hasHeader('Access-Control-Allow-Origin')) res.setHeader('Access-Control-Expose-Headers', REPLY_HEADERS.join(', '));
  if (req.method !== 'POST') {
    sendJson(req, res, 405, { code: 'method_not_allowed', message: 'request answers POST only' }, { ...PUBLISH_HEADERS, Allow: 'POST' });
    return;
  }
  authenticateRequest(ingress, req, false).then(
    (principal) => requestAs(ingress, req, res, rawChannel, principal),
    (err: unknown) => refuseRequest(ingress, req, res, 'request', err, PUBLISH_HEADERS),
  );
}

/** The reply's headers, which a page from another origin may read (CORS). */
const REPLY_HEADERS = ['Crier-Id', 'Crier-Time', 'Crier-Labels'];

function requestAs(ingress: Ingress, req: IncomingMessage, res: ServerResponse, rawChannel: string, principal: Principal): void {
  const maxPayload = ingress.options.maxPayload;
  const address = clientAddress(req, ingress.trustedProxies);
  let channel: string;
  let labels: string[] | undefined;
  let key: string | undefined;
  let timeout: number | undefined;
  let declared: number | undefined;
  try {
    if (ingress.closing || ingress.draining) throw new CrierError(ErrorCode.shuttingDown, 'the broker is shutting down');
    if (!originAllowed(req, ingress.options.allowedOrigins)) {
      throw new CrierError(ErrorCode.forbiddenOrigin, `origin ${req.headers.origin} is not in allowedOrigins`);
    }
    // A request counts as a publish against the address's rate, before anything is read or checked.
    const refusing = ingress.httpPublishBuckets.take(address, ingress.now());
    if (refusing !== undefined) {
      throw new RateLimited(`over the publish rate of this address (requests count as publishes): ${ingress.options.publishRate} per second, ${ingress.options.publishBurst} at once`,
        refusing.retryAfterSeconds());
    }
    channel = decodeChannel(rawChannel);
    ({ labels, key } = labelsAndKey(req));
    timeout = timeoutOf(req);
    validatePublish(channel, EMPTY, labels, key, maxPayload);
    if (!principal.publish.allows(channel)) {
      throw new CrierError(ErrorCode.forbidden, `no grant of ${principal.id} allows publishing (or requesting) to ${channel}`);
    }
    const waiting = ingress.httpRequesters.get(address);
    if (waiting !== undefined && !ingress.requests.hasRoom(waiting)) {
      throw new RateLimited(`this address has ${ingress.options.maxPendingRequests} requests waiting for replies already (maxPendingRequests)`, 1);
    }
    const length = req.headers['content-length'];
    declared = length === undefined ? undefined : Number(length);
    if (declared !== undefined && declared > maxPayload) {
      throw new CrierError(ErrorCode.payloadTooLarge, `a body of ${length} bytes exceeds maxPayload ${maxPayload}`);
    }
  } catch (err) {
    fail(ingress, req, res, err);
    return;
  }

  readBody(req, maxPayload, declared, (data) => {
    try {
      if (ingress.closing) throw new CrierError(ErrorCode.shuttingDown, 'the broker is shutting down');
      validatePublish(channel, data, labels, key, maxPayload);
      // Checked again: other requests of the address may have started while this body came.
      const waiting = ingress.httpRequesters.get(address);
      if (waiting !== undefined && !ingress.requests.hasRoom(waiting)) {
        throw new RateLimited(`this address has ${ingress.options.maxPendingRequests} requests waiting for replies already (maxPendingRequests)`, 1);
      }
      const requester = waiting ?? requesterOf(ingress, address);
      let ended = false;
      let cancel: (() => void) | undefined;
      const done = (outcome: RequestOutcome): void => {
        ended = true;
        res.off('close', onClose);
        if (requester.pending.size === 0) ingress.httpRequesters.delete(address);
        if ('reply' in outcome) answer(req, res, outcome.reply);
        else fail(ingress, req, res, outcome.error);
      };
      // A client that goes away stops waiting: its request is forgotten (its reply dropped).
      const onClose = (): void => {
        if (ended) return;
        cancel?.();
        if (requester.pending.size === 0) ingress.httpRequesters.delete(address);
      };
      res.on('close', onClose);
      cancel = ingress.requests.start(requester, { channel, data, labels, key, timeout }, done);
    } catch (err) {
      fail(ingress, req, res, err);
    }
  }, () => fail(ingress, req, res, new CrierError(ErrorCode.payloadTooLarge, `the body exceeds maxPayload ${maxPayload} bytes`)));
}

/** The HTTP requests of one client address wait as one requester (its `maxPendingRequests`). */
function requesterOf(ingress: Ingress, address: string): Requester {
  let requester = ingress.httpRequesters.get(address);
  if (requester === undefined) ingress.httpRequesters.set(address, (requester = ingress.requests.requester()));
  return requester;
}

/** `?timeout=2s` or `Crier-Timeout: 2s` (a duration, or ms), not both; `undefined`: the default. */
function timeoutOf(req: IncomingMessage): number | undefined {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  const fromQuery = new URLSearchParams(q === -1 ? '' : url.slice(q + 1)).getAll('timeout');
  const header = req.headers['crier-timeout'];
  const given = [...fromQuery, ...(typeof header === 'string' ? [header] : [])];
  if (given.length === 0) return undefined;
  if (given.length > 1) throw new BadRequest('give the timeout once (query parameter timeout or header Crier-Timeout)');
  const ms = parseDuration(given[0]);
  if (ms === undefined || !Number.isInteger(ms) || ms < 1) throw new BadRequest('timeout must be a duration like 500ms, 2s or 1m (or a number of ms), at least 1 ms');
  return ms;
}

/** 200: the reply's bytes, and what it carries besides (its id, time and labels) as headers. */
function answer(req: IncomingMessage, res: ServerResponse, reply: ReplyMessage): void {
  const headers: Record<string, string> = { ...PUBLISH_HEADERS, 'Crier-Id': reply.id, 'Crier-Time': String(reply.time) };
  // Labels may hold any character, a header only Latin-1 without commas: each one percent-encoded.
  if (reply.labels !== undefined && reply.labels.length > 0) headers['Crier-Labels'] = reply.labels.map(encodeURIComponent).join(',');
  const data = reply.data;
  send(req, res, 200, 'application/octet-stream', Buffer.from(data.buffer, data.byteOffset, data.byteLength), headers);
}

function fail(ingress: Ingress, req: IncomingMessage, res: ServerResponse, err: unknown): void {
  answerFailure(ingress, req, res, err, 'request', STATUS_OF, 'the broker could not send the request');
}
