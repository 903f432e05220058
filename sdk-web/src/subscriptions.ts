import { CrierError, ErrorCode, FrameType, assertPattern, type EventFilter } from '@crier/protocol';
import { call } from './listeners.js';
import { isLoss, type Answer, type SendRequest } from './pending.js';
import type { ClientLimits, CrierEvent, EventHandler, SubscribeFilter, SubscribeOptions, Subscription } from './types.js';

/** What the registry needs from the client. */
export interface SubscriptionHost {
  /** Sends a request (here, `subscribe` and `unsubscribe` frames). */
  ask: SendRequest;
  readonly limits: ClientLimits | undefined;
  /** Reports an asynchronous failure (a resubscribe the broker refused) as an `'error'` event. */
  fail(error: CrierError): void;
}

/**
 * Asks for `handle`'s rewind (rewind.ts): with `since`, a new handle's (false when it asks for
 * none); without, again after a welcome, for a handle still `rewinding`. True when it sent a
 * `subscribe` for the entry (with its rewind).
 */
export type Rewind = (entry: Entry, handle: Handle, since?: number | 'last') => boolean;

/** Something fed a handle's events besides its handler: an async iterator (stream.ts). */
export interface Tap {
  push(event: CrierEvent): void;
  /** The handle ended; `failure`: why, when the subscription failed. */
  end(failure?: CrierError): void;
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(error: CrierError): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: CrierError) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // `ready` is there to be awaited, not to crash a process whose code never looks at it.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** One (pattern, filter) subscription on the broker, shared by every local handle of it. */
export interface Entry {
  /** The subscription's identity, as the broker sees it: pattern and canonical filter. */
  readonly key: string;
  readonly pattern: string;
  /** The canonical filter; `wire` is sent in `f`. */
  readonly filter: EventFilter | undefined;
  /** The queue group it joins (`g`), if any. */
  readonly group: string | undefined;
  readonly handles: Set<Handle>;
  /** Resolves at the broker's first ack; every handle's `ready`. */
  readonly ready: Deferred;
  acked: boolean;
  /** Counts up with each entry made: handlers run in the order their subscriptions were made. */
  readonly n: number;
}

export class Handle implements Subscription {
  readonly ready: Promise<void>;
  /** @internal Why the subscription ended, if it failed; iterators throw it. */
  failure: CrierError | undefined;
  /** @internal */
  ended = false;
  /**
   * Waiting for its rewind (the `events` frame of its own subscribe, see rewind.ts): live events
   * are not its yet, since the rewind holds those the broker had when it read the subscribe.
   */
  rewinding: boolean | undefined;
  /** @internal */
  readonly taps = new Set<Tap>();

  constructor(
    readonly pattern: string,
    /** Its entry's key (pattern and filter). */
    readonly key: string,
    private readonly handler: EventHandler | undefined,
    private readonly registry: Subscriptions,
    ready: Promise<void>,
  ) {
    this.ready = ready;
  }

  deliver(event: CrierEvent): void {
    if (this.rewinding) return;
    if (this.handler) call(this.handler, event);
    for (const tap of this.taps) tap.push(event);
  }

  /** Ends every iterator of this handle; `failure` makes them throw it. */
  end(failure?: CrierError): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = failure;
    for (const tap of this.taps) tap.end(failure);
    this.taps.clear();
  }

  unsubscribe(): Promise<void> {
    return this.registry.remove(this);
  }
}

/** The subscriptions' entries by pattern (channel names and wildcard patterns), for dispatch. */
export interface PatternIndex {
  add(pattern: string, entry: Entry): void;
  remove(pattern: string, entry: Entry): void;
  /**
   * Calls `visit(entry, event)` for each entry whose pattern matches the event's channel, in the
   * order the entries were made (handlers run in the order their subscriptions were made).
   */
  match(event: CrierEvent, visit: (entry: Entry, event: CrierEvent) => void): void;
}

/**
 * The core's {@link PatternIndex}: a list in the order the entries were made, each pattern tested
 * in turn as a regular expression (shorter in the bundle than a map of names beside the
 * protocol's matchPattern), with no allocation; a page holds a few. A valid pattern holds only
 * segment characters, dots and whole-segment wildcards: `*` is one segment, a last `>` one or more.
 */
class PatternList implements PatternIndex {
  private readonly items: [RegExp, Entry][] = [];

  add(pattern: string, entry: Entry): void {
    this.items.push([new RegExp(`^${pattern.replace(/\./g, '\\.').replace(/\*/g, '[^.]+').replace('>', '.+')}$`), entry]);
  }

  remove(_pattern: string, entry: Entry): void {
    const i = this.items.findIndex((item) => item[1] === entry);
    if (i >= 0) this.items.splice(i, 1);
  }

  match(event: CrierEvent, visit: (entry: Entry, event: CrierEvent) => void): void {
    for (const [pattern, entry] of this.items) if (pattern.test(event.channel)) visit(entry, event);
  }
}

/** To every handle of the entry, when the event passes its filter. */
function deliver(entry: Entry, event: CrierEvent): void {
  if (entry.filter === undefined || entry.filter.passes(event.labels, event.key)) {
    for (const handle of entry.handles) handle.deliver(event);
  }
}

/**
 * Every subscription of a client, by pattern. Patterns survive reconnects: after each `welcome`
 * {@link Subscriptions.resubscribe} sends them all again. Events are dispatched here to every
 * handle whose pattern matches (the broker sends each event once per connection).
 */
export class Subscriptions {
  private readonly byKey = new Map<string, Entry>();
  private made = 0;
  /**
   * @internal The entries again, for dispatch: tested one by one (allocation-free) in the core,
   * where a page holds a few; the full client (and sdk-node) puts a map of names and the
   * protocol's segment trie here, whose cost follows what matches an event, not how many
   * subscriptions there are, and whose code would cost the core bundle 0.5 KB.
   */
  index: PatternIndex = new PatternList();
  /**
   * Unsubscribed, and not yet acked. The broker restores a resumed stream's subscriptions, so one
   * dropped while the connection was down (or whose ack went with it) is unsubscribed again after
   * the next welcome.
   */
  private readonly dropping = new Set<Entry>();
  private closedWith: CrierError | undefined;

  /** @internal See {@link Rewind}. Unset in the core, where `since` asks for nothing. */
  rewind: Rewind | undefined;

  /**
   * @internal Compiles a subscription's filter (see filter.ts). Unset in the core: the filter
   * code stays out of its bundle until a page asks for it with `withFilters()`.
   */
  compile: ((filter: SubscribeFilter) => EventFilter | undefined) | undefined;

  constructor(private readonly host: SubscriptionHost) {}

  add(pattern: string, filter: SubscribeFilter | undefined, handler: EventHandler | undefined, options?: SubscribeOptions): Subscription {
    // A rewind without its code (withRewind()) is refused, never ignored.
    const entry = options?.since && !this.rewind
      ? new CrierError(ErrorCode.badFrame, 'since needs withRewind() of @crier/sdk-web/rewind')
      : this.entryFor(pattern, filter, options?.group);
    if (entry instanceof CrierError) {
      const failed = deferred();
      failed.reject(entry);
      const handle = new Handle(pattern, '', handler, this, failed.promise);
      handle.end(entry);
      return handle;
    }
    const handle = new Handle(pattern, entry.key, handler, this, entry.ready.promise);
    // A new entry (no handle yet) is subscribed now, unless its rewind's subscribe does it; a
    // rewind on an entry held asks again (acked, no harm).
    if (!this.rewind?.(entry, handle, options?.since) && !entry.handles.size) this.send(entry);
    entry.handles.add(handle);
    return handle;
  }

  /** The (pattern, filter) entry (created when new: `add` sends it), or why there can be none. */
  private entryFor(pattern: string, f: SubscribeFilter | undefined, group: string | undefined): Entry | CrierError {
    if (this.closedWith) return this.closedWith;
    let filter: EventFilter | undefined;
    try {
      assertPattern(pattern);
      if (f != null) {
        if (!this.compile) throw new CrierError(ErrorCode.badFilter, 'filters need withFilters() of @crier/sdk-web/filter');
        filter = this.compile(f);
      }
    } catch (err) {
      return err as CrierError;
    }
    // The protocol's subscriptionKey: pattern, and the filter's id (patterns hold no spaces); and
    // the group (a subscription is pattern, filter and group).
    const key = (filter ? `${pattern} ${filter.id}` : pattern) + (group ? ` @${group}` : '');
    const existing = this.byKey.get(key);
    if (existing) return existing;
    // Fail fast only once the broker told us its limit; before that its answer decides.
    const limits = this.host.limits;
    if (limits && this.byKey.size >= limits.maxChannels) {
      return new CrierError(ErrorCode.maxChannels, `"${pattern}": maxChannels (${limits.maxChannels}) reached`);
    }
    const entry: Entry = { key, pattern, filter, group, handles: new Set(), ready: deferred(), acked: false, n: this.made++ };
    this.byKey.set(key, entry);
    this.index.add(pattern, entry);
    return entry;
  }

  /** Removes one handle; unsubscribes on the broker when it was the pattern's last. */
  remove(handle: Handle): Promise<void> {
    const entry = this.byKey.get(handle.key);
    handle.end();
    return entry?.handles.delete(handle) && entry.handles.size === 0 ? this.drop(entry) : Promise.resolve();
  }

  /** Removes every handle of `pattern`, whatever its filter, and the broker-side subscriptions. */
  removePattern(pattern: string): Promise<void> {
    const drops: Promise<void>[] = [];
    for (const entry of [...this.byKey.values()]) {
      if (entry.pattern !== pattern) continue;
      for (const handle of entry.handles) handle.end();
      drops.push(this.drop(entry));
    }
    return Promise.all(drops).then(() => {});
  }

  /**
   * To every handle whose pattern matches and whose filter the event passes: the event reached
   * the connection through one subscription, and must not reach another it does not pass.
   */
  dispatch(event: CrierEvent): void {
    this.index.match(event, deliver);
  }

  /** Forgets an entry (unsubscribed, refused, or the client closed). */
  private forget(entry: Entry): void {
    this.byKey.delete(entry.key);
    this.index.remove(entry.pattern, entry);
  }

  /**
   * After a `welcome`: unsubscribe again what was dropped without an ack (a resumed stream got it
   * back on the broker; one subscribed anew since is subscribed right after), and subscribe every
   * pattern again on the new socket.
   */
  resubscribe(): void {
    for (const entry of this.dropping) void this.release(entry);
    for (const entry of this.byKey.values()) {
      this.send(entry);
      for (const handle of entry.handles) if (handle.rewinding) this.rewind!(entry, handle);
    }
  }

  /** The client closed for good: fail what never got an ack, end every iterator. */
  close(error: CrierError): void {
    this.closedWith = error;
    for (const entry of this.byKey.values()) {
      entry.ready.reject(error);
      for (const handle of entry.handles) handle.end();
      this.forget(entry);
    }
  }

  private drop(entry: Entry): Promise<void> {
    this.forget(entry);
    entry.handles.clear();
    // Settle `ready` now rather than leave it hanging on an answer that may never matter.
    entry.ready.reject(new CrierError(ErrorCode.closed, `unsubscribed "${entry.pattern}"`));
    return this.release(entry);
  }

  /**
   * Unsubscribes on the broker. Resolves when answered, or when the connection or the client is
   * lost first; until the broker acks it, the entry is sent again after each welcome.
   */
  private release(entry: Entry): Promise<void> {
    this.dropping.add(entry);
    return new Promise((resolve) => {
      const sent = this.ask('unsubscribe', entry, {
        resolve: () => {
          this.dropping.delete(entry);
          resolve();
        },
        reject: () => resolve(),
      });
      if (!sent) resolve();
    });
  }

  /**
   * @internal Sends the entry's `subscribe` (with a rewind `w`, rewind.ts's) or `unsubscribe`;
   * false (nothing sent) when not connected.
   */
  ask(type: 'subscribe' | 'unsubscribe', { pattern, filter, group }: Entry, answer: Answer, w?: number): boolean {
    const t = type === 'subscribe' ? FrameType.subscribe : FrameType.unsubscribe;
    return this.host.ask((r) => ({ t, r, p: pattern, f: filter?.wire, w, g: group }), answer, `${type} "${pattern}"`);
  }

  /** Subscribes the entry (again, after a welcome). */
  private send(entry: Entry): void {
    this.ask('subscribe', entry, { resolve: () => this.acked(entry), reject: (err) => this.failed(entry, err) });
  }

  /** @internal The broker acked the entry's subscribe. */
  acked(entry: Entry): void {
    entry.acked = true;
    entry.ready.resolve();
  }

  /** @internal The entry's subscribe failed. */
  failed(entry: Entry, err: CrierError): void {
    // A lost connection is not a refusal: the next welcome subscribes again. `closed` is close()'s.
    if (isLoss(err)) return;
    const current = this.byKey.get(entry.key) === entry;
    if (current) {
      this.forget(entry);
      for (const handle of entry.handles) handle.end(err);
      // The broker may have subscribed after all (a late answer): do not leave it behind.
      if (err.code === ErrorCode.timeout) void this.release(entry);
    }
    if (!entry.acked) entry.ready.reject(err);
    else if (current) {
      this.host.fail(new CrierError(err.code, `resubscribe "${entry.pattern}": ${err.message}`, err.requestId));
    }
  }
}
