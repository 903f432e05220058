import { CrierError, ErrorCode } from './errors.js';

// The bounds of an event's labels and key, shared by publishes (on the event) and subscription
// filters (the labels and keys they name): one place, so a filter can name any event's fields.

/** Max labels on an event, and in a filter. */
export const MAX_LABELS = 16;
/** Max labels in a filter: as many as an event may carry. */
export const MAX_FILTER_LABELS = MAX_LABELS;
/** Max keys in a filter. */
export const MAX_FILTER_KEYS = 256;
/** Max characters of a label (on an event and in a filter). */
export const MAX_LABEL_LENGTH = 64;
/** Max characters of a key (on an event and in a filter). */
export const MAX_KEY_LENGTH = 256;

/** Whether `v` is a string of 1 to `maxLength` characters. */
export function isBoundedString(v: unknown, maxLength: number): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= maxLength;
}

/**
 * Throws `bad_frame` unless `labels` is `undefined` or an array of at most {@link MAX_LABELS}
 * strings of 1-{@link MAX_LABEL_LENGTH} characters: the labels of a publish. (`bad_frame`: the
 * frame's fields are wrong, not its channel or data.)
 */
export function assertEventLabels(labels: unknown): asserts labels is string[] | undefined {
  if (labels === undefined) return;
  if (!Array.isArray(labels) || labels.length > MAX_LABELS) {
    throw new CrierError(ErrorCode.badFrame, `labels must be an array of at most ${MAX_LABELS} strings`);
  }
  for (let i = 0; i < labels.length; i++) {
    if (!isBoundedString(labels[i], MAX_LABEL_LENGTH)) {
      throw new CrierError(ErrorCode.badFrame, `each label must be a string of 1-${MAX_LABEL_LENGTH} characters`);
    }
  }
}

/** Throws `bad_frame` unless `key` is `undefined` or a string of 1-{@link MAX_KEY_LENGTH} characters: the key of a publish. */
export function assertEventKey(key: unknown): asserts key is string | undefined {
  if (key !== undefined && !isBoundedString(key, MAX_KEY_LENGTH)) {
    throw new CrierError(ErrorCode.badFrame, `key must be a string of 1-${MAX_KEY_LENGTH} characters`);
  }
}
