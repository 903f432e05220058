import {
  CrierError,
  ErrorCode,
  MAX_FILTER_LABELS,
  MAX_KEY_LENGTH,
  MAX_LABEL_LENGTH,
  assertChannel,
} from '@crier/protocol';

/** Max labels on one event: as many as a filter may name (the protocol's bounds, in one place). */
export const MAX_LABELS = MAX_FILTER_LABELS;
export { MAX_KEY_LENGTH, MAX_LABEL_LENGTH };

/**
 * Checks a publish, remote or in-process, and throws the `CrierError` that answers it:
 * `bad_channel` (an invalid name, or a pattern as target), `payload_too_large`, or `bad_frame`
 * for labels or a key out of bounds (the frame's fields are wrong, not the channel or data).
 */
export function validatePublish(
  channel: unknown,
  data: unknown,
  labels: unknown,
  key: unknown,
  maxPayload: number,
): void {
  assertChannel(channel);
  if (!(data instanceof Uint8Array)) throw new CrierError(ErrorCode.badFrame, 'data must be a Uint8Array');
  if (data.length > maxPayload) {
    throw new CrierError(ErrorCode.payloadTooLarge, `data of ${data.length} bytes exceeds maxPayload ${maxPayload}`);
  }
  if (labels !== undefined) {
    if (!Array.isArray(labels) || labels.length > MAX_LABELS) {
      throw new CrierError(ErrorCode.badFrame, `labels must be an array of at most ${MAX_LABELS} strings`);
    }
    for (const label of labels) {
      if (typeof label !== 'string' || label.length === 0 || label.length > MAX_LABEL_LENGTH) {
        throw new CrierError(ErrorCode.badFrame, `each label must be a string of 1-${MAX_LABEL_LENGTH} characters`);
      }
    }
  }
  if (key !== undefined && (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH)) {
    throw new CrierError(ErrorCode.badFrame, `key must be a string of 1-${MAX_KEY_LENGTH} characters`);
  }
}
