import type { Server as HttpServer } from 'node:http';
import type { Logger } from 'pino';
import { isIP } from 'node:net';
import { hostname, totalmem } from 'node:os';
import { z } from 'zod';
import { DEFAULT_MAX_PAYLOAD, grantTemplateProblem } from '@crier/protocol';
import type { StaticToken } from '../auth/authenticator.js';
import { systemClock, type Clock } from '../clock.js';
import type { Engine } from '../engine/engine.js';

/** The largest `maxPayload` the broker accepts: 64 MiB. Past it, one frame is a memory hazard. */
export const MAX_MAX_PAYLOAD = 64 * 1024 * 1024;

/** Options of {@link createBroker}. Every one is optional. */
export interface BrokerOptions {
  /**
   * TCP port to listen on; 0 picks any free port (read it back from `broker.port`). Ignored with
   * `server`.
   * @default 10102
   */
  port?: number;
  /**
   * Interface to listen on. Ignored with `server`.
   * @default '0.0.0.0'
   */
  host?: string;
  /**
   * An existing HTTP server to attach to instead of listening. The broker handles its `upgrade`
   * and `request` events for its own paths only and leaves the rest to the server's other
   * listeners; `close()` detaches from it but never closes it.
   * @default undefined (the broker creates and owns its server)
   */
  server?: HttpServer;
  /**
   * The WebSocket upgrade path. The HTTP endpoints live beside it: with `/crier` they are
   * `/crier/healthz` and `/crier/stats`.
   * @default '/'
   */
  path?: string;
  /**
   * Milliseconds between the broker's pings. A connection from which nothing arrived for two
   * intervals is closed with 4003 and freed.
   * @default 30_000
   */
  keepAliveInterval?: number;
  /**
   * Max distinct subscriptions (names or patterns) per connection.
   * @default 100
   */
  maxChannels?: number;
  /**
   * Max events queued towards one connection (waiting to be written, or written but not yet
   * accepted by the kernel). Past it the connection is a slow consumer and loses events.
   * @default 1000
   */
  bufferSize?: number;
  /**
   * Max bytes queued towards one connection, counted like `bufferSize`.
   * @default 8_388_608 (8 MiB)
   */
  maxBufferBytes?: number;
  /**
   * Max bytes of one event's data. At most 64 MiB.
   * @default 1_048_576 (1 MiB)
   */
  maxPayload?: number;
  /**
   * Max simultaneous WebSocket connections; past it an upgrade is answered 503.
   * @default 100_000
   */
  maxConnections?: number;
  /**
   * Milliseconds a new socket has to send `hello` before it is closed with 4004.
   * @default 10_000
   */
  helloTimeout?: number;
  /**
   * How many channels keep their offset counter (least recently published forgotten first). A
   * forgotten channel restarts at offset 1 with a new epoch.
   * @default 100_000
   */
  channelCacheSize?: number;
  /**
   * Log (at warn) when a connection becomes a slow consumer and when it recovers.
   * @default true
   */
  logSlowConsumers?: boolean;
  /**
   * Log every published event (at info): channel, id, offset, size.
   * @default false
   */
  logPublishedEvents?: boolean;
  /**
   * Origins whose pages may read `GET <path>/events` (SSE) across origins: `[]` sends no CORS
   * headers (same-origin only), `['*']` allows any, else the exact origins listed
   * (`'https://app.example.com'`).
   * @default []
   */
  corsOrigins?: string[];
  /**
   * Origins whose browser pages may open WebSockets, SSE streams and HTTP publishes, besides the
   * broker's own origin and loopback pages (`http://localhost:…`), which always may: a request
   * carrying another `Origin` header is refused (403 `forbidden_origin`) before anything else;
   * requests without one (services, curl) always pass. `['*']` allows any origin: then any web
   * page a user visits can talk to a broker that user can reach.
   * @default [] (same origin and loopback pages only)
   */
  allowedOrigins?: string[];
  /**
   * Serve clients without a credential from anywhere. Off, a broker with no credential configured
   * serves loopback clients only (like Redis's protected mode): a non-loopback socket, SSE stream,
   * publish or `/stats` request is refused with 403 `forbidden` naming the options to change.
   * Meaningless once a credential is configured (then every client needs one).
   * @default false
   */
  allowAnonymous?: boolean;
  /**
   * Serve `/metrics` to admins only, like `/stats` (give Prometheus an admin token:
   * `authorization: {credentials: …}` in its scrape config). Off, `/metrics` answers anyone who
   * reaches the port, loopback or not: it holds counts, never channel names or uuids.
   * @default false
   */
  metricsAuth?: boolean;
  /**
   * HS256 secret for JWT credentials (at least 32 bytes). Prefer the environment or the config
   * file to a flag: a flag shows in `ps`. One JWT key source at most: this, `jwtKeyFile` or `jwksUrl`.
   * @default undefined
   */
  jwtSecret?: string;
  /**
   * A file holding the JWT verification key: one PEM public key (RS256, ES256 or EdDSA, from its
   * type) or a JWKS (JSON, keys chosen by `kid`). Read at start.
   * @default undefined
   */
  jwtKeyFile?: string;
  /** A JWKS URL, fetched and cached (jose's remote key set). @default undefined */
  jwksUrl?: string;
  /**
   * JWT algorithms accepted. `none` never is.
   * @default ['HS256'] with jwtSecret; the key's own with a PEM key; ['RS256', 'ES256'] with a JWKS
   */
  jwtAlgorithms?: string[];
  /** Required `aud` of JWTs. @default undefined (not checked) */
  jwtAudience?: string;
  /** Required `iss` of JWTs. @default undefined (not checked) */
  jwtIssuer?: string;
  /** Clock leeway for `exp`, `nbf` and `iat`, in ms. @default 5000 */
  jwtClockTolerance?: number;
  /**
   * Publish grants of a JWT without a `crier` claim: crier patterns, `{sub}` filled with the
   * token's subject (`user.{sub}.>`).
   * @default []
   */
  jwtPublish?: string[];
  /** Subscribe grants of a JWT without a `crier` claim, as `jwtPublish`. @default [] */
  jwtSubscribe?: string[];
  /**
   * A JSON file of static tokens for services: `[{"id", "sha256", "publish", "subscribe",
   * "admin"}]`, each token stored as its hex SHA-256. Read at start.
   * @default undefined
   */
  tokensFile?: string;
  /** Static tokens, as in `tokensFile` (for an embedded broker). @default [] */
  tokens?: StaticToken[];
  /**
   * A PEM file with the broker's certificate (its chain after it). With `tlsKey` (both or
   * neither) the broker's own server is an `https.Server`: `wss://` and `https://`. Read at start
   * and again by `broker.reloadTls()`. Not with `server` (attach to an `https.Server` instead).
   * @default undefined (plain `ws://` and `http://`)
   */
  tlsCert?: string;
  /** A PEM file with the private key of `tlsCert` (no passphrase). @default undefined */
  tlsKey?: string;
  /**
   * Addresses of the reverse proxies in front of the broker. A request whose socket comes from one
   * of them is taken to come from the right-most address of its `X-Forwarded-For` that is not a
   * trusted proxy; from any other peer, `X-Forwarded-For` is ignored (anyone can write it). That
   * address is the one the loopback-only admission, the per-address caps and rates and the logs
   * use. Exact IPv4 or IPv6 addresses (no ranges).
   * @default [] (no proxy trusted: the socket's address is the client's)
   */
  trustedProxies?: string[];
  /**
   * Publishes per second one connection may make, sustained (a token bucket refilled at this
   * rate); past it and `publishBurst`, a publish gets `rate_limited` with its request id and the
   * connection stays. HTTP publishes get the same bucket per client address (429). Told to the
   * client in the `welcome` (`lim.pr`).
   * @default 10_000
   */
  publishRate?: number;
  /**
   * Events kept per channel for history and resume (`GET /history`, `client.history`, a
   * reconnect that resumes). 0 keeps none: history is off, and a resume recovers only when
   * nothing was published meanwhile.
   * @default 100
   */
  historySize?: number;
  /**
   * Bytes of events (their frames) kept per channel; the oldest go first past it. 0 keeps none.
   * @default 1_048_576 (1 MiB)
   */
  historyBytes?: number;
  /**
   * Age of the oldest event kept, in ms. 0 keeps none.
   * @default 300_000 (5 minutes)
   */
  historyTtl?: number;
  /**
   * Bytes of history over every channel together; past it, the channels published least recently
   * are forgotten whole (their next event starts a new epoch).
   * @default 67_108_864 (64 MiB)
   */
  historyTotalBytes?: number;
  /**
   * How long a publish's message id (`PublishOptions.id`, HTTP `Idempotency-Key`) is remembered,
   * per publisher, in ms: a publish repeating one within it is acknowledged with the first one's
   * `{id, offset, epoch}` and delivered to nobody. 0 turns deduplication off.
   * @default 120_000 (2 minutes)
   */
  idempotencyWindow?: number;
  /**
   * How long a stream is kept after its connection went away without `quit`, in ms: a client
   * that comes back within it with the stream's uuid and secret gets its subscriptions back and
   * every event it missed (from history). 0: a stream ends with its connection.
   * @default 120_000 (2 minutes)
   */
  resumeWindow?: number;
  /**
   * On SIGTERM (`crier-broker`) or `broker.drain()`: `/readyz` answers 503 at once, then the
   * connections are closed with 4009 `draining` spread over this many ms, each told when to
   * reconnect, so that they do not all come back in the same second; the broker stops when the
   * last is gone or the window ends.
   * @default 10_000
   */
  drainWindow?: number;
  /**
   * Bytes queued towards all WebSocket connections together (queued, or written and not yet taken
   * by the kernel). Past it, a new socket or SSE stream gets 503 `too_many_connections` before
   * the upgrade, and only connections that hold nothing get new events: the slow ones lose them
   * (counted as dropped) instead of the broker running out of memory. Each connection alone stays
   * bounded by `maxBufferBytes` (events) and twice that (acks and errors).
   * @default a quarter of the machine's memory (`os.totalmem() / 4`)
   */
  maxTotalBufferBytes?: number;
  /**
   * WebSocket connections and SSE streams together from one client address (see
   * `trustedProxies`); past it a new one gets 503 `too_many_connections` with `Retry-After`
   * before the upgrade. Behind a proxy that is not in `trustedProxies`, every client shares the
   * proxy's address: trust the proxy, or raise this.
   * @default 1000
   */
  maxConnectionsPerIp?: number;
  /**
   * Sockets from one client address that have not said `hello` yet; past it a new socket from
   * that address gets 503 `too_many_connections` before the upgrade. Silent sockets from one
   * address can then never hold every slot of `maxConnections` until the hello timeout.
   * @default 16
   */
  maxPendingPerIp?: number;
  /**
   * WebSocket handshakes and SSE streams one client address may open per second (a token bucket
   * of twice this size); past it, 503 `rate_limited` with `Retry-After`.
   * @default 100
   */
  handshakeRate?: number;
  /**
   * Publishes a connection may make at once above `publishRate` (the bucket's size; `lim.pb`).
   * @default 2 × publishRate (20_000)
   */
  publishBurst?: number;
  /**
   * The longest a request (request/reply) waits for its reply, in ms: a request's own timeout
   * (WebSocket `to`, HTTP `?timeout=`) is cut to it, and the default (5 s) too. Past it the
   * requester gets `timeout`.
   * @default 30_000
   */
  maxRequestTimeout?: number;
  /**
   * Requests one connection (or, over HTTP, one client address) may have waiting for their
   * replies at once; past it a request gets `rate_limited` (HTTP 429).
   * @default 100
   */
  maxPendingRequests?: number;
  /**
   * Serve HTTP sessions (`<path>/session`): the WebSocket protocol over an event stream and POSTs,
   * for browsers behind a proxy that blocks WebSocket (sdk-web's fallback transport). Each
   * session is a connection like a socket: the same hello, credentials, limits and admission.
   * Off, `<path>/session` answers 404 and the fallback cannot connect.
   * @default false
   */
  httpSessions?: boolean;
  /**
   * A pino logger, or `false` for none.
   * @default pino to stderr at level 'info'
   */
  logger?: Logger | false;
  /**
   * The broker's clocks, timers and flush scheduler, for tests that decide when time passes
   * (rate limits, resume windows, history age). Production uses the real clock.
   * @default the system clock
   */
  clock?: Clock;
  /**
   * The engine under the broker (sequencing, history, sessions, carrying events between nodes):
   * the seam of other engines, and of tests. The broker starts it and closes it.
   * @default the memory engine, sized by `channelCacheSize` and the history options
   */
  engine?: Engine;
  /**
   * Runs the broker as one node of several on this Redis (`redis://[user:pass@]host:port[/db]`,
   * `rediss://` for TLS): sequencing, history, sessions and idempotency live in Redis, and events
   * reach the subscribers of every node. Unset: the memory engine (one node, nothing needed).
   */
  redis?: string;
  /**
   * Put before every Redis key and pub/sub channel, so that several deployments share a Redis.
   * @default 'crier:'
   */
  redisPrefix?: string;
  /**
   * `redis` is a node of a Redis Cluster: the deployment's keys share one hash tag (the prefix
   * in braces) and events travel by sharded pub/sub.
   * @default false
   */
  redisCluster?: boolean;
  /**
   * A PEM file of the certificate authorities to trust for a `rediss://` Redis (one with a private
   * CA); without it, Node's own trusted roots.
   */
  redisCaFile?: string;
  /**
   * This node's name among the nodes on one Redis: unique per node (shown in `/stats` and the dashboard).
   * @default `<hostname>-<pid>`
   */
  nodeName?: string;
}

/** {@link BrokerOptions} with every default applied. */
export interface ResolvedOptions {
  port: number;
  host: string;
  server: HttpServer | undefined;
  path: string;
  keepAliveInterval: number;
  maxChannels: number;
  bufferSize: number;
  maxBufferBytes: number;
  maxPayload: number;
  maxConnections: number;
  helloTimeout: number;
  channelCacheSize: number;
  logSlowConsumers: boolean;
  logPublishedEvents: boolean;
  corsOrigins: string[];
  allowedOrigins: string[];
  allowAnonymous: boolean;
  metricsAuth: boolean;
  jwtSecret: string | undefined;
  jwtKeyFile: string | undefined;
  jwksUrl: string | undefined;
  jwtAlgorithms: string[] | undefined;
  jwtAudience: string | undefined;
  jwtIssuer: string | undefined;
  jwtClockTolerance: number;
  jwtPublish: string[];
  jwtSubscribe: string[];
  tokensFile: string | undefined;
  tokens: StaticToken[];
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  trustedProxies: string[];
  publishRate: number;
  maxTotalBufferBytes: number;
  historySize: number;
  historyBytes: number;
  historyTtl: number;
  historyTotalBytes: number;
  idempotencyWindow: number;
  resumeWindow: number;
  drainWindow: number;
  maxConnectionsPerIp: number;
  maxPendingPerIp: number;
  handshakeRate: number;
  publishBurst: number;
  maxRequestTimeout: number;
  maxPendingRequests: number;
  httpSessions: boolean;
  logger: Logger | false | undefined;
  clock: Clock;
  engine: Engine | undefined;
  redis: string | undefined;
  redisPrefix: string;
  redisCluster: boolean;
  redisCaFile: string | undefined;
  nodeName: string;
}

export const DEFAULTS = {
  port: 10102,
  host: '0.0.0.0',
  path: '/',
  keepAliveInterval: 30_000,
  maxChannels: 100,
  bufferSize: 1000,
  maxBufferBytes: 8 * 1024 * 1024,
  maxPayload: DEFAULT_MAX_PAYLOAD,
  maxConnections: 100_000,
  helloTimeout: 10_000,
  channelCacheSize: 100_000,
  logSlowConsumers: true,
  logPublishedEvents: false,
  corsOrigins: [] as readonly string[],
  allowedOrigins: [] as readonly string[],
  allowAnonymous: false,
  metricsAuth: false,
  jwtClockTolerance: 5000,
  jwtPublish: [] as readonly string[],
  jwtSubscribe: [] as readonly string[],
  publishRate: 10_000,
  // Sized to the machine: a quarter of its memory leaves the rest to the process and the kernel.
  maxTotalBufferBytes: Math.floor(totalmem() / 4),
  historySize: 100,
  historyBytes: 1024 * 1024,
  historyTtl: 300_000,
  historyTotalBytes: 64 * 1024 * 1024,
  idempotencyWindow: 120_000,
  resumeWindow: 120_000,
  drainWindow: 10_000,
  maxConnectionsPerIp: 1000,
  maxPendingPerIp: 16,
  handshakeRate: 100,
  publishBurst: 20_000,
  maxRequestTimeout: 30_000,
  maxPendingRequests: 100,
  httpSessions: false,
} as const;

// setTimeout/setInterval overflow past 2^31-1 ms and fire at once: bound every duration by it.
const MAX_TIMER_MS = 2 ** 31 - 1;

const int = (min: number, max: number, unit = ''): z.ZodNumber =>
  z
    .number({ error: 'must be a number' })
    .int({ error: 'must be an integer' })
    .min(min, { error: `must be at least ${min}${unit}` })
    .max(max, { error: `must be at most ${max}${unit}` });

const isServer = (v: unknown): v is HttpServer =>
  typeof v === 'object' && v !== null &&
  typeof (v as { on?: unknown }).on === 'function' &&
  typeof (v as { listeners?: unknown }).listeners === 'function' &&
  typeof (v as { address?: unknown }).address === 'function';

const CLOCK_METHODS = ['now', 'wall', 'setTimeout', 'setInterval', 'clearTimer', 'defer', 'clearDefer'];
const isClock = (v: unknown): v is Clock =>
  typeof v === 'object' && v !== null && CLOCK_METHODS.every((name) => typeof (v as Record<string, unknown>)[name] === 'function');

const ENGINE_METHODS = ['start', 'publish', 'history', 'replay', 'rewind', 'position', 'parkSession', 'takeSession', 'dropSession', 'parkedSessions',
  'channelCount', 'busiestChannels', 'interest', 'live', 'onRequests', 'request', 'reply', 'stats', 'close'];
const isEngine = (v: unknown): v is Engine =>
  typeof v === 'object' && v !== null && ENGINE_METHODS.every((name) => typeof (v as Record<string, unknown>)[name] === 'function');

const isRedisUrl = (v: string): boolean => {
  try {
    const u = new URL(v);
    return (u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname !== '';
  } catch {
    return false;
  }
};

const isLogger = (v: unknown): v is Logger =>
  typeof v === 'object' && v !== null &&
  ['debug', 'info', 'warn', 'error', 'child'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function');

/** Grant patterns, `{sub}` allowed. */
const grant = z.string({ error: 'each grant must be a string' }).superRefine((v, ctx) => {
  const problem = grantTemplateProblem(v);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `grant ${JSON.stringify(v)}: ${problem}` });
});
const grantList = z.array(grant, { error: 'must be a list of grant patterns' });

/** One entry of `tokens` / `tokensFile`. */
export const staticToken = z.strictObject({
  id: z.string({ error: 'id must be a string' }).regex(/^[A-Za-z0-9_.-]{1,64}$/, { error: 'id must be 1-64 characters of A-Z a-z 0-9 _ . -' }),
  sha256: z.string({ error: 'sha256 must be a string' }).regex(/^[0-9a-f]{64}$/, { error: 'sha256 must be 64 lowercase hex digits (printf %s "$TOKEN" | sha256sum)' }),
  publish: grantList.optional(),
  subscribe: grantList.optional(),
  admin: z.boolean({ error: 'admin must be true or false' }).optional(),
  presence: grantList.optional(),
}, { error: 'each token must be an object {id, sha256, publish, subscribe, admin, presence}' });

/**
 * One schema per option, so the CLI can validate a value from a flag, env var or file on its own
 * and name where it came from.
 */
export const optionSchemas = {
  port: int(0, 65_535),
  host: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }),
  server: z.custom<HttpServer>(isServer, { error: 'must be an http.Server (or https.Server)' }),
  path: z
    .string({ error: 'must be a string' })
    .regex(/^\/[^?#\s]*$/, { error: "must start with '/' and hold no '?', '#' or spaces" }),
  keepAliveInterval: int(10, MAX_TIMER_MS, ' ms'),
  maxChannels: int(1, 1_000_000),
  bufferSize: int(1, 10_000_000),
  maxBufferBytes: int(1024, 2 ** 40, ' bytes'),
  maxPayload: int(1, MAX_MAX_PAYLOAD, ' bytes'),
  maxConnections: int(1, 10_000_000),
  helloTimeout: int(10, MAX_TIMER_MS, ' ms'),
  channelCacheSize: int(1, 100_000_000),
  logSlowConsumers: z.boolean({ error: 'must be true or false' }),
  logPublishedEvents: z.boolean({ error: 'must be true or false' }),
  corsOrigins: z.array(
    z.string({ error: 'must be a list of origins' })
      .regex(/^(\*|https?:\/\/[^\s/,]+)$/, { error: 'each origin must be "*" or like "https://app.example.com" (scheme and host, no path)' }),
    { error: 'must be a list of origins' },
  ),
  allowedOrigins: z.array(
    z.string({ error: 'must be a list of origins' })
      .regex(/^(\*|https?:\/\/[^\s/,]+)$/, { error: 'each origin must be "*" or like "https://app.example.com" (scheme and host, no path)' }),
    { error: 'must be a list of origins' },
  ),
  allowAnonymous: z.boolean({ error: 'must be true or false' }),
  metricsAuth: z.boolean({ error: 'must be true or false' }),
  jwtSecret: z.string({ error: 'must be a string' }).min(32, { error: 'must be at least 32 characters' }),
  jwtKeyFile: z.string({ error: 'must be a file path' }).min(1, { error: 'must not be empty' }),
  jwksUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
  jwtAlgorithms: z.array(
    z.enum(['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'], { error: 'each algorithm must be one of HS256…512, RS256…512, PS256…512, ES256…512, EdDSA' }),
    { error: 'must be a list of algorithms' },
  ).min(1, { error: 'must name at least one algorithm' }),
  jwtAudience: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }),
  jwtIssuer: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }),
  jwtClockTolerance: int(0, 600_000, ' ms'),
  jwtPublish: grantList,
  jwtSubscribe: grantList,
  tokensFile: z.string({ error: 'must be a file path' }).min(1, { error: 'must not be empty' }),
  tokens: z.array(staticToken, { error: 'must be a list of tokens' }),
  tlsCert: z.string({ error: 'must be a file path' }).min(1, { error: 'must not be empty' }),
  tlsKey: z.string({ error: 'must be a file path' }).min(1, { error: 'must not be empty' }),
  trustedProxies: z.array(
    z.string({ error: 'must be a list of IP addresses' }).refine((v) => isIP(v) !== 0, { error: 'each entry must be an IPv4 or IPv6 address, like "10.0.0.7"' }),
    { error: 'must be a list of IP addresses' },
  ),
  publishRate: int(1, 1_000_000_000, ' per second'),
  maxTotalBufferBytes: int(65_536, 2 ** 50, ' bytes'),
  historySize: int(0, 1_000_000, ' events'),
  historyBytes: int(0, 2 ** 40, ' bytes'),
  historyTtl: int(0, MAX_TIMER_MS, ' ms'),
  historyTotalBytes: int(0, 2 ** 50, ' bytes'),
  idempotencyWindow: int(0, MAX_TIMER_MS, ' ms'),
  resumeWindow: int(0, MAX_TIMER_MS, ' ms'),
  drainWindow: int(0, MAX_TIMER_MS, ' ms'),
  maxConnectionsPerIp: int(1, 10_000_000),
  maxPendingPerIp: int(1, 10_000_000),
  handshakeRate: int(1, 1_000_000_000, ' per second'),
  publishBurst: int(1, 1_000_000_000),
  maxRequestTimeout: int(10, MAX_TIMER_MS, ' ms'),
  maxPendingRequests: int(1, 1_000_000),
  httpSessions: z.boolean({ error: 'must be true or false' }),
  logger: z.union([z.literal(false), z.custom<Logger>(isLogger)], { error: 'must be a pino Logger or false' }),
  redis: z.string({ error: 'must be a redis:// or rediss:// URL' }).refine(isRedisUrl, { error: 'must be a redis:// or rediss:// URL, like redis://127.0.0.1:6379' }),
  redisCluster: z.boolean({ error: 'must be true or false' }),
  redisCaFile: z.string({ error: 'must be a file path' }).min(1, { error: 'must not be empty' }),
  redisPrefix: z.string({ error: 'must be a string' }).max(64, { error: 'must be at most 64 characters' }),
  nodeName: z.string({ error: 'must be a string' }).regex(/^[A-Za-z0-9_.-]{1,64}$/, { error: 'must be 1-64 characters of A-Za-z0-9_.-' }),
  engine: z.custom<Engine>(isEngine, { error: 'must be an Engine (publish, history, replay, rewind, sessions…)' }),
  clock: z.custom<Clock>(isClock, { error: 'must be a Clock (now, wall, setTimeout, setInterval, clearTimer, defer, clearDefer)' }),
} as const;

export type OptionKey = keyof typeof optionSchemas;

const schema = z.strictObject(
  Object.fromEntries(Object.entries(optionSchemas).map(([k, s]) => [k, s.optional()])) as {
    [K in OptionKey]: z.ZodOptional<(typeof optionSchemas)[K]>;
  },
);

/** Validates `options` and applies defaults. Throws a `TypeError` naming the offending key. */
export function resolveOptions(options: BrokerOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('createBroker: options must be an object');
  }
  const parsed = schema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.code === 'unrecognized_keys') {
      throw new TypeError(`createBroker: unknown option "${issue.keys[0] ?? ''}"`);
    }
    const key = issue.path.map(String).join('.');
    throw new TypeError(`createBroker: invalid option "${key}": ${issue.message}`);
  }
  const o = parsed.data;
  // A certificate without its key (or the reverse) is a typo, never a choice.
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) {
    const [missing, given] = o.tlsCert === undefined ? ['tlsCert', 'tlsKey'] : ['tlsKey', 'tlsCert'];
    throw new TypeError(`createBroker: invalid option "${missing}": required with ${given} (give both or neither)`);
  }
  if (o.tlsCert !== undefined && o.server !== undefined) {
    throw new TypeError('createBroker: invalid option "tlsCert": not with server (attach the broker to an https.Server instead)');
  }
  return {
    port: o.port ?? DEFAULTS.port,
    host: o.host ?? DEFAULTS.host,
    server: o.server,
    path: o.path ?? DEFAULTS.path,
    keepAliveInterval: o.keepAliveInterval ?? DEFAULTS.keepAliveInterval,
    maxChannels: o.maxChannels ?? DEFAULTS.maxChannels,
    bufferSize: o.bufferSize ?? DEFAULTS.bufferSize,
    maxBufferBytes: o.maxBufferBytes ?? DEFAULTS.maxBufferBytes,
    maxPayload: o.maxPayload ?? DEFAULTS.maxPayload,
    maxConnections: o.maxConnections ?? DEFAULTS.maxConnections,
    helloTimeout: o.helloTimeout ?? DEFAULTS.helloTimeout,
    channelCacheSize: o.channelCacheSize ?? DEFAULTS.channelCacheSize,
    logSlowConsumers: o.logSlowConsumers ?? DEFAULTS.logSlowConsumers,
    logPublishedEvents: o.logPublishedEvents ?? DEFAULTS.logPublishedEvents,
    corsOrigins: o.corsOrigins ?? [],
    allowedOrigins: o.allowedOrigins ?? [...DEFAULTS.allowedOrigins],
    allowAnonymous: o.allowAnonymous ?? DEFAULTS.allowAnonymous,
    metricsAuth: o.metricsAuth ?? DEFAULTS.metricsAuth,
    jwtSecret: o.jwtSecret,
    jwtKeyFile: o.jwtKeyFile,
    jwksUrl: o.jwksUrl,
    jwtAlgorithms: o.jwtAlgorithms,
    jwtAudience: o.jwtAudience,
    jwtIssuer: o.jwtIssuer,
    jwtClockTolerance: o.jwtClockTolerance ?? DEFAULTS.jwtClockTolerance,
    jwtPublish: o.jwtPublish ?? [],
    jwtSubscribe: o.jwtSubscribe ?? [],
    tokensFile: o.tokensFile,
    tokens: o.tokens ?? [],
    tlsCert: o.tlsCert,
    tlsKey: o.tlsKey,
    trustedProxies: o.trustedProxies ?? [],
    publishRate: o.publishRate ?? DEFAULTS.publishRate,
    maxTotalBufferBytes: o.maxTotalBufferBytes ?? DEFAULTS.maxTotalBufferBytes,
    historySize: o.historySize ?? DEFAULTS.historySize,
    historyBytes: o.historyBytes ?? DEFAULTS.historyBytes,
    historyTtl: o.historyTtl ?? DEFAULTS.historyTtl,
    historyTotalBytes: o.historyTotalBytes ?? DEFAULTS.historyTotalBytes,
    idempotencyWindow: o.idempotencyWindow ?? DEFAULTS.idempotencyWindow,
    resumeWindow: o.resumeWindow ?? DEFAULTS.resumeWindow,
    drainWindow: o.drainWindow ?? DEFAULTS.drainWindow,
    maxConnectionsPerIp: o.maxConnectionsPerIp ?? DEFAULTS.maxConnectionsPerIp,
    maxPendingPerIp: o.maxPendingPerIp ?? DEFAULTS.maxPendingPerIp,
    handshakeRate: o.handshakeRate ?? DEFAULTS.handshakeRate,
    publishBurst: o.publishBurst ?? (o.publishRate === undefined ? DEFAULTS.publishBurst : 2 * o.publishRate),
    maxRequestTimeout: o.maxRequestTimeout ?? DEFAULTS.maxRequestTimeout,
    maxPendingRequests: o.maxPendingRequests ?? DEFAULTS.maxPendingRequests,
    httpSessions: o.httpSessions ?? DEFAULTS.httpSessions,
    logger: o.logger,
    clock: o.clock ?? systemClock,
    engine: o.engine,
    redis: o.redis,
    redisPrefix: o.redisPrefix ?? 'crier:',
    redisCluster: o.redisCluster ?? false,
    redisCaFile: o.redisCaFile,
    nodeName: o.nodeName ?? `${hostname().replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 50)}-${process.pid}`,
  };
}
