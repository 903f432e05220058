// A redis-server for W7, started and stopped by the bench itself: 127.0.0.1, a port the OS picked,
// a fresh directory, no persistence (`--save '' --appendonly no`). It dies with the bench however
// the bench ends: by the kernel's parent-death signal where util-linux's `setpriv` exists, and by
// an exit hook otherwise; a directory left by a killed bench goes on the next start. (The approach
// of broker/test/redis-server.ts, which bench does not import.)
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasSetpriv, hasTaskset, killOnExit } from './processes.js';

export interface BenchRedis {
  url: string;
  port: number;
  pid: number;
  /** SIGTERM, SIGKILL after 2 s; resolves once it exited and its directory is gone. */
  stop(): Promise<void>;
}

let hasRedis: boolean | undefined;

/** Whether redis-server is installed here. */
export function redisAvailable(): boolean {
  hasRedis ??= spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  return hasRedis;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port from listen(0)');
  return address.port;
}

/** Whether a PING on a fresh connection is answered PONG within `ms`. */
function pong(port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), ms);
    let text = '';
    socket.on('connect', () => socket.write('*1\r\n$4\r\nPING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text.includes('\r\n')) done(text.startsWith('+PONG'));
    });
    socket.on('error', () => done(false));
  });
}

const DIR_PREFIX = 'crier-bench-redis-';

/** Removes the directories of benches that are gone (killed before their exit hook ran). */
function sweep(): void {
  for (const name of readdirSync(tmpdir()).filter((n) => n.startsWith(DIR_PREFIX))) {
    const dir = join(tmpdir(), name);
    try {
      const owner = Number(readFileSync(join(dir, 'owner'), 'utf8'));
      if (Number.isInteger(owner) && owner > 0 && !alive(owner)) rmSync(dir, { recursive: true, force: true });
    } catch {
      // no owner file (being made, or not ours)
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Starts redis-server on `cpu` (when taskset exists; `undefined`: not pinned), resolves once it answers PING. */
export async function startRedis(cpu: number | undefined): Promise<BenchRedis> {
  if (!redisAvailable()) throw new Error('redis-server is not installed (bash e2e/scripts/ensure-redis.sh installs it)');
  sweep();
  const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
  writeFileSync(join(dir, 'owner'), String(process.pid));
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const redisArgs = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'];
    const argv = [...(hasSetpriv ? ['setpriv', '--pdeathsig', 'KILL'] : []), 'redis-server', ...redisArgs];
    const [file, ...args] = hasTaskset && cpu !== undefined ? ['taskset', '-c', String(cpu), ...argv] : argv;
    // Its log (stdout, warnings only) and stderr, for the error message if it does not start.
    const child = spawn(file!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (chunk: Buffer): void => {
      if (output.length < 10_000) output += chunk.toString();
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    killOnExit(child, dir);
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) break;
      if (await pong(port, 500)) {
        return {
          url: `redis://127.0.0.1:${port}`,
          port,
          pid: child.pid!,
          stop: async () => {
            if (child.exitCode === null && child.signalCode === null) {
              const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
              child.kill('SIGTERM');
              await once(child, 'exit');
              clearTimeout(timer);
            }
            rmSync(dir, { recursive: true, force: true });
          },
        };
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        break;
      }
      await sleep(20);
    }
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    // A port taken between picking and binding: another port, a few times.
    if (!/Address already in use/i.test(output) || attempt >= 5) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`redis-server on port ${port} did not start:\n${output.trim()}`);
    }
  }
}
