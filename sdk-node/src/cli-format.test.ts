import { describe, expect, it } from 'vitest';
import { UsageError, parseCommandLine, parseDuration } from './cli-args.js';
import { statsUrlOf } from './cli-connect.js';
import { formatBytes, formatDuration, formatStats, previewData, toJsonEvent } from './cli-format.js';

const bytes = (...b: number[]): Uint8Array => new Uint8Array(b);

describe('formatting', () => {
  it('shows printable UTF-8 as text on one line, anything else as a hex preview', () => {
    expect(previewData(new TextEncoder().encode('{"id":42}'))).toBe('{"id":42}');
    expect(previewData(new TextEncoder().encode('a\nb\tc'))).toBe('a\\nb\tc');
    expect(previewData(bytes(0x61, 0x00))).toBe('<binary 2 B: 6100>');
    expect(previewData(bytes(0xff, 0xfe))).toBe('<binary 2 B: fffe>');
    expect(previewData(new Uint8Array(2048))).toBe(`<binary 2.0 KiB: ${'00'.repeat(16)}…>`);
  });

  it('--json: data as text when valid UTF-8, else base64; labels [] and key null when absent', () => {
    const event = { channel: 'a.b', data: bytes(0xc3, 0x28), id: 'x', offset: 1, epoch: 'e', time: 0 };
    expect(toJsonEvent(event)).toEqual({ id: 'x', channel: 'a.b', offset: 1, epoch: 'e', time: '1970-01-01T00:00:00.000Z', labels: [], key: null, data: { base64: 'wyg=' } });
    expect(toJsonEvent({ ...event, data: bytes(0x68, 0x69), labels: ['l'], key: 'k' })).toMatchObject({ labels: ['l'], key: 'k', data: 'hi' });
  });

  it('humanises bytes, durations and stats', () => {
    expect([formatBytes(512), formatBytes(1536), formatBytes(75 * 1024 * 1024)]).toEqual(['512 B', '1.5 KiB', '75 MiB']);
    expect([formatDuration(42.7), formatDuration(200), formatDuration(7500), formatDuration(90_000)]).toEqual(['42s', '3m 20s', '2h 5m', '1d 1h']);
    expect(formatStats({ connections: 12345, uptime: 61, memory: { rss: 2048 }, latency: { p99Ms: 1.234 } })).toEqual([
      'connections:   12,345',
      'uptime:        1m 1s',
      'memory.rss:    2.0 KiB',
      'latency.p99Ms: 1.23 ms',
    ]);
  });

  it('finds /stats beside the WebSocket path', () => {
    expect(statsUrlOf('ws://127.0.0.1:10102/')).toBe('http://127.0.0.1:10102/stats');
    expect(statsUrlOf('wss://events.example.com/crier')).toBe('https://events.example.com/crier/stats');
  });
});

describe('arguments', () => {
  it('takes global options before or after the command, and the default pattern and URL', () => {
    expect(parseCommandLine(['--url', 'ws://h:1', 'listen'])).toMatchObject({ command: 'listen', url: 'ws://h:1/', patterns: ['>'], filter: undefined });
    expect(parseCommandLine(['listen', 'a.*', '--labels', 'x,y', '--all-labels', '--keys', 'k'])).toMatchObject({
      url: 'ws://127.0.0.1:10102/',
      patterns: ['a.*'],
      filter: { labels: ['x', 'y'], allLabels: true, keys: ['k'] },
    });
    expect(parseCommandLine(['stats'], { CRIER_URL: 'http://b:2' })).toMatchObject({ url: 'ws://b:2/', timeout: 5000 });
  });

  it('reads publish sources', () => {
    expect(parseCommandLine(['publish', 'a.b', 'hi'])).toMatchObject({ source: { text: 'hi' }, ack: true });
    expect(parseCommandLine(['publish', 'a.b', '-', '--no-ack'])).toMatchObject({ source: { stdin: true }, ack: false });
    expect(parseCommandLine(['publish', 'a.b', '--lines'])).toMatchObject({ source: { stdin: true }, lines: true });
    expect(parseCommandLine(['publish', 'a.b', '--file', 'f', '--label', 'x', '--label', 'y'])).toMatchObject({ source: { file: 'f' }, labels: ['x', 'y'] });
    expect(() => parseCommandLine(['publish', 'a.b', 'x', '--file', 'f'])).toThrow(UsageError);
  });

  it('parses durations', () => {
    expect([parseDuration('250', 't'), parseDuration('500ms', 't'), parseDuration('5s', 't'), parseDuration('1m', 't')]).toEqual([250, 500, 5000, 60_000]);
    expect(() => parseDuration('0', '--timeout')).toThrow(UsageError);
  });
});
