// Retained events as handlers get them: what an `events` frame holds (a history page, a rewind).
// Shared by the entry points that read them (history.ts, rewind.ts), outside the core.
import { decodeFrames, type EventsFrame } from '@crier/protocol';
import type { Client } from './client.js';
import { Event, makeEvent } from './event.js';
import type { CrierEvent } from './types.js';

/** The events of an `events` frame, decoded as subscribers get them. */
export function eventsOf(client: Client, frame: EventsFrame): CrierEvent[] {
  const events: CrierEvent[] = [];
  for (const bytes of frame.ev) decodeFrames(bytes, client.connection.decodeLimits, (e) => events.push(e as Event), makeEvent);
  return events;
}
