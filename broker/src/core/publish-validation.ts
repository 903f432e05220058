import { CrierError, ErrorCode, assertChannel, assertEventKey, assertEventLabels } from '@crier/protocol';

/**
 * Checks a publish, remote or in-process, and throws the `CrierError` that answers it:
 * `bad_channel` (an invalid name, or a pattern as target), `payload_too_large`, or `bad_frame`
 * for labels or a key out of the protocol's bounds (the frame's fields are wrong, not the
 * channel or data).
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
  assertEventLabels(labels);
  assertEventKey(key);
}
