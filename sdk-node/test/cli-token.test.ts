// The crier command's credential: --token or $CRIER_TOKEN on every command, sent in hello (listen,
// publish) or as `Authorization: Bearer` (stats), and never printed.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeBroker, type FakeBroker } from '../../sdk-web/test/fake-broker.js';
import { FrameType } from '@crier/protocol';
import { COMMAND_USAGE, TOP_USAGE, UsageError, parseCommandLine, type StatsCommand } from '../src/cli-args.js';
import { CliFailure, connectOnce } from '../src/cli-connect.js';
import { stats } from '../src/cli-stats.js';

const SECRET = 'eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.sig';
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

describe('--token and CRIER_TOKEN', () => {
  it('are global options of every command, --token first, an empty value meaning none', () => {
    for (const command of ['listen', 'stats'] as const) {
      expect(parseCommandLine([command, '--token', 't1'])).toMatchObject({ command, token: 't1' });
      expect(parseCommandLine(['--token', 't1', command])).toMatchObject({ command, token: 't1' });
      expect(parseCommandLine([command], { CRIER_TOKEN: 'from-env' })).toMatchObject({ token: 'from-env' });
      expect(parseCommandLine([command, '--token', 'flag'], { CRIER_TOKEN: 'from-env' })).toMatchObject({ token: 'flag' });
      expect(parseCommandLine([command])).toMatchObject({ token: undefined });
      expect(parseCommandLine([command, '--token='], { CRIER_TOKEN: '' })).toMatchObject({ token: undefined });
    }
    expect(parseCommandLine(['publish', 'a.b', 'x', '--token', 't2'])).toMatchObject({ command: 'publish', token: 't2', source: { text: 'x' } });
    // The value of --token before the command is not taken for the command name.
    expect(parseCommandLine(['--token', 'listen', 'stats'])).toMatchObject({ command: 'stats', token: 'listen' });
    expect(() => parseCommandLine(['listen', '--token'])).toThrow(UsageError);
  });

  it('are in the usage text', () => {
    expect(TOP_USAGE).toContain('--token <token>');
    expect(TOP_USAGE).toContain('$CRIER_TOKEN');
    expect(COMMAND_USAGE.stats).toContain('global options');
  });

  it('a usage error never echoes the token', () => {
    let message = '';
    try {
      parseCommandLine(['listen', '--token', SECRET, '--timeout', 'soon']);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('--timeout');
    expect(message).not.toContain(SECRET);
  });
});

describe('the token on the wire', () => {
  async function broker(credential?: (tk: string | undefined) => number | undefined | false): Promise<FakeBroker> {
    const b = await startFakeBroker(credential ? { credential } : {});
    closers.push(() => b.close());
    return b;
  }

  it('publish and listen send it in hello', async () => {
    const b = await broker();
    const client = await connectOnce(b.url, 2000, SECRET);
    closers.push(() => client.quit());
    expect(b.connections[0]!.received(FrameType.hello)[0]!.tk).toBe(SECRET);
  });

  it('a refused token fails with the broker code, without printing the token', async () => {
    const b = await broker(() => false);
    const failure = await connectOnce(b.url, 2000, SECRET).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(CliFailure);
    expect((failure as Error).message).toContain('unauthorized');
    expect((failure as Error).message).not.toContain(SECRET);
  });

  it('stats sends Authorization: Bearer, and a 401 does not print it', async () => {
    const seen: IncomingHttpHeaders[] = [];
    const server: Server = createServer((req, res) => {
      seen.push(req.headers);
      const ok = req.headers.authorization === `Bearer ${SECRET}`;
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
      res.end(ok ? '{"connections":1}' : '{"code":"unauthorized","message":"a bearer token is required"}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise((resolve) => server.close(() => resolve())));
    const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const cmd: StatsCommand = { command: 'stats', url, timeout: 2000, verbose: false, json: true, token: 'wrong-token' };
    const failure = await stats(cmd).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(CliFailure);
    expect((failure as Error).message).toMatch(/answered 401/);
    expect((failure as Error).message).not.toContain('wrong-token');
    expect(seen[0]!.authorization).toBe('Bearer wrong-token');
    const write = process.stdout.write;
    process.stdout.write = (() => true) as typeof process.stdout.write; // the document itself is not the point
    try {
      expect(await stats({ ...cmd, token: SECRET })).toBe(0);
    } finally {
      process.stdout.write = write;
    }
    expect(seen[1]!.authorization).toBe(`Bearer ${SECRET}`);
    await stats({ ...cmd, token: undefined }).catch(() => {});
    expect(seen[2]!.authorization).toBeUndefined();
  });
});
