import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType } from '@crier/protocol';
import { parseCommand } from '../src/config/config.js';
import { RateLimitedLog, formatPrettyLine, prettyStream, redactConfig } from '../src/observe/logger.js';
import { RawClient, cleanup, startBroker, text, waitFor } from './helpers.js';

afterEach(cleanup);

/** A pino logger whose JSON lines land in `entries`. */
function capture(level = 'debug'): { logger: pino.Logger; entries: Record<string, unknown>[] } {
  const entries: Record<string, unknown>[] = [];
  const logger = pino({ level }, { write: (line: string) => entries.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, entries };
}

describe('JSON logs', () => {
  it('say where the broker listens with its effective config, connections, published events and close', async () => {
    const { logger, entries } = capture();
    const b = await startBroker({ logger, logPublishedEvents: true, maxChannels: 7 });
    const start = entries.find((e) => e['msg'] === 'crier broker listening')!;
    expect(start).toMatchObject({ level: 30, url: b.url, config: { port: 0, host: '127.0.0.1', maxChannels: 7, logPublishedEvents: true } });
    expect(Object.keys(start['config'] as object)).not.toContain('logger');

    const c = await RawClient.connect(b.url, 'log-test-uuid');
    await c.request({ t: FrameType.publish, c: 'a.b', d: text('hello') });
    c.send({ t: FrameType.quit });
    await c.waitClose();
    await waitFor('the close to be logged', () => entries.some((e) => e['msg'] === 'connection closed'));
    expect(entries.find((e) => e['msg'] === 'connection open')).toMatchObject({ level: 20, uuid: 'log-test-uuid', remoteAddress: expect.any(String) });
    expect(entries.find((e) => e['msg'] === 'event published')).toMatchObject({
      level: 30, channel: 'a.b', offset: 1, id: expect.any(String), epoch: expect.any(String), bytes: 5,
    });
    expect(entries.find((e) => e['msg'] === 'connection closed')).toMatchObject({ level: 20, uuid: 'log-test-uuid', code: 1000 });
    await b.close();
    expect(entries.at(-1)).toMatchObject({ level: 30, msg: 'crier broker closed' });
  });

  it('redact secret-looking keys at any depth and leave out what is not plain data', () => {
    const config = {
      port: 1, token: 'abc', nested: { password: 'p', ok: true, authToken: 't' }, apiKey: 'k', list: [{ clientSecret: 's', n: 2 }],
      server: new EventEmitter(), handler: () => {}, unset: undefined,
    };
    expect(redactConfig(config)).toEqual({
      port: 1, token: '[redacted]', nested: { password: '[redacted]', ok: true, authToken: '[redacted]' }, apiKey: '[redacted]',
      list: [{ clientSecret: '[redacted]', n: 2 }],
    });
  });
});

describe('RateLimitedLog', () => {
  it('writes a key once per interval, then says how many lines it left out', () => {
    const { logger, entries } = capture('info');
    let now = 0;
    const log = new RateLimitedLog(logger, 1000, 2, () => now);
    expect(log.write('warn', 'a', { n: 1 }, 'refused')).toBe(true);
    expect(log.write('warn', 'a', { n: 2 }, 'refused')).toBe(false);
    expect(log.write('warn', 'a', { n: 3 }, 'refused')).toBe(false);
    expect(log.write('warn', 'b', { n: 4 }, 'refused')).toBe(true);
    now = 999;
    expect(log.write('warn', 'a', { n: 5 }, 'refused')).toBe(false);
    now = 1000;
    expect(log.write('info', 'a', { n: 6 }, 'refused')).toBe(true);
    expect(entries.map((e) => [e['level'], e['n'], e['suppressed']])).toEqual([[40, 1, undefined], [40, 4, undefined], [30, 6, 3]]);
  });

  it('remembers at most maxKeys keys: past them, new keys share one line per interval', () => {
    const { logger, entries } = capture('info');
    let now = 0;
    const log = new RateLimitedLog(logger, 1000, 2, () => now);
    for (const key of ['a', 'b', 'c', 'd', 'e']) log.write('warn', key, { key }, 'refused');
    expect(entries.map((e) => e['key'])).toEqual(['a', 'b', 'c']);
    now = 1500; // every key expired: pruned to make room (at most once per interval)
    for (const key of ['f', 'g', 'h', 'i']) log.write('warn', key, { key }, 'refused');
    expect(entries.map((e) => e['key'])).toEqual(['a', 'b', 'c', 'f', 'g', 'h']);
  });
});

describe('pretty logs', () => {
  const at = new Date(2025, 0, 2, 3, 4, 5).getTime(); // local time 03:04:05

  it('formats one line as HH:MM:SS LEVEL msg key=value, without colour off a terminal', () => {
    const line = JSON.stringify({ level: 30, time: at, pid: 1, hostname: 'h', name: 'crier-broker', msg: 'crier broker listening', url: 'ws://127.0.0.1:1/', n: 3, s: 'a b', obj: { a: 1 } });
    expect(formatPrettyLine(line, false)).toBe('03:04:05 INFO  crier broker listening url=ws://127.0.0.1:1/ n=3 s="a b" obj={"a":1}\n');
    expect(formatPrettyLine(JSON.stringify({ level: 40, time: at, msg: 'slow consumer', uuid: 'u1' }), false)).toBe('03:04:05 WARN  slow consumer uuid=u1\n');
  });

  it('colours the level only when asked, and puts an error stack on indented lines', () => {
    const coloured = formatPrettyLine(JSON.stringify({ level: 50, time: at, msg: 'boom' }), true);
    expect(coloured).toContain('\x1b[31mERROR\x1b[0m');
    const err = { type: 'TypeError', message: 'bad thing', stack: 'TypeError: bad thing\n    at f (x.js:1:1)\n    at g (y.js:2:2)' };
    expect(formatPrettyLine(JSON.stringify({ level: 50, time: at, msg: 'handler threw', err }), false)).toBe(
      '03:04:05 ERROR handler threw err="TypeError: bad thing"\n    at f (x.js:1:1)\n    at g (y.js:2:2)\n',
    );
    expect(formatPrettyLine('not json', false)).toBe('not json\n');
  });

  it('is a pino destination', () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info', base: undefined }, prettyStream({ write: (s: string) => lines.push(s) }, false));
    logger.info({ channel: 'a.b' }, 'hello');
    expect(lines).toEqual([expect.stringMatching(/^\d\d:\d\d:\d\d INFO {2}hello channel=a\.b\n$/)]);
  });
});

describe('--log-format', () => {
  it('takes json or pretty from the flag or EVENT_LOG_FORMAT, and leaves it to the terminal otherwise', () => {
    const config = (argv: string[], env: Record<string, string> = {}) => {
      const c = parseCommand(argv, env);
      if (c.action !== 'run') throw new Error('not a run');
      return c.config;
    };
    expect(config([]).logFormat).toBeUndefined();
    expect(config(['--log-format', 'pretty']).logFormat).toBe('pretty');
    expect(config([], { EVENT_LOG_FORMAT: 'json' }).logFormat).toBe('json');
    expect(config(['--log-format', 'pretty'], { EVENT_LOG_FORMAT: 'json' }).logFormat).toBe('pretty');
    expect(() => parseCommand(['--log-format', 'xml'], {})).toThrow(/^logFormat: must be one of json, pretty, got "xml" \(from flag --log-format\)$/);
  });
});
