// An optional entry point (`@crier/sdk-web/presence`): who subscribes to a channel or a pattern,
// and join/leave notices for a channel. The core bundle leaves it out; `@crier/sdk-web/full` has
// it as `client.presence()`.
import { FrameType, assertChannel, assertPattern, type PresenceAnswerFrame, type PresenceChangeFrame } from '@crier/protocol';
import type { Client } from './client.js';
import { call } from './listeners.js';
import type { CrierClient, PresenceChange, PresenceInfo, PresenceListener, PresenceOptions, Subscription } from './types.js';

export type { PresenceChange, PresenceInfo, PresenceListener, PresenceOptions } from './types.js';

/**
 * Who subscribes to `channelOrPattern`. Waits until connected. Rejects with a `CrierError`:
 * `bad_pattern` (before anything is sent), `forbidden` (no subscribe grant covers it), `timeout`,
 * `disconnected`, `closed`.
 */
export async function presence(client: CrierClient, channelOrPattern: string, options: PresenceOptions = {}): Promise<PresenceInfo> {
  const c = client as Client;
  assertPattern(channelOrPattern);
  await c.ready();
  const f = await new Promise<PresenceAnswerFrame>((resolve, reject) =>
    c.ask((r) => ({ t: FrameType.presence, r, p: channelOrPattern, m: options.members || undefined }), { resolve, reject }, 'presence') ||
    reject(c.closedWith),
  );
  const info: PresenceInfo = { subscribers: f.n };
  if (f.m) info.members = f.m;
  if (f.pa) info.partial = true;
  return info;
}

/** Per client, the listeners of each watched channel (the core hands every notice to one function). */
const watched = new WeakMap<Client, Map<string, Set<PresenceListener>>>();

/**
 * Subscribes to the channel `channel` (a name, not a pattern: `bad_channel`) and calls `listener`
 * whenever a connection starts or stops subscribing to it (not for this client's own). Notices
 * are asked again after every reconnection. The returned subscription's `unsubscribe()` stops them
 * (and the subscription, unless another handle holds it).
 */
export function watchPresence(client: CrierClient, channel: string, listener: PresenceListener): Subscription {
  const c = client as Client;
  assertChannel(channel);
  let channels = watched.get(c);
  if (!channels) {
    watched.set(c, (channels = new Map()));
    const all = channels;
    c.notice = (f: PresenceChangeFrame) => {
      const change: PresenceChange = { channel: f.c, joined: f.j, subscribers: f.n };
      if (f.m !== undefined) change.member = f.m;
      for (const l of all.get(f.c) ?? []) call(l, change);
    };
  }
  let listeners = channels.get(channel);
  if (!listeners) channels.set(channel, (listeners = new Set()));
  listeners.add(listener);
  const sub = c.subscribe(channel);
  // The `pe` of a subscribe: the broker watches the channel for this connection once it holds it.
  // A resumed stream gets its subscriptions back but not the watch: asked again on every connect.
  const ask = (): void => {
    c.ask((r) => ({ t: FrameType.subscribe, r, p: channel, pe: true }), { resolve() {}, reject() {} }, `presence notices of "${channel}"`);
  };
  const stop = c.on('state', (state) => state === 'connected' && ask());
  if (c.state === 'connected') ask();
  return {
    pattern: channel,
    ready: sub.ready,
    unsubscribe: () => {
      stop();
      const set = channels.get(channel);
      set?.delete(listener);
      if (set?.size === 0) channels.delete(channel);
      return sub.unsubscribe();
    },
  };
}
