import { describe, expect, it } from 'vitest';
import { ConfigError, SETTINGS, parseCommand, usage, type CliConfig } from '../src/config/config.js';
import { formatDuration, formatSize, parseDuration, parseSize } from '../src/config/units.js';
import { createBroker } from '../src/index.js';

const files = (content: Record<string, string>) => (path: string): string => {
  const text = content[path];
  if (text === undefined) throw new Error(`ENOENT: no such file ${path}`);
  return text;
};

function run(argv: string[], env: Record<string, string> = {}, fileText: Record<string, string> = {}): CliConfig {
  const cmd = parseCommand(argv, env, files(fileText));
  if (cmd.action !== 'run') throw new Error(`expected run, got ${cmd.action}`);
  return cmd.config;
}

function configError(argv: string[], env: Record<string, string> = {}, fileText: Record<string, string> = {}): ConfigError {
  try {
    parseCommand(argv, env, files(fileText));
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('units', () => {
  it('parses durations and sizes', () => {
    expect([parseDuration(250), parseDuration('250'), parseDuration('500ms'), parseDuration('30s'), parseDuration('2m'), parseDuration('1.5s'), parseDuration('1h')])
      .toEqual([250, 250, 500, 30_000, 120_000, 1500, 3_600_000]);
    expect([parseDuration('soon'), parseDuration('5 parsecs'), parseDuration('-1s'), parseDuration(true)]).toEqual([undefined, undefined, undefined, undefined]);
    expect([parseSize('1MiB'), parseSize('512KiB'), parseSize('1kb'), parseSize('8 MB'), parseSize('100'), parseSize(64)])
      .toEqual([1_048_576, 524_288, 1000, 8_000_000, 100, 64]);
    expect(parseSize('1 lot')).toBeUndefined();
    expect([formatDuration(30_000), formatDuration(1500), formatSize(8 * 1024 * 1024), formatSize(1000)]).toEqual(['30s', '1500ms', '8MiB', '1000B']);
  });
});

describe('parseCommand', () => {
  it('with nothing given, sets nothing (the broker applies its defaults)', () => {
    expect(run([])).toEqual({ options: {}, logLevel: 'info' });
  });

  it('reads the request/reply bounds from flags, env and file, and refuses bad ones naming the key', async () => {
    expect(run(['--max-request-timeout', '2s'], { EVENT_MAX_PENDING_REQUESTS: '7' }).options).toEqual({ maxRequestTimeout: 2000, maxPendingRequests: 7 });
    expect(run(['--config', 'c.json'], {}, { 'c.json': '{"maxRequestTimeout": "1m", "maxPendingRequests": 3}' }).options).toEqual({ maxRequestTimeout: 60_000, maxPendingRequests: 3 });
    expect(configError(['--max-pending-requests', '0']).message).toMatch(/^maxPendingRequests: must be at least 1/);
    expect(configError([], { EVENT_MAX_REQUEST_TIMEOUT: 'soon' }).message).toMatch(/^maxRequestTimeout: .*env EVENT_MAX_REQUEST_TIMEOUT/);
    await expect(createBroker({ maxRequestTimeout: 5, logger: false, port: 0 })).rejects.toThrow('invalid option "maxRequestTimeout": must be at least 10 ms');
  });

  it('reads flags, env and file with flags > env > file', () => {
    const file = JSON.stringify({ maxChannels: 3, bufferSize: 4, keepAliveInterval: '5s', logSlowConsumers: false, maxPayload: '2KiB' });
    const config = run(
      ['--config', 'c.json', '--max-channels', '9', '--no-log-published-events'],
      { EVENT_MAX_CHANNELS: '7', EVENT_BUFFER_SIZE: '8', EVENT_LOG_SLOW_CONSUMERS: '1', EVENT_LOG_LEVEL: 'warn', EVENT_PORT: ' ' },
      { 'c.json': file },
    );
    expect(config).toEqual({
      options: { maxChannels: 9, bufferSize: 8, keepAliveInterval: 5000, logSlowConsumers: true, maxPayload: 2048, logPublishedEvents: false },
      logLevel: 'warn',
    });
  });

  it('takes the file from EVENT_CONFIG when there is no --config', () => {
    expect(run([], { EVENT_CONFIG: 'e.json' }, { 'e.json': '{"port": 0, "host": "127.0.0.1", "path": "/crier"}' }).options)
      .toEqual({ port: 0, host: '127.0.0.1', path: '/crier' });
  });

  it('names the key and where a bad value came from', () => {
    expect(configError(['--max-channels', '0']).message).toBe('maxChannels: must be at least 1, got "0" (from flag --max-channels)');
    expect(configError(['--port', '70000']).message).toMatch(/^port: must be at most 65535.*flag --port/);
    expect(configError([], { EVENT_BUFFER_SIZE: 'abc' }).message).toMatch(/^bufferSize: must be a non-negative integer, got "abc" \(from env EVENT_BUFFER_SIZE\)$/);
    expect(configError([], { EVENT_LOG_SLOW_CONSUMERS: 'maybe' }).message).toMatch(/^logSlowConsumers: .*env EVENT_LOG_SLOW_CONSUMERS/);
    expect(configError(['--keep-alive-interval', 'soon']).key).toBe('keepAliveInterval');
    expect(configError(['--log-level', 'loud']).message).toMatch(/^logLevel: must be one of/);
    expect(configError(['--max-payload', '65MiB']).message).toMatch(/^maxPayload: must be at most 67108864/);
    const fromFile = configError(['--config', 'c.json'], {}, { 'c.json': '{"keepAliveInterval": "soon"}' });
    expect([fromFile.key, fromFile.source]).toEqual(['keepAliveInterval', 'file c.json']);
    expect(configError(['--config', 'c.json'], {}, { 'c.json': '{"logSlowConsumers": "yes"}' }).key).toBe('logSlowConsumers');
    expect(configError(['--config', 'c.json'], {}, { 'c.json': '{"maxChannels": 1.5}' }).message).toMatch(/^maxChannels: must be an integer/);
  });

  it('refuses unknown and forbidden file keys, bad JSON and missing files', () => {
    const withFile = (text: string): ConfigError => configError(['--config', 'c.json'], {}, { 'c.json': text });
    expect(withFile('{"maxChannelz": 1}').message).toMatch(/^maxChannelz: unknown key/);
    expect(withFile('{"__proto__": {"polluted": true}}').message).toMatch(/^__proto__: forbidden key/);
    expect(withFile('{"constructor": {}}').key).toBe('constructor');
    expect(withFile('{"prototype": 1}').key).toBe('prototype');
    expect(withFile('[1]').message).toMatch(/must be a JSON object/);
    expect(withFile('{nope').message).toMatch(/^config: not valid JSON/);
    expect(configError(['--config', 'missing.json']).message).toMatch(/^config: cannot read/);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('refuses unknown flags, positionals and contradictions', () => {
    expect(configError(['--nope']).message).toBe('--nope: unknown flag (see --help)');
    expect(configError(['extra']).message).toBe('extra: unexpected argument (see --help)');
    expect(configError(['--log-slow-consumers', '--no-log-slow-consumers']).key).toBe('logSlowConsumers');
    expect(configError(['--port']).key).toBe('--port');
  });

  it('answers --help and --version, and the help names every flag, env var and default', () => {
    expect(parseCommand(['--help'], {})).toEqual({ action: 'help' });
    expect(parseCommand(['-v'], {})).toEqual({ action: 'version' });
    const help = usage();
    for (const s of SETTINGS) {
      expect(help).toContain(s.kind === 'bool' ? `--[no-]${s.flag}` : `--${s.flag}`);
      expect(help).toContain(s.env);
    }
    expect(help).toMatch(/--keep-alive-interval.*EVENT_KEEP_ALIVE_INTERVAL\s+30s/);
    expect(help).toMatch(/--max-buffer-bytes.*8MiB/);
    expect(help).toContain('EVENT_CONFIG');
  });
});

describe('createBroker options', () => {
  it('throws a TypeError naming the bad or unknown key', async () => {
    await expect(createBroker({ maxChannels: 0 })).rejects.toThrow(/invalid option "maxChannels"/);
    await expect(createBroker({ port: -1 })).rejects.toThrow(/invalid option "port"/);
    await expect(createBroker({ maxPayload: 65 * 1024 * 1024 })).rejects.toThrow(/invalid option "maxPayload": must be at most/);
    await expect(createBroker({ path: 'no-slash' })).rejects.toThrow(/invalid option "path"/);
    await expect(createBroker({ keepAliveInterval: 1.5 })).rejects.toThrow(/invalid option "keepAliveInterval": must be an integer/);
    await expect(createBroker({ logger: console as never })).rejects.toThrow(/invalid option "logger"/);
    await expect(createBroker({ maxChanels: 3 } as never)).rejects.toThrow(/unknown option "maxChanels"/);
  });
});
