/** Limits enforced by {@link decodeFrame}. Every frame is checked against all of them. */
export interface DecodeLimits {
  /** Max bytes of one frame. @default 1_114_112 (1 MiB of data plus 64 KiB of envelope) */
  maxFrameBytes: number;
  /** Max bytes of one string. @default 65_536 */
  maxStrLength: number;
  /**
   * Max bytes of one binary field. As large as the frame by default: the receiver checks the
   * event data against its max payload itself, after decoding, so that the refusal
   * (`payload_too_large`) can name the request it answers.
   * @default 1_114_112
   */
  maxBinLength: number;
  /** Max items of one array. @default 1_024 */
  maxArrayLength: number;
  /** Max entries of one map. @default 32 */
  maxMapLength: number;
  /** Max nesting depth of maps and arrays (a frame is depth 1). @default 4 */
  maxDepth: number;
  /**
   * Max msgpack values one frame may hold, counting every map key, every value and every
   * container, fields skipped unread included: what decoding one frame may cost, whatever its
   * bytes hold. The largest frames of the protocol hold about 300 (a `dropped` frame with 100
   * channels, a filter with 256 keys). Optional so that limits written before it still type-check.
   * @default 2_048
   */
  maxValues?: number;
}

/** Default max msgpack values per frame ({@link DecodeLimits.maxValues}). */
export const DEFAULT_MAX_VALUES = 2048;

/**
 * Max msgpack values in all the frames of one message from an untrusted peer: eight frames at
 * their per-frame budget. A message of many valid frames (1 MiB of 1,000-label publishes) costs
 * no more than this; a client's ordinary messages hold a few dozen values per frame.
 */
export const MAX_MESSAGE_VALUES = 8 * DEFAULT_MAX_VALUES;

/**
 * Max bytes of a WebSocket message before `hello` (the `hello` frame and any frames behind it):
 * a client that has not said hello gets no more than this decoded. A larger one closes the
 * connection (`4000`, `frame_too_large`) before a byte of it is decoded.
 */
export const MAX_HELLO_MESSAGE_BYTES = 16 * 1024;

/** Default max bytes of event data: 1 MiB. */
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** Bytes a frame may carry beside its data (channel, labels, key, ids). */
export const FRAME_ENVELOPE_BYTES = 64 * 1024;

export const DEFAULT_DECODE_LIMITS: Readonly<DecodeLimits> = Object.freeze({
  maxFrameBytes: DEFAULT_MAX_PAYLOAD + FRAME_ENVELOPE_BYTES,
  maxStrLength: 64 * 1024,
  maxBinLength: DEFAULT_MAX_PAYLOAD + FRAME_ENVELOPE_BYTES,
  maxArrayLength: 1024,
  maxMapLength: 32,
  maxDepth: 4,
  maxValues: DEFAULT_MAX_VALUES,
});

/** Decode limits for a given max payload: frames (and binary fields) of `maxPayload` + 64 KiB. */
export function limitsForPayload(maxPayload: number): DecodeLimits {
  const maxFrameBytes = maxPayload + FRAME_ENVELOPE_BYTES;
  return { ...DEFAULT_DECODE_LIMITS, maxBinLength: maxFrameBytes, maxFrameBytes };
}
