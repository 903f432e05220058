import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { SubscribeFilter } from '@crier/sdk-web/full';

// Argument parsing of the `crier` command: `node:util` parseArgs, strict, one option table per
// command plus the global ones. Everything wrong with the command line is a UsageError (exit 2).

export const DEFAULT_URL = 'ws://127.0.0.1:10102';
export const DEFAULT_TIMEOUT_MS = 5000;

export type CommandName = 'listen' | 'publish' | 'request' | 'reply' | 'stats' | 'presence';
const COMMANDS: readonly CommandName[] = ['listen', 'publish', 'request', 'reply', 'stats', 'presence'];

/** Requests `crier reply --exec` runs at once, by default. */
export const DEFAULT_CONCURRENCY = 8;

/** A command line that cannot run: the message and the command whose usage to show. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: CommandName,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface GlobalOptions {
  /** The broker's WebSocket URL (ws: or wss:). */
  url: string;
  /** Bound on connecting and on each request, in ms. */
  timeout: number;
  verbose: boolean;
  /** The credential (--token, else $CRIER_TOKEN): never printed. */
  token: string | undefined;
}

export interface ListenCommand extends GlobalOptions {
  command: 'listen';
  patterns: string[];
  /** Undefined when no filter flag was given. */
  filter: SubscribeFilter | undefined;
  json: boolean;
  /** Wait for a broker that cannot be reached at start, instead of failing (exit 1). */
  wait: boolean;
  /** A queue group to join: each event to one member of it. */
  group: string | undefined;
}

export interface PublishCommand extends GlobalOptions {
  command: 'publish';
  channel: string;
  /** The data argument: bytes of this string, or `{ stdin }`, or `{ file }`. */
  source: { text: string } | { stdin: true } | { file: string };
  lines: boolean;
  labels: string[] | undefined;
  key: string | undefined;
  /** `--priority high`: the events go in each subscriber's high lane. */
  priority: 'high' | 'normal';
  ack: boolean;
  json: boolean;
}

export interface RequestCommand extends GlobalOptions {
  command: 'request';
  channel: string;
  /** The data argument: bytes of this string, or `{ stdin }`, or `{ file }`. */
  source: PublishCommand['source'];
  labels: string[] | undefined;
  key: string | undefined;
  json: boolean;
}

export interface ReplyCommand extends GlobalOptions {
  command: 'reply';
  pattern: string;
  /** What answers: a shell command given each request on stdin, the request's own data, or fixed data. */
  answer: { exec: string } | { echo: true } | { text: string };
  /** Requests the --exec command runs for at once. */
  concurrency: number;
  /** A queue group to join: each request to one member of it (load-balanced responders). */
  group: string | undefined;
}

export interface StatsCommand extends GlobalOptions {
  command: 'stats';
  json: boolean;
}

export interface PresenceCommand extends GlobalOptions {
  command: 'presence';
  /** A channel name or a pattern. */
  pattern: string;
  /** Ask for the principal ids too (given with a presence grant only). */
  members: boolean;
  json: boolean;
}

export type ParsedCommandLine =
  | { command: 'help'; topic: CommandName | undefined }
  | { command: 'version' }
  | ListenCommand
  | PublishCommand
  | RequestCommand
  | ReplyCommand
  | StatsCommand
  | PresenceCommand;

type Options = NonNullable<ParseArgsConfig['options']>;

const GLOBAL_OPTIONS = {
  url: { type: 'string' },
  timeout: { type: 'string' },
  token: { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} satisfies Options;

const COMMAND_OPTIONS = {
  listen: {
    labels: { type: 'string', multiple: true },
    'all-labels': { type: 'boolean' },
    keys: { type: 'string', multiple: true },
    json: { type: 'boolean' },
    wait: { type: 'boolean' },
    group: { type: 'string' },
  },
  publish: {
    label: { type: 'string', multiple: true },
    key: { type: 'string' },
    file: { type: 'string' },
    lines: { type: 'boolean' },
    priority: { type: 'string' },
    'no-ack': { type: 'boolean' },
    json: { type: 'boolean' },
  },
  request: {
    label: { type: 'string', multiple: true },
    key: { type: 'string' },
    file: { type: 'string' },
    json: { type: 'boolean' },
  },
  reply: {
    exec: { type: 'string' },
    echo: { type: 'boolean' },
    concurrency: { type: 'string' },
    group: { type: 'string' },
  },
  stats: {
    json: { type: 'boolean' },
  },
  presence: {
    members: { type: 'boolean' },
    json: { type: 'boolean' },
  },
} satisfies Record<CommandName, Options>;

/** Global options that take a value: their value is not the command name. */
const VALUED_GLOBALS = new Set(['--url', '--timeout', '--token']);

export const TOP_USAGE = `Usage: crier <command> [options]

Commands:
  listen [patterns...]        print events as they arrive (default pattern ">")
  publish <channel> [data|-]  publish an event (the argument, stdin with "-", or --file)
  request <channel> [data|-]  send a request and print the reply
  reply <pattern> --exec cmd  answer requests with a command's output (or --echo, or data)
  stats                       print the broker's /stats
  presence <channel|pattern>  print how many subscribe to it (--members: who)

Global options:
  --url <ws-url>      broker URL (default $CRIER_URL or ${DEFAULT_URL})
  --timeout <time>    bound on connecting and on each request: ms, or 500ms, 5s, 1m (default 5s)
  --token <token>     credential for a broker that requires one: a JWT or a static token
                      (default $CRIER_TOKEN; prefer the variable: arguments show in ps)
  -v, --verbose       report connection state changes on stderr
  -h, --help          help (also after a command: crier listen --help)
  --version           print the version

An unreachable broker is a failure for every command (listen --wait waits for it instead).
Exit codes: 0 done, 1 failure (broker unreachable, error from the broker), 2 usage error.
`;

export const COMMAND_USAGE: Record<CommandName, string> = {
  listen: `Usage: crier listen [patterns...] [--labels a,b] [--all-labels] [--keys k1,k2] [--json] [--wait]

Prints each event on the patterns (default ">", every channel), one line each:
  [14:23:15] user.created: {"id":42}
Data that is not printable UTF-8 shows as <binary 512 B: 0a1b2c…>. Status lines go to stderr.

Options:
  --labels a,b     only events carrying one of these labels (all of them with --all-labels)
  --all-labels     require every label of --labels
  --keys k1,k2     only events with one of these keys
  --json           one JSON object per line: {"id","channel","offset","epoch","time","labels",
                   "key","data"}; data is the text when valid UTF-8, else {"base64": "…"}
  --wait           wait for a broker that cannot be reached yet (default: exit 1 at once)
  --group name     join a queue group: each event goes to one member of the group (listeners
                   with the same --group and patterns share the events), not to all
  plus the global options (crier --help). Once connected, it rides out broker restarts
  (reconnecting by itself); Ctrl+C quits.
`,
  publish: `Usage: crier publish <channel> [data | -] [--label x]... [--key k] [--priority high] [--file path] [--lines] [--no-ack]

Publishes the data argument, stdin ("-"), or a file, as is, and prints "id offset".

Options:
  --label x        a label carried by the event (repeatable)
  --key k          a key carried by the event
  --priority high  high priority: ahead of normal events queued towards each subscriber, dropped last
  --file path      publish the file's bytes
  --lines          one event per line of stdin (or of --file); empty lines are skipped
  --no-ack         fire-and-forget: do not wait for the broker's ack, print nothing
  --json           print {"id","offset","epoch","channel"} per event
  plus the global options (crier --help).
`,
  request: `Usage: crier request <channel> [data | -] [--label x]... [--key k] [--file path] [--json]

Sends the data argument, stdin ("-"), or a file as a request to whoever subscribes to the
channel, and prints the first reply's data as is. --timeout (default 5s) bounds the wait.
Exit 1 when nobody listens (no_responders, at once) or no reply comes in time (timeout).

Options:
  --label x        a label carried by the request (repeatable)
  --key k          a key carried by the request
  --file path      send the file's bytes
  --json           print {"id","channel","offset","epoch","time","labels","key","data"} instead
  plus the global options (crier --help).
`,
  reply: `Usage: crier reply <pattern> (--exec <command> | --echo | <data>) [--concurrency n]

Answers the requests on the pattern until Ctrl+C, reconnecting by itself:
  --exec <command>   run the command (with sh -c) for each request: the request's data on its
                     stdin, CRIER_CHANNEL, CRIER_ID, CRIER_LABELS (comma-separated) and
                     CRIER_KEY in its environment; its stdout is the reply. A command that
                     fails (non-zero exit, or past --timeout) sends no reply: the requester
                     times out, and the failure shows on stderr.
  --echo             reply with the request's own data
  <data>             reply with this text every time
  --concurrency n    requests --exec runs at once (default ${DEFAULT_CONCURRENCY}); more wait their turn
  --group name       join a queue group: each request goes to one replier of the group
  plus the global options (crier --help).
`,
  stats: `Usage: crier stats [--json]

Prints the broker's /stats (on the same host and port as --url), readably or as --json.
  plus the global options (crier --help).
`,
  presence: `Usage: crier presence <channel|pattern> [--members] [--json]

Prints how many connections subscribe to a channel (those an event on it reaches, by any of their
subscriptions) or to a pattern (those subscribed with exactly it), over every broker node.

Options:
  --members    also print who: the principal ids, one a line (needs a presence grant; at most 1000)
  --json       print {"subscribers": n, "members": [...]} instead
  plus the global options (crier --help).
`,
};

/** Milliseconds from "5000", "500ms", "5s", "1m". */
export function parseDuration(text: string, name: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  const unit = m?.[2] ?? 'ms';
  const ms = m ? Number(m[1]) * (unit === 'm' ? 60_000 : unit === 's' ? 1000 : 1) : NaN;
  if (!(ms >= 1) || !Number.isFinite(ms)) throw new UsageError(`${name}: expected a duration such as 500ms or 5s, got "${text}"`);
  return Math.round(ms);
}

/** The URL to connect to: ws(s) as is, http(s) turned into ws(s). */
export function parseUrl(text: string, from: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${from}: not a URL: "${text}"`);
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  else if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new UsageError(`${from}: expected a ws:// or wss:// URL, got "${text}"`);
  }
  return url.href;
}

/** `--priority high|normal` (default normal). */
function priorityOf(value: string | undefined, command: CommandName): 'high' | 'normal' {
  if (value === undefined || value === 'normal' || value === 'high') return value ?? 'normal';
  throw new UsageError(`--priority is high or normal, not "${value}"`, command);
}

/** `--labels a,b --labels c` → ['a', 'b', 'c']. */
function splitList(values: string[] | undefined): string[] | undefined {
  if (values === undefined) return undefined;
  return values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
}

/** Where a command's data comes from: the argument, stdin ("-"), or --file. */
function dataSource(data: string | undefined, file: string | undefined, command: CommandName): PublishCommand['source'] {
  if (file !== undefined) {
    if (data !== undefined) throw new UsageError('give the data as an argument or with --file, not both', command);
    return { file };
  }
  if (data === '-') return { stdin: true };
  if (data !== undefined) return { text: data };
  throw new UsageError('missing data (give it as an argument, "-" for stdin, or --file)', command);
}

/** The index of the command name: the first argument that is neither an option nor its value. */
function findCommand(argv: string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return i + 1 < argv.length ? i + 1 : -1;
    if (VALUED_GLOBALS.has(arg)) i++;
    else if (!arg.startsWith('-') || arg === '-') return i;
  }
  return -1;
}

function parse<O extends Options>(args: string[], options: O, command: CommandName | undefined) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (err) {
    // Node's messages go on with advice about "--"; the first sentence says what is wrong.
    const message = err instanceof Error ? err.message.split('. ')[0]!.replace(/\.$/, '') : String(err);
    throw new UsageError(message, command);
  }
}

function globals(values: { url?: string; timeout?: string; token?: string; verbose?: boolean }, env: NodeJS.ProcessEnv): GlobalOptions {
  const fromEnv = env['CRIER_URL'] ? env['CRIER_URL'] : undefined;
  return {
    url: values.url !== undefined ? parseUrl(values.url, '--url') : parseUrl(fromEnv ?? DEFAULT_URL, fromEnv ? 'CRIER_URL' : 'default'),
    timeout: values.timeout !== undefined ? parseDuration(values.timeout, '--timeout') : DEFAULT_TIMEOUT_MS,
    verbose: values.verbose ?? false,
    // An empty value (--token= or CRIER_TOKEN=) means none.
    token: values.token || env['CRIER_TOKEN'] || undefined,
  };
}

/** Parses `crier`'s arguments (without node and the script). Throws a UsageError. */
export function parseCommandLine(argv: string[], env: NodeJS.ProcessEnv = {}): ParsedCommandLine {
  const at = findCommand(argv);
  if (at === -1) {
    const { values } = parse(argv, { ...GLOBAL_OPTIONS, version: { type: 'boolean' } }, undefined);
    if (values.version) return { command: 'version' };
    if (values.help) return { command: 'help', topic: undefined };
    throw new UsageError('missing command');
  }
  const name = argv[at]!;
  if (!(COMMANDS as readonly string[]).includes(name)) throw new UsageError(`unknown command "${name}"`);
  const command = name as CommandName;
  const rest = [...argv.slice(0, at), ...argv.slice(at + 1)];

  switch (command) {
    case 'listen': {
      const { values, positionals } = parse(rest, { ...GLOBAL_OPTIONS, ...COMMAND_OPTIONS.listen }, command);
      if (values.help) return { command: 'help', topic: command };
      const labels = splitList(values.labels);
      const keys = splitList(values.keys);
      if (values['all-labels'] && labels === undefined) throw new UsageError('--all-labels needs --labels', command);
      let filter: SubscribeFilter | undefined;
      if (labels !== undefined || keys !== undefined) {
        filter = {};
        if (labels !== undefined) filter.labels = labels;
        if (values['all-labels']) filter.allLabels = true;
        if (keys !== undefined) filter.keys = keys;
      }
      return {
        command,
        ...globals(values, env),
        patterns: positionals.length > 0 ? positionals : ['>'],
        filter,
        json: values.json ?? false,
        wait: values.wait ?? false,
        group: values.group,
      };
    }
    case 'publish': {
      const { values, positionals } = parse(rest, { ...GLOBAL_OPTIONS, ...COMMAND_OPTIONS.publish }, command);
      if (values.help) return { command: 'help', topic: command };
      const [channel, data, ...extra] = positionals;
      if (channel === undefined) throw new UsageError('missing channel', command);
      if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}" (quote data that has spaces)`, command);
      const lines = values.lines ?? false;
      if (lines && data !== undefined && data !== '-' && values.file === undefined) {
        throw new UsageError('--lines reads stdin or --file: give "-" instead of data', command);
      }
      const source = lines && data === undefined && values.file === undefined ? { stdin: true as const } : dataSource(data, values.file, command);
      return {
        command,
        ...globals(values, env),
        channel,
        source,
        lines,
        labels: values.label,
        key: values.key,
        priority: priorityOf(values.priority, command),
        ack: !values['no-ack'],
        json: values.json ?? false,
      };
    }
    case 'request': {
      const { values, positionals } = parse(rest, { ...GLOBAL_OPTIONS, ...COMMAND_OPTIONS.request }, command);
      if (values.help) return { command: 'help', topic: command };
      const [channel, data, ...extra] = positionals;
      if (channel === undefined) throw new UsageError('missing channel', command);
      if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}" (quote data that has spaces)`, command);
      return {
        command,
        ...globals(values, env),
        channel,
        source: dataSource(data, values.file, command),
        labels: values.label,
        key: values.key,
        json: values.json ?? false,
      };
    }
    case 'reply': {
      const { values, positionals } = parse(rest, { ...GLOBAL_OPTIONS, ...COMMAND_OPTIONS.reply }, command);
      if (values.help) return { command: 'help', topic: command };
      const [pattern, data, ...extra] = positionals;
      if (pattern === undefined) throw new UsageError('missing pattern', command);
      if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}" (quote data that has spaces)`, command);
      const answers = [values.exec !== undefined, values.echo === true, data !== undefined].filter(Boolean).length;
      if (answers !== 1) throw new UsageError('give exactly one of --exec <command>, --echo, or the reply data', command);
      const answer: ReplyCommand['answer'] =
        values.exec !== undefined ? { exec: values.exec } : values.echo ? { echo: true } : { text: data! };
      const concurrency = values.concurrency === undefined ? DEFAULT_CONCURRENCY : Number(values.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1000) {
        throw new UsageError(`--concurrency: expected a whole number from 1 to 1000, got "${values.concurrency}"`, command);
      }
      return { command, ...globals(values, env), pattern, answer, concurrency, group: values.group };
    }
    case 'stats': {
      const { values, positionals } = parse(rest, { ...GLOBAL_OPTIONS, ...COMMAND_OPTIONS.stats }, command);
      if (values.help) return { command: 'help', topic: command };
      if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`, command);
      return { command, ...globals(values, env), json: values.json ?? false };
    }
    case 'presence': {
      const { values, positionals } = parse(rest, { ...GLOBAL_OPTIONS, ...COMMAND_OPTIONS.presence }, command);
      if (values.help) return { command: 'help', topic: command };
      const [pattern, ...extra] = positionals;
      if (pattern === undefined) throw new UsageError('missing channel or pattern', command);
      if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`, command);
      return { command, ...globals(values, env), pattern, members: values.members ?? false, json: values.json ?? false };
    }
  }
}
