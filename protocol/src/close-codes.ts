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
} as const;

export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/**
 * Whether a client should reconnect after the socket closed with `code`. Closes that would only
 * repeat themselves (a takeover of the uuid, a refused hello, a protocol violation, `quit`) do not.
 */
export function shouldReconnect(code: number): boolean {
  switch (code) {
    case CloseCode.normal:
    case CloseCode.protocolError:
    case CloseCode.messageTooBig:
    case CloseCode.badFrame:
    case CloseCode.replaced:
    case CloseCode.helloRejected:
      return false;
    default:
      return true;
  }
}
