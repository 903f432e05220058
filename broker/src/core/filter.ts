import type { EventFilter } from '@crier/protocol';

// Filters themselves (canonical form, compiled evaluation, the subscription key) are the
// protocol's, shared with the SDK. sse.ts still imports the class from here.
export { EventFilter } from '@crier/protocol';

/**
 * What the channel index holds: a subscriber and the filter its events must pass. A subscriber
 * with no filter is its own entry (`sub` is itself, `filter` undefined), so unfiltered
 * subscriptions cost nothing more than before; a filtered one is a small {@link FilteredEntry}.
 */
export interface IndexEntry<S> {
  readonly sub: S;
  readonly filter: EventFilter | undefined;
}

/** Characters of labels and keys a filter holds: what it costs the broker to keep. */
export function filterChars(filter: EventFilter | undefined): number {
  let chars = 0;
  if (filter !== undefined) for (const s of [...(filter.wire.l ?? []), ...(filter.wire.k ?? [])]) chars += s.length;
  return chars;
}

export class FilteredEntry<S> implements IndexEntry<S> {
  constructor(
    readonly sub: S,
    readonly filter: EventFilter,
  ) {}
}
