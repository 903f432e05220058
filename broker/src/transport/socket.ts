import { WebSocket } from 'ws';
import type { Connection } from './connection.js';
import type { Ingress } from './ingress.js';

/**
 * The broker's WebSocket class (given to `WebSocketServer` as its `WebSocket` option): it carries
 * its {@link Connection}, so the socket listeners can be module-level functions that find their
 * state through `this`, instead of closures allocated per connection.
 */
export class CrierSocket extends WebSocket {
  connection: Connection | undefined;
  ingress: Ingress | undefined;
}
