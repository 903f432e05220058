// `@crier/sdk-web/full`: everything of the core entry point, and a `connect` whose client has
// every optional entry point built in as a method (history, iterable subscriptions). The full
// `<script>` bundle (`crier.full.min.js`) is built from this file; `@crier/sdk-node` uses it.
// A page that counts its bytes imports the core and the function entry points it needs instead.
import { PatternTrie, isWildcard } from '@crier/protocol';
import { Client } from './client.js';
import { withFallback } from './fallback.js';
import { withFilters } from './filter.js';
import { history } from './history.js';
import { presence, watchPresence, type PresenceInfo, type PresenceListener, type PresenceOptions } from './presence.js';
import { withTokenRefresh } from './refresh.js';
import { withRewind } from './rewind.js';
import { request, respond } from './request.js';
import { events } from './stream.js';
import type { Entry, PatternIndex } from './subscriptions.js';
import type {
  ClientOptions,
  CrierClientFull,
  CrierEvent,
  RequestOptions,
  Responder,
  Subscription,
  EventHandler,
  HistoryOptions,
  HistoryPage,
  IterableSubscription,
  SubscribeFilter,
  SubscribeOptions,
} from './types.js';

export * from './index.js';
export { encodeJson, decodeJson } from './text.js';
export { ErrorCode, CloseCode } from '@crier/protocol';
export { backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
export { withFilters } from './filter.js';
export { HttpSocket, withFallback, type FallbackOptions, type EventSourceLike } from './fallback.js';
export { history } from './history.js';
export { presence, watchPresence, type PresenceChange, type PresenceInfo, type PresenceListener, type PresenceOptions } from './presence.js';
export { withTokenRefresh } from './refresh.js';
export { withRewind } from './rewind.js';
export { request, respond, DEFAULT_REQUEST_TIMEOUT } from './request.js';
export { events } from './stream.js';
export type { CrierClientFull, IterableSubscription, RequestOptions, Reply, Responder } from './types.js';

/**
 * The subscriptions' {@link PatternIndex} for many of them (a service's): the entries of a channel
 * name by name (one lookup per event), those of a wildcard pattern in the protocol's segment trie
 * (looked at only when there are some), whose cost follows what matches an event, not how many
 * patterns there are.
 */
function fullIndex(): PatternIndex {
  const byName = new Map<string, Entry[]>();
  const trie = new PatternTrie<Entry>();
  return {
    add(pattern, entry) {
      if (isWildcard(pattern)) return void trie.add(pattern, entry);
      const named = byName.get(pattern);
      if (named) named.push(entry);
      else byName.set(pattern, [entry]);
    },
    remove(pattern, entry) {
      const named = byName.get(pattern);
      if (!named) return void trie.remove(pattern, entry);
      named.splice(named.indexOf(entry), 1);
      if (!named.length) byName.delete(pattern);
    },
    match(event, visit) {
      const named = byName.get(event.channel);
      if (!trie.size) {
        if (named) for (const entry of named) visit(entry, event);
        return;
      }
      const hits = named ? named.slice() : [];
      trie.match(event.channel.split('.'), (entry) => hits.push(entry));
      // In the order the entries were made: handlers run in the order of their subscriptions.
      if (hits.length > 1) hits.sort((a, b) => a.n - b.n);
      for (const entry of hits) visit(entry, event);
    },
  };
}

class FullClient extends Client implements CrierClientFull {
  constructor(url: string, options: ClientOptions) {
    super(url, options);
    withFilters(this);
    withTokenRefresh(this);
    withRewind(this);
    // Many wildcard subscriptions (a service's) cost an event what matches it, not one test each.
    this.subscriptions.index = fullIndex();
  }

  override subscribe(pattern: string, handler?: EventHandler, options?: SubscribeOptions): IterableSubscription;
  override subscribe(pattern: string, filter: SubscribeFilter, handler?: EventHandler, options?: SubscribeOptions): IterableSubscription;
  override subscribe(pattern: string, a?: EventHandler | SubscribeFilter, b?: EventHandler | SubscribeOptions, c?: SubscribeOptions): IterableSubscription {
    const sub = super.subscribe(pattern, a as SubscribeFilter, b as EventHandler, c);
    return Object.assign(sub, { [Symbol.asyncIterator]: () => events(this, sub) });
  }

  history(channel: string, options?: HistoryOptions): Promise<HistoryPage> {
    return history(this, channel, options);
  }

  request(channel: string, data: Uint8Array, options?: RequestOptions): Promise<CrierEvent> {
    return request(this, channel, data, options);
  }

  respond(pattern: string, handler: Responder, options?: SubscribeOptions): Subscription {
    return respond(this, pattern, handler, options);
  }

  presence(channelOrPattern: string, options?: PresenceOptions): Promise<PresenceInfo> {
    return presence(this, channelOrPattern, options);
  }

  watchPresence(channel: string, listener: PresenceListener): Subscription {
    return watchPresence(this, channel, listener);
  }
}

/**
 * Creates a full client (see {@link CrierClientFull}) and connects in the background, like the
 * core entry point's `connect`. In a browser (an `EventSource` and a `WebSocket` at hand) and
 * without `options.WebSocket`, it falls back on its own to the broker's HTTP session where a
 * WebSocket cannot open (`withFallback()` of `@crier/sdk-web/fallback`).
 */
export function connect(url: string, options: ClientOptions = {}): CrierClientFull {
  const g = globalThis as { WebSocket?: unknown; EventSource?: unknown };
  const fallback = !options.WebSocket && typeof g.WebSocket === 'function' && typeof g.EventSource === 'function';
  return new FullClient(url, fallback ? { ...options, WebSocket: withFallback() } : options);
}
