import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import { CloseCode } from '@crier/protocol';
import type { Connection } from './connection.js';
import type { Ingress } from './ingress.js';
import { CrierSocket } from './socket.js';

// Module-level listeners, named <source>On<Event> as in `ws` itself: each finds its connection
// through `this` (the socket), so a connection costs no closures.

/**
 * Takes over a freshly upgraded socket: registers it and starts its hello timer. `address` is
 * the client's (see clientAddress).
 */
export function attachSocket(ingress: Ingress, ws: CrierSocket, socket: Duplex, address: string): Connection {
  const conn = ingress.addConnection(ws, socket, address);
  ws.connection = conn;
  ws.ingress = ingress;
  // Without an 'error' listener, one bad frame from one client would kill the process.
  ws.on('error', socketOnError);
  ws.on('message', socketOnMessage);
  ws.on('close', socketOnClose);
  conn.helloTimer = ingress.clock.setTimeout(() => connectionOnHelloTimeout(ingress, conn), ingress.options.helloTimeout);
  return conn;
}

function socketOnMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  if (!(this instanceof CrierSocket)) return;
  const { connection, ingress } = this;
  if (!connection || !ingress) return;
  // With the default binaryType every message is one Buffer; the other shapes are for safety.
  const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
  ingress.receivedBytes += bytes.length;
  // Under the connection's read budget of this turn (or deferred to the next): see ReadTurns.
  ingress.reads.read(connection, bytes, isBinary);
}

function socketOnClose(this: WebSocket, code: number, reason: Buffer): void {
  if (!(this instanceof CrierSocket)) return;
  const { connection, ingress } = this;
  if (connection && ingress) ingress.socketClosed(connection, code, reason.toString());
}

function socketOnError(this: WebSocket, err: Error): void {
  // `ws` closes the socket itself after an error (1002, 1007, 1009...): only note it here.
  if (!(this instanceof CrierSocket)) return;
  this.ingress?.log.debug({ uuid: this.connection?.uuid || undefined, err: err.message }, 'socket error');
}

/** A connection (socket or HTTP session) that said no hello in time is closed. */
export function connectionOnHelloTimeout(ingress: Ingress, conn: Connection): void {
  conn.helloTimer = undefined;
  if (conn.state !== 'pending') return;
  ingress.closeConnection(conn, CloseCode.helloTimeout, `no hello within ${ingress.options.helloTimeout} ms`);
}

/** For raw sockets around an upgrade: their errors are handled by closing, never thrown. */
export function rawSocketOnError(): void {}
