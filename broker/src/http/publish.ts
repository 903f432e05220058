import type { IncomingMessage, ServerResponse } from 'node:http';
import { CrierError, ErrorCode } from '@crier/protocol';
import { readBody } from './body-buffer.js';
import { publishResult } from '../core/core.js';
import type { Ingress } from '../transport/ingress.js';
import { authenticateRequest, refuseRequest } from '../auth/http-auth.js';
import type { Principal } from '../auth/principal.js';
import { clientAddress } from '../admission/client-address.js';
import { applyCors, originAllowed } from './cors.js';
import { BAD_REQUEST, UNAVAILABLE_RETRY_AFTER_SECONDS, sendJson } from './response.js';
import { publishPriority, validatePublish } from '../core/publish-validation.js';
import type { PublishRequest } from '../engine/engine.js';

/** HTTP status of each error code an HTTP publish can answer. */
export const PUBLISH_STATUS_OF: Readonly<Record<string, number>> = {
  [ErrorCode.badChannel]: 400,
  [ErrorCode.badFrame]: 400,
  [ErrorCode.payloadTooLarge]: 413,
  [ErrorCode.shuttingDown]: 503,
  [ErrorCode.forbiddenOrigin]: 403,
  [ErrorCode.forbidden]: 403,
  [ErrorCode.rateLimited]: 429,
  [ErrorCode.unavailable]: 503,
};

const EMPTY = new Uint8Array(0);
/** An `Idempotency-Key`: the characters and length of a WebSocket publish's message id (`i`). */
const IDEMPOTENCY_KEY = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Seconds a publish refused by a draining or closing broker is told to wait (another node serves it meanwhile). */
export const SHUTDOWN_RETRY_AFTER_SECONDS = 5;

/**
 * After a 413, the rest of the body is read and thrown away, up to this many bytes or
 * {@link DISCARD_MS}, so that the client (still sending) reads the answer instead of a TCP reset;
 * past either bound the connection is cut.
 */
export const DISCARD_BYTES = 1024 * 1024;
export const DISCARD_MS = 5000;
/** What every publish answer adds to the defaults of `sendJson`: nothing in it may load. */
export const PUBLISH_HEADERS = { 'Content-Security-Policy': "default-src 'none'" } as const;

/**
 * `POST <base>/publish/<channel>`: the body's raw bytes become one event on `<channel>` (URL
 * encoded), through the same in-process publish as a socket's. Labels come from `?label=a&label=b`,
 * `?labels=a,b` or a `Crier-Labels: a,b` header (all of them, in that order), the key from
 * `?key=k` or a `Crier-Key` header (not both). Answers `202 {id, offset, epoch}`, or
 * `{code, message}` with the socket's error codes. With an `Idempotency-Key` header, a repeat of
 * the key by the same publisher within `idempotencyWindow` answers the first publish's result and
 * publishes nothing.
 *
 * The body is gathered into one buffer as it streams, never past `maxPayload`: a `Content-Length`
 * above it is refused before reading, and a body that streams past it is answered 413 at once;
 * either way the rest is discarded unread (see {@link DISCARD_BYTES}) and the connection closed.
 */
export function handlePublish(ingress: Ingress, req: IncomingMessage, res: ServerResponse, rawChannel: string): void {
  if (applyCors(req, res, ingress.options.corsOrigins)) return; // a preflight, answered
  if (req.method !== 'POST') {
    sendJson(req, res, 405, { code: 'method_not_allowed', message: 'publish answers POST only' }, { ...PUBLISH_HEADERS, Allow: 'POST' });
    return;
  }
  // The credential first: nothing of an unauthenticated request is read or checked.
  authenticateRequest(ingress, req, false).then(
    (principal) => publishAs(ingress, req, res, rawChannel, principal),
    (err: unknown) => refuseRequest(ingress, req, res, 'publish', err, PUBLISH_HEADERS),
  );
}

function publishAs(ingress: Ingress, req: IncomingMessage, res: ServerResponse, rawChannel: string, principal: Principal): void {
  const maxPayload = ingress.options.maxPayload;
  let channel: string;
  let labels: string[] | undefined;
  let key: string | undefined;
  let idempotency: PublishRequest['idempotency'];
  let priority: 0 | 1;
  let declared: number | undefined;
  try {
    if (ingress.closing || ingress.draining) throw new CrierError(ErrorCode.shuttingDown, 'the broker is shutting down');
    // A page from another site must not publish through its visitor's browser (CSRF).
    if (!originAllowed(req, ingress.options.allowedOrigins)) {
      throw new CrierError(ErrorCode.forbiddenOrigin, `origin ${req.headers.origin} is not in allowedOrigins`);
    }
    // Per client address, with a connection's rate and burst: before anything is read or checked.
    const refusing = ingress.httpPublishBuckets.take(clientAddress(req, ingress.trustedProxies), ingress.now());
    if (refusing !== undefined) {
      throw new RateLimited(`over the publish rate of this address: ${ingress.options.publishRate} per second, ${ingress.options.publishBurst} at once`,
        refusing.retryAfterSeconds());
    }
    channel = decodeChannel(rawChannel);
    ({ labels, key } = labelsAndKey(req));
    idempotency = idempotencyOf(ingress, req, principal);
    priority = priorityOf(req);
    // Everything but the data is checked before a byte of the body is read.
    validatePublish(channel, EMPTY, labels, key, maxPayload);
    if (!principal.publish.allows(channel)) {
      throw new CrierError(ErrorCode.forbidden, `no grant of ${principal.id} allows publishing to ${channel}`);
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
      const result = ingress.core.publish({ channel, data, labels, key, idempotency, priority });
      if (!(result instanceof Promise)) return sendJson(req, res, 202, publishResult(result), PUBLISH_HEADERS);
      result.then((done) => sendJson(req, res, 202, publishResult(done), PUBLISH_HEADERS), (err: unknown) => fail(ingress, req, res, err));
    } catch (err) {
      fail(ingress, req, res, err);
    }
  }, () => fail(ingress, req, res, new CrierError(ErrorCode.payloadTooLarge, `the body exceeds maxPayload ${maxPayload} bytes`)));
}

export function decodeChannel(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new CrierError(ErrorCode.badChannel, 'the channel in the path is not valid percent-encoding');
  }
}

/**
 * The `Idempotency-Key` of a publish, scoped to its publisher: an authenticated principal by its
 * id (the scope of its WebSocket publishes too, so a retry over either door is the same message),
 * an anonymous client by its address (clientAddress), as it has nothing else to be known by.
 */
function idempotencyOf(ingress: Ingress, req: IncomingMessage, principal: Principal): PublishRequest['idempotency'] {
  const id = req.headers['idempotency-key'];
  if (id === undefined) return undefined;
  if (typeof id !== 'string' || !IDEMPOTENCY_KEY.test(id)) {
    throw new BadRequest('Idempotency-Key must be 1-64 characters of A-Z a-z 0-9 _ - . :');
  }
  const scope = principal.kind === 'anonymous' ? `a:${clientAddress(req, ingress.trustedProxies)}` : principal.id;
  return { scope, id };
}

/** Labels and key from the query string and the `Crier-Labels` / `Crier-Key` headers. */
export function labelsAndKey(req: IncomingMessage): { labels: string[] | undefined; key: string | undefined } {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
  const labels = [...query.getAll('label')];
  for (const list of query.getAll('labels')) labels.push(...splitList(list));
  const header = req.headers['crier-labels'];
  if (header !== undefined) labels.push(...splitList(Array.isArray(header) ? header.join(',') : header));
  const keys = query.getAll('key');
  const keyHeader = req.headers['crier-key'];
  if (typeof keyHeader === 'string') keys.push(keyHeader);
  if (keys.length > 1) throw new CrierError(ErrorCode.badFrame, 'give the key once (query parameter key or header Crier-Key)');
  return { labels: labels.length > 0 ? labels : undefined, key: keys[0] };
}

/** `?priority=high` (or `normal`, the default); any other value is `bad_frame`, as a socket's `pr` would be. */
function priorityOf(req: IncomingMessage): 0 | 1 {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  const given = new URLSearchParams(q === -1 ? '' : url.slice(q + 1)).getAll('priority');
  if (given.length === 0 || (given.length === 1 && given[0] === 'normal')) return 0;
  if (given.length === 1 && given[0] === 'high') return 1;
  return publishPriority(-1);
}

function splitList(list: string): string[] {
  return list.split(',').map((s) => s.trim());
}

/** A malformed header: 400 `bad_request` (not a protocol code: the socket has no such header). */
export class BadRequest extends Error {}

/** A refused HTTP publish over its address's rate, and when to try again. */
export class RateLimited extends CrierError {
  constructor(message: string, readonly retryAfterSeconds: number) {
    super(ErrorCode.rateLimited, message);
  }
}

function fail(ingress: Ingress, req: IncomingMessage, res: ServerResponse, err: unknown): void {
  answerFailure(ingress, req, res, err, 'publish', PUBLISH_STATUS_OF, 'the broker could not publish the event');
}

/**
 * The answer of a failed HTTP publish or request (`door`): 400 for a bad request, 500 (logged) for
 * an unexpected failure, else the code's status in `statusOf` (400 when not there), with
 * `Retry-After` where waiting helps; a refusal (not a bad request) is counted and logged at `door`;
 * a 413 reads and discards the rest of the body first (answerThenDiscard).
 */
export function answerFailure(
  ingress: Ingress, req: IncomingMessage, res: ServerResponse, err: unknown, door: 'publish' | 'request',
  statusOf: Readonly<Record<string, number>>, internal: string,
): void {
  if (err instanceof BadRequest) {
    sendJson(req, res, 400, { code: BAD_REQUEST, message: err.message }, PUBLISH_HEADERS);
    return;
  }
  if (!(err instanceof CrierError)) {
    ingress.log.error({ err }, `HTTP ${door} failed`);
    sendJson(req, res, 500, { code: 'internal', message: internal }, PUBLISH_HEADERS);
    return;
  }
  // Refused before anything was done (not a bad request): counted and logged.
  if (err.code === ErrorCode.forbiddenOrigin || err.code === ErrorCode.shuttingDown || err.code === ErrorCode.forbidden || err.code === ErrorCode.rateLimited ||
    err.code === ErrorCode.unavailable) {
    ingress.refusals.refuse(err.code, door, req);
  }
  const status = statusOf[err.code] ?? 400;
  if (status !== 413) {
    const retryAfter = err instanceof RateLimited ? err.retryAfterSeconds
      : err.code === ErrorCode.shuttingDown ? SHUTDOWN_RETRY_AFTER_SECONDS
      : err.code === ErrorCode.unavailable ? UNAVAILABLE_RETRY_AFTER_SECONDS : undefined;
    const headers = retryAfter === undefined ? PUBLISH_HEADERS : { ...PUBLISH_HEADERS, 'Retry-After': String(retryAfter) };
    sendJson(req, res, status, { code: err.code, message: err.message }, headers);
    return;
  }
  answerThenDiscard(req, res, status, { code: err.code, message: err.message });
}

/**
 * Answers a request whose body is not wanted, and closes its connection without losing the
 * answer. Cutting the socket with request bytes unread makes the kernel send a reset, which a
 * client still sending often sees before the answer (2-20 of 50 clients got ECONNRESET, issue 9).
 * So the answer is written whole (its length known, `Connection: close`) but not ended, the rest
 * of the body is read and thrown away, and the response ends when the body does (Node then closes
 * the connection gracefully), or the connection is cut after {@link DISCARD_BYTES} or
 * {@link DISCARD_MS}, by which time the client has had the answer.
 */
export function answerThenDiscard(req: IncomingMessage, res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.writableEnded) return;
  const json = JSON.stringify(body);
  res.writeHead(status, {
    'Cache-Control': 'no-store',
    ...PUBLISH_HEADERS,
    Connection: 'close',
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(json),
    'X-Content-Type-Options': 'nosniff',
  });
  res.write(json);
  if (req.complete) {
    res.end();
    return;
  }
  let discarded = 0;
  let finished = false;
  const done = (): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    req.off('data', onData);
    req.off('end', done);
    req.off('close', done);
    res.end();
  };
  const cut = (): void => {
    done();
    req.socket.destroy();
  };
  const onData = (chunk: Buffer): void => {
    discarded += chunk.length;
    if (discarded > DISCARD_BYTES) cut();
  };
  const timer = setTimeout(cut, DISCARD_MS);
  timer.unref();
  req.on('data', onData);
  req.on('end', done);
  req.on('close', done);
  req.resume();
}
