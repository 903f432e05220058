import { pino, type DestinationStream, type Logger } from 'pino';

/** How the command writes its logs: JSON lines, or one readable line per entry for a terminal. */
export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** The broker's logger: the one given, a disabled one for `false`, or JSON on stderr at info. */
export function createLogger(option: Logger | false | undefined): Logger {
  if (option === false) return pino({ enabled: false });
  if (option) return option;
  return defaultLogger('info');
}

/**
 * pino writing to stderr, synchronously (stdout stays free for the CLI's own line): JSON lines,
 * or with `pretty` one readable line per entry (coloured when stderr is a terminal). Without a
 * format: pretty on a terminal, JSON otherwise.
 */
export function defaultLogger(level: string, format?: LogFormat): Logger {
  const stderr = pino.destination({ dest: 2, sync: true });
  const tty = process.stderr.isTTY === true;
  const pretty = (format ?? (tty ? 'pretty' : 'json')) === 'pretty';
  return pino({ name: 'crier-broker', level }, pretty ? prettyStream(stderr, tty) : stderr);
}

/** What a {@link RateLimitedLog} writes to: a pino logger, or any sink with these three levels. */
export type LevelLog = Record<'info' | 'warn' | 'error', (fields: Record<string, unknown>, msg: string) => void>;

/**
 * Log lines that a client can cause at its own pace (refusals: a page retrying a refused
 * handshake, a reconnect storm against a full broker), rate-limited per key so that the log stays
 * readable and cheap: the first line of a key is written at once; later ones within `intervalMs`
 * are only counted, and the next line written for that key carries `suppressed` (how many were
 * left out since the previous one). Exact numbers belong in a metric, not here.
 *
 * At most `maxKeys` keys are remembered (expired ones are pruned at most once per interval); past
 * that, new keys share one overflow key, so a flood of distinct keys costs bounded memory.
 */
export class RateLimitedLog {
  private readonly keys = new Map<string, { last: number; suppressed: number }>();
  private lastPrune = -Infinity;

  constructor(
    private readonly logger: LevelLog,
    private readonly intervalMs = 10_000,
    private readonly maxKeys = 1000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Writes `msg` with `fields` at `level` unless `key` was written less than `intervalMs` ago. Returns whether it did. */
  write(level: 'info' | 'warn' | 'error', key: string, fields: Record<string, unknown>, msg: string): boolean {
    const now = this.now();
    let entry = this.keys.get(key);
    if (entry === undefined) {
      if (this.keys.size >= this.maxKeys) this.prune(now);
      if (this.keys.size >= this.maxKeys) key = RateLimitedLog.OVERFLOW_KEY;
      entry = this.keys.get(key);
    }
    if (entry !== undefined && now - entry.last < this.intervalMs) {
      entry.suppressed++;
      return false;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.keys.set(key, { last: now, suppressed: 0 });
    this.logger[level](suppressed > 0 ? { ...fields, suppressed } : fields, msg);
    return true;
  }

  /** The key shared by new keys once `maxKeys` are remembered. */
  static readonly OVERFLOW_KEY = '\u0000overflow';

  private prune(now: number): void {
    if (now - this.lastPrune < this.intervalMs) return;
    this.lastPrune = now;
    for (const [key, entry] of this.keys) if (now - entry.last >= this.intervalMs) this.keys.delete(key);
  }
}

/** Keys whose values never reach a log: tokens, secrets, passwords, credentials, private keys. */
const SECRET_KEY = /token|secret|passw|credential|api[-_]?key|private[-_]?key|authorization/i;

/**
 * A copy of a configuration fit for a log: values of secret-looking keys replaced by
 * `[redacted]` (at any depth), functions and objects that are not plain data (a server, a logger)
 * left out.
 */
export function redactConfig(config: object): Record<string, unknown> {
  return redactObject(config, 0);
}

function redactObject(value: object, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (SECRET_KEY.test(key)) {
      if (v !== undefined) out[key] = '[redacted]';
      continue;
    }
    const clean = redactValue(v, depth + 1);
    if (clean !== undefined) out[key] = clean;
  }
  return out;
}

function redactValue(v: unknown, depth: number): unknown {
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (depth > 4) return undefined;
  if (Array.isArray(v)) return v.map((item) => redactValue(item, depth + 1));
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) return redactObject(v, depth);
  return undefined; // a server, a logger, a function: not configuration one can read
}

// ---- pretty ---------------------------------------------------------------------------------

const LEVELS: ReadonlyMap<number, [name: string, colour: string]> = new Map([
  [10, ['TRACE', '\x1b[90m']],
  [20, ['DEBUG', '\x1b[36m']],
  [30, ['INFO ', '\x1b[32m']],
  [40, ['WARN ', '\x1b[33m']],
  [50, ['ERROR', '\x1b[31m']],
  [60, ['FATAL', '\x1b[35m']],
]);
const RESET = '\x1b[0m';
const DIM = '\x1b[2m';
/** pino's own fields, shown in their place or not at all. */
const OMITTED: ReadonlySet<string> = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name', 'v']);

/**
 * One pino JSON line as `HH:MM:SS LEVEL msg key=value …` (local time), with ANSI colours when
 * `colour`. Strings without spaces, quotes or `=` go bare, anything else as JSON. An error's stack
 * follows on indented lines. A line that is not a JSON object is returned as it came.
 */
export function formatPrettyLine(line: string, colour: boolean): string {
  let entry: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return line.endsWith('\n') ? line : `${line}\n`;
    entry = parsed as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const time = typeof entry['time'] === 'number' ? clock(new Date(entry['time'])) : '--:--:--';
  const [levelName, levelColour] = LEVELS.get(entry['level'] as number) ?? [String(entry['level']).toUpperCase().padEnd(5), ''];
  const parts = [colour ? `${DIM}${time}${RESET}` : time, colour ? `${levelColour}${levelName}${RESET}` : levelName];
  if (typeof entry['msg'] === 'string') parts.push(entry['msg']);
  let stack = '';
  for (const [key, value] of Object.entries(entry)) {
    if (OMITTED.has(key) || value === undefined) continue;
    if (isError(value)) {
      parts.push(pair(key, `${value.type ?? 'Error'}: ${value.message}`, colour));
      if (typeof value.stack === 'string') stack += value.stack.split('\n').slice(1).map((l) => `    ${l.trim()}\n`).join('');
      continue;
    }
    parts.push(pair(key, value, colour));
  }
  return `${parts.join(' ')}\n${stack}`;
}

function isError(v: unknown): v is { type?: string; message: string; stack?: string } {
  return typeof v === 'object' && v !== null && typeof (v as { message?: unknown }).message === 'string' && 'stack' in v;
}

function pair(key: string, value: unknown, colour: boolean): string {
  const text = typeof value === 'string' && /^[^\s"'=]+$/.test(value) ? value : JSON.stringify(value);
  return colour ? `${DIM}${key}=${RESET}${text}` : `${key}=${text}`;
}

function clock(d: Date): string {
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/**
 * A pino destination that turns each JSON line into {@link formatPrettyLine}'s and writes it to
 * `out`. pino hands over one line per `write`, so no buffering is needed.
 */
export function prettyStream(out: { write(text: string): unknown }, colour: boolean): DestinationStream {
  return {
    write(line: string): void {
      out.write(formatPrettyLine(line, colour));
    },
  };
}
