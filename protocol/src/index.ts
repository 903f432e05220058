export { ErrorCode, CrierError, isErrorCode } from './errors.js';
export { CloseCode, drainDelayOf, errorOfCloseReason, shouldReconnect } from './close-codes.js';
export {
  PROTOCOL_VERSION,
  FrameType,
  type HelloFrame,
  type WelcomeFrame,
  type HistoryFrame,
  type EventsFrame,
  type StreamPosition,
  type ResumeOutcome,
  ResumeReason,
  type ConnectionLimits,
  type SubscribeFrame,
  type UnsubscribeFrame,
  type PublishFrame,
  type QuitFrame,
  type PingFrame,
  type PongFrame,
  type AuthFrame,
  type RequestFrame,
  type ReplyFrame,
  type ReplyAnswerFrame,
  type PresenceFrame,
  type PresenceAnswerFrame,
  type PresenceChangeFrame,
  type AckFrame,
  type ErrorFrame,
  type EventFrame,
  type DroppedFrame,
  type ClientFrame,
  type BrokerFrame,
  type Frame,
} from './frames.js';
export {
  type DecodeLimits,
  DEFAULT_DECODE_LIMITS,
  DEFAULT_MAX_PAYLOAD,
  DEFAULT_MAX_VALUES,
  MAX_MESSAGE_VALUES,
  FRAME_ENVELOPE_BYTES,
  MAX_HELLO_MESSAGE_BYTES,
  limitsForPayload,
} from './limits.js';
// decodeFrame(s): the lean decoder, for a trusted peer (the SDKs reading their broker).
// decodeUntrustedFrame(s): value budget and field tables too, for the internet (the broker reading clients).
export { encodeFrame, encodeClientFrame, decodeFrame, decodeFrames, type EventMaker } from './codec.js';
export { decodeUntrustedFrame, decodeUntrustedFrames } from './untrusted-codec.js';
export {
  MAX_CHANNEL_LENGTH,
  MAX_CHANNEL_SEGMENTS,
  channelProblem,
  assertChannel,
  assertPattern,
  isWildcard,
  matchPattern,
} from './channel.js';
export { PatternTrie } from './trie.js';
export { patternCovers, expandGrant, grantTemplateProblem, type GrantClaims } from './grants.js';
export {
  MAX_LABELS,
  MAX_FILTER_LABELS,
  MAX_FILTER_KEYS,
  MAX_LABEL_LENGTH,
  MAX_KEY_LENGTH,
  assertEventLabels,
  assertEventKey,
} from './labels.js';
export {
  type SubscriptionFilter,
  type SubscribeFilter,
  toWireFilter,
  canonicalFilter,
  filterId,
  EventFilter,
  compileFilter,
  subscriptionKey,
  patternOfSubscriptionKey,
} from './filter.js';
