/** At most this many `[channel, count]` pairs in one `dropped` report (frame or SSE event). */
export const MAX_DROPPED_PAIRS = 100;
// Distinct channels counted per slow spell; past it drops only count in the total, so a frozen
// subscriber of `>` cannot make the broker hold one entry per channel ever published.
const MAX_DROPPED_CHANNELS = 10_000;

/**
 * The events one slow consumer (a WebSocket connection or an SSE stream) lost in its current slow
 * spell: when the spell started, how many in all, and how many per channel, for the `dropped`
 * report sent once it drains. The per-channel map is made on the first spell, and kept (cleared)
 * after it: a consumer that is never slow holds none.
 */
export class DropTally {
  /** Events dropped in the current spell. */
  total = 0;
  /** When the current spell started (ms since the Unix epoch; 0 when there is none). */
  since = 0;
  private byChannel: Map<string, number> | undefined;

  /** A spell starts now (`now`: ms since the Unix epoch). */
  start(now: number): void {
    this.since = now;
    this.byChannel ??= new Map();
  }

  /** Counts one event of `channel` dropped (after {@link start}). */
  count(channel: string): void {
    this.total++;
    const counts = this.byChannel!;
    const n = counts.get(channel);
    if (n !== undefined) counts.set(channel, n + 1);
    else if (counts.size < MAX_DROPPED_CHANNELS) counts.set(channel, 1);
  }

  /**
   * Ends the spell: returns the channels that lost the most events, most first, at most
   * {@link MAX_DROPPED_PAIRS} of them, and resets for the next spell.
   */
  end(): [string, number][] {
    const counts = this.byChannel;
    const channels = counts === undefined ? [] : [...counts].sort((a, b) => b[1] - a[1]).slice(0, MAX_DROPPED_PAIRS);
    this.total = 0;
    this.since = 0;
    counts?.clear();
    return channels;
  }
}
