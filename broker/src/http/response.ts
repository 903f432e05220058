import type { IncomingMessage, ServerResponse } from 'node:http';

/** Headers an answer adds to (or puts in place of) the defaults of {@link send}. */
export type ExtraHeaders = Readonly<Record<string, string>>;

const NO_HEADERS: ExtraHeaders = {};

/**
 * The code of a malformed HTTP request (a query parameter, a header): an HTTP-only code beside
 * the protocol's, as `method_not_allowed` and `not_found` are.
 */
export const BAD_REQUEST = 'bad_request';

/**
 * Answers with `body` as JSON: the one JSON responder of every HTTP endpoint (the API, HTTP
 * publish, and the refusals of SSE), with the headers of {@link send}.
 */
export function sendJson(
  req: IncomingMessage | undefined, res: ServerResponse, status: number, body: unknown, headers: ExtraHeaders = NO_HEADERS,
): void {
  send(req, res, status, 'application/json; charset=utf-8', JSON.stringify(body), headers);
}

/**
 * Answers with `body` of type `type`: `Cache-Control: no-store` unless `headers` say otherwise,
 * then `headers` (a `Content-Security-Policy`, an `Allow`...), the length and `nosniff`. Writes
 * nothing when the response was answered already (another listener of an attached server may
 * have), and no body to a `HEAD` request.
 */
export function send(
  req: IncomingMessage | undefined, res: ServerResponse, status: number, type: string, body: string | Buffer,
  headers: ExtraHeaders = NO_HEADERS,
): void {
  // Never write twice.
  if (res.headersSent || res.writableEnded) return;
  res.writeHead(status, {
    'Cache-Control': 'no-store',
    ...headers,
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(req?.method === 'HEAD' ? undefined : body);
}

/** Seconds a request refused because Redis is out of reach is told to wait (the engine retries within 2 s). */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 2;
