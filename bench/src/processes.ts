import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** Whether `taskset` exists here, to pin the server and the load generator to different cores. */
export const hasTaskset = spawnSync('taskset', ['-V']).status === 0;

export interface Server {
  url: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Starts a server script on `cpu` (when taskset exists) and waits for its `ws://` address on stdout. */
export async function startServer(script: string, args: string[], cpu: number): Promise<Server> {
  // CRIER_BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the servers.
  const nodeArgs = (process.env['CRIER_BENCH_SERVER_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
  const argv = [process.execPath, ...nodeArgs, script, ...args];
  const proc = hasTaskset
    ? spawn('taskset', ['-c', String(cpu), ...argv], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not print its address within 10 s`)), 10_000);
    const lines = createInterface({ input: proc.stdout! });
    lines.on('line', (line) => {
      const m = /ws:\/\/\S+/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[0].replace(/[).,]+$/, ''));
      }
    });
    proc.once('exit', (code) => reject(new Error(`${script} exited with ${code} before listening`)));
  });
  return {
    url,
    process: proc,
    stop: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

/** Pins this process (the load generator) to `cpu` when taskset exists. */
export function pinSelf(cpu: number): void {
  if (hasTaskset) spawnSync('taskset', ['-cp', String(cpu), String(process.pid)], { stdio: 'ignore' });
}
