import type { Server as HttpServer } from 'node:http';
import type { Logger } from 'pino';
import { z } from 'zod';
import { DEFAULT_MAX_PAYLOAD } from '@crier/protocol';

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
   * Origins whose browser pages may open WebSockets, SSE streams and HTTP publishes: a request
   * carrying an `Origin` header not listed is refused (403 `forbidden_origin`) before anything
   * else; requests without one (services, curl) always pass. `['*']` allows any origin. Set it in
   * production: with `*`, any web page a user visits can talk to a broker that user can reach.
   * @default ['*']
   */
  allowedOrigins?: string[];
  /**
   * A pino logger, or `false` for none.
   * @default pino to stderr at level 'info'
   */
  logger?: Logger | false;
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
  logger: Logger | false | undefined;
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
  allowedOrigins: ['*'] as readonly string[],
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

const isLogger = (v: unknown): v is Logger =>
  typeof v === 'object' && v !== null &&
  ['debug', 'info', 'warn', 'error', 'child'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function');

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
  logger: z.union([z.literal(false), z.custom<Logger>(isLogger)], { error: 'must be a pino Logger or false' }),
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
    logger: o.logger,
  };
}
