import { expect, it } from 'vitest';
import * as built from '../dist/index.js';

// What a user gets: the built package's exports, each one there and of the right kind.
it('the built package exports createBroker, its constants and the engine seam', async () => {
  expect(Object.keys(built).sort()).toEqual([
    'DEFAULTS', 'Encoding', 'MAX_KEY_LENGTH', 'MAX_LABELS', 'MAX_LABEL_LENGTH', 'MAX_MAX_PAYLOAD', 'MemoryEngine', 'StreamEvent', 'createBroker',
  ]);
  expect(typeof built.MemoryEngine).toBe('function');
  expect(built.DEFAULTS).toMatchObject({ port: 10102, keepAliveInterval: 30_000, maxChannels: 100, bufferSize: 1000 });
  const broker = await built.createBroker({ port: 0, host: '127.0.0.1', logger: false });
  try {
    expect(broker.url).toBe(`ws://127.0.0.1:${broker.port}/`);
    const seen: built.BrokerEvent[] = [];
    broker.subscribe('a.b', (e) => seen.push(e));
    expect(await broker.publish('a.b', new Uint8Array([1]))).toEqual({ id: expect.any(String), offset: 1, epoch: expect.any(String) });
    await new Promise<void>((resolve) => setImmediate(resolve)); // one flush: in-process delivery
    expect(seen).toHaveLength(1);
    const stats: built.BrokerStats = broker.stats();
    expect(stats.published).toBe(1);
  } finally {
    await broker.close();
  }
  expect(broker.url).toMatch(/^ws:\/\/127\.0\.0\.1:[1-9]\d*\/$/); // still names where it was
});
