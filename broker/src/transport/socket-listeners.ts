import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import { CloseCode } from '@crier/protocol';
import type { Connection } from './connection.js';
import type { BrokerCore } from '../core/core.js';
import { CrierSocket } from './socket.js';

// Module-level listeners, named <source>On<Event> as in `ws` itself: each finds its connection
// through `this` (the socket), so a connection costs no closures.

/**
 * Takes over a freshly upgraded socket: registers it and starts its hello timer. `address` is
 * the client's (see clientAddress).
 */
export function attachSocket(core: BrokerCore, ws: CrierSocket, socket: Duplex, address: string): Connection {
  const conn = core.addConnection(ws, socket, address);
  ws.core = core;
  // Without an 'error' listener, one bad frame from one client would kill the process.
  ws.on('error', socketOnError);
  ws.on('message', socketOnMessage);
  ws.on('close', socketOnClose);
  conn.helloTimer = setTimeout(connectionOnHelloTimeout, core.options.helloTimeout, core, conn);
  conn.helloTimer.unref();
  return conn;
}

function socketOnMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  if (!(this instanceof CrierSocket)) return;
  const { connection, core } = this;
  if (!connection || !core) return;
  // With the default binaryType every message is one Buffer; the other shapes are for safety.
  const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
  core.receivedBytes += bytes.length;
  // Under the connection's read budget of this turn (or deferred to the next): see ReadTurns.
  core.reads.read(connection, bytes, isBinary);
}

function socketOnClose(this: WebSocket, code: number, reason: Buffer): void {
  if (!(this instanceof CrierSocket)) return;
  const { connection, core } = this;
  if (connection && core) core.socketClosed(connection, code, reason.toString());
}

function socketOnError(this: WebSocket, err: Error): void {
  // `ws` closes the socket itself after an error (1002, 1007, 1009...): only note it here.
  if (!(this instanceof CrierSocket)) return;
  this.core?.log.debug({ uuid: this.connection?.uuid || undefined, err: err.message }, 'socket error');
}

function connectionOnHelloTimeout(core: BrokerCore, conn: Connection): void {
  conn.helloTimer = undefined;
  if (conn.state !== 'pending') return;
  core.closeConnection(conn, CloseCode.helloTimeout, `no hello within ${core.options.helloTimeout} ms`);
}

/** For raw sockets around an upgrade: their errors are handled by closing, never thrown. */
export function rawSocketOnError(): void {}
