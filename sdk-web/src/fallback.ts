// An optional entry point (`@crier/sdk-web/fallback`): where a proxy blocks WebSocket, the same
// client over plain HTTP — a server-sent event stream for what the broker sends, POSTs for what
// the client sends — as Centrifugo emulates a bidirectional stream and Socket.IO polls. It is a
// WebSocket-shaped transport, so everything above it (hello and welcome, acks, resume,
// keep-alive) is the client's usual code and the broker's usual session.
//
// The broker side (`<base>session`):
//   GET  <base>session              an event stream: `event: session` with the session id first, then
//                                   one `data:` (the base64 of one broker message) per message, and
//                                   `event: close` (`<code> <reason>`) when the broker closes it
//   POST <base>session/<id>         one or more client messages, back to back (binary body)
//   POST <base>session/<id>/close   `?code=&reason=`: the client closes it
import type { WebSocketConstructor, WebSocketLike } from './websocket.js';

/** The part of an `EventSource` the transport uses (the browser's; `eventsource` in Node). */
export interface EventSourceLike {
  onerror: ((event: never) => void) | null;
  onmessage: ((event: { data: string }) => void) | null;
  addEventListener(type: string, listener: (event: { data: string }) => void): void;
  close(): void;
}

export interface FallbackOptions {
  /** The WebSocket to try first. @default globalThis.WebSocket */
  WebSocket?: WebSocketConstructor;
  /** @default globalThis.EventSource */
  EventSource?: new (url: string) => EventSourceLike;
  /** @default globalThis.fetch */
  fetch?: (url: string, init: { method: string; body?: Uint8Array<ArrayBuffer>; headers?: Record<string, string> }) => Promise<{ ok: boolean; status: number }>;
  /**
   * Ms a WebSocket may take to open before the HTTP transport is tried in its place (a proxy
   * that swallows the upgrade never answers it). @default 3000
   */
  openTimeout?: number;
}

/** Client messages one POST carries at most: 4 × 64 frames, within the broker's 256 per message. */
const MESSAGES_PER_POST = 4;

type Handler = ((event: never) => void) | null;

/** `ws://host/base` → `http://host/base/session`. */
function sessionUrl(url: string): string {
  const u = new URL(url);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  u.pathname = `${u.pathname.replace(/\/?$/, '/')}session`;
  u.search = '';
  return u.href;
}

function base64ToBytes(text: string): ArrayBuffer {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out.buffer;
}

/** A WebSocket-shaped session over HTTP (see the top of this file). */
export class HttpSocket implements WebSocketLike {
  binaryType = 'arraybuffer';
  readyState = 0;
  bufferedAmount = 0;
  onopen: Handler = null;
  onmessage: Handler = null;
  onclose: Handler = null;
  onerror: Handler = null;
  private readonly stream: EventSourceLike;
  private readonly url: string;
  private id: string | undefined;
  private readonly outbox: Uint8Array<ArrayBuffer>[] = [];
  private posting = false;

  constructor(
    url: string,
    private readonly options: FallbackOptions = {},
  ) {
    this.url = sessionUrl(url);
    const Source = options.EventSource ?? (globalThis as { EventSource?: new (url: string) => EventSourceLike }).EventSource;
    if (!Source) throw new TypeError('crier: no EventSource: pass options.EventSource');
    this.stream = new Source(this.url);
    // Not 'open': an EventSource fires its own open event (no data) when the stream starts.
    this.stream.addEventListener('session', (e) => {
      if (this.readyState !== 0) return;
      this.id = e.data;
      this.readyState = 1;
      this.fire(this.onopen, {});
    });
    this.stream.onmessage = (e) => {
      if (this.readyState === 1) this.fire(this.onmessage, { data: base64ToBytes(e.data) });
    };
    this.stream.addEventListener('close', (e) => {
      const space = e.data.indexOf(' ');
      this.end(Number(space === -1 ? e.data : e.data.slice(0, space)) || 1006, space === -1 ? '' : e.data.slice(space + 1));
    });
    // An EventSource reconnects by itself after an error: not this one. The client above decides
    // about reconnecting, and resumes its session on a new one.
    this.stream.onerror = () => this.end(1006, 'event stream lost');
  }

  send(data: Uint8Array<ArrayBuffer>): void {
    if (this.readyState !== 1) throw new Error('crier: HTTP session not open');
    this.outbox.push(data);
    this.bufferedAmount += data.length;
    this.post();
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState > 1) return;
    const id = this.id;
    this.readyState = 2;
    if (id !== undefined) {
      void this.request(`${this.url}/${id}/close?code=${code}&reason=${encodeURIComponent(reason)}`, undefined).catch(() => {});
    }
    this.end(code, reason);
  }

  /** Sends what waits, one POST at a time (so the broker reads it in order). */
  private post(): void {
    if (this.posting || !this.outbox.length || this.readyState !== 1) return;
    const messages = this.outbox.splice(0, MESSAGES_PER_POST);
    const size = messages.reduce((n, m) => n + m.length, 0);
    const body = new Uint8Array(size);
    let at = 0;
    for (const m of messages) {
      body.set(m, at);
      at += m.length;
    }
    this.posting = true;
    this.request(`${this.url}/${this.id}`, body).then(
      (ok) => {
        this.posting = false;
        this.bufferedAmount -= size;
        if (ok) this.post();
        else this.end(1006, 'session lost');
      },
      () => this.end(1006, 'session unreachable'),
    );
  }

  private async request(url: string, body: Uint8Array<ArrayBuffer> | undefined): Promise<boolean> {
    const init = { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } };
    // A browser's fetch must be called on the global object ("Illegal invocation" otherwise).
    const res = await (this.options.fetch ? this.options.fetch(url, init) : fetch(url, init));
    return res.ok;
  }

  private end(code: number, reason: string): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.stream.close();
    this.fire(this.onclose, { code, reason });
  }

  private fire(handler: Handler, event: object): void {
    (handler as ((event: object) => void) | null)?.(event);
  }
}

/**
 * A WebSocket class for `connect(url, { WebSocket: withFallback() })`: each connection attempt
 * opens a WebSocket, and where that fails before it opens (or does not open within
 * `openTimeout`), an {@link HttpSocket} in its place. Once the HTTP transport worked where the
 * WebSocket had not, later attempts go straight to HTTP.
 */
export function withFallback(options: FallbackOptions = {}): WebSocketConstructor {
  const Ws = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  const wait = options.openTimeout ?? 3000;
  let httpOnly = !Ws;
  return class FallbackSocket implements WebSocketLike {
    onopen: Handler = null;
    onmessage: Handler = null;
    onclose: Handler = null;
    onerror: Handler = null;
    private inner: WebSocketLike;
    private timer: ReturnType<typeof setTimeout> | undefined;

    constructor(private readonly url: string) {
      this.inner = httpOnly ? this.http() : this.attach(new Ws!(url), true);
    }

    get binaryType(): string {
      return this.inner.binaryType;
    }
    set binaryType(type: string) {
      this.inner.binaryType = type;
    }
    get readyState(): number {
      return this.inner.readyState;
    }
    get bufferedAmount(): number {
      return this.inner.bufferedAmount ?? 0;
    }

    send(data: Uint8Array<ArrayBuffer>): void {
      this.inner.send(data);
    }

    close(code?: number, reason?: string): void {
      clearTimeout(this.timer);
      this.inner.close(code, reason);
    }

    private http(): WebSocketLike {
      const socket = this.attach(new HttpSocket(this.url, options), false);
      const opened = socket.onopen as (event: never) => void;
      socket.onopen = (event: never) => {
        httpOnly = true;
        opened(event);
      };
      return socket;
    }

    /** Forwards the socket's events; a WebSocket that fails before it opens gives way to HTTP. */
    private attach(socket: WebSocketLike, first: boolean): WebSocketLike {
      const fallBack = (): void => {
        clearTimeout(this.timer);
        socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
        try {
          socket.close();
        } catch {
          // going away already
        }
        this.inner = this.http();
      };
      let wasOpen = false;
      if (first) this.timer = setTimeout(fallBack, wait);
      socket.onopen = (event: never) => {
        clearTimeout(this.timer);
        wasOpen = true;
        this.onopen?.(event);
      };
      socket.onmessage = (event: never) => this.onmessage?.(event);
      socket.onerror = (event: never) => {
        if (!first || socket.readyState === 1) this.onerror?.(event);
      };
      socket.onclose = (event: never) => {
        if (first && this.inner === socket && !wasOpen) return fallBack();
        this.onclose?.(event);
      };
      return socket;
    }
  };
}
