// Credentials: tk in every hello, getToken before a hello that needs it, the in-band refresh
// before expiry (auth frame), and what 4007 and 4008 mean. Scripted sockets and a manual clock:
// every step is explicit. One test runs the refresh over a real socket to the fake broker.
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { CloseCode, ErrorCode, FrameType } from '@crier/protocol';
import { connect } from '../src/client.js';
import { withTokenRefresh } from '../src/refresh.js';
import type { ClientOptions } from '../src/types.js';
import type { WebSocketConstructor } from '../src/websocket.js';
import { startFakeBroker } from './fake-broker.js';
import { ManualClock } from './manual-clock.js';
import { record } from './record.js';
import { scriptedClient } from './scripted-client.js';
import { waitFor } from './wait-for.js';

/** Lets promise callbacks (an async getToken's answer) run: one macrotask, no time passes. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A getToken that answers `token-1`, `token-2`, ... and counts its calls. */
function tokens(fail?: (call: number) => Error | undefined) {
  const calls: number[] = [];
  const getToken = async (): Promise<string> => {
    calls.push(calls.length + 1);
    const error = fail?.(calls.length);
    if (error) throw error;
    return `token-${calls.length}`;
  };
  return { getToken, calls };
}

/** A core client (`connect` of `@crier/sdk-web`), on scripted sockets. */
const core = (options: ClientOptions): ReturnType<typeof scriptedClient> => scriptedClient(options, connect);

/** A core client with `withTokenRefresh()` of `@crier/sdk-web/refresh`, on scripted sockets. */
const refreshing = (options: ClientOptions): ReturnType<typeof scriptedClient> =>
  scriptedClient(options, (url, o) => withTokenRefresh(connect(url, o)));

const event = { t: FrameType.event, c: 'a.b', d: new Uint8Array([1]), id: 'e', o: 1, e: 'E', ts: 0 } as const;

describe('the credential in hello', () => {
  it('sends options.token in every hello', () => {
    const { socket, welcome, clock } = core({ token: 'static-1' });
    socket().open();
    expect(socket().sentOf(FrameType.hello)).toEqual([{ t: FrameType.hello, v: 1, tk: 'static-1' }]);
    welcome();
    socket().fireClose(CloseCode.goingAway);
    clock.advance(125);
    socket().open();
    expect(socket().sentOf(FrameType.hello)).toEqual([{ t: FrameType.hello, v: 1, u: 'uuid-1', tk: 'static-1', s: 'secret-1' }]);
  });

  it('asks getToken before the first hello (async), and keeps its answer across an ordinary reconnect', async () => {
    const { getToken, calls } = tokens();
    const { socket, welcome, clock } = core({ getToken });
    socket().open();
    expect(socket().sent).toEqual([]); // the hello waits for the credential
    await settle();
    expect(socket().sentOf(FrameType.hello)).toEqual([{ t: FrameType.hello, v: 1, tk: 'token-1' }]);
    welcome();
    socket().fireClose(CloseCode.abnormal);
    clock.advance(125);
    socket().open(); // the credential held is still good: no getToken, the hello goes at once
    expect(socket().sentOf(FrameType.hello)).toEqual([{ t: FrameType.hello, v: 1, u: 'uuid-1', tk: 'token-1', s: 'secret-1' }]);
    expect(calls).toEqual([1]);
  });

  it('a sync getToken that answered before the socket opened: the hello goes on open', async () => {
    const { socket } = core({ getToken: () => 'sync-token' });
    await settle();
    socket().open();
    expect(socket().sentOf(FrameType.hello)).toEqual([{ t: FrameType.hello, v: 1, tk: 'sync-token' }]);
  });

  it('asks getToken again when the credential held is past the expiry the broker gave', async () => {
    const { getToken, calls } = tokens();
    const { socket, welcome, clock } = core({ getToken, token: 'first' });
    socket().open();
    expect(socket().sentOf(FrameType.hello)[0]!.tk).toBe('first');
    welcome({ x: clock.time + 1000 });
    socket().fireClose(CloseCode.abnormal);
    clock.advance(1000); // the retry at 125 ms fails too, the credential expires meanwhile
    socket().fireClose(CloseCode.abnormal);
    clock.advance(250);
    socket().open();
    await settle();
    expect(calls).toEqual([1]);
    expect(socket().sentOf(FrameType.hello)[0]!.tk).toBe('token-1');
  });

  it('a getToken that rejects is an error event, and the attempt is retried with backoff (no tight loop)', async () => {
    const { getToken, calls } = tokens((n) => (n <= 2 ? new Error(`auth server down (${n})`) : undefined));
    const { client, socket, clock, sockets, rec } = core({ getToken });
    socket().open();
    await settle();
    expect(rec.errors.map((e) => [e.code, e.message])).toEqual([[ErrorCode.unauthorized, 'getToken failed: auth server down (1)']]);
    expect(client.state).toBe('reconnecting');
    expect(rec.states).toEqual([['reconnecting', { code: CloseCode.tokenExpired, reason: 'getToken failed' }]]);
    expect(sockets[0]!.closeCalls).toEqual([{ code: CloseCode.tokenExpired, reason: 'getToken failed' }]);
    expect(clock.pending()).toEqual([125]); // backoff, nothing else
    expect(calls).toEqual([1]);
    clock.advance(125);
    await settle();
    expect(calls).toEqual([1, 2]);
    expect(clock.pending()).toEqual([250]); // the backoff grows
    clock.advance(250);
    socket().open();
    await settle();
    expect(calls).toEqual([1, 2, 3]);
    expect(socket().sentOf(FrameType.hello)).toEqual([{ t: FrameType.hello, v: 1, tk: 'token-3' }]);
    expect(sockets).toHaveLength(3);
  });

  it('a getToken that throws synchronously is reported the same way', async () => {
    const { socket, rec, client } = core({
      getToken: () => {
        throw new TypeError('no session');
      },
    });
    socket().open();
    await settle();
    expect(rec.errors.map((e) => [e.code, e.message])).toEqual([[ErrorCode.unauthorized, 'getToken failed: no session']]);
    expect(client.state).toBe('reconnecting');
  });
});

describe('refresh before expiry, in band', () => {
  it('sends auth with a fresh token at x - margin, reschedules from the ack, and loses nothing', async () => {
    const { getToken, calls } = tokens();
    const { client, socket, welcome, clock, sockets, rec } = refreshing({ getToken });
    socket().open();
    await settle();
    const s = welcome({ ka: 0, x: clock.time + 100_000 }); // margin: a tenth of 100 s
    client.subscribe('a.*');
    s.receive({ t: FrameType.ack, r: s.sentOf(FrameType.subscribe)[0]!.r });
    clock.advance(89_999);
    await settle();
    expect(s.sentOf(FrameType.auth)).toEqual([]);
    clock.advance(1);
    await settle();
    expect(calls).toEqual([1, 2]);
    const [auth] = s.sentOf(FrameType.auth);
    expect(auth).toEqual({ t: FrameType.auth, r: expect.any(Number), tk: 'token-2' });
    s.receive(event); // events keep flowing while the refresh is in flight
    s.receive({ t: FrameType.ack, r: auth!.r, x: clock.time + 600_000 });
    await settle();
    expect(clock.pending()).toEqual([570_000]); // margin capped at 30 s
    clock.advance(570_000);
    await settle();
    expect(s.sentOf(FrameType.auth).map((f) => f.tk)).toEqual(['token-2', 'token-3']);
    s.receive(event);
    expect(rec.events).toHaveLength(2);
    expect(rec.errors).toEqual([]);
    expect(sockets).toHaveLength(1); // no reconnect
    expect(rec.states).toEqual([['connected', {}]]);
    expect(s.sentOf(FrameType.subscribe)).toHaveLength(1); // subscriptions untouched
  });

  it('a refused refresh is an error event, retried at half the time left; then 4007 reconnects with a fresh token', async () => {
    const { getToken, calls } = tokens();
    const { client, socket, welcome, clock, sockets, rec } = refreshing({ getToken });
    socket().open();
    await settle();
    const s = welcome({ ka: 0, x: clock.time + 100_000 });
    clock.advance(90_000);
    await settle();
    const refuse = (): void => {
      const auth = s.sentOf(FrameType.auth).at(-1)!;
      s.receive({ t: FrameType.error, r: auth.r, code: ErrorCode.forbidden, msg: 'not that principal' });
    };
    refuse();
    await settle();
    expect(rec.errors.map((e) => [e.code, e.message])).toEqual([[ErrorCode.forbidden, 'credential refresh failed: not that principal']]);
    expect(clock.pending()).toEqual([5000]); // half of the 10 s left
    clock.advance(5000);
    await settle();
    refuse();
    await settle();
    expect(clock.pending()).toEqual([2500]);
    clock.advance(2500);
    await settle();
    refuse();
    await settle();
    expect(clock.pending()).toEqual([1250]);
    clock.advance(1250);
    await settle();
    refuse();
    await settle();
    expect(rec.errors).toHaveLength(4);
    expect(clock.pending()).toEqual([]); // 3 retries, then it waits for the broker's 4007
    expect(s.sentOf(FrameType.auth)).toHaveLength(4);
    expect(calls).toEqual([1, 2, 3, 4, 5]);
    s.fireClose(CloseCode.tokenExpired, 'unauthorized: the credential expired');
    expect(client.state).toBe('reconnecting');
    expect(rec.errors).toHaveLength(4); // with getToken, 4007 is not an error: it is handled
    clock.advance(125);
    socket().open();
    await settle();
    expect(calls).toEqual([1, 2, 3, 4, 5, 6]);
    expect(socket().sentOf(FrameType.hello)).toEqual([{ t: FrameType.hello, v: 1, u: 'uuid-1', tk: 'token-6', s: 'secret-1' }]);
    welcome();
    expect(client.state).toBe('connected');
    expect(sockets).toHaveLength(2);
  });

  it('a getToken failing at refresh time is an error event, retried', async () => {
    const { getToken, calls } = tokens((n) => (n === 2 ? new Error('offline') : undefined));
    const { socket, welcome, clock, rec } = refreshing({ getToken });
    socket().open();
    await settle();
    const s = welcome({ ka: 0, x: clock.time + 10_000 });
    clock.advance(9000);
    await settle();
    expect(rec.errors.map((e) => [e.code, e.message])).toEqual([[ErrorCode.unauthorized, 'credential refresh failed: getToken failed: offline']]);
    expect(clock.pending()).toEqual([500]);
    clock.advance(500);
    await settle();
    expect(calls).toEqual([1, 2, 3]);
    expect(s.sentOf(FrameType.auth).map((f) => f.tk)).toEqual(['token-3']);
  });

  it('a connection lost during a refresh cancels it: no error, the next welcome schedules its own', async () => {
    const { getToken } = tokens();
    const { socket, welcome, clock, rec } = refreshing({ getToken });
    socket().open();
    await settle();
    const s = welcome({ ka: 0, x: clock.time + 10_000 });
    clock.advance(9000);
    await settle();
    expect(s.sentOf(FrameType.auth)).toHaveLength(1);
    s.fireClose(CloseCode.goingAway);
    await settle();
    expect(rec.errors).toEqual([]);
    expect(clock.pending()).toEqual([125]); // only the reconnect
  });

  it('without withTokenRefresh (a core client) nothing is refreshed: at expiry the broker closes with 4007 and the client reconnects with a fresh token', async () => {
    const { getToken, calls } = tokens();
    const { client, socket, welcome, clock, sockets, rec } = core({ getToken });
    socket().open();
    await settle();
    welcome({ ka: 0, x: clock.time + 10_000 });
    expect(clock.pending()).toEqual([]);
    clock.advance(10_000);
    socket().fireClose(CloseCode.tokenExpired, 'unauthorized: the credential expired');
    expect(client.state).toBe('reconnecting');
    clock.advance(clock.pending()[0]!);
    socket().open();
    await settle();
    expect(calls).toEqual([1, 2]);
    expect(socket().sentOf(FrameType.hello)[0]!.tk).toBe('token-2');
    expect(sockets).toHaveLength(2);
    expect(rec.errors).toEqual([]);
  });

  it('with only a static token nothing is refreshed, and 4007 is final with an unauthorized error', () => {
    const { client, socket, welcome, clock, sockets, rec } = refreshing({ token: 'static' });
    socket().open();
    welcome({ ka: 0, x: clock.time + 10_000 });
    expect(clock.pending()).toEqual([]);
    socket().fireClose(CloseCode.tokenExpired, 'unauthorized: the credential expired');
    expect(client.state).toBe('closed');
    expect(rec.errors.map((e) => [e.code, e.message])).toEqual([[ErrorCode.unauthorized, 'the credential expired']]);
    clock.advance(60_000);
    expect(sockets).toHaveLength(1);
  });
});

describe('a refused credential', () => {
  it('4008 is final, reported as an unauthorized error', async () => {
    const { getToken, calls } = tokens();
    const { client, socket, clock, sockets, rec } = core({ getToken });
    socket().open();
    await settle();
    socket().fireClose(CloseCode.unauthorized, 'unauthorized: bad signature');
    expect(client.state).toBe('closed');
    expect(rec.errors.map((e) => [e.code, e.message])).toEqual([[ErrorCode.unauthorized, 'bad signature']]);
    expect(rec.states.at(-1)).toEqual(['closed', { code: CloseCode.unauthorized, reason: 'unauthorized: bad signature' }]);
    await expect(client.ready()).rejects.toMatchObject({ code: ErrorCode.closed });
    clock.advance(60_000);
    expect(sockets).toHaveLength(1);
    expect(calls).toEqual([1]);
  });
});

describe('against the fake broker', () => {
  it('refreshes in band over a real socket: the broker sees auth, the stream and its events stay', async () => {
    const clock = new ManualClock();
    const b = await startFakeBroker({ credential: (tk) => (tk?.startsWith('token-') ? clock.time + 100_000 : false) });
    try {
      const { getToken } = tokens();
      const client = withTokenRefresh(connect(b.url, { WebSocket: WebSocket as unknown as WebSocketConstructor, timers: clock, getToken, lifecycle: false }));
      const rec = record(client);
      await waitFor('subscribed', client.subscribe('a.*').ready);
      const c = b.connections[0]!;
      expect(c.received(FrameType.hello)[0]!.tk).toBe('token-1');
      clock.advance(90_000);
      await waitFor('the auth frame', () => c.received(FrameType.auth).length === 1);
      expect(c.received(FrameType.auth)[0]!.tk).toBe('token-2');
      // An event sent after the ack arrives after it: by then the ack's x rescheduled the next refresh.
      b.publish('a.b', new Uint8Array([7]));
      await waitFor('the event', () => rec.events.length === 1);
      expect(clock.pending()).toContain(90_000);
      expect(b.connections).toHaveLength(1);
      expect(rec.errors).toEqual([]);
      await client.quit();
    } finally {
      await b.close();
    }
  });

  it('a credential the broker refuses in hello closes the client for good (4008, unauthorized)', async () => {
    const b = await startFakeBroker({ credential: () => false });
    try {
      const client = connect(b.url, { WebSocket: WebSocket as unknown as WebSocketConstructor, token: 'wrong', lifecycle: false });
      const rec = record(client);
      await waitFor('closed', () => client.state === 'closed');
      expect(rec.errors.map((e) => e.code)).toEqual([ErrorCode.unauthorized]);
      expect(b.connections).toHaveLength(1);
    } finally {
      await b.close();
    }
  });
});
