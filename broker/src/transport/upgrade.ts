import { anonymousRefusal } from '../auth/http-auth.js';
import { clientAddress } from '../admission/client-address.js';
import { originAllowed } from '../http/cors.js';
import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Server as WebSocketServer } from 'ws';
import { CloseCode, ErrorCode } from '@crier/protocol';
import type { Ingress } from './ingress.js';
import { isUpgradePath, pathnameOf, type BrokerPaths } from '../config/paths.js';
import { attachSocket, rawSocketOnError } from './socket-listeners.js';
import type { CrierSocket } from './socket.js';

/** Seconds a client is told to wait when the broker is full, draining or closing. */
const RETRY_AFTER_SECONDS = 5;

export interface UpgradeContext {
  ingress: Ingress;
  wss: WebSocketServer<typeof CrierSocket>;
  paths: BrokerPaths;
  server: Server;
  /** Whether the server is someone else's (other `upgrade` listeners may own other paths). */
  attached: boolean;
}

/**
 * The server's `upgrade` listener. Everything that can be refused is refused here, with a plain
 * HTTP answer, before a WebSocket exists: a wrong path (404), a broker draining or shutting down
 * (503 with Retry-After), a page from an origin not in `allowedOrigins` (403), a client from
 * outside loopback while no credential is configured and `allowAnonymous` is off (403
 * `forbidden`), a broker at its
 * connection limit (503 with Retry-After), a client address at one of its own limits (503 with
 * Retry-After: `too_many_connections` past `maxConnectionsPerIp` or `maxPendingPerIp`,
 * `rate_limited` past `handshakeRate`). Each refusal but the 404 is counted and logged (rate-limited) by `ingress.refusals`.
 */
export function createUpgradeListener(ctx: UpgradeContext): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const { ingress, wss, paths, server, attached } = ctx;
  return (req, socket, head) => {
    socket.on('error', rawSocketOnError);
    const pathname = pathnameOf(req.url);
    if (!isUpgradePath(paths, pathname)) {
      // On a shared server another listener may serve this path; answer only if nobody can.
      if (attached && server.listenerCount('upgrade') > 1) return;
      rejectUpgrade(socket, 404, 'not_found', `no WebSocket endpoint at ${pathname}`);
      return;
    }
    if (ingress.closing || ingress.draining) {
      ingress.refusals.refuse(ErrorCode.shuttingDown, 'websocket', req);
      rejectUpgrade(socket, 503, ErrorCode.shuttingDown, 'the broker is shutting down', RETRY_AFTER_SECONDS);
      return;
    }
    if (!originAllowed(req, ingress.options.allowedOrigins)) {
      ingress.refusals.refuse(ErrorCode.forbiddenOrigin, 'websocket', req);
      rejectUpgrade(socket, 403, ErrorCode.forbiddenOrigin, `origin ${req.headers.origin} is not in allowedOrigins`);
      return;
    }
    const address = clientAddress(req, ingress.trustedProxies);
    const anonymous = anonymousRefusal(ingress, address);
    if (anonymous) {
      ingress.refusals.refuse(ErrorCode.forbidden, 'websocket', req);
      rejectUpgrade(socket, 403, ErrorCode.forbidden, anonymous.message);
      return;
    }
    if (ingress.openCount >= ingress.options.maxConnections) {
      ingress.refusals.refuse(ErrorCode.tooManyConnections, 'websocket', req);
      rejectUpgrade(socket, 503, ErrorCode.tooManyConnections, 'the broker is at its connection limit', RETRY_AFTER_SECONDS);
      return;
    }
    if (ingress.bufferedBytes >= ingress.maxTotalBufferBytes) {
      ingress.refusals.refuse(ErrorCode.tooManyConnections, 'websocket', req, 'maxTotalBufferBytes');
      rejectUpgrade(socket, 503, ErrorCode.tooManyConnections, 'the broker holds maxTotalBufferBytes of outbound data', RETRY_AFTER_SECONDS);
      return;
    }
    // Per address after the broker-wide caps: a full broker spends no handshake token.
    const perAddress = ingress.admission.admit(address, true, ingress.now());
    if (perAddress) {
      ingress.refusals.refuse(perAddress.code, 'websocket', req, perAddress.limit);
      rejectUpgrade(socket, 503, perAddress.code, perAddress.message, perAddress.retryAfter);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      // handleUpgrade may complete later than it was called: check the limits again.
      ws.on('error', rawSocketOnError);
      if (ingress.closing || ingress.draining) {
        ingress.refusals.refuse(ErrorCode.shuttingDown, 'websocket', req);
        ws.close(CloseCode.goingAway, 'broker shutting down');
        return;
      }
      if (ingress.openCount >= ingress.options.maxConnections) {
        ingress.refusals.refuse(ErrorCode.tooManyConnections, 'websocket', req);
        ws.close(CloseCode.tryAgainLater, `${ErrorCode.tooManyConnections}: try again later`);
        return;
      }
      attachSocket(ingress, ws, socket, address);
    });
  };
}

function rejectUpgrade(socket: Duplex, status: number, code: string, message: string, retryAfter?: number): void {
  const body = JSON.stringify({ code, message });
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'Connection: close',
    'Content-Type: application/json; charset=utf-8',
    'Cache-Control: no-store',
    `Content-Length: ${Buffer.byteLength(body)}`,
  ];
  if (retryAfter !== undefined) head.push(`Retry-After: ${retryAfter}`);
  socket.once('finish', socket.destroy);
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}
