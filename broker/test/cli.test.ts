import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { CloseCode, drainDelayOf } from '@crier/protocol';
import { RawClient, cleanup, waitFor } from './helpers.js';

// The built command, as a user runs it (the test command builds first).
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const children: ChildProcess[] = [];

afterEach(async () => {
  await cleanup();
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code. */
  exited: () => Promise<number | null>;
}

/** Spawns the CLI with `args` and an environment holding no EVENT_* but `env`. */
function spawnCli(args: string[], env: Record<string, string> = {}): Run {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('EVENT_')));
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  let code: number | null | undefined;
  child.on('exit', (c) => (code = c));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited: () => waitFor('the CLI to exit', () => code !== undefined && { code }, { wakeOn: [[child, 'exit']], timeoutMs: 10_000 }).then((r) => r.code),
  };
}

/** Spawns a broker on a free port and resolves with its URL from the line it prints. */
async function startCli(args: string[], env: Record<string, string> = {}): Promise<Run & { url: string }> {
  const run = spawnCli(['--port', '0', '--host', '127.0.0.1', ...args], env);
  const url = await waitFor('the CLI to print its URL', () => /listening on 127\.0\.0\.1:\d+: (ws:\/\/\S+) \(stats: http:\/\/\S+\)/.exec(run.stdout())?.[1], {
    wakeOn: [[run.child.stdout!, 'data']],
    timeoutMs: 10_000,
  });
  return { ...run, url };
}

describe('crier-broker', () => {
  it('starts on the given port, prints its URL, serves, and exits 0 on SIGINT after telling clients 1001', async () => {
    const cli = await startCli([]);
    expect(cli.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/$/);
    const c = await RawClient.connect(cli.url);
    expect(JSON.parse(cli.stderr().split('\n')[0]!)).toMatchObject({ level: 30, msg: 'crier broker listening' });
    cli.child.kill('SIGINT');
    expect(await cli.exited()).toBe(0);
    expect((await c.waitClose()).code).toBe(CloseCode.goingAway);
  });

  it('drains on SIGTERM: readyz 503, each client closed 4009 with a delay, spread over drainWindow; exits 0 within the window and a margin', async () => {
    const window = 2000;
    const cli = await startCli(['--drain-window', `${window}ms`]);
    const clients = await Promise.all(Array.from({ length: 5 }, () => RawClient.connect(cli.url)));
    const signalled = performance.now();
    cli.child.kill('SIGTERM');
    await Promise.race(clients.map((c) => c.waitClose()));
    const readyz = await fetch(new URL('/readyz', cli.url.replace(/^ws/, 'http')));
    expect([readyz.status, await readyz.json()]).toEqual([503, { status: 'draining' }]);
    expect(await cli.exited()).toBe(0);
    // The broker waits for the last batch (4/5 of the window in), not for a deadline past it.
    expect(performance.now() - signalled).toBeLessThan(window + 2500);
    for (const c of clients) {
      const { code, reason } = await c.waitClose();
      expect(code).toBe(CloseCode.draining);
      expect(drainDelayOf(reason)).toBeLessThanOrEqual(window / 2);
    }
    // One line when the drain starts, one when it is done: five batches, the last 1.6 s in (the
    // broker's timers never fire early, so this bound holds on any machine).
    const lines = cli.stderr().trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string; [k: string]: unknown });
    expect(lines.find((l) => l.msg.startsWith('draining'))).toMatchObject({ level: 30, connections: 5, drainWindow: window });
    const drained = lines.find((l) => l.msg === 'drained');
    expect(drained).toMatchObject({ level: 30, closed: 5, open: 0 });
    expect(drained!['ms']).toBeGreaterThanOrEqual((window * 4) / 5);
    expect(lines.at(-1)).toMatchObject({ msg: 'crier broker closed' });
  });

  it('a second signal during the drain closes at once (1001 to the rest) and exits 0', async () => {
    const cli = await startCli(['--drain-window', '60s']);
    const clients = await Promise.all(Array.from({ length: 3 }, () => RawClient.connect(cli.url)));
    cli.child.kill('SIGTERM');
    const first = await Promise.race(clients.map((c) => c.waitClose().then(() => c)));
    expect(first.closed!.code).toBe(CloseCode.draining);
    cli.child.kill('SIGTERM');
    expect(await cli.exited()).toBe(0);
    const rest = clients.filter((c) => c !== first);
    expect(await Promise.all(rest.map(async (c) => (await c.waitClose()).code))).toEqual([CloseCode.goingAway, CloseCode.goingAway]);
  });

  it('applies flags over env over file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'crier-cli-'));
    const file = join(dir, 'crier.json');
    writeFileSync(file, JSON.stringify({ maxChannels: 3, bufferSize: 4, keepAliveInterval: '5s', maxPayload: '2KiB' }));
    const cli = await startCli(['--config', file, '--max-channels', '9', '--log-level', 'warn'], { EVENT_MAX_CHANNELS: '7', EVENT_BUFFER_SIZE: '8' });
    const welcome = await (await RawClient.open(cli.url)).hello();
    expect(welcome).toMatchObject({ ka: 5000, lim: { mc: 9, bs: 8, mp: 2048 } });
    expect(cli.stderr()).toBe(''); // warn level: no startup line
    cli.child.kill('SIGINT');
    expect(await cli.exited()).toBe(0);
  });

  it('prints usage with every option for --help and exits 0', async () => {
    const run = spawnCli(['--help']);
    expect(await run.exited()).toBe(0);
    for (const s of ['--port', 'EVENT_PORT', '10102', '--keep-alive-interval', 'EVENT_KEEP_ALIVE_INTERVAL', '30s', '--max-channels', '--buffer-size', '--[no-]log-slow-consumers', 'EVENT_LOG_PUBLISHED_EVENTS', '--config']) {
      expect(run.stdout()).toContain(s);
    }
  });

  it('prints the version', async () => {
    const run = spawnCli(['--version']);
    expect(await run.exited()).toBe(0);
    expect(run.stdout().trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('exits 2 naming the key and its source for a bad flag, env var or file value, and for an unknown flag', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'crier-cli-'));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"keepAliveInterval": "soon"}');
    const unknown = join(dir, 'unknown.json');
    writeFileSync(unknown, '{"__proto__": {"x": 1}}');
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['--max-channels', '0'], {}, /^crier-broker: invalid config: maxChannels: .*flag --max-channels/],
      [[], { EVENT_BUFFER_SIZE: 'abc' }, /^crier-broker: invalid config: bufferSize: .*env EVENT_BUFFER_SIZE/],
      [['--config', bad], {}, /^crier-broker: invalid config: keepAliveInterval: .*file .*bad\.json/],
      [[], { EVENT_CONFIG: unknown }, /^crier-broker: invalid config: __proto__: forbidden key/],
      [['--frobnicate'], {}, /^crier-broker: invalid config: --frobnicate: unknown flag/],
    ];
    await Promise.all(cases.map(async ([args, env, message]) => {
      const run = spawnCli(args, env);
      expect(await run.exited()).toBe(2);
      expect(run.stderr()).toMatch(message);
      expect(run.stdout()).toBe('');
    }));
  });

  it('exits 1 with a clear message when the port is taken', async () => {
    const first = await startCli([]);
    const port = new URL(first.url).port;
    const run = spawnCli(['--port', port, '--host', '127.0.0.1']);
    expect(await run.exited()).toBe(1);
    expect(run.stderr()).toMatch(/crier-broker: cannot start: .*EADDRINUSE/);
  });
});
