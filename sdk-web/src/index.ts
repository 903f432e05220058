export { connect } from './client.js';
export type { BackoffOptions } from './backoff.js';
// The text helpers; the JSON ones (encodeJson, decodeJson) are in `@crier/sdk-web/text` and /full.
export { encodeText, decodeText } from './text.js';
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
// The error class; its codes are a string union type here (compare `error.code === 'bad_channel'`).
// The constant tables (ErrorCode, CloseCode) and backoffDelay are in `@crier/sdk-web/full`: each
// costs the core bundle bytes that most pages never use.
export { CrierError, type ErrorCode, type CloseCode } from '@crier/protocol';
