// Runs the built `crier` command (sdk-node/dist/cli.js) as a child process, the way a user does.
// Every wait has a deadline and names what it waited for; nothing sleeps.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Signal, waitFor } from '../wait-for.js';

export const CLI = fileURLToPath(new URL('../../../sdk-node/dist/cli.js', import.meta.url));

/** The environment without CRIER_URL (unless a test sets it), so the caller's shell does not leak in. */
function envFor(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (!('CRIER_URL' in extra)) delete env['CRIER_URL'];
  return env;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to stdin, which is then closed (closed at once without it). */
  input?: string | Uint8Array;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** Runs `crier <args>` to its end and returns its exit code and output. */
export function runCli(args: string[], options: RunOptions = {}): Promise<CliResult> {
  const cli = new CliProcess(spawn(process.execPath, [CLI, ...args], { stdio: 'pipe', env: envFor(options.env) }), `crier ${args.join(' ')}`);
  cli.proc.stdin!.end(options.input);
  return cli.exited(options.timeoutMs).then(({ code, signal }) => ({ code, signal, stdout: cli.stdout, stderr: cli.stderr }));
}

/** A running process whose output lines tests wait for. */
export class CliProcess {
  stdout = '';
  stderr = '';
  readonly stdoutLines: string[] = [];
  readonly stderrLines: string[] = [];
  /** Notified on every line and at the exit: what waits on this process wake on. */
  private readonly changed = new Signal();
  private status: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(
    readonly proc: ChildProcess,
    readonly name: string,
  ) {
    for (const [stream, lines, key] of [
      [proc.stdout!, this.stdoutLines, 'stdout'],
      [proc.stderr!, this.stderrLines, 'stderr'],
    ] as const) {
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        this[key] += chunk;
      });
      createInterface({ input: stream }).on('line', (line) => {
        lines.push(line);
        this.changed.notify();
      });
      stream.on('error', () => {}); // a test may destroy stdout on purpose
    }
    proc.once('close', (code, signal) => {
      this.status = { code, signal };
      this.changed.notify();
    });
  }

  /** `crier <args>`, running until the test ends it. */
  static start(args: string[], options: { env?: Record<string, string> } = {}): CliProcess {
    return new CliProcess(spawn(process.execPath, [CLI, ...args], { stdio: 'pipe', env: envFor(options.env) }), `crier ${args.join(' ')}`);
  }

  /** A shell pipeline (bash -c), for `crier listen | head -1`. */
  static shell(script: string, options: SpawnOptions = {}): CliProcess {
    return new CliProcess(spawn('bash', ['-c', script], { stdio: 'pipe', env: envFor(), ...options }), script);
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** The first line (from the start) of `stream` that matches; fails naming `what` after the deadline. */
  waitForLine(stream: 'stdout' | 'stderr', match: RegExp | ((line: string) => boolean), what: string, timeoutMs = 10_000): Promise<string> {
    const lines = stream === 'stdout' ? this.stdoutLines : this.stderrLines;
    const test = typeof match === 'function' ? match : (line: string) => match.test(line);
    return this.waitUntil(() => lines.find(test), `${what} on the ${stream} of ${this.name}`, timeoutMs);
  }

  /** Resolves once `stream` has `n` lines. */
  waitForLines(stream: 'stdout' | 'stderr', n: number, what: string, timeoutMs = 10_000): Promise<string[]> {
    const lines = stream === 'stdout' ? this.stdoutLines : this.stderrLines;
    return this.waitUntil(() => (lines.length >= n ? lines : undefined), `${what} (${n} lines) on the ${stream} of ${this.name}`, timeoutMs);
  }

  exited(timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return waitFor(`${this.name} to exit`, () => this.status, { timeoutMs, wake: this.changed, seen: () => this.output() }).catch((err: unknown) => {
      this.kill();
      throw err;
    });
  }

  kill(): void {
    if (this.running) this.proc.kill('SIGKILL');
  }

  private output(): string {
    return `stdout: ${this.stdout}\nstderr: ${this.stderr}`;
  }

  /** `check`'s first value; fails when the process ended without one, or at the deadline. */
  private waitUntil<T>(check: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
    return waitFor(what, () => {
      const value = check();
      if (value === undefined && this.status !== undefined) {
        throw new Error(`${this.name} exited (${this.status.code ?? this.status.signal}) before ${what}\n${this.output()}`);
      }
      return value;
    }, { timeoutMs, wake: this.changed, seen: () => this.output() });
  }
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
