import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { cpus } from 'node:os';
import { createInterface } from 'node:readline';

/** Whether `taskset` exists here, to pin the server and the load generator to different cores. */
export const hasTaskset = spawnSync('taskset', ['-V']).status === 0;

/** Whether util-linux's `setpriv` exists here: servers get SIGKILL when the bench dies, however it dies. */
export const hasSetpriv = spawnSync('setpriv', ['--pdeathsig', 'KILL', 'true'], { stdio: 'ignore' }).status === 0;

export interface Server {
  url: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
let hooked = false;

/** Kills `child` (SIGKILL) and removes `dir` when this process exits, if they are still there. */
export function killOnExit(child: ChildProcess, dir?: string): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (dir !== undefined) dirs.add(dir);
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const c of live) {
      try {
        if (c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
}

/**
 * Starts a server script on `cpu` (when taskset exists; `undefined`: not pinned) and waits for its
 * `ws://` address on stdout.
 */
export async function startServer(script: string, args: string[], cpu: number | undefined): Promise<Server> {
  // CRIER_BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the servers.
  const nodeArgs = (process.env['CRIER_BENCH_SERVER_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
  // taskset and setpriv exec what follows them: the pid is the server's.
  const argv = [...(hasSetpriv ? ['setpriv', '--pdeathsig', 'KILL'] : []), process.execPath, ...nodeArgs, script, ...args];
  const [file, ...rest] = hasTaskset && cpu !== undefined ? ['taskset', '-c', String(cpu), ...argv] : argv;
  const proc = spawn(file!, rest, { stdio: ['ignore', 'pipe', 'inherit'] });
  killOnExit(proc);
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
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

/** Pins this process (the load generator) to `cpu` when taskset exists; `undefined`: every cpu. */
export function pinSelf(cpu: number | undefined): void {
  const list = cpu === undefined ? `0-${cpus().length - 1}` : String(cpu);
  if (hasTaskset) spawnSync('taskset', ['-cp', list, String(process.pid)], { stdio: 'ignore' });
}

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ: 100 on Linux, whatever the kernel's HZ). */
const ticksPerSecond = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/**
 * CPU time a process used so far, user + system, all its threads, in ms: utime + stime from
 * /proc/<pid>/stat (10 ms resolution). NaN when it cannot be read (not Linux, process gone).
 */
export function cpuTimeMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
  } catch {
    return NaN;
  }
}
