/** Where the broker answers, derived from its `path` option. */
export interface BrokerPaths {
  /** The WebSocket upgrade path, as configured. */
  upgrade: string;
  /** The same with a trailing slash: the HTTP endpoints hang under it. */
  base: string;
  healthz: string;
  stats: string;
  /** The dashboard's bounded lists: busiest channels and slow consumers. */
  top: string;
  /** Readiness: 503 while the broker drains on shutdown. */
  readyz: string;
  /** Prometheus text exposition. */
  metrics: string;
  /** HTTP publish: `POST <publish><channel>`. */
  publish: string;
  /** A channel's history: `GET <history><channel>`. */
  history: string;
  /** Who subscribes: `GET <presence><channel-or-pattern>`. */
  presence: string;
  /** HTTP request/reply: `POST <request><channel>`. */
  request: string;
  /** HTTP sessions (the fallback transport): `GET <session>`, `POST <session>/<id>`. */
  session: string;
}

export function brokerPaths(path: string): BrokerPaths {
  const base = path.endsWith('/') ? path : `${path}/`;
  return {
    upgrade: path, base, healthz: `${base}healthz`, stats: `${base}stats`, top: `${base}stats/top`,
    readyz: `${base}readyz`, metrics: `${base}metrics`, publish: `${base}publish/`,
    history: `${base}history/`, presence: `${base}presence/`, request: `${base}request/`, session: `${base}session`,
  };
}

/** The path part of a request URL (no query string). */
export function pathnameOf(url: string | undefined): string {
  if (url === undefined) return '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** Whether a request path is the broker's WebSocket endpoint (with or without trailing slash). */
export function isUpgradePath(paths: BrokerPaths, pathname: string): boolean {
  return pathname === paths.upgrade || pathname === paths.base;
}

/** The `/stats` URL (http) beside a broker's WebSocket URL. */
export function statsUrlOf(wsUrl: string): string {
  const http = wsUrl.replace(/^ws/, 'http');
  return `${http}${http.endsWith('/') ? '' : '/'}stats`;
}
