import { afterAll, beforeAll, describe, it } from 'vitest';
import * as sdk from '@crier/sdk-node';
import { startBrokerProcess, type BrokerProcess } from '../browser/harness.js';
import { startFaultProxy, type FaultProxy } from '../fault-proxy.js';
import { cases, type ContractFaults } from './cases.js';

// The client contract against sdk-node, in Node. contract.browser.test.ts runs the same cases
// against the browser bundle in Chromium.
let broker: BrokerProcess;
let proxy: FaultProxy;
let faults: ContractFaults;
beforeAll(async () => {
  broker = await startBrokerProcess(['--max-channels', '3', '--max-payload', '1024']);
  proxy = await startFaultProxy({ port: broker.port });
  faults = {
    url: proxy.url,
    reset: async () => proxy.reset(),
    refuse: async (on) => proxy.refuse(on),
    latency: async (ms) => proxy.latency(ms),
  };
});
afterAll(async () => {
  await proxy?.close();
  await broker?.stop();
});

describe('client contract: sdk-node', () => {
  for (const [name, run] of Object.entries(cases)) it(name, () => run({ sdk, url: broker.url, faults }));
});
