import { CrierError, ErrorCode } from './errors.js';
import { MAX_FILTER_KEYS, MAX_FILTER_LABELS, MAX_KEY_LENGTH, MAX_LABEL_LENGTH, isBoundedString } from './labels.js';

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

/**
 * A server-side filter on a subscription, as the APIs spell it (the SDK's `subscribe`, the
 * broker's in-process `subscribe`): the broker sends only the events that pass every part given.
 * Labels and keys are compared exactly.
 */
export interface SubscribeFilter {
  /** The event must carry at least one of these labels (every one with `allLabels`). At most 16, each 1-64 characters. */
  labels?: string[];
  /** `true`: the event must carry every label of `labels`. @default false */
  allLabels?: boolean;
  /** The event's key must be one of these. At most 256, each 1-256 characters. */
  keys?: string[];
}

function assertMap(f: unknown): void {
  if (typeof f !== 'object' || Array.isArray(f)) throw new CrierError(ErrorCode.badFilter, 'filter: not an object');
}

/**
 * The wire spelling of an API filter, not yet checked ({@link canonicalFilter} checks it);
 * `undefined` for none. Throws `bad_filter` for something other than an object.
 */
export function toWireFilter(f: SubscribeFilter | null | undefined): SubscriptionFilter | undefined {
  if (f === undefined || f === null) return undefined;
  assertMap(f);
  // Parts not given stay undefined, which canonicalFilter (and the encoder) take as absent.
  return { l: f.labels, la: f.allLabels, k: f.keys };
}

function strings(v: unknown, what: string, max: number, maxLength: number): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length > max) {
    throw new CrierError(ErrorCode.badFilter, `filter ${what}: not an array of at most ${max}`);
  }
  for (const s of v) {
    if (!isBoundedString(s, maxLength)) {
      throw new CrierError(ErrorCode.badFilter, `filter ${what}: each 1-${maxLength} characters`);
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
export function canonicalFilter(f: SubscriptionFilter | null | undefined): SubscriptionFilter | undefined {
  if (f === undefined || f === null) return undefined;
  assertMap(f);
  const l = strings(f.l, 'labels', MAX_FILTER_LABELS, MAX_LABEL_LENGTH);
  const k = strings(f.k, 'keys', MAX_FILTER_KEYS, MAX_KEY_LENGTH);
  if (f.la !== undefined && f.la !== null && typeof f.la !== 'boolean') {
    throw new CrierError(ErrorCode.badFilter, 'filter la: not a boolean');
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

/**
 * A canonical filter compiled for evaluation on every event: keys in a Set (a filter may hold
 * 256), labels as a short sorted array (16 at most, and events carry few). {@link passes}
 * allocates nothing: the broker calls it on its publish path, once per filtered subscription.
 */
export class EventFilter {
  /** The filter's {@link filterId}. */
  readonly id: string;
  private readonly labels: readonly string[] | undefined;
  private readonly all: boolean;
  private readonly keys: ReadonlySet<string> | undefined;

  /** @param wire a canonical filter, as {@link canonicalFilter} returns it (and as it is sent). */
  constructor(readonly wire: SubscriptionFilter) {
    this.id = filterId(wire);
    this.labels = wire.l;
    this.all = wire.la === true;
    this.keys = wire.k ? new Set(wire.k) : undefined;
  }

  /** Whether an event with `labels` and `key` passes. */
  passes(labels: readonly string[] | undefined, key: string | undefined): boolean {
    if (this.keys !== undefined && (key === undefined || !this.keys.has(key))) return false;
    const want = this.labels;
    if (want === undefined) return true;
    if (labels === undefined) return false;
    if (this.all) {
      for (let i = 0; i < want.length; i++) if (!labels.includes(want[i]!)) return false;
      return true;
    }
    for (let i = 0; i < labels.length; i++) if (want.includes(labels[i]!)) return true;
    return false;
  }
}

/** Checks and compiles a wire filter (throws `bad_filter`); `undefined` when it filters nothing. */
export function compileFilter(f: SubscriptionFilter | null | undefined): EventFilter | undefined {
  const canonical = canonicalFilter(f);
  return canonical === undefined ? undefined : new EventFilter(canonical);
}

/**
 * A subscription's identity on its subscriber: its pattern, and its filter's id when it has one.
 * Subscribing twice with the same key is one subscription; the broker and the SDK agree on it.
 */
export function subscriptionKey(pattern: string, filter: EventFilter | undefined): string {
  // Patterns hold no spaces: the pattern is everything before the first one.
  return filter === undefined ? pattern : `${pattern} ${filter.id}`;
}

/** The pattern of a {@link subscriptionKey} (made from a valid pattern). */
export function patternOfSubscriptionKey(key: string): string {
  const space = key.indexOf(' ');
  return space === -1 ? key : key.slice(0, space);
}
