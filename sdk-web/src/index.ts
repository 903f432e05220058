export { connect } from './client.js';
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
export { encodeText, decodeText, encodeJson, decodeJson } from './text.js';
export type { WebSocketLike, WebSocketConstructor } from './websocket.js';
export type {
  ClientOptions,
  ReconnectOptions,
  LifecycleOptions,
  LifecycleTarget,
  Timers,
  CrierClient,
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
  RequestOptions,
  Reply,
  Responder,
} from './types.js';
export { CrierError, ErrorCode, CloseCode } from '@crier/protocol';
