// The transport and abuse limits' options: flags, env vars, and their config errors.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseCommand } from '../src/config/config.js';
import { createBroker } from '../src/index.js';

function configError(argv: string[], env: Record<string, string> = {}): ConfigError {
  try {
    parseCommand(argv, env, () => '{}');
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

function options(argv: string[], env: Record<string, string> = {}): Record<string, unknown> {
  const cmd = parseCommand(argv, env, () => '{}');
  if (cmd.action !== 'run') throw new Error(cmd.action);
  return cmd.config.options as Record<string, unknown>;
}

describe('trustedProxies', () => {
  it('is a comma-separated list of IP addresses from a flag or env var', () => {
    expect(options(['--trusted-proxies', '10.0.0.7, ::1'])['trustedProxies']).toEqual(['10.0.0.7', '::1']);
    expect(options([], { EVENT_TRUSTED_PROXIES: '10.0.0.7' })['trustedProxies']).toEqual(['10.0.0.7']);
  });

  it('refuses anything but IP addresses', async () => {
    const err = configError(['--trusted-proxies', '10.0.0.0/8']);
    expect(err.message).toMatch(/^trustedProxies: each entry must be an IPv4 or IPv6 address.*flag --trusted-proxies/);
    expect(configError([], { EVENT_TRUSTED_PROXIES: 'proxy.local' }).source).toBe('env EVENT_TRUSTED_PROXIES');
    await expect(createBroker({ trustedProxies: ['nginx'] })).rejects.toThrow(/invalid option "trustedProxies.0"/);
  });
});

describe('publishRate and publishBurst', () => {
  it('read from flags and env; the burst defaults to twice the rate', async () => {
    expect(options(['--publish-rate', '500'], { EVENT_PUBLISH_BURST: '600' })).toMatchObject({ publishRate: 500, publishBurst: 600 });
    const { resolveOptions } = await import('../src/config/options.js');
    expect(resolveOptions({})).toMatchObject({ publishRate: 10_000, publishBurst: 20_000 });
    expect(resolveOptions({ publishRate: 300 })).toMatchObject({ publishRate: 300, publishBurst: 600 });
  });

  it('refuse zero, fractions and words', async () => {
    expect(configError(['--publish-rate', '0']).message).toBe('publishRate: must be at least 1 per second, got "0" (from flag --publish-rate)');
    expect(configError([], { EVENT_PUBLISH_BURST: 'lots' }).message).toMatch(/^publishBurst: must be a non-negative integer.*env EVENT_PUBLISH_BURST/);
    await expect(createBroker({ publishBurst: 1.5 })).rejects.toThrow(/invalid option "publishBurst": must be an integer/);
  });
});

describe('maxConnectionsPerIp, maxPendingPerIp, handshakeRate', () => {
  it('read from flags and env, with their defaults', async () => {
    expect(options(['--max-connections-per-ip', '50', '--max-pending-per-ip', '4'], { EVENT_HANDSHAKE_RATE: '7' }))
      .toMatchObject({ maxConnectionsPerIp: 50, maxPendingPerIp: 4, handshakeRate: 7 });
    const { resolveOptions } = await import('../src/config/options.js');
    expect(resolveOptions({})).toMatchObject({ maxConnectionsPerIp: 1000, maxPendingPerIp: 16, handshakeRate: 100 });
  });

  it('refuse zero and words', async () => {
    expect(configError(['--max-connections-per-ip', '0']).message).toBe('maxConnectionsPerIp: must be at least 1, got "0" (from flag --max-connections-per-ip)');
    expect(configError([], { EVENT_MAX_PENDING_PER_IP: 'few' }).message).toMatch(/^maxPendingPerIp: must be a non-negative integer.*env EVENT_MAX_PENDING_PER_IP/);
    expect(configError(['--handshake-rate', '0']).key).toBe('handshakeRate');
    await expect(createBroker({ maxPendingPerIp: 0 })).rejects.toThrow(/invalid option "maxPendingPerIp": must be at least 1/);
  });
});

describe('maxTotalBufferBytes', () => {
  it('is a size; the default is a quarter of the machine\'s memory', async () => {
    expect(options(['--max-total-buffer-bytes', '2GiB'])['maxTotalBufferBytes']).toBe(2 * 1024 ** 3);
    const { totalmem } = await import('node:os');
    const { resolveOptions } = await import('../src/config/options.js');
    expect(resolveOptions({}).maxTotalBufferBytes).toBe(Math.floor(totalmem() / 4));
  });

  it('refuses less than 64 KiB and words', async () => {
    expect(configError(['--max-total-buffer-bytes', '1KiB']).message).toBe('maxTotalBufferBytes: must be at least 65536 bytes, got "1KiB" (from flag --max-total-buffer-bytes)');
    expect(configError([], { EVENT_MAX_TOTAL_BUFFER_BYTES: 'most' }).source).toBe('env EVENT_MAX_TOTAL_BUFFER_BYTES');
    await expect(createBroker({ maxTotalBufferBytes: 10 })).rejects.toThrow(/invalid option "maxTotalBufferBytes"/);
  });
});
