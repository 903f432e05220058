// `crier stats`, help and version, usage errors (exit 2) and an unreachable broker (exit 1).
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startBrokerProcess, type BrokerProcess } from '../browser/harness.js';
import { freePort, runCli } from './run-cli.js';

let broker: BrokerProcess;

beforeAll(async () => {
  broker = await startBrokerProcess();
});

afterAll(async () => {
  await broker.stop();
});

it('stats prints aligned "key: value" lines, humanised; --json prints the broker\'s document', async () => {
  const human = await runCli(['stats', '--url', broker.url]);
  expect(human).toMatchObject({ code: 0, stderr: '' });
  const lines = human.stdout.trimEnd().split('\n');
  for (const line of lines) expect(line).toMatch(/^[\w.]+: +\S/);
  // The values line up in one column.
  expect(new Set(lines.map((line) => /^[\w.]+: +/.exec(line)![0].length)).size).toBe(1);
  expect(human.stdout).toMatch(/^connections: +\d+$/m);
  expect(human.stdout).toMatch(/^uptime: +\d+s$/m);
  expect(human.stdout).toMatch(/^memory\.rss: +[\d.]+ MiB$/m);

  const json = await runCli(['stats', '--json', '--url', broker.url]);
  expect(json).toMatchObject({ code: 0, stderr: '' });
  const doc = JSON.parse(json.stdout) as Record<string, unknown>;
  expect(Object.keys(doc)).toEqual(Object.keys(await broker.stats()));
  expect(doc['published']).toEqual(expect.any(Number));
});

it('takes the URL from CRIER_URL, and --url over it', async () => {
  const port = await freePort();
  const fromEnv = await runCli(['stats', '--json'], { env: { CRIER_URL: broker.url } });
  expect(fromEnv.code).toBe(0);
  const flagWins = await runCli(['stats', '--json', '--url', broker.url], { env: { CRIER_URL: `ws://127.0.0.1:${port}` } });
  expect(flagWins.code).toBe(0);
});

it('--help (top level and per command) and --version', async () => {
  const top = await runCli(['--help']);
  expect(top).toMatchObject({ code: 0, stderr: '' });
  expect(top.stdout).toMatch(/^Usage: crier <command>/);
  for (const command of ['listen', 'publish', 'stats']) {
    const help = await runCli([command, '--help']);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(new RegExp(`^Usage: crier ${command}`));
  }
  const pkg = JSON.parse(readFileSync(new URL('../../../sdk-node/package.json', import.meta.url), 'utf8')) as { version: string };
  expect(await runCli(['--version'])).toMatchObject({ code: 0, stdout: `${pkg.version}\n`, stderr: '' });
});

it.each([
  [[], /^crier: missing command\nUsage: crier <command>/],
  [['frobnicate'], /^crier: unknown command "frobnicate"\nUsage: crier <command>/],
  [['listen', '--bogus'], /^crier: Unknown option '--bogus'\nUsage: crier listen/],
  [['listen', '--all-labels'], /^crier: --all-labels needs --labels\nUsage: crier listen/],
  [['publish'], /^crier: missing channel\nUsage: crier publish/],
  [['publish', 'a.b'], /^crier: missing data .*\nUsage: crier publish/],
  [['publish', 'a.b', 'x', 'y'], /^crier: unexpected argument "y"/],
  [['publish', 'a.b', 'x', '--key'], /^crier: Option '--key <value>' argument missing\nUsage: crier publish/],
  [['stats', '--url', 'localhost:10102'], /^crier: --url: expected a ws:\/\/ or wss:\/\/ URL/],
  [['stats', '--timeout', 'soon'], /^crier: --timeout: expected a duration/],
])('usage error %j: a message and the short usage on stderr, exit 2', async (args, message) => {
  const r = await runCli(args);
  expect(r.code).toBe(2);
  expect(r.stdout).toBe('');
  expect(r.stderr).toMatch(message);
  expect(r.stderr).toMatch(/\(crier (\w+ )?--help for more\)\n$/);
});

it('an unreachable broker: publish and stats exit 1 at once with a clear message', async () => {
  const port = await freePort();
  const publish = await runCli(['publish', '--url', `ws://127.0.0.1:${port}`, 'a.b', 'x']);
  expect(publish).toEqual({ code: 1, signal: null, stdout: '', stderr: `crier: cannot reach ws://127.0.0.1:${port}/: connection refused\n` });
  const stats = await runCli(['stats', '--url', `ws://127.0.0.1:${port}`]);
  expect(stats).toEqual({ code: 1, signal: null, stdout: '', stderr: `crier: cannot reach http://127.0.0.1:${port}/stats: connection refused\n` });
});
