import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { LOG_FORMATS, type LogFormat } from '../observe/logger.js';
import { DEFAULTS, optionSchemas, type BrokerOptions, type OptionKey } from './options.js';
import { formatDuration, formatSize, parseDuration, parseSize } from './units.js';

/** pino levels accepted by `--log-level`. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

type Kind = 'int' | 'duration' | 'size' | 'bool' | 'string' | 'level' | 'list' | 'format';
type SettingKey = Exclude<OptionKey, 'server' | 'logger' | 'clock' | 'engine' | 'tokens'> | 'logLevel' | 'logFormat';

interface Setting {
  key: SettingKey;
  /** The flag without `--`; booleans also get `--no-<flag>`. */
  flag: string;
  env: string;
  kind: Kind;
  help: string;
}

/** Every setting of the `crier-broker` command: its file key, flag, env var and meaning. */
export const SETTINGS: readonly Setting[] = [
  { key: 'port', flag: 'port', env: 'EVENT_PORT', kind: 'int', help: 'TCP port (0: any free port)' },
  { key: 'host', flag: 'host', env: 'EVENT_HOST', kind: 'string', help: 'interface to listen on' },
  { key: 'path', flag: 'path', env: 'EVENT_PATH', kind: 'string', help: 'WebSocket path; /healthz and /stats sit beside it' },
  { key: 'keepAliveInterval', flag: 'keep-alive-interval', env: 'EVENT_KEEP_ALIVE_INTERVAL', kind: 'duration', help: 'ping interval; silence for two intervals frees a connection' },
  { key: 'maxChannels', flag: 'max-channels', env: 'EVENT_MAX_CHANNELS', kind: 'int', help: 'subscriptions per connection' },
  { key: 'bufferSize', flag: 'buffer-size', env: 'EVENT_BUFFER_SIZE', kind: 'int', help: 'events queued per connection before it loses events' },
  { key: 'maxBufferBytes', flag: 'max-buffer-bytes', env: 'EVENT_MAX_BUFFER_BYTES', kind: 'size', help: 'bytes queued per connection before it loses events' },
  { key: 'maxPayload', flag: 'max-payload', env: 'EVENT_MAX_PAYLOAD', kind: 'size', help: 'max bytes of one event\'s data (at most 64MiB)' },
  { key: 'maxConnections', flag: 'max-connections', env: 'EVENT_MAX_CONNECTIONS', kind: 'int', help: 'simultaneous connections; past it, 503' },
  { key: 'helloTimeout', flag: 'hello-timeout', env: 'EVENT_HELLO_TIMEOUT', kind: 'duration', help: 'time a new socket has to send hello' },
  { key: 'channelCacheSize', flag: 'channel-cache-size', env: 'EVENT_CHANNEL_CACHE_SIZE', kind: 'int', help: 'channels whose offset counter is kept' },
  { key: 'logSlowConsumers', flag: 'log-slow-consumers', env: 'EVENT_LOG_SLOW_CONSUMERS', kind: 'bool', help: 'log connections that lose events' },
  { key: 'logPublishedEvents', flag: 'log-published-events', env: 'EVENT_LOG_PUBLISHED_EVENTS', kind: 'bool', help: 'log every published event' },
  { key: 'corsOrigins', flag: 'cors-origins', env: 'EVENT_CORS_ORIGINS', kind: 'list', help: 'origins whose pages may read /events and /publish answers (CORS; comma-separated; * for any)' },
  { key: 'allowedOrigins', flag: 'allowed-origins', env: 'EVENT_ALLOWED_ORIGINS', kind: 'list', help: 'origins whose pages may connect besides the broker\'s own and loopback pages: WebSocket, SSE, publish (comma-separated; * for any)' },
  { key: 'metricsAuth', flag: 'metrics-auth', env: 'EVENT_METRICS_AUTH', kind: 'bool', help: '/metrics for admins only, like /stats (default: open)' },
  { key: 'allowAnonymous', flag: 'allow-anonymous', env: 'EVENT_ALLOW_ANONYMOUS', kind: 'bool', help: 'with no credential configured, serve clients from anywhere (default: loopback clients only)' },
  { key: 'jwtSecret', flag: 'jwt-secret', env: 'EVENT_JWT_SECRET', kind: 'string', help: 'HS256 secret of JWT credentials (prefer the env var: a flag shows in ps)' },
  { key: 'jwtKeyFile', flag: 'jwt-key-file', env: 'EVENT_JWT_KEY_FILE', kind: 'string', help: 'file with the JWT public key: one PEM key, or a JWKS' },
  { key: 'jwksUrl', flag: 'jwks-url', env: 'EVENT_JWKS_URL', kind: 'string', help: 'JWKS URL for JWT credentials' },
  { key: 'jwtAlgorithms', flag: 'jwt-algorithms', env: 'EVENT_JWT_ALGORITHMS', kind: 'list', help: 'JWT algorithms accepted (default: from the key source)' },
  { key: 'jwtAudience', flag: 'jwt-audience', env: 'EVENT_JWT_AUDIENCE', kind: 'string', help: 'required aud of JWTs' },
  { key: 'jwtIssuer', flag: 'jwt-issuer', env: 'EVENT_JWT_ISSUER', kind: 'string', help: 'required iss of JWTs' },
  { key: 'jwtClockTolerance', flag: 'jwt-clock-tolerance', env: 'EVENT_JWT_CLOCK_TOLERANCE', kind: 'duration', help: 'clock leeway for exp, nbf, iat' },
  { key: 'jwtPublish', flag: 'jwt-publish', env: 'EVENT_JWT_PUBLISH', kind: 'list', help: 'publish grants of a JWT without a crier claim ({sub} filled in)' },
  { key: 'jwtSubscribe', flag: 'jwt-subscribe', env: 'EVENT_JWT_SUBSCRIBE', kind: 'list', help: 'subscribe grants of a JWT without a crier claim ({sub} filled in)' },
  { key: 'tokensFile', flag: 'tokens-file', env: 'EVENT_TOKENS_FILE', kind: 'string', help: 'JSON file of static service tokens [{id, sha256, publish, subscribe, admin}]' },
  { key: 'tlsCert', flag: 'tls-cert', env: 'EVENT_TLS_CERT', kind: 'string', help: 'PEM certificate (chain) file: serve wss:// and https:// (with --tls-key; SIGHUP re-reads both)' },
  { key: 'tlsKey', flag: 'tls-key', env: 'EVENT_TLS_KEY', kind: 'string', help: 'PEM private key file of --tls-cert' },
  { key: 'trustedProxies', flag: 'trusted-proxies', env: 'EVENT_TRUSTED_PROXIES', kind: 'list', help: 'addresses of reverse proxies whose X-Forwarded-For is believed (comma-separated IPs)' },
  { key: 'publishRate', flag: 'publish-rate', env: 'EVENT_PUBLISH_RATE', kind: 'int', help: 'publishes per second per connection (and per client address over HTTP); past it, rate_limited' },
  { key: 'publishBurst', flag: 'publish-burst', env: 'EVENT_PUBLISH_BURST', kind: 'int', help: 'publishes at once above the rate (default: twice the rate)' },
  { key: 'maxRequestTimeout', flag: 'max-request-timeout', env: 'EVENT_MAX_REQUEST_TIMEOUT', kind: 'duration', help: 'the longest a request waits for its reply (a request\'s own timeout is cut to it)' },
  { key: 'maxPendingRequests', flag: 'max-pending-requests', env: 'EVENT_MAX_PENDING_REQUESTS', kind: 'int', help: 'requests waiting for replies per connection (and per client address over HTTP); past it, rate_limited' },
  { key: 'httpSessions', flag: 'http-sessions', env: 'EVENT_HTTP_SESSIONS', kind: 'bool', help: 'serve <path>/session: the protocol over an event stream and POSTs, for browsers whose proxy blocks WebSocket (sdk-web fallback)' },
  { key: 'maxConnectionsPerIp', flag: 'max-connections-per-ip', env: 'EVENT_MAX_CONNECTIONS_PER_IP', kind: 'int', help: 'sockets and SSE streams per client address; past it, 503' },
  { key: 'maxPendingPerIp', flag: 'max-pending-per-ip', env: 'EVENT_MAX_PENDING_PER_IP', kind: 'int', help: 'sockets per client address that have not said hello; past it, 503' },
  { key: 'handshakeRate', flag: 'handshake-rate', env: 'EVENT_HANDSHAKE_RATE', kind: 'int', help: 'handshakes and SSE streams per client address per second (burst: twice); past it, 503' },
  { key: 'maxTotalBufferBytes', flag: 'max-total-buffer-bytes', env: 'EVENT_MAX_TOTAL_BUFFER_BYTES', kind: 'size', help: 'bytes queued towards all connections together; past it new connections get 503 and slow ones lose events (default: a quarter of RAM)' },
  { key: 'historySize', flag: 'history-size', env: 'EVENT_HISTORY_SIZE', kind: 'int', help: 'events kept per channel for history and resume (0: history off)' },
  { key: 'historyBytes', flag: 'history-bytes', env: 'EVENT_HISTORY_BYTES', kind: 'size', help: 'bytes of events kept per channel (0: history off)' },
  { key: 'historyTtl', flag: 'history-ttl', env: 'EVENT_HISTORY_TTL', kind: 'duration', help: 'age of the oldest event kept (0: history off)' },
  { key: 'historyTotalBytes', flag: 'history-total-bytes', env: 'EVENT_HISTORY_TOTAL_BYTES', kind: 'size', help: 'bytes of history over all channels; past it the least recently published channels are forgotten' },
  { key: 'idempotencyWindow', flag: 'idempotency-window', env: 'EVENT_IDEMPOTENCY_WINDOW', kind: 'duration', help: 'how long a publish\'s message id is remembered per publisher (0: off)' },
  { key: 'resumeWindow', flag: 'resume-window', env: 'EVENT_RESUME_WINDOW', kind: 'duration', help: 'how long a stream is kept after its connection dropped, for a resume (0: off)' },
  { key: 'drainWindow', flag: 'drain-window', env: 'EVENT_DRAIN_WINDOW', kind: 'duration', help: 'on SIGTERM, connections are closed (4009 draining) spread over this time' },
  { key: 'redis', flag: 'redis', env: 'EVENT_REDIS', kind: 'string', help: 'run as one node of several on this Redis (redis://[user:pass@]host:port[/db], rediss:// for TLS; prefer the env var when it holds a password)' },
  { key: 'redisPrefix', flag: 'redis-prefix', env: 'EVENT_REDIS_PREFIX', kind: 'string', help: 'prefix of every Redis key and channel (default crier:)' },
  { key: 'redisCluster', flag: 'redis-cluster', env: 'EVENT_REDIS_CLUSTER', kind: 'bool', help: '--redis is a node of a Redis Cluster (keys under one hash tag, sharded pub/sub)' },
  { key: 'redisCaFile', flag: 'redis-ca-file', env: 'EVENT_REDIS_CA_FILE', kind: 'string', help: 'PEM file of the CAs to trust for a rediss:// Redis (a private CA)' },
  { key: 'nodeName', flag: 'node-name', env: 'EVENT_NODE_NAME', kind: 'string', help: 'this node\'s name among the nodes on one Redis (default <hostname>-<pid>)' },
  { key: 'logLevel', flag: 'log-level', env: 'EVENT_LOG_LEVEL', kind: 'level', help: `${LOG_LEVELS.join('|')}` },
  { key: 'logFormat', flag: 'log-format', env: 'EVENT_LOG_FORMAT', kind: 'format', help: `${LOG_FORMATS.join('|')} (auto: pretty when stderr is a terminal, else json)` },
];

const DEFAULT_LOG_LEVEL: LogLevel = 'info';
const CONFIG_ENV = 'EVENT_CONFIG';
const forbiddenKeys: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);
const settingsByKey: ReadonlyMap<string, Setting> = new Map(SETTINGS.map((s) => [s.key, s]));

/** A configuration the broker cannot start with: which key, from where, and why. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly key: string,
    readonly source: string,
    readonly why: string,
  ) {
    super(`${key}: ${why}${source ? ` (from ${source})` : ''}`);
  }
}

/** The command's settings, every one validated: broker options plus the log level. */
export interface CliConfig {
  options: Omit<BrokerOptions, 'server' | 'logger' | 'clock' | 'engine'>;
  logLevel: LogLevel;
  /** Undefined: pretty when stderr is a terminal, JSON otherwise. */
  logFormat?: LogFormat;
}

export type Command = { action: 'help' } | { action: 'version' } | { action: 'run'; config: CliConfig };

/** Reads a config file; replaceable in tests. */
export type ReadFile = (path: string) => string;

/**
 * Turns argv, the environment and the JSON config file into a validated configuration.
 * Precedence: flags > environment > file > defaults. Throws {@link ConfigError}.
 */
export function parseCommand(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  readFile: ReadFile = (path) => readFileSync(path, 'utf8'),
): Command {
  const flags = parseFlags(argv);
  if (flags.get('help') === true) return { action: 'help' };
  if (flags.get('version') === true) return { action: 'version' };

  // Later layers overwrite earlier ones; a Map keyed by setting, never a merged plain object.
  const values = new Map<SettingKey, unknown>();
  const configPath = stringFlag(flags, 'config') ?? nonEmpty(env[CONFIG_ENV]);
  if (configPath !== undefined) {
    const source = `file ${configPath}`;
    for (const [key, raw] of readConfigFile(configPath, readFile)) {
      values.set(key, convert(settingsByKey.get(key)!, raw, source, false));
    }
  }
  for (const s of SETTINGS) {
    const raw = nonEmpty(env[s.env]);
    if (raw !== undefined) values.set(s.key, convert(s, raw, `env ${s.env}`, true));
  }
  for (const s of SETTINGS) {
    if (s.kind === 'bool') {
      const on = flags.get(s.flag) === true;
      const off = flags.get(`no-${s.flag}`) === true;
      if (on && off) throw new ConfigError(s.key, `flags --${s.flag} and --no-${s.flag}`, 'both given');
      if (on || off) values.set(s.key, on);
    } else {
      const raw = stringFlag(flags, s.flag);
      if (raw !== undefined) values.set(s.key, convert(s, raw, `flag --${s.flag}`, true));
    }
  }

  // Checked here too (createBroker would refuse it) so that it is a config error, exit 2.
  if (values.has('tlsCert') !== values.has('tlsKey')) {
    const [missing, given] = values.has('tlsCert') ? ['tlsKey', 'tlsCert'] : ['tlsCert', 'tlsKey'];
    throw new ConfigError(missing, '', `required with ${given} (give both --tls-cert and --tls-key, or neither)`);
  }
  const options: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  let logLevel: LogLevel = DEFAULT_LOG_LEVEL;
  let logFormat: LogFormat | undefined;
  for (const [key, value] of values) {
    if (key === 'logLevel') logLevel = value as LogLevel;
    else if (key === 'logFormat') logFormat = value as LogFormat;
    else options[key] = value;
  }
  return { action: 'run', config: { options: { ...options } as CliConfig['options'], logLevel, ...(logFormat ? { logFormat } : {}) } };
}

function parseFlags(argv: readonly string[]): Map<string, string | boolean> {
  const spec: NonNullable<ParseArgsConfig['options']> = {
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'v' },
    config: { type: 'string' },
  };
  for (const s of SETTINGS) {
    if (s.kind === 'bool') {
      spec[s.flag] = { type: 'boolean' };
      spec[`no-${s.flag}`] = { type: 'boolean' };
    } else {
      spec[s.flag] = { type: 'string' };
    }
  }
  let parsed: Record<string, string | boolean | (string | boolean)[] | undefined>;
  try {
    parsed = parseArgs({ args: [...argv], options: spec, strict: true, allowPositionals: false }).values;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const code = (err as { code?: unknown }).code;
    const name = /'([^']+)'/.exec(message)?.[1] ?? '?';
    const flag = name.split(' ')[0]!;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new ConfigError(flag, '', 'unknown flag (see --help)');
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') throw new ConfigError(flag, '', 'unexpected argument (see --help)');
    throw new ConfigError(flag, 'flags', message.split('. ')[0]!);
  }
  const flags = new Map<string, string | boolean>();
  for (const [name, value] of Object.entries(parsed)) {
    if (typeof value === 'string' || typeof value === 'boolean') flags.set(name, value);
  }
  return flags;
}

function stringFlag(flags: Map<string, string | boolean>, name: string): string | undefined {
  const v = flags.get(name);
  return typeof v === 'string' ? v : undefined;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}

function readConfigFile(path: string, readFile: ReadFile): Map<SettingKey, unknown> {
  const source = `file ${path}`;
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    throw new ConfigError('config', source, `cannot read: ${err instanceof Error ? err.message : String(err)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError('config', source, `not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError('config', source, 'must be a JSON object of settings');
  }
  const out = new Map<SettingKey, unknown>();
  // JSON.parse makes "__proto__" an own key: Object.keys sees it, and it is refused, not merged.
  for (const key of Object.keys(json)) {
    if (forbiddenKeys.has(key)) throw new ConfigError(key, source, 'forbidden key');
    const setting = settingsByKey.get(key);
    if (!setting) throw new ConfigError(key, source, `unknown key (known: ${SETTINGS.map((s) => s.key).join(', ')})`);
    out.set(setting.key, (json as Record<string, unknown>)[key]);
  }
  return out;
}

/** Converts one raw value (a string from a flag or env var, or a JSON value) and validates it. */
function convert(s: Setting, raw: unknown, source: string, fromText: boolean): unknown {
  const shown = JSON.stringify(raw);
  let value: unknown;
  switch (s.kind) {
    case 'int':
      value = typeof raw === 'string' && /^\s*\d+\s*$/.test(raw) ? Number(raw) : fromText ? undefined : raw;
      if (typeof value !== 'number') throw new ConfigError(s.key, source, `must be a non-negative integer, got ${shown}`);
      break;
    case 'duration':
      value = parseDuration(raw);
      if (value === undefined) throw new ConfigError(s.key, source, `must be a duration (ms, or "500ms", "30s", "2m"), got ${shown}`);
      break;
    case 'size':
      value = parseSize(raw);
      if (value === undefined) throw new ConfigError(s.key, source, `must be a size (bytes, or "512KiB", "1MiB"), got ${shown}`);
      break;
    case 'bool':
      value = typeof raw === 'boolean' ? raw : typeof raw === 'string' ? parseBool(raw) : undefined;
      if (value === undefined) throw new ConfigError(s.key, source, `must be true, false, 1 or 0, got ${shown}`);
      break;
    case 'level':
      if (!(LOG_LEVELS as readonly unknown[]).includes(raw)) throw new ConfigError(s.key, source, `must be one of ${LOG_LEVELS.join(', ')}, got ${shown}`);
      return raw;
    case 'format':
      if (!(LOG_FORMATS as readonly unknown[]).includes(raw)) throw new ConfigError(s.key, source, `must be one of ${LOG_FORMATS.join(', ')}, got ${shown}`);
      return raw;
    case 'string':
      value = raw;
      break;
    case 'list':
      // Comma-separated in a flag or env var; a JSON array in the file.
      value = typeof raw === 'string' ? raw.split(',').map((v) => v.trim()).filter((v) => v !== '') : raw;
      break;
  }
  const schema = optionSchemas[s.key as Exclude<SettingKey, 'logLevel' | 'logFormat'>];
  const result = schema.safeParse(value);
  if (!result.success) throw new ConfigError(s.key, source, `${result.error.issues[0]!.message}, got ${shown}`);
  return result.data;
}

function parseBool(raw: string): boolean | undefined {
  const v = raw.trim().toLowerCase();
  return v === 'true' || v === '1' ? true : v === 'false' || v === '0' ? false : undefined;
}

/** The `--help` text: every setting with its flag, env var and default. */
export function usage(): string {
  const rows = SETTINGS.map((s) => {
    const flag = s.kind === 'bool' ? `--[no-]${s.flag}` : `--${s.flag} <${s.kind === 'level' ? 'level' : s.kind === 'string' ? 'value' : s.kind}>`;
    return [flag, s.env, defaultText(s), `${s.key}: ${s.help}`];
  });
  rows.push(['--config <file.json>', CONFIG_ENV, '', 'JSON file of settings (keys as in the last column)']);
  rows.push(['-h, --help', '', '', 'print this help']);
  rows.push(['-v, --version', '', '', 'print the version']);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => `  ${r.slice(0, 3).map((c, i) => c.padEnd(widths[i]!)).join('  ')}  ${r[3]}`);
  return [
    'Usage: crier-broker [options]',
    '',
    'Starts a crier broker. Precedence: flags > environment > config file > defaults.',
    'Durations: ms or "500ms", "30s", "2m". Sizes: bytes or "512KiB", "1MiB". Booleans in env: true, false, 1, 0.',
    '',
    `  ${'flag'.padEnd(widths[0]!)}  ${'env'.padEnd(widths[1]!)}  ${'default'.padEnd(widths[2]!)}  key: meaning`,
    ...lines,
    '',
  ].join('\n');
}

function defaultText(s: Setting): string {
  if (s.key === 'logLevel') return DEFAULT_LOG_LEVEL;
  if (s.key === 'logFormat') return 'auto';
  const d: unknown = (DEFAULTS as Readonly<Record<string, unknown>>)[s.key];
  if (d === undefined) return 'none';
  if (s.kind === 'duration' && typeof d === 'number') return formatDuration(d);
  if (s.kind === 'size' && typeof d === 'number') return formatSize(d);
  if (s.kind === 'list') return Array.isArray(d) && d.length > 0 ? d.join(',') : 'none';
  return String(d);
}
