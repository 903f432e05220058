import WebSocket from 'ws';
import { connect as connectWith, type ClientOptions, type CrierClient } from '@crier/sdk-web';

// Everything of the isomorphic core; the local `connect` below takes precedence over its `connect`.
export * from '@crier/sdk-web';

/**
 * Creates a crier client in Node: the `@crier/sdk-web` client with the `ws` package's WebSocket
 * (Node 20 has no global one). Pass `options.WebSocket` to use another implementation.
 * Returns at once and connects in the background; see `ready()`.
 */
export function connect(url: string, options: ClientOptions = {}): CrierClient {
  return connectWith(url, { ...options, WebSocket: options.WebSocket ?? WebSocket });
}
