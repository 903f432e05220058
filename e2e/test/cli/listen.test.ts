// `crier listen` against a real broker process: the JSON and human formats, filters, signals,
// a closed pipe, and waiting for a broker that is not there yet.
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { connect, type CrierClient } from '@crier/sdk-node';
import { startBrokerProcess, type BrokerProcess } from '../browser/harness.js';
import { text, waitFor } from '../helpers.js';
import { CLI, CliProcess, freePort, runCli } from './run-cli.js';

let broker: BrokerProcess;
let publisher: CrierClient;
const running: CliProcess[] = [];
const brokers: BrokerProcess[] = [];

beforeAll(async () => {
  broker = await startBrokerProcess();
  publisher = connect(broker.url);
  await publisher.ready();
});

afterEach(() => {
  for (const cli of running.splice(0)) cli.kill();
});

afterAll(async () => {
  await publisher.quit();
  await Promise.all([broker.stop(), ...brokers.splice(0).map((b) => b.stop())]);
});

/** `crier listen <args>` against `url`, once its subscriptions are acknowledged. */
async function startListen(args: string[], url = broker.url): Promise<CliProcess> {
  // --verbose: the "listening to" line on stderr in --json mode too, once subscribed.
  const cli = CliProcess.start(['listen', '--url', url, '--verbose', ...args]);
  running.push(cli);
  await cli.waitForLine('stderr', /^crier: listening to /, 'the "listening to" line');
  return cli;
}

const parse = (line: string): Record<string, unknown> => JSON.parse(line) as Record<string, unknown>;

it('--json: one JSON object per line for two patterns, binary data as base64, and nothing else', async () => {
  const cli = await startListen(['js.user.>', 'js.order.*', '--json']);
  const binary = new Uint8Array([0xff, 0x00, 0xfe, 0x80, 0x01]);
  const a = await publisher.publish('js.user.created', text('{"id":42}'), { labels: ['signup', 'eu'], key: 'u42' });
  await publisher.publish('js.other', text('not for this listener'));
  const b = await publisher.publish('js.order.paid', binary);
  const c = await publisher.publish('js.user.profile.updated', text('héllo ✓'));

  const lines = (await cli.waitForLines('stdout', 3, 'three events')).map(parse);
  expect(lines).toEqual([
    { id: a.id, channel: 'js.user.created', offset: a.offset, epoch: a.epoch, time: expect.any(String), labels: ['signup', 'eu'], key: 'u42', data: '{"id":42}' },
    { id: b.id, channel: 'js.order.paid', offset: b.offset, epoch: b.epoch, time: expect.any(String), labels: [], key: null, data: { base64: Buffer.from(binary).toString('base64') } },
    { id: c.id, channel: 'js.user.profile.updated', offset: c.offset, epoch: c.epoch, time: expect.any(String), labels: [], key: null, data: 'héllo ✓' },
  ]);
  for (const line of lines) {
    const time = line['time'] as string;
    expect(time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(Math.abs(Date.parse(time) - Date.now())).toBeLessThan(60_000);
  }
  expect(Buffer.from((lines[1]!['data'] as { base64: string }).base64, 'base64')).toEqual(Buffer.from(binary));
});

it('human format: "[hh:mm:ss] channel: text", labels and key before the colon, a hex preview for binary', async () => {
  const cli = await startListen(['hm.>']);
  await publisher.publish('hm.user.created', text('{"id":42}'));
  await publisher.publish('hm.tagged', text('two\nlines'), { labels: ['a', 'b'], key: 'k1' });
  await publisher.publish('hm.bin', new Uint8Array(Array.from({ length: 40 }, (_, i) => i)));
  const lines = await cli.waitForLines('stdout', 3, 'three event lines');
  expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\] hm\.user\.created: \{"id":42\}$/);
  expect(lines[1]).toMatch(/^\[\d\d:\d\d:\d\d\] hm\.tagged \(labels a,b; key k1\): two\\nlines$/);
  expect(lines[2]).toMatch(/^\[\d\d:\d\d:\d\d\] hm\.bin: <binary 40 B: 000102030405060708090a0b0c0d0e0f…>$/);
});

it('SIGINT and SIGTERM quit the stream (the broker frees the connection) and exit 0', async () => {
  const own = await startBrokerProcess();
  brokers.push(own);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const cli = await startListen(['sig.>', '--json'], own.url);
    expect((await own.stats())['connections']).toBe(1);
    cli.proc.kill(signal);
    expect(await cli.exited()).toEqual({ code: 0, signal: null });
    await waitFor('the broker to free the connection', async () => (await own.stats())['connections'] === 0);
    expect(cli.stderrLines.filter((l) => !l.startsWith('crier: listening to '))).toEqual([]);
  }
});

it('a closed pipe (crier listen | head -1) ends it quietly with exit 0', async () => {
  const cli = CliProcess.shell(`"${process.execPath}" "${CLI}" listen --url ${broker.url} pipe.x | head -1; exit \${PIPESTATUS[0]}`);
  running.push(cli);
  await cli.waitForLine('stderr', /^crier: listening to pipe\.x/, 'the "listening to" line');
  // head exits after the first line; the next write finds the pipe closed.
  let exited = false;
  const exit = cli.exited().finally(() => (exited = true));
  for (let i = 0; !exited && i < 1000; i++) await publisher.publish('pipe.x', text(`event ${i}`));
  expect(await exit).toEqual({ code: 0, signal: null });
  expect(cli.stdoutLines).toEqual([expect.stringMatching(/^\[\d\d:\d\d:\d\d\] pipe\.x: event 0$/)]);
  expect(cli.stderrLines).toEqual([expect.stringMatching(/^crier: listening to pipe\.x/)]);
});

it('exits 1 at once when the broker cannot be reached, as publish and stats do', async () => {
  const port = await freePort();
  const result = await runCli(['listen', '--url', `ws://127.0.0.1:${port}`, 'late.>']);
  expect(result.code).toBe(1);
  expect(result.stdout).toBe('');
  expect(result.stderr).toBe(`crier: cannot reach ws://127.0.0.1:${port}/: connection refused (--wait to wait for it)\n`);
});

it('with --wait, says on stderr that it is waiting for a broker that is not there, and connects when it comes', async () => {
  const port = await freePort();
  const cli = CliProcess.start(['listen', '--wait', '--url', `ws://127.0.0.1:${port}`, '--json', 'late.>']);
  running.push(cli);
  const waiting = `crier: waiting for the broker at ws://127.0.0.1:${port}/ (connection refused), retrying…`;
  await cli.waitForLine('stderr', (line) => line === waiting, 'the waiting line');
  const late = await startBrokerProcess(['--port', String(port)]);
  brokers.push(late);
  await waitFor('the listener to subscribe', async () => (await late.stats())['subscriptions'] === 1, 15_000);
  const lateClient = connect(late.url);
  await lateClient.publish('late.event', text('made it'));
  await lateClient.quit();
  const [line] = await cli.waitForLines('stdout', 1, 'the event');
  expect(parse(line!)).toMatchObject({ channel: 'late.event', data: 'made it' });
  expect(cli.stderrLines).toContain(`crier: connected to ws://127.0.0.1:${port}/`);
  cli.proc.kill('SIGINT');
  expect((await cli.exited()).code).toBe(0);
});

it('--labels, --all-labels and --keys filter on the broker', async () => {
  const anyLabel = await startListen(['flt.>', '--json', '--labels', 'red,blue']);
  const allLabels = await startListen(['flt.>', '--json', '--labels', 'red', '--labels', 'blue', '--all-labels']);
  const keyed = await startListen(['flt.>', '--json', '--keys', 'k1,k2']);
  await publisher.publish('flt.a', text('red'), { labels: ['red'] });
  await publisher.publish('flt.b', text('red+blue'), { labels: ['red', 'blue'], key: 'k2' });
  await publisher.publish('flt.c', text('green'), { labels: ['green'], key: 'k1' });
  await publisher.publish('flt.d', text('none'));
  await publisher.publish('flt.end', text('end'), { labels: ['red', 'blue'], key: 'k1' });
  const data = async (cli: CliProcess, n: number): Promise<unknown[]> =>
    (await cli.waitForLines('stdout', n, `${n} events`)).map((l) => parse(l)['data']);
  expect(await data(anyLabel, 3)).toEqual(['red', 'red+blue', 'end']);
  expect(await data(allLabels, 2)).toEqual(['red+blue', 'end']);
  expect(await data(keyed, 3)).toEqual(['red+blue', 'green', 'end']);
});
