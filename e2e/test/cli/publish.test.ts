// `crier publish` against a real broker process, checked by an sdk-node subscriber.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connect, type CrierClient } from '@crier/sdk-node';
import { startBrokerProcess, type BrokerProcess } from '../browser/harness.js';
import { Inbox } from '../helpers.js';
import { runCli } from './run-cli.js';

let broker: BrokerProcess;
let subscriber: CrierClient;
let dir: string;

beforeAll(async () => {
  broker = await startBrokerProcess();
  subscriber = connect(broker.url);
  await subscriber.ready();
  dir = mkdtempSync(join(tmpdir(), 'crier-cli-'));
});

afterAll(async () => {
  await subscriber.quit();
  await broker.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function inbox(pattern: string): Promise<Inbox> {
  const box = new Inbox(subscriber, pattern);
  await box.subscription.ready;
  return box;
}

const ID_OFFSET = /^(\S+) (\d+)$/;

it('publishes its argument and prints "id offset"; --label (repeated) and --key arrive with the event', async () => {
  const box = await inbox('pa.>');
  const r = await runCli(['publish', '--url', broker.url, 'pa.user.created', '{"id":42}', '--label', 'signup', '--label', 'eu', '--key', 'u42']);
  expect(r).toMatchObject({ code: 0, stderr: '' });
  const [event] = await box.waitForCount(1);
  expect(r.stdout).toBe(`${event!.id} ${event!.offset}\n`);
  expect(event).toMatchObject({ channel: 'pa.user.created', labels: ['signup', 'eu'], key: 'u42', offset: 1 });
  expect(box.texts()).toEqual(['{"id":42}']);
});

it('"-" publishes stdin byte for byte (binary too), and --json prints the ack', async () => {
  const box = await inbox('pb.raw');
  const bytes = new Uint8Array([0, 1, 2, 0xff, 0x0a, 0x0d, 0x80]);
  const r = await runCli(['publish', 'pb.raw', '-', '--json', '--url', broker.url], { input: bytes });
  expect(r).toMatchObject({ code: 0, stderr: '' });
  const [event] = await box.waitForCount(1);
  expect(event!.data).toEqual(bytes);
  expect(JSON.parse(r.stdout)).toEqual({ id: event!.id, offset: 1, epoch: event!.epoch, channel: 'pb.raw' });
});

it('--lines publishes one event per stdin line (empty lines skipped) and prints one ack line each, in order', async () => {
  const box = await inbox('pc.lines');
  const r = await runCli(['publish', '--url', broker.url, 'pc.lines', '--lines'], { input: 'first\nsecond\n\nthird\n' });
  expect(r).toMatchObject({ code: 0, stderr: '' });
  const events = await box.waitForCount(3);
  expect(box.texts()).toEqual(['first', 'second', 'third']);
  const printed = r.stdout.trimEnd().split('\n').map((line) => ID_OFFSET.exec(line)!.slice(1));
  expect(printed).toEqual(events.map((e) => [e.id, String(e.offset)]));
  expect(events.map((e) => e.offset)).toEqual([1, 2, 3]);
});

it('--file publishes the file (and with --lines, its lines)', async () => {
  const box = await inbox('pd.*');
  const file = join(dir, 'payload.json');
  writeFileSync(file, '{"a":1}\n{"a":2}\n');
  expect((await runCli(['publish', '--url', broker.url, 'pd.whole', '--file', file])).code).toBe(0);
  expect((await runCli(['publish', '--url', broker.url, 'pd.lines', '--file', file, '--lines'])).code).toBe(0);
  await box.waitForCount(3);
  expect(box.events.map((e) => [e.channel, new TextDecoder().decode(e.data)])).toEqual([
    ['pd.whole', '{"a":1}\n{"a":2}\n'],
    ['pd.lines', '{"a":1}'],
    ['pd.lines', '{"a":2}'],
  ]);
  const missing = await runCli(['publish', '--url', broker.url, 'pd.x', '--file', join(dir, 'nope')]);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toMatch(/^crier: cannot read .*nope: /);
});

it('--no-ack publishes and prints nothing', async () => {
  const box = await inbox('pe.fire');
  const r = await runCli(['publish', '--url', broker.url, 'pe.fire', 'and forget', '--no-ack']);
  expect(r).toEqual({ code: 0, signal: null, stdout: '', stderr: '' });
  await box.waitForCount(1);
  expect(box.texts()).toEqual(['and forget']);
});

it('--priority high publishes a high-priority event; another value is a usage error (exit 2)', async () => {
  const box = await inbox('pp.alert');
  const r = await runCli(['publish', '--url', broker.url, 'pp.alert', 'fire', '--priority', 'high']);
  expect(r).toMatchObject({ code: 0, stderr: '' });
  const [event] = await box.waitForCount(1);
  expect(event!.priority).toBe('high');
  const bad = await runCli(['publish', '--url', broker.url, 'pp.alert', 'x', '--priority', 'urgent']);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain('--priority is high or normal');
});

it("an error prints the broker's stable code and message on stderr and exits 1", async () => {
  const bad = await runCli(['publish', '--url', broker.url, 'bad..channel', 'x']);
  expect(bad.code).toBe(1);
  expect(bad.stdout).toBe('');
  expect(bad.stderr).toMatch(/^crier: bad_channel: .+\n$/);
  const wildcard = await runCli(['publish', '--url', broker.url, 'user.*', 'x']);
  expect(wildcard.code).toBe(1);
  expect(wildcard.stderr).toMatch(/^crier: bad_channel: /);
});
