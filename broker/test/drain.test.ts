// Drain (lame-duck mode): readyz and newcomers refused at once, then the sockets closed with 4009
// in batches spread over drainWindow, on a clock the test moves by hand.
import { request, type IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { CloseCode, drainDelayOf } from '@crier/protocol';
import type { Broker } from '../src/index.js';
import { RawClient, cleanup, startBroker, waitFor } from './helpers.js';
import { ManualClock } from './manual-clock.js';

afterEach(cleanup);


const httpUrl = (b: Broker, path: string): string => `http://127.0.0.1:${b.port}${path}`;

/** A WebSocket handshake expected to be refused: its status, Retry-After and JSON body. */
function refusedUpgrade(url: string): Promise<{ status: number; retryAfter: string | undefined; body: unknown }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.on('error', () => {});
    ws.once('open', () => {
      ws.terminate();
      reject(new Error('the upgrade was accepted'));
    });
    ws.once('unexpected-response', (req, res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode!, retryAfter: res.headers['retry-after'], body: JSON.parse(body) });
      });
    });
  });
}

/** An open SSE stream (`GET /events`): whether the broker has ended it. */
function openStream(b: Broker): Promise<{ ended: () => boolean; res: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = request(httpUrl(b, '/events?channels=a'), { headers: { Accept: 'text/event-stream' } }, (res) => {
      let ended = false;
      res.on('data', () => {});
      res.on('close', () => (ended = true));
      if (res.statusCode !== 200) reject(new Error(`GET /events answered ${res.statusCode}`));
      else resolve({ ended: () => ended, res });
    });
    req.on('error', reject);
    req.end();
  });
}

/** A promise's state, readable synchronously. */
function track(promise: Promise<void>): { settled: () => boolean } {
  let settled = false;
  void promise.then(() => (settled = true));
  return { settled: () => settled };
}

const closedCount = (clients: RawClient[]): number => clients.filter((c) => c.closed !== undefined).length;

/** Waits until exactly `n` of `clients` have closed. */
function waitClosed(clients: RawClient[], n: number): Promise<true> {
  return waitFor(`${n} of ${clients.length} clients to be closed`, () => closedCount(clients) === n, { wakeOn: clients.map((c) => c.changed) });
}

describe('drain()', () => {
  it('answers readyz 503 and refuses newcomers at once, closes 20 clients with 4009 spread over the window, then resolves; close() ends it', async () => {
    const clock = new ManualClock();
    const window = 10_000;
    const b = await startBroker({ clock, drainWindow: window });
    const clients = await Promise.all(Array.from({ length: 20 }, () => RawClient.connect(b.url)));
    const stream = await openStream(b);
    expect(await (await fetch(httpUrl(b, '/readyz'))).json()).toEqual({ status: 'ready' });

    const drained = b.drain();
    const state = track(drained);
    expect(b.drain()).toBe(drained); // idempotent

    // At once, before the clock moves: not ready, newcomers refused with Retry-After.
    const ready = await fetch(httpUrl(b, '/readyz'));
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'draining' });
    expect((await fetch(httpUrl(b, '/healthz'))).status).toBe(200); // alive: not to be restarted meanwhile
    expect(await refusedUpgrade(b.url)).toEqual({ status: 503, retryAfter: '5', body: { code: 'shutting_down', message: expect.any(String) } });
    const sse = await fetch(httpUrl(b, '/events?channels=a'));
    expect([sse.status, sse.headers.get('retry-after'), ((await sse.json()) as { code: string }).code]).toEqual([503, '5', 'shutting_down']);
    const publish = await fetch(httpUrl(b, '/publish/a'), { method: 'POST', body: 'x' });
    expect([publish.status, publish.headers.get('retry-after'), ((await publish.json()) as { code: string }).code]).toEqual([503, '5', 'shutting_down']);

    // 20 connections over 10 s: 20 batches of one, 500 ms apart, the first at once. Every
    // client still open answers a request after each batch: the next one has not been closed.
    const interval = window / 20;
    for (let batch = 1; batch <= 20; batch++) {
      await waitClosed(clients, batch);
      const open = clients.filter((c) => c.closed === undefined);
      await Promise.all(open.map((c) => c.subscribe('still.open')));
      expect(closedCount(clients)).toBe(batch);
      if (batch < 20) {
        expect(state.settled()).toBe(false); // resolves after the last
        expect(stream.ended()).toBe(false); // SSE streams end last
      }
      clock.advance(interval);
    }
    expect(clock.now()).toBe(window); // the last batch came at 9.5 s, within the window

    for (const c of clients) {
      expect(c.closed!.code).toBe(CloseCode.draining);
      expect(c.closed!.reason).toMatch(/^draining: reconnect after \d+ ms$/);
      const delay = drainDelayOf(c.closed!.reason)!;
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThanOrEqual(window / 2);
    }
    // Told different delays, so that they come back spread out (20 draws from 0-5000 ms).
    expect(new Set(clients.map((c) => drainDelayOf(c.closed!.reason))).size).toBeGreaterThan(1);

    await waitFor('drain() to resolve', () => state.settled());
    await waitFor('the SSE stream to end', () => stream.ended());
    expect(b.stats().connections).toBe(0);
    expect((await fetch(httpUrl(b, '/readyz'))).status).toBe(503); // still listening, still not ready
    await b.close();
    await expect(fetch(httpUrl(b, '/readyz'))).rejects.toThrow(); // no longer listening
  });

  it('close() during a drain closes the rest at once (1001) and resolves the drain', async () => {
    const clock = new ManualClock();
    const b = await startBroker({ clock, drainWindow: 10_000 });
    const clients = await Promise.all(Array.from({ length: 5 }, () => RawClient.connect(b.url)));
    const drained = track(b.drain());
    await waitClosed(clients, 1);
    const first = clients.find((c) => c.closed !== undefined)!;
    expect(first.closed!.code).toBe(CloseCode.draining);

    await b.close();
    expect(drained.settled()).toBe(true);
    await waitClosed(clients, 5);
    expect(clients.filter((c) => c !== first).map((c) => c.closed!.code)).toEqual(Array(4).fill(CloseCode.goingAway));
    await b.drain(); // after close(): nothing to do
  });

  it('with no client it resolves at once; with drainWindow 0 every client is closed at once with no delay', async () => {
    const idle = await startBroker({ clock: new ManualClock() });
    await idle.drain();

    const b = await startBroker({ clock: new ManualClock(), drainWindow: 0 });
    const clients = await Promise.all(Array.from({ length: 3 }, () => RawClient.connect(b.url)));
    await b.drain();
    for (const c of clients) expect(await c.waitClose()).toEqual({ code: CloseCode.draining, reason: 'draining: reconnect after 0 ms' });
  });

  it('with more clients than batches, closes them in equal batches every 100 ms', async () => {
    const clock = new ManualClock();
    const b = await startBroker({ clock, drainWindow: 300 });
    const clients = await Promise.all(Array.from({ length: 9 }, () => RawClient.connect(b.url)));
    const drained = track(b.drain());
    // 300 ms allows 3 batches (at least 100 ms apart): 3 clients each at 0, 100 and 200 ms.
    for (const n of [3, 6, 9]) {
      await waitClosed(clients, n);
      await Promise.all(clients.filter((c) => c.closed === undefined).map((c) => c.subscribe('still.open')));
      expect(closedCount(clients)).toBe(n);
      clock.advance(100);
    }
    await waitFor('drain() to resolve', () => drained.settled());
  });
});
