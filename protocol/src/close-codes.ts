import { isErrorCode, type ErrorCode } from './errors.js';

/**
 * WebSocket close codes used by crier. 1000-1011 are the standard ones; 4000-4099 are crier's.
 * {@link shouldReconnect} is the one place that decides whether a client reconnects after a close.
 */
export const CloseCode = {
  /** Normal close: the client sent `quit`, or closed itself. */
  normal: 1000,
  /** The broker is shutting down or restarting. */
  goingAway: 1001,
  /** The peer broke the protocol at the transport level (for example a text frame). */
  protocolError: 1002,
  /** A message larger than the broker's frame limit. */
  messageTooBig: 1009,
  /** The broker failed unexpectedly. */
  internalError: 1011,
  /** The connection closed without a close frame (reported locally, never sent). */
  abnormal: 1006,
  /** The client sent frames that cannot be decoded at all (before or instead of `hello`). */
  badFrame: 4000,
  /** Another connection took over this uuid. */
  replaced: 4001,
  /** The broker refused `hello` (version, uuid or auth). */
  helloRejected: 4002,
  /** Nothing arrived from the peer for two keep-alive intervals. */
  keepAliveTimeout: 4003,
  /** No `hello` arrived in time after the socket opened. */
  helloTimeout: 4004,
  /** The broker is at its connection limit; try again later. */
  tryAgainLater: 4005,
  /**
   * The broker refused the WebSocket handshake for good (HTTP 401 or 403, such as
   * `forbidden_origin`), so trying again cannot succeed. Reported locally by a client that can read
   * the handshake's answer (sdk-node), never sent: a browser cannot read it and sees only 1006. The
   * reason is `<error code>: <message>` from the answer's body when the broker wrote one.
   */
  handshakeRefused: 4006,
  /**
   * The connection's credential expired without a refresh. A client reconnects, asking its
   * `getToken()` for a fresh credential first.
   */
  tokenExpired: 4007,
  /** The broker refused `hello`'s credential (missing, malformed, badly signed): final. */
  unauthorized: 4008,
  /**
   * The broker is draining (a deploy, a restart): reconnect, to it or to another node, after the
   * delay the reason names (`draining: reconnect after 1500 ms`), plus jitter. Brokers spread these
   * closes over their drain window so that clients do not all come back in the same second.
   */
  draining: 4009,
} as const;

export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/**
 * Whether a client should reconnect after the socket closed with `code`. Closes that would only
 * repeat themselves (a takeover of the uuid, a refused hello, a protocol violation, `quit`) do not.
 */
export function shouldReconnect(code: number): boolean {
  const final: number[] = [
    CloseCode.normal,
    CloseCode.protocolError,
    CloseCode.messageTooBig,
    CloseCode.badFrame,
    CloseCode.replaced,
    CloseCode.helloRejected,
    CloseCode.handshakeRefused,
    CloseCode.unauthorized,
  ];
  return !final.includes(code);
}

/** The delay a `draining` close asks for, in ms (`reconnect after N ms` in its reason), if any. */
export function drainDelayOf(reason: string): number | undefined {
  const m = /after (\d+) ms/.exec(reason);
  return m ? Number(m[1]) : undefined;
}

/**
 * The stable error code a close reason carries, as the broker writes its reasons
 * (`<code>: <message>`, or the code alone), with the message after it; `undefined` when the reason
 * does not start with a known {@link ErrorCode}.
 */
export function errorOfCloseReason(reason: string): { code: ErrorCode; message: string } | undefined {
  const colon = reason.indexOf(':');
  const code = colon === -1 ? reason : reason.slice(0, colon);
  if (!isErrorCode(code)) return undefined;
  return { code, message: colon === -1 ? code : reason.slice(colon + 1).trim() || code };
}
