import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BrokerCore } from './core.js';
import { isUpgradePath, pathnameOf, type BrokerPaths } from './paths.js';

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * The HTTP side of the broker: `healthz`, `stats` and an index page beside the WebSocket path.
 * Requests for other paths go to `fallback` (the attached server's own listeners), or get a 404.
 */
export function createRequestListener(core: BrokerCore, paths: BrokerPaths, fallback: RequestListener | undefined): RequestListener {
  return (req, res) => {
    const pathname = pathnameOf(req.url);
    const route =
      pathname === paths.healthz ? 'healthz'
      : pathname === paths.stats ? 'stats'
      : isUpgradePath(paths, pathname) ? 'index'
      : undefined;
    if (route === undefined) {
      if (fallback) fallback(req, res);
      else sendJson(req, res, 404, { code: 'not_found', message: `no such endpoint: ${pathname}` });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(req, res, 405, { code: 'method_not_allowed', message: `${route} answers GET and HEAD only` }, { Allow: 'GET, HEAD' });
      return;
    }
    if (route === 'healthz') {
      if (core.closing) sendJson(req, res, 503, { status: 'shutting_down' });
      else sendJson(req, res, 200, { status: 'ok' });
    } else if (route === 'stats') {
      sendJson(req, res, 200, core.stats());
    } else {
      send(req, res, 200, 'text/html; charset=utf-8', indexPage(paths));
    }
  };
}

function sendJson(req: IncomingMessage, res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  send(req, res, status, 'application/json; charset=utf-8', JSON.stringify(body), headers);
}

function send(
  req: IncomingMessage, res: ServerResponse, status: number, type: string, body: string,
  headers: Record<string, string> = {},
): void {
  // Another listener of an attached server may have answered already: never write twice.
  if (res.headersSent || res.writableEnded) return;
  res.writeHead(status, {
    ...headers,
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'",
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function indexPage(paths: BrokerPaths): string {
  const h = escapeHtml;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>crier broker</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}code{background:#eee;padding:0 .2em}</style>
</head><body>
<h1>crier broker</h1>
<ul>
<li>WebSocket (binary msgpack frames): <code>${h(paths.upgrade)}</code></li>
<li><a href="${h(paths.healthz)}">${h(paths.healthz)}</a>: health check, <code>{"status":"ok"}</code></li>
<li><a href="${h(paths.stats)}">${h(paths.stats)}</a>: counters as JSON</li>
</ul>
</body></html>
`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
