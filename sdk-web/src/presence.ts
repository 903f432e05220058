// An optional entry point (`@crier/sdk-web/presence`): who subscribes to a channel or a pattern,
// and join/leave notices for a channel. The core bundle leaves it out; `@crier/sdk-web/full` has
// it as `client.presence()`.
import { FrameType, assertChannel, assertPattern, type PresenceAnswerFrame, type PresenceChangeFrame } from '@crier/protocol';
import type { Client } from './client.js';
import type { CrierClient, Subscription } from './types.js';

export interface PresenceOptions {
  /**
   * Ask for the principal ids of the subscribers too: given only when your credential's presence
   * grant covers the channel or pattern (else `members` is absent), at most 1000 (sorted), and
   * never an anonymous subscriber's.
   */
  members?: boolean;
}

export interface PresenceInfo {
  /**
   * Connections subscribed, over every node: for a channel name, those an event on it reaches (by
   * any of their subscriptions); for a pattern, those subscribed with exactly that pattern.
   */
  subscribers: number;
  /** The authenticated principals among them, when asked and granted. */
  members?: string[];
}

/** A join or leave on a watched channel. */
export interface PresenceChange {
  channel: string;
  /** true: a connection started subscribing to the channel; false: it stopped. */
  joined: boolean;
  /** Subscribers of the channel (on the broker node that told you) after the change. */
  subscribers: number;
  /** Its principal's id, when your presence grant covers the channel and it is authenticated. */
  member?: string;
}

export type PresenceListener = (change: PresenceChange) => void;

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
  return f.m ? { subscribers: f.n, members: f.m } : { subscribers: f.n };
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
      for (const l of all.get(f.c) ?? []) l(change);
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
