import { HttpSessions } from '../transport/http-session.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CrierError, ErrorCode } from '@crier/protocol';
import { DEFAULT_STATS_CHANNELS, type Ingress } from '../transport/ingress.js';
import type { SseHub } from '../transport/sse.js';
import { handleHistory } from './history.js';
import { handlePresenceRequest } from './presence.js';
import { handlePublish } from './publish.js';
import { handleRequest } from './request.js';
import { authenticateRequest, refuseRequest } from '../auth/http-auth.js';
import { send, sendJson } from './response.js';
import { BrokerMetrics } from '../observe/metrics.js';
import { isUpgradePath, pathnameOf, type BrokerPaths } from '../config/paths.js';
import { etagOf, type StaticAsset } from './static-assets.js';

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/** `GET /stats/top` lists this many of each when no `limit` is given, and at most MAX_TOP_LIMIT. */
export const DEFAULT_TOP_LIMIT = 20;
export const MAX_TOP_LIMIT = 100;

/** JSON answers and the fallback page: nothing may load. */
const API_CSP = "default-src 'none'; style-src 'unsafe-inline'";
/** What every answer but the dashboard's adds to the defaults of `send`. */
const API_HEADERS = { 'Content-Security-Policy': API_CSP } as const;
/**
 * The dashboard and its files: its own script and styles, its WebSocket back to the broker
 * (`'self'` does not cover `ws:` in every browser), nothing from anywhere else.
 */
const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; " +
  "base-uri 'self'; form-action 'none'; frame-ancestors 'none'";

/** What only an admin may read once credentials are configured. */
const ADMIN_ROUTES: ReadonlySet<string> = new Set(['stats', 'stats/top']);

/** The files served under the base path, by request name. */
const ASSET_NAMES = ['crier.min.js', 'crier.full.min.js', 'dashboard.js', 'dashboard.css', 'favicon.svg'] as const;

/**
 * The HTTP side of the broker: `healthz`, `stats`, `stats/top`, the dashboard page and its files
 * beside the WebSocket path. `assets` are the files read by `loadStaticAssets` (any may be
 * missing: the build puts them there). Requests for other paths go to `fallback` (the attached
 * server's own listeners), or get a 404.
 */
export function createRequestListener(
  ingress: Ingress, sse: SseHub, paths: BrokerPaths, fallback: RequestListener | undefined, assets: ReadonlyMap<string, StaticAsset>,
): RequestListener {
  const page = dashboardPage(paths, assets);
  const files = new Map<string, string>(ASSET_NAMES.map((name) => [`${paths.base}${name}`, name]));
  const eventsPath = `${paths.base}events`;
  const metrics = new BrokerMetrics(ingress);
  const sessions = ingress.options.httpSessions ? new HttpSessions(ingress) : undefined;
  return (req, res) => {
    const pathname = pathnameOf(req.url);
    // HTTP publish: POST, its own errors, and a body read under the maxPayload cap.
    if (pathname.startsWith(paths.publish)) return handlePublish(ingress, req, res, pathname.slice(paths.publish.length));
    // A channel's history: GET, its own errors, the subscribe grants.
    if (pathname.startsWith(paths.history)) return handleHistory(ingress, req, res, pathname.slice(paths.history.length));
    // Who subscribes: GET, the history door's admission.
    if (pathname.startsWith(paths.presence)) return handlePresenceRequest(ingress, req, res, pathname.slice(paths.presence.length));
    // HTTP request/reply: POST, the publish door's admission, and an answer that waits for a reply.
    if (pathname.startsWith(paths.request)) return handleRequest(ingress, req, res, pathname.slice(paths.request.length));
    // SSE: its own methods (GET, and OPTIONS for CORS), errors and streaming answer.
    if (pathname === eventsPath) return sse.handle(req, res, ingress.options.corsOrigins);
    // HTTP sessions (the fallback transport), when served: the socket's protocol over HTTP.
    if (sessions && (pathname === paths.session || pathname.startsWith(`${paths.session}/`))) {
      return sessions.handle(req, res, pathname.slice(paths.session.length));
    }
    const route =
      pathname === paths.healthz ? 'healthz'
      : pathname === paths.readyz ? 'readyz'
      : pathname === paths.metrics ? 'metrics'
      : pathname === paths.stats ? 'stats'
      : pathname === paths.top ? 'stats/top'
      : isUpgradePath(paths, pathname) ? 'dashboard'
      : files.has(pathname) ? 'asset'
      : undefined;
    if (route === undefined) {
      if (fallback) fallback(req, res);
      else sendJson(req, res, 404, { code: 'not_found', message: `no such endpoint: ${pathname}` }, API_HEADERS);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(req, res, 405, { code: 'method_not_allowed', message: `${route} answers GET and HEAD only` }, { ...API_HEADERS, Allow: 'GET, HEAD' });
      return;
    }
    const answer = (): void => {
      if (route === 'healthz') {
        if (ingress.closing) sendJson(req, res, 503, { status: 'shutting_down' }, API_HEADERS);
        else sendJson(req, res, 200, { status: 'ok' }, API_HEADERS);
      } else if (route === 'readyz') {
        // Not ready from the first instant of a drain, so that load balancers stop sending clients.
        if (ingress.closing || ingress.draining) sendJson(req, res, 503, { status: 'draining' }, API_HEADERS);
        // An engine that cannot sequence (Redis out of reach) would refuse every publish.
        else if (!ingress.core.engine.ready) sendJson(req, res, 503, { status: 'engine_unavailable', engine: ingress.core.engine.kind }, API_HEADERS);
        else sendJson(req, res, 200, { status: 'ready' }, API_HEADERS);
      } else if (route === 'metrics') {
        metrics.render().then(
          (text) => send(req, res, 200, metrics.contentType, text, API_HEADERS),
          (err: unknown) => {
            ingress.log.error({ err }, 'metrics scrape failed');
            sendJson(req, res, 500, { code: 'internal', message: 'metrics could not be collected' }, API_HEADERS);
          },
        );
      } else if (route === 'stats') {
        const channels = intParam(req.url, 'channels', 0, DEFAULT_STATS_CHANNELS);
        if (channels === undefined) {
          sendJson(req, res, 400, { code: 'bad_request', message: `channels must be an integer from 0 to ${MAX_TOP_LIMIT}` }, API_HEADERS);
        } else {
          ingress.freshStats(channels).then(
            (stats) => sendJson(req, res, 200, stats, API_HEADERS),
            (err: unknown) => {
              ingress.log.error({ err }, 'stats failed');
              sendJson(req, res, 500, { code: 'internal', message: 'stats could not be collected' }, API_HEADERS);
            },
          );
        }
      } else if (route === 'stats/top') {
        const limit = intParam(req.url, 'limit', 1, DEFAULT_TOP_LIMIT);
        if (limit === undefined) {
          sendJson(req, res, 400, { code: 'bad_request', message: `limit must be an integer from 1 to ${MAX_TOP_LIMIT}` }, API_HEADERS);
        } else {
          sendJson(req, res, 200, ingress.top(limit), API_HEADERS);
        }
      } else if (route === 'dashboard') {
        sendAsset(req, res, page);
      } else {
        const name = files.get(pathname)!;
        const asset = assets.get(name);
        if (asset) sendAsset(req, res, asset);
        else sendJson(req, res, 404, { code: 'not_found', message: `${name} is not built into this broker: run the build (npm run build)` }, API_HEADERS);
      }
    };
    // The broker's inner workings (connections, channels, uuids) are for admins: anonymous
    // clients on loopback (or anywhere with allowAnonymous) while no credential is configured.
    if (ADMIN_ROUTES.has(route) || (route === 'metrics' && ingress.options.metricsAuth)) {
      authenticateRequest(ingress, req, false).then(
        (principal) => principal.admin
          ? answer()
          : refuseRequest(ingress, req, res, 'admin', new CrierError(ErrorCode.forbidden, `${principal.id} may not read ${route}: admin only`), API_HEADERS),
        (err: unknown) => refuseRequest(ingress, req, res, 'admin', err, API_HEADERS),
      );
    } else answer();
  };
}

/**
 * An integer query parameter from `min` to {@link MAX_TOP_LIMIT}: `fallback` when absent,
 * undefined when it is not a valid one.
 */
function intParam(url: string | undefined, name: string, min: number, fallback: number): number | undefined {
  const q = url?.indexOf('?') ?? -1;
  const raw = q === -1 ? null : new URLSearchParams(url!.slice(q + 1)).get(name);
  if (raw === null) return fallback;
  if (!/^\d{1,3}$/.test(raw)) return undefined;
  const n = Number(raw);
  return n >= min && n <= MAX_TOP_LIMIT ? n : undefined;
}

/**
 * The dashboard with this broker's paths filled in (its links are relative to `<base href>`, so
 * it works under any `path`), or, when the build did not produce it, a page that says so.
 */
function dashboardPage(paths: BrokerPaths, assets: ReadonlyMap<string, StaticAsset>): StaticAsset {
  const template = assets.get('index.html');
  const html = template
    ? template.body.toString('utf8')
        .replaceAll('%CRIER_BASE%', escapeHtml(paths.base))
        .replaceAll('%CRIER_PATH%', escapeHtml(paths.upgrade))
        .replaceAll('%CRIER_BUNDLE%', assets.has('crier.min.js') ? 'present' : 'missing')
    : unbuiltPage(paths);
  const body = Buffer.from(html, 'utf8');
  return { body, type: 'text/html; charset=utf-8', etag: etagOf(body) };
}

/** A file from memory, revalidated by its ETag on every use (a new broker may serve a new one). */
function sendAsset(req: IncomingMessage, res: ServerResponse, asset: StaticAsset): void {
  const headers = { 'Cache-Control': 'no-cache', 'Content-Security-Policy': DASHBOARD_CSP, ETag: asset.etag };
  if (matchesEtag(req.headers['if-none-match'], asset.etag)) {
    if (res.headersSent || res.writableEnded) return;
    res.writeHead(304, headers);
    res.end();
    return;
  }
  send(req, res, 200, asset.type, asset.body, headers);
}

function matchesEtag(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.trim() === '*' || header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}

/** What `GET /` shows when the build did not copy the dashboard into `dist/static/`. */
function unbuiltPage(paths: BrokerPaths): string {
  const h = escapeHtml;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>crier broker</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}code{background:#8882;padding:0 .2em}</style>
</head><body>
<h1>crier broker</h1>
<p>The dashboard is not built into this broker: run the build (<code>npm run build</code>).</p>
<ul>
<li>WebSocket (binary msgpack frames): <code>${h(paths.upgrade)}</code></li>
<li><a href="${h(paths.healthz)}">${h(paths.healthz)}</a>: health check, <code>{"status":"ok"}</code></li>
<li><a href="${h(paths.stats)}">${h(paths.stats)}</a>: counters as JSON</li>
<li><a href="${h(paths.top)}">${h(paths.top)}</a>: busiest channels and slow consumers as JSON</li>
</ul>
</body></html>
`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
