// An optional entry point (`@crier/sdk-web/rewind`): subscriptions that start with retained
// events (`subscribe(pattern, handler, { since })`). The core bundle leaves it out (a core client
// refuses `since` with `bad_frame`, naming this entry point); `@crier/sdk-web/full` has it built in.
import type { Client } from './client.js';
import { isLoss } from './pending.js';
import { eventsOf } from './retained.js';
import type { Entry, Handle } from './subscriptions.js';
import type { CrierClient } from './types.js';

/** Each rewinding handle's `since`, asked again after a welcome until its events came. */
const asked = new WeakMap<Handle, number | 'last'>();

/**
 * Lets `client` subscribe with a rewind (`options.since`, see the README's Rewind); returns it.
 * Call it right after `connect()`, before subscribing.
 */
export function withRewind<C extends CrierClient>(client: C): C {
  const c = client as unknown as Client;
  const subs = c.subscriptions;
  subs.rewind = (entry: Entry, handle: Handle, since = asked.get(handle)) => {
    // w = N for the last N events, 0 for the last of each channel (since 0: none). The broker
    // refuses an N that is not an integer from 1 to 1000 (bad_frame).
    const w = since === 'last' ? 0 : since || undefined;
    if (w === undefined) return false;
    asked.set(handle, since!);
    // Until its rewind arrives (asked now if connected, else after the next welcome), live
    // events are not the handle's.
    handle.rewinding = true;
    // The rewind's `events` frame goes to this handle alone, which then goes live. The protocol
    // has it before the ack (always, even empty), so only a failure makes the handle go live
    // without it.
    subs.ask('subscribe', entry, {
      resolve: () => subs.acked(entry),
      reject: (err) => {
        // Lost with the connection: asked again after the next welcome.
        if (!isLoss(err)) handle.rewinding = false;
        subs.failed(entry, err);
      },
      rewound: (frame) => {
        handle.rewinding = false;
        for (const event of eventsOf(c, frame)) handle.deliver(event);
      },
    }, w);
    return true;
  };
  return client;
}
