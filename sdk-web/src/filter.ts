// An optional entry point (`@crier/sdk-web/filter`): server-side filters on subscriptions
// (labels, keys). The core bundle leaves their code out; `@crier/sdk-web/full` has them built in.
import { compileFilter, toWireFilter } from '@crier/protocol';
import type { Client } from './client.js';
import type { CrierClient } from './types.js';

/**
 * Lets `client` subscribe with a filter (`client.subscribe(pattern, filter, handler)`, see
 * {@link CrierClient.subscribe}); returns it. Without it, a core client's filtered subscribe
 * fails with `bad_filter`.
 */
export function withFilters<C extends CrierClient>(client: C): C {
  (client as unknown as Client).subscriptions.compile = (f) => compileFilter(toWireFilter(f));
  return client;
}
