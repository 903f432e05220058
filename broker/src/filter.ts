import { canonicalFilter, filterId, type SubscriptionFilter } from '@crier/protocol';

/** A subscription filter as the in-process API spells it (`broker.subscribe`). */
export interface SubscribeFilter {
  /** The event must carry at least one of these labels (all of them with `allLabels`). */
  labels?: string[];
  /** `true`: the event must carry every label of `labels`. @default false */
  allLabels?: boolean;
  /** The event's key must be one of these. */
  keys?: string[];
}

/**
 * A canonical filter compiled for the publish path: keys in a Set (a filter may hold 256), labels
 * as a short sorted array (16 at most, and events carry few).
 */
export class EventFilter {
  readonly id: string;
  /** Characters of labels and keys it holds: what it costs to keep. */
  readonly size: number;
  private readonly labels: readonly string[] | undefined;
  private readonly all: boolean;
  private readonly keys: ReadonlySet<string> | undefined;

  constructor(readonly wire: SubscriptionFilter) {
    this.id = filterId(wire);
    this.labels = wire.l;
    this.all = wire.la === true;
    this.keys = wire.k ? new Set(wire.k) : undefined;
    let size = 0;
    for (const s of [...(wire.l ?? []), ...(wire.k ?? [])]) size += s.length;
    this.size = size;
  }

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

/** Compiles a wire filter (throws `bad_filter`); `undefined` when it filters nothing. */
export function compileFilter(f: SubscriptionFilter | undefined): EventFilter | undefined {
  const canonical = canonicalFilter(f);
  return canonical === undefined ? undefined : new EventFilter(canonical);
}

/** The in-process spelling as a wire filter (not yet checked). */
export function wireFilter(f: SubscribeFilter | undefined): SubscriptionFilter | undefined {
  if (f === undefined) return undefined;
  if (typeof f !== 'object' || f === null) return f as never; // canonicalFilter refuses it
  const out: SubscriptionFilter = {};
  if (f.labels !== undefined) out.l = f.labels;
  if (f.allLabels !== undefined) out.la = f.allLabels;
  if (f.keys !== undefined) out.k = f.keys;
  return out;
}

/**
 * What the channel index holds: a subscriber and the filter its events must pass. A subscriber
 * with no filter is its own entry (`sub` is itself, `filter` undefined), so unfiltered
 * subscriptions cost nothing more than before; a filtered one is a small {@link FilteredEntry}.
 */
export interface IndexEntry<S> {
  readonly sub: S;
  readonly filter: EventFilter | undefined;
}

export class FilteredEntry<S> implements IndexEntry<S> {
  constructor(
    readonly sub: S,
    readonly filter: EventFilter,
  ) {}
}

/** A subscription's identity on its subscriber: the pattern, and the filter's id when it has one. */
export function subscriptionKey(pattern: string, filter: EventFilter | undefined): string {
  // Patterns hold no spaces: the pattern is everything before the first one.
  return filter === undefined ? pattern : `${pattern} ${filter.id}`;
}

/** The pattern of a {@link subscriptionKey}. */
export function patternOfKey(key: string): string {
  const space = key.indexOf(' ');
  return space === -1 ? key : key.slice(0, space);
}
