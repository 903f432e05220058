// The one way tests wait: for a condition, re-checked whenever something reports a change, with a
// deadline that names what was awaited. No sleeps, no polling.

const wakers = new Set<() => void>();

/**
 * Tells pending `waitFor` calls to re-check their condition. The fake broker calls it on every
 * frame and connection change; `record()` calls it on every client event.
 */
export function changed(): void {
  for (const wake of [...wakers]) wake();
}

/**
 * Resolves with the first truthy value of `check` (re-evaluated now and after each `changed()`),
 * or with the value of a promise; rejects naming `what` after `timeoutMs`.
 */
export function waitFor<T>(
  what: string,
  check: (() => T | undefined | null | false) | PromiseLike<T>,
  timeoutMs = 5000,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let finished = false;
    const finish = (): void => {
      finished = true;
      clearTimeout(timer);
      wakers.delete(wake);
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const wake = (): void => {
      if (finished || typeof check !== 'function') return;
      let value: T | undefined | null | false;
      try {
        value = check();
      } catch (err) {
        finish();
        return reject(err as Error);
      }
      if (value !== undefined && value !== null && value !== false) {
        finish();
        resolve(value);
      }
    };
    if (typeof check === 'function') {
      wakers.add(wake);
      wake();
    } else {
      check.then(
        (value) => {
          if (!finished) (finish(), resolve(value));
        },
        (err: unknown) => {
          if (!finished) (finish(), reject(err as Error));
        },
      );
    }
  });
}

/**
 * Resolves after the microtasks queued so far: the publishes of the current tick, which the
 * client sends as one message at its end, have been handed to the socket.
 */
export function tick(): Promise<void> {
  return new Promise((resolve) => queueMicrotask(resolve));
}
