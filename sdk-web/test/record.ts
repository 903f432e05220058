import { vi } from 'vitest';
import type { CrierError } from '@crier/protocol';
import type { ClientState, CrierClient, CrierEvent, DroppedNotice, StateInfo } from '../src/types.js';
import { changed } from './wait-for.js';

export interface Recording {
  states: [ClientState, StateInfo][];
  errors: CrierError[];
  dropped: DroppedNotice[];
  events: CrierEvent[];
}

/** Records everything a client reports, waking `waitFor` on each. */
export function record(client: CrierClient): Recording {
  const r: Recording = { states: [], errors: [], dropped: [], events: [] };
  client.on('state', (state, info) => (r.states.push([state, info]), changed()));
  client.on('error', (error) => (r.errors.push(error), changed()));
  client.on('dropped', (notice) => (r.dropped.push(notice), changed()));
  client.onEvent((event) => (r.events.push(event), changed()));
  return r;
}

/**
 * Runs microtasks at once and keeps what they throw: what a user's handler or listener threw,
 * re-thrown apart (listeners.ts). Undone by `vi.unstubAllGlobals()`.
 */
export function catchRethrown(): unknown[] {
  const thrown: unknown[] = [];
  vi.stubGlobal('queueMicrotask', (task: () => void) => {
    try {
      task();
    } catch (err) {
      thrown.push(err);
    }
  });
  return thrown;
}
