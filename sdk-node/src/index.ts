import { CrierWebSocket } from './websocket.js';
import { connect as connectWith, type ClientOptions, type CrierClientFull } from '@crier/sdk-web/full';

// The public surface, named (as in sdk-web's full entry point): everything of `@crier/sdk-web/full`,
// except its `connect`, which the one below replaces. A bundle for a browser gets `./browser.js`
// instead (the `browser` condition of this package's exports), which leaves `ws` out.
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from '@crier/sdk-web/full';
export { encodeText, decodeText, encodeJson, decodeJson } from '@crier/sdk-web/full';
export type { WebSocketLike, WebSocketConstructor, LifecycleTarget } from '@crier/sdk-web/full';
export type {
  ClientOptions,
  ReconnectOptions,
  LifecycleOptions,
  Timers,
  CrierClientFull as CrierClient,
  IterableSubscription,
  ClientState,
  StateInfo,
  ClientLimits,
  CrierEvent,
  PublishAck,
  PublishOptions,
  FireAndForgetOptions,
  DroppedNotice,
  Subscription,
  SubscribeFilter,
  EventHandler,
  StateListener,
  DroppedListener,
  ErrorListener,
  ClientSession,
  ResumedInfo,
  ResumedListener,
  SubscribeOptions,
  HistoryOptions,
  HistoryPage,
} from '@crier/sdk-web/full';
export { history, events, withFilters } from '@crier/sdk-web/full';
export { CrierError, ErrorCode, CloseCode } from '@crier/sdk-web/full';

/**
 * Creates a crier client in Node: the `@crier/sdk-web` client with the `ws` package's WebSocket
 * (Node 20 has no global one). Pass `options.WebSocket` to use another implementation.
 * Returns at once and connects in the background; see `ready()`.
 */
export function connect(url: string, options: ClientOptions = {}): CrierClientFull {
  return connectWith(url, { ...options, WebSocket: options.WebSocket ?? CrierWebSocket });
}
