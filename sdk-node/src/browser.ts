// `@crier/sdk-node` as a bundler for a browser resolves it (the `browser` condition of its
// exports): the same names as `./index.js`, all of them `@crier/sdk-web`'s, whose `connect` uses
// the page's own WebSocket. Nothing here imports `ws`, which does not run in a browser.
// Prefer importing `@crier/sdk-web` directly in browser code.
export { connect } from '@crier/sdk-web/full';
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
