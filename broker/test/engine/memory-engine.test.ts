// The Engine contract run against the memory engine, as the broker uses it (answers at once), and
// behind promises (answers later, as an engine that sequences over the network does).
import { MemoryEngine } from '../../src/engine/memory-engine.js';
import { AsyncEngine } from './async-engine.js';
import { engineContract, type EngineFactoryOptions, type EngineTraits } from './contract.js';

const memory = ({ clock, limits }: EngineFactoryOptions): MemoryEngine => new MemoryEngine({ ...limits, idempotencyKeys: 10_000 }, clock);

// The memory engine frees parked sessions from the oldest parked and stops at the first one not
// expired (it assumes one ttl for all, the broker's resumeWindow), and takeSession does not check
// the taken one's own expiry: a session parked with a shorter ttl behind a longer one is still
// handed out, and counted, after its ttl.
const traits: EngineTraits = {};

engineContract('memory engine', memory, traits);
engineContract('memory engine behind promises (microtasks)', (options) => new AsyncEngine(memory(options), { defer: 'microtask' }), traits);
engineContract('memory engine behind promises (setImmediate, reads at the call)',
  (options) => new AsyncEngine(memory(options), { defer: 'immediate', reads: 'at-call' }), traits);
