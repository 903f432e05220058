export { createBroker } from './broker.js';
export { DEFAULTS, MAX_MAX_PAYLOAD, type BrokerOptions } from './config/options.js';
export type {
  Broker,
  BrokerEvent,
  BrokerStats,
  BrokerSubscription,
  BrokerTop,
  ChannelEvents,
  ChannelCount,
  SlowConsumer,
  PublishOptions,
  PublishResult,
  GroupsStats,
  GroupStats,
} from './types.js';
export { type SubscribeFilter, MAX_LABELS, MAX_LABEL_LENGTH, MAX_KEY_LENGTH } from '@crier/protocol';
export type { Clock, TimerHandle } from './clock.js';
export type {
  Engine,
  EventSink,
  PublishRequest,
  ChannelPosition,
  HistoryPage,
  ReplayPage,
  ParkedSession,
  ParkedSubscription,
  GroupFilterCount,
  SessionClaim,
  SessionTake,
} from './engine/engine.js';
export { StreamEvent, Encoding } from './engine/stream-event.js';
export { MemoryEngine, type MemoryEngineOptions } from './engine/memory-engine.js';
