import { CrierError, ErrorCode } from './errors.js';

/**
 * A server-side filter on a subscription, as it travels in `subscribe` and `unsubscribe` (`f`).
 * An event passes when it passes every part present: `l` (labels) and `k` (keys).
 */
export interface SubscriptionFilter {
  /** Labels: the event must carry at least one of them (all of them with `la`). */
  l?: string[];
  /** `true`: the event must carry every label of `l`. @default false (any one) */
  la?: boolean;
  /** Keys: the event's key must be one of them. */
  k?: string[];
}

/** Max labels in a filter (and on an event). */
export const MAX_FILTER_LABELS = 16;
/** Max keys in a filter. */
export const MAX_FILTER_KEYS = 256;
/** Max characters of a label (in a filter and on an event). */
export const MAX_LABEL_LENGTH = 64;
/** Max characters of a key (in a filter and on an event). */
export const MAX_KEY_LENGTH = 256;

function strings(v: unknown, what: string, max: number, maxLength: number): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length > max) {
    throw new CrierError(ErrorCode.badFilter, `filter ${what} must be an array of at most ${max} strings`);
  }
  for (const s of v) {
    if (typeof s !== 'string' || s.length === 0 || s.length > maxLength) {
      throw new CrierError(ErrorCode.badFilter, `each filter ${what.slice(0, -1)} must be a string of 1-${maxLength} characters`);
    }
  }
  // Sorted and deduplicated: one filter, one spelling (the subscription's identity).
  return v.length === 0 ? undefined : [...new Set(v as string[])].sort();
}

/**
 * The canonical form of a filter: labels and keys sorted and deduplicated, empty lists and a
 * `la` that changes nothing left out; `undefined` when nothing filters. Throws `bad_filter` for
 * more than 16 labels or 256 keys, a label not 1-64 characters, a key not 1-256 characters.
 */
export function canonicalFilter(f: SubscriptionFilter | undefined): SubscriptionFilter | undefined {
  if (f === undefined || f === null) return undefined;
  if (typeof f !== 'object' || Array.isArray(f)) throw new CrierError(ErrorCode.badFilter, 'a filter must be a map');
  const l = strings(f.l, 'labels', MAX_FILTER_LABELS, MAX_LABEL_LENGTH);
  const k = strings(f.k, 'keys', MAX_FILTER_KEYS, MAX_KEY_LENGTH);
  if (f.la !== undefined && f.la !== null && typeof f.la !== 'boolean') {
    throw new CrierError(ErrorCode.badFilter, 'filter la must be a boolean');
  }
  if (!l && !k) return undefined;
  const out: SubscriptionFilter = {};
  if (l) out.l = l;
  // With one label, any and all are the same: one spelling.
  if (l && l.length > 1 && f.la === true) out.la = true;
  if (k) out.k = k;
  return out;
}

/** A string naming a canonical filter: `''` for none. Two subscriptions are one when pattern and this agree. */
export function filterId(f: SubscriptionFilter | undefined): string {
  return f === undefined ? '' : JSON.stringify([f.l ?? 0, f.la ? 1 : 0, f.k ?? 0]);
}

/** Whether an event with `labels` and `key` passes the canonical filter `f` (always, when none). */
export function passesFilter(f: SubscriptionFilter | undefined, labels: readonly string[] | undefined, key: string | undefined): boolean {
  if (f === undefined) return true;
  if (f.k && (key === undefined || !f.k.includes(key))) return false;
  if (f.l) {
    if (!labels) return false;
    return f.la ? f.l.every((l) => labels.includes(l)) : f.l.some((l) => labels.includes(l));
  }
  return true;
}
