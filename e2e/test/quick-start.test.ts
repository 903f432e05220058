// The README's first command, as a supervisor runs it: `npm start`, then SIGTERM to the process
// it started (npm's own pid, what Docker, systemd or a process manager signals). The broker must
// stop cleanly, free its port, and `npm start` exit 0: not leave the broker reparented to PID 1.
import { spawn } from 'node:child_process';
import { connect as connectTcp } from 'node:net';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { CliProcess } from './cli/run-cli.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Resolves with the error code of a TCP connection attempt to 127.0.0.1:port ('connected' if it opened). */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connectTcp(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

// `npm start` runs the setup (install and build, both no-ops when up to date) before starting.
it('npm start, then SIGTERM to npm: the broker closes, its port is free, and npm exits 0', { timeout: 180_000 }, async () => {
  const npm = new CliProcess(
    spawn('npm', ['start', '--', '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn'], { cwd: ROOT, stdio: 'pipe', detached: true }),
    'npm start',
  );
  try {
    const line = await npm.waitForLine('stdout', /^crier broker listening on /, 'the start line', 150_000);
    const port = Number(/ws:\/\/127\.0\.0\.1:(\d+)\//.exec(line)?.[1]);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);

    npm.proc.kill('SIGTERM');
    expect(await npm.exited(20_000)).toEqual({ code: 0, signal: null });
    expect(await tryConnect(port)).toBe('ECONNREFUSED');
  } finally {
    // On a failure, nothing of the run may outlive the test: npm is its process group's leader.
    try {
      process.kill(-npm.proc.pid!, 'SIGKILL');
    } catch {
      // the group is gone: the normal ending
    }
  }
});
