// Real redis-server processes for the broker's and e2e's tests: each on 127.0.0.1, a port the OS
// picked and a fresh directory, never the default 6379 (a system Redis there is never used).
// `e2e/scripts/ensure-redis.sh` installs redis-server and redis-cli when they are missing.
//
// Every process started here is killed with SIGKILL when the test process exits, however it
// exits: where util-linux's `setpriv` exists (Debian: always), by the kernel's parent-death signal
// (vitest ends its workers with a signal, so this is the one that acts under vitest), and by a
// `process.on('exit')` hook for a normal or thrown exit (a plain script). Directories go with the
// exit hook, and otherwise on the next start in any process, once the process that made them is
// gone.

import { spawn, spawnSync, execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedisServerOptions {
  /** More redis-server arguments, after the defaults (`--appendonly yes` overrides theirs). */
  args?: string[];
}

export interface RedisServer {
  /** The client port on 127.0.0.1; the same after {@link restart}. */
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** The running (or last) redis-server process's pid; changes on {@link restart}. */
  readonly pid: number;
  /** The server's directory (`--dir`: AOF and RDB files, nodes.conf, redis.log); removed after the test process exits. */
  readonly dir: string;
  /** Whether the process is alive (also while paused). */
  readonly running: boolean;
  /** SIGTERM (after SIGCONT, if paused), SIGKILL if still alive after 5 s; resolves once it exited. */
  stop(): Promise<void>;
  /** SIGKILL (a crash: no shutdown save, no AOF rewrite); resolves once it exited. */
  kill(): Promise<void>;
  /**
   * Starts redis-server again with the same port, directory and arguments (stopping it first if
   * it runs), and resolves once it answers PING (after loading its AOF or RDB, if any).
   */
  restart(): Promise<void>;
  /** SIGSTOP: the process holds its connections and answers nothing (a hung Redis). */
  pause(): void;
  /** SIGCONT after {@link pause}. */
  resume(): void;
}

export interface RedisCluster {
  /** The three masters (slots 0-5460, 5461-10922, 10923-16383), each a {@link RedisServer}. */
  readonly nodes: RedisServer[];
  /** The nodes' urls, for a cluster client's root nodes. */
  readonly urls: string[];
  /** Stops every node and removes their directories. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 10_000;
const POLL_MS = 20;
const STOP_GRACE_MS = 5_000;
const START_ATTEMPTS = 5;

// ---------------------------------------------------------------------------------------------
// Clean-up on exit

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
let exitHook = false;
const DIR_PREFIX = 'crier-redis-';

function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  installExitHook();
}

function installExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const c of live) {
      try {
        if (c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const dir of dirs) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // a dying process may still write there; /tmp is cleaned eventually
      }
    }
  });
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** Removes the directories left by test processes that are gone (killed before their exit hook). */
function sweep(): void {
  let names: string[];
  try {
    names = readdirSync(tmpdir()).filter((name) => name.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const dir = join(tmpdir(), name);
    try {
      const owner = Number(readFileSync(join(dir, 'owner'), 'utf8'));
      if (Number.isInteger(owner) && owner > 0 && !isAlive(owner)) rmSync(dir, { recursive: true, force: true });
    } catch {
      // no owner file yet (being made), or not ours
    }
  }
}

let swept = false;

function newDir(): string {
  if (!swept) {
    swept = true;
    sweep();
  }
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
  writeFileSync(join(dir, 'owner'), String(process.pid));
  dirs.add(dir);
  return dir;
}

let setprivWorks: boolean | undefined;
let redisFound = false;

/** The command line: redis-server itself, or through `setpriv --pdeathsig KILL` (same pid). */
function command(args: string[]): [string, string[]] {
  if (!redisFound) {
    if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) {
      throw new Error('redis-server is not installed (bash e2e/scripts/ensure-redis.sh installs it)');
    }
    redisFound = true;
  }
  setprivWorks ??= spawnSync('setpriv', ['--pdeathsig', 'KILL', 'true'], { stdio: 'ignore' }).status === 0;
  return setprivWorks ? ['setpriv', ['--pdeathsig', 'KILL', 'redis-server', ...args]] : ['redis-server', args];
}

// ---------------------------------------------------------------------------------------------
// Ports and RESP

/** `n` distinct ports free on 127.0.0.1 right now (all held open together, then released). */
async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
    }
    return servers.map((s) => {
      const address = s.address();
      if (address === null || typeof address === 'string') throw new Error('no port from listen(0)');
      return address.port;
    });
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))));
  }
}

/** One reply: `+`, `:` and `$` as their text (`null` for a nil bulk), `-` as `{ error }`. */
type Reply = string | null | { error: string };

/**
 * Sends one command over a fresh TCP connection and resolves with its reply (simple string,
 * error, integer or bulk string; not arrays). Rejects on a connection error or after `timeoutMs`.
 */
function send(port: number, args: string[], timeoutMs = 1000): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | null, reply?: Reply): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(reply ?? null);
    };
    const timer = setTimeout(() => finish(new Error(`no reply to ${args[0]} on port ${port} within ${timeoutMs} ms`)), timeoutMs);
    socket.on('connect', () => {
      const parts = [`*${args.length}\r\n`];
      for (const arg of args) parts.push(`$${Buffer.byteLength(arg)}\r\n${arg}\r\n`);
      socket.write(parts.join(''));
    });
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const eol = buffer.indexOf('\r\n');
      if (eol < 0) return;
      const type = String.fromCharCode(buffer[0] ?? 0);
      const line = buffer.subarray(1, eol).toString();
      if (type === '+' || type === ':') return finish(null, line);
      if (type === '-') return finish(null, { error: line });
      if (type === '$') {
        const length = Number(line);
        if (length < 0) return finish(null, null);
        if (buffer.length < eol + 2 + length + 2) return; // more to come
        return finish(null, buffer.subarray(eol + 2, eol + 2 + length).toString());
      }
      finish(new Error(`unexpected reply type ${JSON.stringify(type)} to ${args[0]} on port ${port}`));
    });
    socket.on('error', (err) => finish(err));
    socket.on('close', () => finish(new Error(`connection to port ${port} closed before a reply to ${args[0]}`)));
  });
}

/**
 * Sends one command to the Redis on `port` (a fresh connection) and resolves with its reply as
 * text (`null` for a nil bulk string); rejects with an error reply. Not for array replies.
 */
export async function redisCommand(port: number, args: string[], timeoutMs = 1000): Promise<string | null> {
  const reply = await send(port, args, timeoutMs);
  if (reply !== null && typeof reply === 'object') throw new Error(`${args.join(' ')}: ${reply.error}`);
  return reply;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// One process

class StartFailed extends Error {
  constructor(
    message: string,
    readonly portTaken: boolean,
  ) {
    super(message);
  }
}

const exited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null;

async function waitForExit(child: ChildProcess): Promise<void> {
  if (exited(child)) return;
  child.ref(); // a script awaiting this must not end with the wait pending
  try {
    await once(child, 'exit');
  } finally {
    child.unref();
  }
}

function logSize(log: string): number {
  try {
    return statSync(log).size;
  } catch {
    return 0;
  }
}

/** What the process logged since `from` (its last lines), for an error message. */
function logSince(log: string, from: number): string {
  try {
    const text = readFileSync(log).subarray(from).toString();
    return text.trim().split('\n').slice(-8).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Starts redis-server with `args` and resolves once it answers PING; throws a {@link StartFailed}. */
async function launch(port: number, dir: string, args: string[]): Promise<ChildProcess> {
  const log = join(dir, 'redis.log');
  const from = logSize(log);
  const [file, argv] = command([
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--logfile', log, ...args,
  ]);
  // Its log file gets its stderr too: a bad argument is reported there, before the log opens.
  const stderr = openSync(log, 'a');
  let child: ChildProcess;
  try {
    child = spawn(file, argv, { cwd: dir, stdio: ['ignore', 'ignore', stderr] });
  } finally {
    closeSync(stderr);
  }
  child.unref(); // a test that forgets stop() must not keep its worker alive; the exit hook kills it
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));
  track(child);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'no answer yet';
  for (;;) {
    if (spawnError) throw new StartFailed(`redis-server did not start: ${spawnError.message}`, false);
    if (exited(child)) {
      const why = logSince(log, from);
      const status = child.exitCode ?? child.signalCode;
      throw new StartFailed(`redis-server on port ${port} exited (${status}) before answering PING:\n${why}`, /Address already in use/.test(why));
    }
    try {
      const reply = await send(port, ['PING'], 500);
      if (reply === 'PONG') return child;
      last = JSON.stringify(reply); // -LOADING while it reads its AOF
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await waitForExit(child);
      const why = logSince(log, from);
      throw new StartFailed(`redis-server on port ${port} did not answer PING within ${READY_TIMEOUT_MS} ms (last: ${last}):\n${why}`, false);
    }
    await sleep(POLL_MS);
  }
}

class Instance implements RedisServer {
  readonly url: string;
  private paused = false;

  constructor(
    readonly port: number,
    readonly dir: string,
    private readonly args: string[],
    private child: ChildProcess,
  ) {
    this.url = `redis://127.0.0.1:${port}`;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return !exited(this.child);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (exited(child)) return;
    if (this.paused) this.resume(); // a stopped process would not act on SIGTERM until then
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    try {
      await waitForExit(child);
    } finally {
      clearTimeout(timer);
    }
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (exited(child)) return;
    child.kill('SIGKILL');
    this.paused = false;
    await waitForExit(child);
  }

  async restart(): Promise<void> {
    await this.stop();
    // Only a port taken meanwhile by another process stops it: try a few times, then say so.
    for (let attempt = 1; ; attempt++) {
      try {
        this.child = await launch(this.port, this.dir, this.args);
        return;
      } catch (err) {
        if (!(err instanceof StartFailed && err.portTaken && attempt < START_ATTEMPTS)) throw err;
        await sleep(100);
      }
    }
  }

  pause(): void {
    if (exited(this.child)) throw new Error(`redis-server on port ${this.port} is not running`);
    this.child.kill('SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    if (exited(this.child)) return;
    this.child.kill('SIGCONT');
    this.paused = false;
  }
}

/**
 * Starts redis-server on ports the OS picked (`ports` free ports: the client port, then any more
 * the arguments need) and a fresh directory; a port taken between picking and binding means new
 * ports, up to {@link START_ATTEMPTS} times.
 */
async function startOn(ports: number, args: (ports: number[]) => string[]): Promise<Instance> {
  const dir = newDir();
  for (let attempt = 1; ; attempt++) {
    const picked = await freePorts(ports);
    const port = picked[0] as number;
    const all = args(picked);
    try {
      return new Instance(port, dir, all, await launch(port, dir, all));
    } catch (err) {
      if (!(err instanceof StartFailed && err.portTaken && attempt < START_ATTEMPTS)) throw err;
    }
  }
}

/**
 * A redis-server on 127.0.0.1 and a free port, with no persistence (`--save '' --appendonly no`)
 * and a fresh directory, plus `options.args` (`['--appendonly', 'yes']` for the AOF tests);
 * resolves once it answers PING.
 */
export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const extra = options.args ?? [];
  return startOn(1, () => extra);
}

/**
 * A Redis Cluster of three masters on 127.0.0.1 (no replicas, node timeout 2 s), created with
 * `redis-cli --cluster create`; resolves once every node reports `cluster_state:ok`. Each node's
 * cluster bus has its own free port (`--cluster-port`), not port + 10000.
 */
export async function startRedisCluster(): Promise<RedisCluster> {
  const nodes: Instance[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop()));
    for (const n of nodes) {
      rmSync(n.dir, { recursive: true, force: true });
      dirs.delete(n.dir);
    }
  };
  try {
    for (let i = 0; i < 3; i++) {
      nodes.push(
        await startOn(2, ([, bus]) => [
          '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
          '--cluster-node-timeout', '2000', '--cluster-port', String(bus),
        ]),
      );
    }
    await new Promise<void>((resolve, reject) => {
      const addresses = nodes.map((n) => `127.0.0.1:${n.port}`);
      execFile(
        'redis-cli',
        ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'],
        { timeout: READY_TIMEOUT_MS },
        (err, stdout, stderr) => {
          if (err) reject(new Error(`redis-cli --cluster create failed: ${err.message}\n${stdout}${stderr}`));
          else resolve();
        },
      );
    });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (const node of nodes) {
      for (;;) {
        const info = await redisCommand(node.port, ['CLUSTER', 'INFO']).catch((err: Error) => err.message);
        if (info?.includes('cluster_state:ok')) break;
        if (Date.now() > deadline) throw new Error(`cluster node ${node.port} not ok within ${READY_TIMEOUT_MS} ms:\n${info}`);
        await sleep(50);
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes, urls: nodes.map((n) => n.url), stop };
}
