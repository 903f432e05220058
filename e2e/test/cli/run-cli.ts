// Runs the built `crier` command (sdk-node/dist/cli.js) as a child process, the way a user does.
// Every wait has a deadline and names what it waited for; nothing sleeps.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

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
  private readonly wakers = new Set<() => void>();
  private readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

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
        this.wake();
      });
      stream.on('error', () => {}); // a test may destroy stdout on purpose
    }
    this.exit = new Promise((resolve) => {
      proc.once('close', (code, signal) => {
        this.wake();
        resolve({ code, signal });
      });
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
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.kill();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${this.name} to exit\nstdout: ${this.stdout}\nstderr: ${this.stderr}`));
      }, timeoutMs);
    });
    return Promise.race([this.exit, deadline]).finally(() => clearTimeout(timer));
  }

  kill(): void {
    if (this.running) this.proc.kill('SIGKILL');
  }

  private wake(): void {
    for (const waker of this.wakers) waker();
  }

  private waitUntil<T>(check: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(poll);
      };
      const poll = (): void => {
        const value = check();
        if (value !== undefined) {
          done();
          resolve(value);
        } else if (!this.running && this.proc.stdout!.readableEnded && this.proc.stderr!.readableEnded) {
          done();
          reject(new Error(`${this.name} exited (${this.proc.exitCode ?? this.proc.signalCode}) before ${what}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`));
      }, timeoutMs);
      this.wakers.add(poll);
      poll();
    });
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
