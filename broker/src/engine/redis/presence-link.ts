import type { GatherLink } from './gather.js';

// What presence traffic (questions, presence.ts; notices, presence-notices.ts) needs from the
// Redis engine around it, apart from both so that neither imports the other for it.

/** What presence traffic needs from the engine around it (a gathering's broadcast and timers too). */
export interface PresenceLink extends GatherLink {
  readonly instance: string;
  /** The deployment's key prefix (the live nodes are read under it). */
  readonly prefix: string;
  /** Runs a script (routed by the deployment's key). */
  evaluate(source: string, args: string[]): Promise<unknown>;
  /** Runs `callback` once, after the I/O of this turn. */
  defer(callback: () => void): void;
  /** Monotonic ms. */
  now(): number;
  /** Sends `message` on the channel of node `instance`. Fire and forget. */
  toNode(instance: string, message: Buffer): void;
  warn(fields: object, message: string): void;
}

/** How presence traffic reports trouble: warnings rate-limited per message; `malformed` also counts one. */
export interface PresenceReport {
  warn(fields: Record<string, unknown>, message: string): void;
  /** A message from another node that does not parse, or whose handling failed: counted, then warned. */
  malformed(fields: Record<string, unknown>, message: string): void;
}
