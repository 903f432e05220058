import { CrierWebSocket } from './websocket.js';
import { connect as connectWith, type ClientOptions, type CrierClientFull } from '@crier/sdk-web/full';

// The public surface: everything of `@crier/sdk-web/full` (the core and its optional entry
// points), except its `connect`, which the one below replaces (a local export wins over `export *`).
// `CrierClient` is the full client here, as Node users have always had it. A bundle for a browser
// gets `./browser.js` instead (the `browser` condition of this package's exports), which leaves
// `ws` out.
export * from '@crier/sdk-web/full';
export type { CrierClientFull as CrierClient, IterableSubscription as Subscription } from '@crier/sdk-web/full';

/**
 * Creates a crier client in Node: the `@crier/sdk-web` client with the `ws` package's WebSocket
 * (Node 20 has no global one). Pass `options.WebSocket` to use another implementation.
 * Returns at once and connects in the background; see `ready()`.
 */
export function connect(url: string, options: ClientOptions = {}): CrierClientFull {
  return connectWith(url, { ...options, WebSocket: options.WebSocket ?? CrierWebSocket });
}
