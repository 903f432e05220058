import { spawn } from 'node:child_process';
import { encodeText, type CrierEvent, type Reply } from '@crier/sdk-web/full';
import type { ReplyCommand } from './cli-args.js';
import { say } from './cli-output.js';
import { runSession } from './cli-session.js';

// `crier reply`: answers the requests on a pattern until stopped (see cli-session.ts), with a
// command's output (--exec), the request's own data (--echo), or fixed data.

/** Bytes of a command's stdout kept at most: past it the command is killed and sends no reply. */
const MAX_OUTPUT = 16 * 1024 * 1024;

/** Runs `command` for one request: its data on stdin; resolves with its stdout, or why it failed. */
function execute(command: string, req: CrierEvent, timeout: number): Promise<Uint8Array | string> {
  return new Promise((resolve) => {
    const child = spawn(command, {
      shell: true,
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, CRIER_CHANNEL: req.channel, CRIER_ID: req.id, CRIER_LABELS: req.labels?.join(',') ?? '', CRIER_KEY: req.key ?? '' },
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let failure: string | undefined;
    const timer = setTimeout(() => {
      failure = `no answer within ${timeout} ms (--timeout)`;
      child.kill('SIGKILL');
    }, timeout);
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_OUTPUT) {
        failure = `more than ${MAX_OUTPUT} bytes of output`;
        child.kill('SIGKILL');
      } else chunks.push(chunk);
    });
    child.stdin.on('error', () => {}); // a command that does not read its stdin
    child.stdin.end(req.data);
    child.on('error', (err) => {
      failure = err.message;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (failure === undefined && code !== 0) failure = signal ? `killed by ${signal}` : `exit code ${code}`;
      resolve(failure ?? Buffer.concat(chunks));
    });
  });
}

/** A gate that lets `n` callers through at once; the others wait their turn, in order. */
function limiter(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const queue: (() => void)[] = [];
  return async (task) => {
    if (running >= n) await new Promise<void>((go) => queue.push(go));
    running++;
    try {
      return await task();
    } finally {
      running--;
      queue.shift()?.();
    }
  };
}

/** Runs until a signal (resolves with 0), or a fatal error (resolves with 1). */
export function reply(cmd: ReplyCommand): Promise<number> {
  const { answer } = cmd;
  const gate = limiter(cmd.concurrency);
  const fixed = 'text' in answer ? encodeText(answer.text) : undefined;
  const respond = async (req: CrierEvent): Promise<Reply | undefined> => {
    if ('text' in answer) return fixed;
    if ('echo' in answer) return req.data;
    const command = answer.exec;
    const out = await gate(() => execute(command, req, cmd.timeout));
    if (typeof out === 'string') {
      say(`${req.channel} ${req.id}: ${command}: ${out}; no reply sent`);
      return undefined;
    }
    return out;
  };
  return runSession({
    url: cmd.url,
    token: cmd.token,
    chatty: true,
    wait: false,
    doing: `answering requests on ${cmd.pattern}${cmd.group ? ` in group ${cmd.group}` : ''}`,
    start: (client) => [client.respond(cmd.pattern, respond, { group: cmd.group })],
  });
}
