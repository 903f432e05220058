import { changed } from './wait-for.js';
import { DEFAULT_DECODE_LIMITS, decodeUntrustedFrames, encodeFrame, type BrokerFrame, type ClientFrame } from '@crier/protocol';
import type { WebSocketConstructor, WebSocketLike } from '../src/websocket.js';

/**
 * An in-memory WebSocket driven by the test: nothing happens until the test opens it, feeds it
 * frames or closes it, so the order of events (a late close of an old socket, say) is exact.
 */
export class ScriptedSocket implements WebSocketLike {
  binaryType = 'blob';
  readyState = 0;
  /** What the test says is waiting unsent in the socket. */
  bufferedAmount = 0;
  onopen: ((event: never) => void) | null = null;
  onmessage: ((event: never) => void) | null = null;
  onclose: ((event: never) => void) | null = null;
  onerror: ((event: never) => void) | null = null;
  /** Frames the client sent, decoded (a message may hold several). */
  readonly sent: ClientFrame[] = [];
  /** How many frames each message the client sent held. */
  readonly messages: number[] = [];
  /** Arguments of each `close()` call by the client. */
  readonly closeCalls: { code: number | undefined; reason: string | undefined }[] = [];

  constructor(readonly url: string) {}

  send(data: Uint8Array<ArrayBuffer>): void {
    if (this.readyState !== 1) throw new Error('ScriptedSocket: send while not open');
    const before = this.sent.length;
    decodeUntrustedFrames(data, DEFAULT_DECODE_LIMITS, (frame) => this.sent.push(frame));
    this.messages.push(this.sent.length - before);
    changed(); // a test may wait for what the client sends
  }

  close(code?: number, reason?: string): void {
    this.closeCalls.push({ code, reason });
    if (this.readyState < 2) this.readyState = 2;
  }

  // Test drivers.
  open(): void {
    this.readyState = 1;
    this.onopen?.({} as never);
  }

  receive(frame: BrokerFrame): void {
    const bytes = encodeFrame(frame);
    // As a browser delivers it with binaryType 'arraybuffer'.
    this.onmessage?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) } as never);
  }

  receiveRaw(data: unknown): void {
    this.onmessage?.({ data } as never);
  }

  fireClose(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason } as never);
  }

  /** The frames of one type the client sent. */
  sentOf<T extends ClientFrame['t']>(t: T): Extract<ClientFrame, { t: T }>[] {
    return this.sent.filter((f): f is Extract<ClientFrame, { t: T }> => f.t === t);
  }
}

/** A WebSocket class whose instances the test can reach, newest last. */
export function scriptedWebSocket(): { WebSocket: WebSocketConstructor; sockets: ScriptedSocket[] } {
  const sockets: ScriptedSocket[] = [];
  class Scripted extends ScriptedSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
    }
  }
  return { WebSocket: Scripted, sockets };
}
