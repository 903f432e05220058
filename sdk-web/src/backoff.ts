/** The three numbers of an exponential backoff. */
export interface BackoffOptions {
  /** Upper bound of the first delay, in ms. */
  initialDelay: number;
  /** Upper bound of any delay, in ms. */
  maxDelay: number;
  /** Growth of the upper bound per attempt. */
  factor: number;
}

/** The reconnect backoff used when `reconnect` is not given. */
export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = Object.freeze({ initialDelay: 250, maxDelay: 30_000, factor: 2 });

/**
 * Delay in ms before reconnect attempt `attempt` (0 for the first): "full jitter", a uniform
 * draw in `[0, min(maxDelay, initialDelay * factor^attempt))`. The jitter spreads the reconnects of
 * many clients after a broker restart instead of having them all arrive at the same moment.
 * Pure: `random` is the only source of randomness.
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number): number {
  // `|| 0`: 0 * Infinity (a zero initialDelay after ~1000 attempts) is NaN, not 0.
  const grown = options.initialDelay * Math.pow(options.factor, attempt) || 0;
  return random() * Math.min(options.maxDelay, grown);
}
