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

/**
 * A publish's priority (`pr`) as the engine takes it: 1 for high, 0 (or absent) for normal;
 * anything else is `bad_frame`.
 */
export function publishPriority(pr: unknown): 0 | 1 {
  if (pr === undefined || pr === 0) return 0;
  if (pr === 1) return 1;
  throw new CrierError(ErrorCode.badFrame, 'a priority (pr) is 1 (high) or 0 (normal)');
}
