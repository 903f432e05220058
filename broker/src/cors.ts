import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Whether a request may proceed under the `allowedOrigins` option: one without an `Origin` header
 * (a service, curl) always may; a browser's only when its origin is listed, or the list holds `*`.
 */
export function originAllowed(req: IncomingMessage, allowed: readonly string[]): boolean {
  const origin = req.headers.origin;
  return origin === undefined || allowed.includes('*') || allowed.includes(origin);
}

/** Methods a cross-origin page may use on the broker's HTTP endpoints. */
const ALLOWED_METHODS = 'GET, HEAD, POST, OPTIONS';
/** Headers a page may send when it does not say which (a preflight without the request header). */
const DEFAULT_ALLOWED_HEADERS = 'Content-Type, Last-Event-ID';
/** How long a browser may cache a preflight answer, in seconds. */
const PREFLIGHT_MAX_AGE = '600';

/**
 * CORS for one request, against the `corsOrigins` option: `[]` sets nothing (same-origin pages
 * only), `['*']` allows any origin, otherwise the listed origins (`https://app.example.com`,
 * compared exactly). For an allowed origin it sets `Access-Control-Allow-Origin` (the origin
 * itself, with `Vary: Origin`, unless `*`) on `res`, to be sent with whatever answer follows.
 *
 * Answers a preflight (`OPTIONS` with `Access-Control-Request-Method`) itself, `204` with the
 * allowed methods and headers when the origin is allowed and without CORS headers when it is not,
 * and returns true: the caller must not answer again. Returns false otherwise (nothing sent).
 */
export function applyCors(req: IncomingMessage, res: ServerResponse, origins: readonly string[]): boolean {
  if (origins.length === 0) return false;
  const origin = req.headers.origin;
  const any = origins.includes('*');
  const allowed = origin !== undefined && (any || origins.includes(origin));
  if (!any) res.setHeader('Vary', 'Origin');
  if (allowed) res.setHeader('Access-Control-Allow-Origin', any ? '*' : origin);
  const preflight = req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
  if (!preflight) return false;
  if (res.headersSent || res.writableEnded) return true;
  const headers: Record<string, string> = { 'Content-Length': '0', 'Cache-Control': 'no-store' };
  if (allowed) {
    headers['Access-Control-Allow-Methods'] = ALLOWED_METHODS;
    const asked = req.headers['access-control-request-headers'];
    headers['Access-Control-Allow-Headers'] = typeof asked === 'string' && asked !== '' ? asked : DEFAULT_ALLOWED_HEADERS;
    headers['Access-Control-Max-Age'] = PREFLIGHT_MAX_AGE;
  }
  res.writeHead(204, headers);
  res.end();
  return true;
}
