import type { EventFilter } from '@crier/protocol';

// Filters themselves (canonical form, compiled evaluation, the subscription key) are the
// protocol's, shared with the SDK.

/** Characters of labels and keys a filter holds: what it costs the broker to keep. */
export function filterChars(filter: EventFilter | undefined): number {
  let chars = 0;
  if (filter !== undefined) for (const s of [...(filter.wire.l ?? []), ...(filter.wire.k ?? [])]) chars += s.length;
  return chars;
}
