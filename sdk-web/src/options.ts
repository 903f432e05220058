import { DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
import { resolveLifecycle, type WatchPage } from './lifecycle.js';
import type { ClientOptions, ClientSession, Timers } from './types.js';
import { resolveWebSocket, type WebSocketConstructor } from './websocket.js';

/** {@link ClientOptions} with every default applied and every number checked. */
export interface ResolvedOptions {
  WebSocket: WebSocketConstructor;
  uuid?: string | undefined;
  secret?: string | undefined;
  resume?: ClientSession | undefined;
  token?: string | undefined;
  /** `getToken` (the resolved fields are named apart from the options they come from, so the
   * bundle can shorten them) */
  fetchToken: (() => string | Promise<string>) | undefined;
  /** `reconnect` */
  backoff: BackoffOptions | false;
  /** `requestTimeout` */
  requestMs: number;
  offline: 'queue' | 'fail';
  /** `offlineQueueSize` */
  queueMax: number;
  /** `iteratorBufferSize` */
  iteratorMax: number;
  clock: Timers;
  random: () => number;
  /** `undefined`: no page lifecycle handling (turned off, or not in a browser). */
  page: WatchPage | undefined;
}

const globalTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  now: () => Date.now(),
};

function check(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= min) || value === Infinity) {
    throw new RangeError(`crier: options.${name} must be a finite number >= ${min}, got ${String(value)}`);
  }
  return value;
}

/** Applies defaults. Throws a `TypeError`/`RangeError` naming the option that is wrong. */
export function resolveOptions(options: ClientOptions): ResolvedOptions {
  const r = options.reconnect;
  const offline = options.offline ?? 'queue';
  if (offline !== 'queue' && offline !== 'fail') {
    throw new TypeError(`crier: options.offline must be 'queue' or 'fail', got ${String(offline)}`);
  }
  return {
    // The fields used as given (uuid, secret, resume, token) come with the rest, copied in one go.
    ...options,
    WebSocket: resolveWebSocket(options.WebSocket),
    fetchToken: options.getToken,
    backoff: r === false ? false : {
      initialDelay: check('reconnect.initialDelay', r?.initialDelay, DEFAULT_BACKOFF.initialDelay, 0),
      maxDelay: check('reconnect.maxDelay', r?.maxDelay, DEFAULT_BACKOFF.maxDelay, 0),
      factor: check('reconnect.factor', r?.factor, DEFAULT_BACKOFF.factor, 1),
    },
    requestMs: check('requestTimeout', options.requestTimeout, 10_000, 1),
    offline,
    queueMax: check('offlineQueueSize', options.offlineQueueSize, 1000, 0),
    iteratorMax: check('iteratorBufferSize', options.iteratorBufferSize, 1000, 1),
    clock: options.timers ?? globalTimers,
    random: options.random ?? Math.random,
    page: resolveLifecycle(options),
  };
}
