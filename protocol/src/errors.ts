/**
 * Stable error codes (the type of {@link ErrorCode}). The broker answers every failed request with
 * one of these, and the SDKs raise them as {@link CrierError}. Codes never change meaning; new
 * ones may be added. Each key is its code in camelCase.
 */
export interface ErrorCodes {
  /** The frame is not valid msgpack, or not a frame of the right shape. */
  readonly badFrame: 'bad_frame';
  /** The frame exceeds the decoder's limits (bytes, lengths or nesting depth). */
  readonly frameTooLarge: 'frame_too_large';
  /** The frame's type is not one this side understands. */
  readonly unknownType: 'unknown_type';
  /** A channel name breaks the grammar, or a pattern was used where a channel name is required. */
  readonly badChannel: 'bad_channel';
  /** A subscription pattern breaks the grammar. */
  readonly badPattern: 'bad_pattern';
  /** A subscription filter breaks its bounds (labels, keys, `labelMatch`). */
  readonly badFilter: 'bad_filter';
  /** The event's data exceeds the broker's `maxPayload`. */
  readonly payloadTooLarge: 'payload_too_large';
  /** The connection already holds `maxChannels` subscriptions. */
  readonly maxChannels: 'max_channels';
  /** A request arrived before `hello`, or `hello` arrived twice. */
  readonly helloRequired: 'hello_required';
  /** The client speaks a protocol version the broker does not. */
  readonly unsupportedVersion: 'unsupported_version';
  /** The client-chosen uuid breaks the grammar. */
  readonly badUuid: 'bad_uuid';
  /** The broker is shutting down and takes no new work. */
  readonly shuttingDown: 'shutting_down';
  /** Too many connections on the broker. */
  readonly tooManyConnections: 'too_many_connections';
  /** A browser page from an origin not in the broker's `allowedOrigins`. */
  readonly forbiddenOrigin: 'forbidden_origin';
  /**
   * No valid credential: missing where one is required, malformed, badly signed, of a refused
   * algorithm, expired or not yet valid. The message says which, never echoing the credential.
   */
  readonly unauthorized: 'unauthorized';
  /** The principal's grants do not allow this publish, subscribe, uuid or endpoint. */
  readonly forbidden: 'forbidden';
  /**
   * Over a rate limit: a publish past the connection's (or, over HTTP, the client address's)
   * publish rate, or a message holding more frames than the broker reads at once. The request
   * is refused, the connection kept: slow down (the `welcome`'s `lim.pr`/`lim.pb` give the rate).
   */
  readonly rateLimited: 'rate_limited';
  /**
   * The broker cannot reach what it sequences and shares events through (the Redis engine's
   * Redis): the publish or read was not done, nothing was delivered anywhere. Retry later (HTTP:
   * 503 with `Retry-After`).
   */
  readonly unavailable: 'unavailable';
  /** A request found no subscription anywhere that matches its channel: nobody would answer. */
  readonly noResponders: 'no_responders';
  /** An unexpected failure inside the broker. */
  readonly internal: 'internal';
  // Client-side codes (raised by the SDKs; the broker sends only `timeout` of them, see there).
  /** The request could not be sent, or its answer cannot arrive, because the connection is down. */
  readonly disconnected: 'disconnected';
  /**
   * No answer arrived within the request timeout. Raised by the SDKs; the broker sends it too, for
   * a request of request/reply that no reply answered in time.
   */
  readonly timeout: 'timeout';
  /** The client was closed with `quit()`, or the broker refused it for good. */
  readonly closed: 'closed';
  /** The offline publish queue is full. */
  readonly queueFull: 'queue_full';
}

/**
 * Stable error codes. The broker answers every failed request with one of these, and the SDKs
 * raise them as {@link CrierError}. Codes never change meaning; new ones may be added.
 *
 * Built from the codes' list (each key is its code in camelCase, see {@link ErrorCodes}), which
 * spells each code once in the browser bundle instead of twice.
 */
export const ErrorCode: ErrorCodes = /* @__PURE__ */ codeTable();

function codeTable(): ErrorCodes {
  return Object.freeze(
    Object.fromEntries(codeList().map((code) => [code.replace(/_(.)/g, (_, c: string) => c.toUpperCase()), code])),
  ) as unknown as ErrorCodes;
}

export type ErrorCode = ErrorCodes[keyof ErrorCodes];

/**
 * The codes, spelled once. A function, so that the browser bundle (which names codes as strings
 * and does not export the table) keeps only the set below: `ErrorCode` is marked pure, and goes.
 */
function codeList(): string[] {
  return (
    'bad_frame frame_too_large unknown_type bad_channel bad_pattern bad_filter ' +
    'payload_too_large max_channels hello_required unsupported_version bad_uuid ' +
    'shutting_down too_many_connections forbidden_origin unauthorized forbidden ' +
    'rate_limited unavailable no_responders internal disconnected timeout closed ' +
    'queue_full'
  ).split(' ');
}

const knownCodes: ReadonlySet<string> = new Set(codeList());

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
