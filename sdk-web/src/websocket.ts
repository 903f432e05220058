/**
 * The part of a WebSocket the client uses. Both the browser's `WebSocket` and the `ws` package's
 * `WebSocket` class satisfy it, so either can be passed as {@link ClientOptions.WebSocket}.
 *
 * The `on*` handler parameters are typed `never` on purpose: implementations type their events
 * differently (DOM `MessageEvent`, `ws`'s own classes), and all the client reads from them is
 * `data` on a message and `code`/`reason` on a close.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  /** Bytes handed to `send` and not yet written to the network. */
  readonly bufferedAmount?: number;
  onopen: ((event: never) => void) | null;
  onmessage: ((event: never) => void) | null;
  onclose: ((event: never) => void) | null;
  onerror: ((event: never) => void) | null;
  send(data: Uint8Array<ArrayBuffer>): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket class: `new WebSocket(url)`. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** `WebSocket.OPEN`, the same in every implementation. */
export const OPEN = 1;

/**
 * The constructor to use: the injected one, else `globalThis.WebSocket`. Throws an actionable
 * `TypeError` when neither exists (Node 20 has no global WebSocket).
 */
export function resolveWebSocket(injected: WebSocketConstructor | undefined): WebSocketConstructor {
  const ctor = injected ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (typeof ctor !== 'function') {
    throw new TypeError('crier: no WebSocket: pass options.WebSocket (in Node use @crier/sdk-node)');
  }
  return ctor;
}

/**
 * The bytes of a binary message: an `ArrayBuffer` (`binaryType = 'arraybuffer'`) or any typed
 * array view (a `Uint8Array`, or a Node `Buffer` from `ws`). `undefined` for text messages (crier
 * speaks binary only); a `Blob` (an implementation that ignored `binaryType`) reads as no bytes.
 */
export function toBytes(data: unknown): Uint8Array | undefined {
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  // An ArrayBuffer, of this realm or another (an iframe, a test environment): a view of it. A
  // Blob would read as no bytes (ignored, as before), and a string is not viewed.
  return typeof data === 'string' ? undefined : new Uint8Array(data as ArrayBuffer);
}
