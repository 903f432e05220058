import { WebSocket } from 'ws';
import type { Connection } from './connection.js';
import type { BrokerCore } from '../core/core.js';

/**
 * The broker's WebSocket class (given to `WebSocketServer` as its `WebSocket` option): it carries
 * its {@link Connection}, so the socket listeners can be module-level functions that find their
 * state through `this`, instead of closures allocated per connection.
 */
export class CrierSocket extends WebSocket {
  connection: Connection | undefined;
  core: BrokerCore | undefined;
}

const reasonBytes = new Uint8Array(123);
const utf8 = new TextEncoder();

/**
 * `reason` cut to the 123 bytes a close frame allows, on a character boundary (`ws` throws on a
 * longer one).
 */
export function closeReason(reason: string): string {
  const { read } = utf8.encodeInto(reason, reasonBytes);
  return read === reason.length ? reason : reason.slice(0, read);
}
