import type { LifecycleTarget } from '../src/types.js';

/**
 * A stand-in for a browser's `window` in Node: an `EventTarget` with a `document.visibilityState`,
 * drivers for the lifecycle events, and a count of the listeners currently added.
 */
export class FakePage extends EventTarget implements LifecycleTarget {
  readonly document = { visibilityState: 'visible' as 'visible' | 'hidden' };
  listeners = 0;

  override addEventListener(...args: Parameters<EventTarget['addEventListener']>): void {
    this.listeners++;
    super.addEventListener(...args);
  }

  override removeEventListener(...args: Parameters<EventTarget['removeEventListener']>): void {
    this.listeners--;
    super.removeEventListener(...args);
  }

  pagehide(persisted: boolean): void {
    this.dispatchEvent(Object.assign(new Event('pagehide'), { persisted }));
  }

  pageshow(persisted: boolean): void {
    this.dispatchEvent(Object.assign(new Event('pageshow'), { persisted }));
  }

  show(): void {
    this.document.visibilityState = 'visible';
    this.dispatchEvent(new Event('visibilitychange'));
  }

  hide(): void {
    this.document.visibilityState = 'hidden';
    this.dispatchEvent(new Event('visibilitychange'));
  }

  online(): void {
    this.dispatchEvent(new Event('online'));
  }
}

// A browser's window must fit the option's type as is.
export const windowFits = (w: Window): LifecycleTarget => w;
