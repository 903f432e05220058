import { afterEach, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Broker } from '@crier/broker';
import type { CrierClient } from '@crier/sdk-node';
import { Inbox, Signal, connectClient, getStats, startBroker, waitFor } from './helpers.js';

let broker: Broker | undefined;
let child: ChildProcess | undefined;
const clients: CrierClient[] = [];

afterEach(async () => {
  if (child?.exitCode === null) {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  }
  await Promise.allSettled(clients.splice(0).map((c) => c.quit()));
  await broker?.close();
});

/** The child's stdout as parsed JSON lines, with a way to wait for the first line that matches. */
function linesOf(proc: ChildProcess): (match: (line: Record<string, unknown>) => boolean, what: string) => Promise<Record<string, unknown>> {
  const seen: Record<string, unknown>[] = [];
  const arrived = new Signal();
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    seen.push(JSON.parse(line) as Record<string, unknown>);
    arrived.notify();
  });
  return (match, what) => waitFor(`the child's ${what}`, () => seen.find(match), { timeoutMs: 15_000, wake: arrived });
}

it('a frozen subscriber loses events (counted and reported to it) while a fast one on the same channel gets everything, in order', async () => {
  broker = await startBroker({ bufferSize: 100, maxBufferBytes: 1024 * 1024 });
  const [service, fast] = await Promise.all([connectClient(broker), connectClient(broker)]);
  clients.push(service, fast);
  const inbox = new Inbox(fast, 'load.data');
  await inbox.subscription.ready;

  child = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/frozen-subscriber.mjs', import.meta.url)), broker.url], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const nextLine = linesOf(child);
  await nextLine((l) => l['ready'] === true, 'ready line');

  child.kill('SIGSTOP'); // frozen: it reads nothing from now on

  // 10,000 events of 4 KiB: 40 MiB, far past what the kernel's socket buffers can hold for it.
  const N = 10_000;
  const payload = new Uint8Array(4096).fill(7);
  // In rounds of 25 acked publishes: fewer than the fast subscriber's queue of 100 can hold, so it
  // never falls behind, however slow this machine is.
  for (let i = 0; i < N; i += 25) {
    const batch = [];
    for (let j = i; j < i + 25; j++) batch.push(service.publish('load.data', payload));
    await Promise.all(batch);
  }

  const got = await inbox.waitForCount(N, `all ${N} events at the fast subscriber`, 30_000);
  expect(got.map((e) => e.offset)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
  const stats = await getStats(broker);
  expect(stats['dropped']).toBeGreaterThan(0);
  expect(stats['slowConsumers']).toBe(1);

  child.kill('SIGCONT');
  const notice = await nextLine((l) => typeof l['dropped'] === 'number', 'dropped notice');
  expect(notice['channels']).toEqual([['load.data', notice['dropped']]]);
  await service.publish('load.end', new Uint8Array(0));
  const end = await nextLine((l) => typeof l['received'] === 'number', 'final count');
  // Nothing vanished unaccounted: what it received plus what it was told it lost is everything.
  expect((end['received'] as number) + (notice['dropped'] as number)).toBe(N);
  expect((await getStats(broker))['slowConsumers']).toBe(0);
}, 60_000);
