// `crier presence` against a real broker process, with sdk-node clients subscribed.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connect, type CrierClient } from '@crier/sdk-node';
import { startBrokerProcess, type BrokerProcess } from '../browser/harness.js';
import { runCli } from './run-cli.js';

let broker: BrokerProcess;
const clients: CrierClient[] = [];

beforeAll(async () => {
  broker = await startBrokerProcess();
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.quit()));
  await broker.stop();
});

it('prints how many subscribe to a channel or a pattern; --members and --json; a bad pattern fails', async () => {
  for (const pattern of ['pz.room.1', 'pz.room.*', 'pz.room.*']) {
    const c = connect(broker.url);
    clients.push(c);
    await c.subscribe(pattern, () => {}).ready;
  }
  expect(await runCli(['presence', '--url', broker.url, 'pz.room.1'])).toMatchObject({ code: 0, stdout: '3\n', stderr: '' });
  expect(await runCli(['presence', '--url', broker.url, 'pz.room.*'])).toMatchObject({ code: 0, stdout: '2\n' });
  // Anonymous subscribers on loopback: no ids to show, but the list is given (an admin's grant).
  const json = await runCli(['presence', '--url', broker.url, 'pz.room.1', '--members', '--json']);
  expect(json).toMatchObject({ code: 0, stderr: '' });
  expect(JSON.parse(json.stdout)).toEqual({ subscribers: 3, members: [] });
  const bad = await runCli(['presence', '--url', broker.url, 'a..b']);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toMatch(/presence of a\.\.b: .*bad_pattern/);
  expect((await runCli(['presence', '--url', broker.url])).code).toBe(2);
});
