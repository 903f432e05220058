import { afterAll, beforeAll, describe, it } from 'vitest';
import * as sdk from '@crier/sdk-node';
import { startBrokerProcess, type BrokerProcess } from '../browser/harness.js';
import { cases } from './cases.js';

// The client contract against sdk-node, in Node. contract.browser.test.ts runs the same cases
// against the browser bundle in Chromium.
let broker: BrokerProcess;
beforeAll(async () => {
  broker = await startBrokerProcess(['--max-channels', '3', '--max-payload', '1024']);
});
afterAll(() => broker?.stop());

describe('client contract: sdk-node', () => {
  for (const [name, run] of Object.entries(cases)) it(name, () => run({ sdk, url: broker.url }));
});
