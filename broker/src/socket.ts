import { WebSocket } from 'ws';
import type { Connection } from './connection.js';
import type { BrokerCore } from './core.js';

/**
 * The broker's WebSocket class (given to `WebSocketServer` as its `WebSocket` option): it carries
 * its {@link Connection}, so the socket listeners can be module-level functions that find their
 * state through `this`, instead of closures allocated per connection.
 */
export class CrierSocket extends WebSocket {
  connection: Connection | undefined;
  core: BrokerCore | undefined;
}

/**
 * The complete WebSocket message for `payload`: an unmasked, final binary frame, header and
 * payload in one buffer. Server-to-client frames are never masked, so these bytes are the same for
 * every recipient: the broker builds each event's message once and writes it to every
 * subscriber's socket as is. Going through `ws.send` instead allocated a header and queued two
 * writes per recipient, the largest source of garbage in the W1 profile.
 */
export function binaryMessage(payload: Uint8Array): Buffer {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 0x10000 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + n);
  out[0] = 0x82; // FIN, opcode 2 (binary)
  if (n < 126) {
    out[1] = n;
  } else if (n < 0x10000) {
    out[1] = 126;
    out.writeUInt16BE(n, 2);
  } else {
    out[1] = 127;
    out.writeUInt32BE(Math.floor(n / 0x100000000), 2);
    out.writeUInt32BE(n >>> 0, 6);
  }
  out.set(payload, head);
  return out;
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
