// The HTTP transport (fallback.ts) against a scripted event stream and fetch: what it asks of
// the broker's session endpoints, and how withFallback picks it where a WebSocket fails.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { HttpSocket, withFallback, type EventSourceLike, type FallbackOptions } from '../src/fallback.js';
import type { WebSocketLike } from '../src/websocket.js';

type Listener = (event: { data: string }) => void;

class FakeSource implements EventSourceLike {
  static last: FakeSource | undefined;
  onerror: ((event: never) => void) | null = null;
  onmessage: Listener | null = null;
  closed = false;
  private readonly listeners = new Map<string, Listener>();
  constructor(readonly url: string) {
    FakeSource.last = this;
  }
  addEventListener(type: string, listener: Listener): void {
    this.listeners.set(type, listener);
  }
  close(): void {
    this.closed = true;
  }
  emit(type: string, data: string): void {
    if (type === 'message') this.onmessage?.({ data });
    else this.listeners.get(type)?.({ data });
  }
}

function fakeFetch() {
  const calls: { url: string; body: number[] | undefined; done(ok?: boolean): void }[] = [];
  const fetch: NonNullable<FallbackOptions['fetch']> = (url, init) =>
    new Promise((resolve) => calls.push({ url, body: init.body && [...init.body], done: (ok = true) => resolve({ ok, status: ok ? 204 : 404 }) }));
  return { fetch, calls };
}

const flush = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

afterEach(() => {
  vi.useRealTimers();
});

describe('HttpSocket', () => {
  it('opens the session stream, gives messages as bytes, POSTs sends one at a time in order, and closes', async () => {
    const { fetch, calls } = fakeFetch();
    const socket = new HttpSocket('ws://broker.test:10102/crier', { EventSource: FakeSource, fetch });
    const seen: string[] = [];
    socket.onopen = () => seen.push('open');
    socket.onmessage = ((e: { data: ArrayBuffer }) => seen.push(`message ${[...new Uint8Array(e.data)].join(',')}`)) as never;
    socket.onclose = ((e: { code: number; reason: string }) => seen.push(`close ${e.code} ${e.reason}`)) as never;
    const source = FakeSource.last!;
    expect(source.url).toBe('http://broker.test:10102/crier/session');
    source.emit('session', 'S1');
    expect(socket.readyState).toBe(1);
    source.emit('message', btoa(String.fromCharCode(1, 2, 255)));
    socket.send(new Uint8Array([1]));
    socket.send(new Uint8Array([2]));
    socket.send(new Uint8Array([3]));
    expect(calls.map((c) => [c.url, c.body])).toEqual([['http://broker.test:10102/crier/session/S1', [1]]]);
    expect(socket.bufferedAmount).toBe(3);
    calls[0]!.done();
    await flush();
    expect(calls.map((c) => c.body)).toEqual([[1], [2, 3]]); // what waited, in one POST
    calls[1]!.done();
    await flush();
    expect(socket.bufferedAmount).toBe(0);
    socket.close(1000, 'quit');
    expect(calls[2]!.url).toBe('http://broker.test:10102/crier/session/S1/close?code=1000&reason=quit');
    expect(source.closed).toBe(true);
    expect(seen).toEqual(['open', 'message 1,2,255', 'close 1000 quit']);
  });

  it("the broker's close event, a lost stream, or a refused POST close it, once", async () => {
    const { fetch, calls } = fakeFetch();
    const codes: string[] = [];
    const open = (): FakeSource => {
      const socket = new HttpSocket('wss://b.test/', { EventSource: FakeSource, fetch });
      socket.onclose = ((e: { code: number; reason: string }) => codes.push(`${e.code} ${e.reason}`)) as never;
      FakeSource.last!.emit('session', 'S');
      (FakeSource.last as FakeSource & { socket?: HttpSocket }).socket = socket;
      return FakeSource.last!;
    };
    const a = open();
    expect(a.url).toBe('https://b.test/session');
    a.emit('close', '4009 draining: reconnect after 500 ms');
    a.onerror!(undefined as never);
    const b = open();
    b.onerror!(undefined as never);
    const c = open();
    (c as FakeSource & { socket?: HttpSocket }).socket!.send(new Uint8Array([1]));
    calls.at(-1)!.done(false);
    await flush();
    expect(codes).toEqual(['4009 draining: reconnect after 500 ms', '1006 event stream lost', '1006 session lost']);
  });
});

/** A WebSocket that never opens and closes when told (`fail`), or opens (`succeed`). */
function scriptedWs() {
  const made: (WebSocketLike & { fail(): void; succeed(): void })[] = [];
  class Ws implements WebSocketLike {
    binaryType = 'blob';
    readyState = 0;
    onopen: ((event: never) => void) | null = null;
    onmessage: ((event: never) => void) | null = null;
    onclose: ((event: never) => void) | null = null;
    onerror: ((event: never) => void) | null = null;
    constructor(readonly url: string) {
      made.push(this);
    }
    send(): void {}
    close(): void {
      this.readyState = 3;
    }
    fail(): void {
      this.readyState = 3;
      this.onerror?.({} as never);
      this.onclose?.({ code: 1006, reason: '' } as never);
    }
    succeed(): void {
      this.readyState = 1;
      this.onopen?.({} as never);
    }
  }
  return { Ws, made };
}

describe('withFallback', () => {
  it('keeps a WebSocket that opens', () => {
    const { Ws, made } = scriptedWs();
    const Socket = withFallback({ WebSocket: Ws, EventSource: FakeSource, fetch: fakeFetch().fetch });
    const socket = new Socket('ws://b.test/');
    const seen: string[] = [];
    socket.onopen = () => seen.push('open');
    FakeSource.last = undefined;
    made[0]!.succeed();
    expect(seen).toEqual(['open']);
    expect(FakeSource.last).toBeUndefined();
  });

  it('takes the HTTP session where the WebSocket fails before it opens, or does not open in time; then HTTP first', () => {
    vi.useFakeTimers();
    const { Ws, made } = scriptedWs();
    const Socket = withFallback({ WebSocket: Ws, EventSource: FakeSource, fetch: fakeFetch().fetch, openTimeout: 3000 });
    const seen: string[] = [];
    const watch = (s: WebSocketLike): WebSocketLike => {
      s.onopen = () => seen.push('open');
      s.onclose = ((e: { code: number }) => seen.push(`close ${e.code}`)) as never;
      return s;
    };
    watch(new Socket('ws://b.test/'));
    made[0]!.fail(); // refused: no close reaches the client, the HTTP session is tried in its place
    expect(FakeSource.last!.url).toBe('http://b.test/session');
    FakeSource.last!.onerror!(undefined as never); // the broker is not there either: one close
    expect(seen).toEqual(['close 1006']);

    watch(new Socket('ws://b.test/'));
    expect(made).toHaveLength(2);
    vi.advanceTimersByTime(3000); // a swallowed upgrade: HTTP after openTimeout
    FakeSource.last!.emit('session', 'S');
    expect(seen).toEqual(['close 1006', 'open']);

    watch(new Socket('ws://b.test/'));
    expect(made).toHaveLength(2); // HTTP worked where the WebSocket did not: straight to HTTP
  });
});
