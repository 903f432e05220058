// The one way e2e tests wait. No imports: the contract cases run in a browser page too (bundled).

/**
 * Waiters to wake, for something a test can hear change (events reaching a client, lines from a
 * process): a set, so that any number of waits share one listener on the source.
 */
export class Signal {
  private readonly waiters = new Set<() => void>();

  add(waiter: () => void): void {
    this.waiters.add(waiter);
  }

  delete(waiter: () => void): void {
    this.waiters.delete(waiter);
  }

  /** Tells every waiter to re-check. */
  notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

export interface WaitOptions {
  /** Milliseconds before the wait fails. @default 5000 */
  timeoutMs?: number;
  /**
   * Re-check when this is notified. Without it, re-check every few milliseconds: for state the
   * test cannot hear change (a broker process's HTTP stats, a client's state).
   */
  wake?: Signal;
  /** What was seen so far, for the timeout message (`got 3 events`, a process's output). */
  seen?: () => string;
}

/**
 * Resolves with the first value of `check` other than `undefined`/`false`; rejects with what it
 * throws (or rejects with), or naming `what` after the deadline. Removes its waiter either way.
 */
export function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  options: WaitOptions | number = {},
): Promise<T> {
  // A number is the timeout alone.
  const { timeoutMs = 5000, wake, seen } = typeof options === 'number' ? { timeoutMs: options } : options;
  return new Promise<T>((resolve, reject) => {
    let done = false;
    let checking = false;
    let again = false;
    const finish = (): void => {
      done = true;
      clearTimeout(deadline);
      if (poll !== undefined) clearInterval(poll);
      wake?.delete(recheck);
    };
    const recheck = (): void => {
      if (done) return;
      // An asynchronous check (an HTTP request) runs one at a time; a wake meanwhile runs it again.
      if (checking) return void (again = true);
      checking = true;
      let result: ReturnType<typeof check>;
      try {
        result = check();
      } catch (err) {
        return settle(Promise.reject(err));
      }
      settle(result instanceof Promise ? result : Promise.resolve(result));
    };
    const settle = (result: Promise<T | undefined | false>): void => {
      result.then(
        (value) => {
          checking = false;
          if (done) return;
          if (value !== undefined && value !== false) {
            finish();
            resolve(value);
          } else if (again) {
            again = false;
            recheck();
          }
        },
        (err: unknown) => {
          checking = false;
          if (done) return;
          finish();
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    };
    const deadline = setTimeout(() => {
      finish();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}${seen ? ` (${seen()})` : ''}`));
    }, timeoutMs);
    const poll = wake === undefined ? setInterval(recheck, 5) : undefined;
    wake?.add(recheck);
    recheck();
  });
}
