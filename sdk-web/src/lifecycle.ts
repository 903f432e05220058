import type { ClientOptions, LifecycleListener, LifecycleTarget } from './types.js';

/**
 * Starts listening to the page's lifecycle events for `hooks`; returns the function that removes
 * every listener. (A closure over the resolved options rather than an object of them: shorter in
 * the bundle.)
 */
export type WatchPage = (hooks: PageHooks) => () => void;

/** What the page lifecycle asks of the client. */
export interface PageHooks {
  /** The page is going away for good: quit, with `pagehide` as the state change's reason. */
  quit(reason: string): unknown;
  /** The page enters the back/forward cache: close the socket, keep the stream's state. */
  suspend(): void;
  /** The page came back from the back/forward cache: reconnect now. */
  pageBack(): void;
  /** The page became visible or the network came back: check the connection now. */
  wake(): void;
}

/**
 * What watches the page, or `undefined` when there is nothing to listen on: `lifecycle: false`,
 * or no `lifecycleTarget` and a global object without `addEventListener` (Node). Checked when the
 * options are (a bad `lifecycleTarget` throws from `connect()`), started once the client exists.
 *
 * `pagehide` is the event to act on when a page goes (`unload` is unreliable and keeps a page out of
 * the back/forward cache); its `persisted` says whether the page may come back. `visibilitychange`
 * is dispatched on `document` and bubbles to `window`.
 */
export function resolveLifecycle(options: ClientOptions): WatchPage | undefined {
  const l = options.lifecycle;
  if (l === false) return undefined;
  const target = (options.lifecycleTarget ?? globalThis) as LifecycleTarget;
  if (typeof target.addEventListener !== 'function' || typeof target.removeEventListener !== 'function') {
    if (options.lifecycleTarget) throw new TypeError('crier: options.lifecycleTarget must have add/removeEventListener');
    return undefined;
  }
  const onUnload = l?.quitOnUnload ?? true;
  const onPageShow = l?.reconnectOnPageShow ?? true;
  const onWake = l?.probeOnWake ?? true;
  return (hooks) => {
    const added: [string, LifecycleListener][] = [];
    const on = (type: string, listener: LifecycleListener): void => {
      target.addEventListener(type, listener);
      added.push([type, listener]);
    };
    on('pagehide', (event) => {
      if (!event.persisted) {
        if (onUnload) void hooks.quit('pagehide');
      } else if (onPageShow) hooks.suspend();
    });
    if (onPageShow) on('pageshow', (event) => event.persisted && hooks.pageBack());
    if (onWake) {
      on('online', () => hooks.wake());
      on('visibilitychange', () => target.document?.visibilityState !== 'hidden' && hooks.wake());
    }
    return () => {
      for (const [type, listener] of added.splice(0)) target.removeEventListener(type, listener);
    };
  };
}
