// An optional entry point (`@crier/sdk-web/history`): a channel's retained events, read on
// demand. The core bundle leaves it out; `@crier/sdk-web/full` has it as `client.history()`.
import { FrameType, assertChannel, type EventsFrame } from '@crier/protocol';
import type { Client } from './client.js';
import { eventsOf } from './retained.js';
import type { CrierClient, HistoryOptions, HistoryPage } from './types.js';

/**
 * A channel's retained events (the broker keeps a bounded history of each channel), oldest
 * first: all of them, or those after `options.since`, at most `options.limit`. Waits until
 * connected. Rejects with a `CrierError`: `bad_channel` (a pattern or a malformed name, before
 * anything is sent), `forbidden`, `timeout`, `disconnected`, `closed`.
 */
export async function history(client: CrierClient, channel: string, options: HistoryOptions = {}): Promise<HistoryPage> {
  const c = client as Client;
  assertChannel(channel);
  await c.ready();
  const { since, limit } = options;
  // Still connected here: only a listener's quit() can come between ready() and this.
  const f = await new Promise<EventsFrame>((resolve, reject) =>
    c.ask((r) => ({ t: FrameType.history, r, c: channel, e: since?.epoch, o: since?.offset, n: limit }), { resolve, reject }, 'history') ||
    reject(c.closedWith),
  );
  return { events: eventsOf(c, f), epoch: f.e!, offset: f.o!, complete: f.ok !== false, more: !!f.m };
}
