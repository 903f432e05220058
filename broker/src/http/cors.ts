import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Whether a request may proceed under the `allowedOrigins` option: one without an `Origin` header
 * (a service, curl) always may; a browser's when its origin is listed (or the list holds `*`),
 * is the broker's own (same origin: its host is the request's `Host`), or is a loopback page
 * (`http://localhost:…`, `http://127.0.0.1:…`, `http://[::1]:…`).
 */
export function originAllowed(req: IncomingMessage, allowed: readonly string[]): boolean {
  const origin = req.headers.origin;
  if (origin === undefined || allowed.includes('*') || allowed.includes(origin)) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // "null" (a sandboxed page, a file://) or garbage
  }
  if (url.host === req.headers.host) return true;
  return url.hostname === 'localhost' || isLoopbackAddress(url.hostname.replace(/^\[|\]$/g, ''));
}

/** Whether an IP address is a loopback one (127.0.0.0/8, ::1, or 127.x mapped into IPv6). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4) || address === '::1';
}

/** Methods a cross-origin page may use on the broker's HTTP endpoints. */
const ALLOWED_METHODS = 'GET, HEAD, POST, OPTIONS';
/** Headers a page may send when it does not say which (a preflight without the request header). */
const DEFAULT_ALLOWED_HEADERS = 'Content-Type, Last-Event-ID, Authorization';
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
