import type { ClientOptions, LifecycleListener, LifecycleTarget } from './types.js';

/** Page lifecycle options, with defaults applied and a target to listen on. */
export interface ResolvedLifecycle {
  target: LifecycleTarget;
  /** `quitOnUnload` (the resolved fields are named apart from the options: shorter in the bundle) */
  onUnload: boolean;
  /** `reconnectOnPageShow` */
  onPageShow: boolean;
  /** `probeOnWake` */
  onWake: boolean;
}

/** What the page lifecycle asks of the client. */
export interface PageHooks {
  /** The page is going away for good: quit. */
  unload(): void;
  /** The page enters the back/forward cache: close the socket, keep the stream's state. */
  suspend(): void;
  /** The page came back from the back/forward cache: reconnect now. */
  pageBack(): void;
  /** The page became visible or the network came back: check the connection now. */
  wake(): void;
}

/**
 * The lifecycle settings, or `undefined` when there is nothing to listen on: `lifecycle: false`,
 * or no `lifecycleTarget` and a global object without `addEventListener` (Node).
 */
export function resolveLifecycle(options: ClientOptions): ResolvedLifecycle | undefined {
  const l = options.lifecycle;
  if (l === false) return undefined;
  const target = options.lifecycleTarget ?? (globalThis as Partial<LifecycleTarget>);
  if (typeof target.addEventListener !== 'function' || typeof target.removeEventListener !== 'function') {
    if (options.lifecycleTarget) throw new TypeError('crier: options.lifecycleTarget must have add/removeEventListener');
    return undefined;
  }
  return {
    target: target as LifecycleTarget,
    onUnload: l?.quitOnUnload ?? true,
    onPageShow: l?.reconnectOnPageShow ?? true,
    onWake: l?.probeOnWake ?? true,
  };
}

/**
 * Listens to the page's lifecycle events and calls `hooks`; returns the function that removes
 * every listener.
 *
 * `pagehide` is the event to act on when a page goes (`unload` is unreliable and keeps a page out of
 * the back/forward cache); its `persisted` says whether the page may come back. `visibilitychange`
 * is dispatched on `document` and bubbles to `window`.
 */
export function watchPage(settings: ResolvedLifecycle, hooks: PageHooks): () => void {
  const { target } = settings;
  const added: [string, LifecycleListener][] = [];
  const on = (type: string, listener: LifecycleListener): void => {
    target.addEventListener(type, listener);
    added.push([type, listener]);
  };
  on('pagehide', (event) => {
    if (!event.persisted) {
      if (settings.onUnload) hooks.unload();
    } else if (settings.onPageShow) hooks.suspend();
  });
  if (settings.onPageShow) on('pageshow', (event) => event.persisted && hooks.pageBack());
  if (settings.onWake) {
    on('online', () => hooks.wake());
    on('visibilitychange', () => target.document?.visibilityState !== 'hidden' && hooks.wake());
  }
  return () => {
    for (const [type, listener] of added.splice(0)) target.removeEventListener(type, listener);
  };
}
