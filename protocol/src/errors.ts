/**
 * Stable error codes. The broker answers every failed request with one of these, and the SDKs
 * raise them as {@link CrierError}. Codes never change meaning; new ones may be added.
 */
export const ErrorCode = {
  /** The frame is not valid msgpack, or not a frame of the right shape. */
  badFrame: 'bad_frame',
  /** The frame exceeds the decoder's limits (bytes, lengths or nesting depth). */
  frameTooLarge: 'frame_too_large',
  /** The frame's type is not one this side understands. */
  unknownType: 'unknown_type',
  /** A channel name breaks the grammar, or a pattern was used where a channel name is required. */
  badChannel: 'bad_channel',
  /** A subscription pattern breaks the grammar. */
  badPattern: 'bad_pattern',
  /** A subscription filter breaks its bounds (labels, keys, `labelMatch`). */
  badFilter: 'bad_filter',
  /** The event's data exceeds the broker's `maxPayload`. */
  payloadTooLarge: 'payload_too_large',
  /** The connection already holds `maxChannels` subscriptions. */
  maxChannels: 'max_channels',
  /** A request arrived before `hello`, or `hello` arrived twice. */
  helloRequired: 'hello_required',
  /** The client speaks a protocol version the broker does not. */
  unsupportedVersion: 'unsupported_version',
  /** The client-chosen uuid breaks the grammar. */
  badUuid: 'bad_uuid',
  /** The broker is shutting down and takes no new work. */
  shuttingDown: 'shutting_down',
  /** Too many connections on the broker. */
  tooManyConnections: 'too_many_connections',
  /** A browser page from an origin not in the broker's `allowedOrigins`. */
  forbiddenOrigin: 'forbidden_origin',
  /**
   * No valid credential: missing where one is required, malformed, badly signed, of a refused
   * algorithm, expired or not yet valid. The message says which, never echoing the credential.
   */
  unauthorized: 'unauthorized',
  /** The principal's grants do not allow this publish, subscribe, uuid or endpoint. */
  forbidden: 'forbidden',
  /**
   * Over a rate limit: a publish past the connection's (or, over HTTP, the client address's)
   * publish rate, or a message holding more frames than the broker reads at once. The request
   * is refused, the connection kept: slow down (the `welcome`'s `lim.pr`/`lim.pb` give the rate).
   */
  rateLimited: 'rate_limited',
  /**
   * The broker cannot reach what it sequences and shares events through (the Redis engine's
   * Redis): the publish or read was not done, nothing was delivered anywhere. Retry later (HTTP:
   * 503 with `Retry-After`).
   */
  unavailable: 'unavailable',
  /** A request found no subscription anywhere that matches its channel: nobody would answer. */
  noResponders: 'no_responders',
  /** An unexpected failure inside the broker. */
  internal: 'internal',
  // Client-side codes (raised by the SDKs, never sent by the broker).
  /** The request could not be sent, or its answer cannot arrive, because the connection is down. */
  disconnected: 'disconnected',
  /** No answer arrived within the request timeout. */
  timeout: 'timeout',
  /** The client was closed with `quit()`, or the broker refused it for good. */
  closed: 'closed',
  /** The offline publish queue is full. */
  queueFull: 'queue_full',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const knownCodes: ReadonlySet<string> = new Set(Object.values(ErrorCode));

/** True when `code` is one of the documented {@link ErrorCode} values. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && knownCodes.has(code);
}

/** The one error type of crier: a stable `code` and a human message. */
export class CrierError extends Error {
  override readonly name = 'CrierError';
  readonly code: ErrorCode;
  /** The request id the error answers, when known. */
  readonly requestId: number | undefined;

  constructor(code: ErrorCode, message: string, requestId?: number) {
    super(message);
    this.code = code;
    this.requestId = requestId;
  }
}
