type Listener = (...args: never[]) => void;

/**
 * Calls a user's listener or handler; an exception is re-thrown outside our call stack, like an
 * event listener's (uncaught, but isolated): it never keeps the other listeners from running.
 */
export function call<F extends Listener>(listener: F, ...args: Parameters<F>): void {
  try {
    listener(...args);
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}

/** Calls every listener (see {@link call}). */
export function emit<F extends Listener>(listeners: Set<F>, ...args: Parameters<F>): void {
  for (const listener of listeners) call(listener, ...args);
}

/** Adds a listener; returns the function that removes it. */
export function listen<F>(listeners: Set<F>, listener: F): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}
