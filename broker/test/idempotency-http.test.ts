// POST /publish with an Idempotency-Key: a repeat by the same publisher within idempotencyWindow
// answers the first publish's {id, offset, epoch} and is delivered to nobody.
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType, PROTOCOL_VERSION, type WelcomeFrame } from '@crier/protocol';
import type { Broker, BrokerEvent } from '../src/index.js';
import { systemClock, type Clock } from '../src/clock.js';
import { RawClient, cleanup, startBroker, text, waitFor } from './helpers.js';

afterEach(cleanup);

const sha = (t: string): string => createHash('sha256').update(t).digest('hex');
const publishUrl = (b: Broker, channel: string): string => new URL(`/publish/${channel}`, b.url.replace(/^ws/, 'http')).toString();

async function post(b: Broker, channel: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(publishUrl(b, channel), { method: 'POST', body, headers });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** An in-process subscriber and a WebSocket one on `pattern`, and a marker event that tells both are caught up. */
async function subscribers(b: Broker, pattern: string): Promise<{ local: BrokerEvent[]; ws: RawClient; settle: () => Promise<void> }> {
  const local: BrokerEvent[] = [];
  b.subscribe(pattern, (e) => local.push(e));
  const ws = await RawClient.connect(b.url);
  await ws.subscribe(pattern);
  let marks = 0;
  // Events are delivered in publish order: once the marker is in, everything before it is too.
  const settle = async (): Promise<void> => {
    marks++;
    await b.publish('mark.end', text(String(marks)));
    await waitFor('the marker in process', () => local.filter((e) => e.channel === 'mark.end').length === marks);
    await ws.waitEvents(marks, 'mark.end');
  };
  return { local, ws, settle };
}

const bodies = (events: BrokerEvent[], channel: string): string[] =>
  events.filter((e) => e.channel === channel).map((e) => Buffer.from(e.data).toString());

/** The real clock, whose `now()` a test can move forward (timers stay real). */
function steppedClock(): Clock & { advance(ms: number): void } {
  let offset = 0;
  return { ...systemClock, now: () => systemClock.now() + offset, advance: (ms) => void (offset += ms) };
}

describe('POST /publish with Idempotency-Key', () => {
  it('a repeat answers 202 with the first {id, offset, epoch} and is delivered once, in process and over WebSocket', async () => {
    const b = await startBroker();
    const subs = await subscribers(b, '>');
    const first = await post(b, 'order.paid', 'first', { 'Idempotency-Key': 'order-7:paid' });
    expect(first).toEqual({ status: 202, body: { id: expect.any(String), offset: 1, epoch: expect.any(String) } });
    // A retry (the answer was lost, say): the same key, even with another body.
    const again = await post(b, 'order.paid', 'retried', { 'Idempotency-Key': 'order-7:paid' });
    expect(again).toEqual(first);
    const other = await post(b, 'order.paid', 'second', { 'Idempotency-Key': 'order-8:paid' });
    expect(other).toMatchObject({ status: 202, body: { offset: 2 } });
    // Without a key, nothing is deduplicated.
    await post(b, 'order.paid', 'plain');
    await post(b, 'order.paid', 'plain');
    await subs.settle();
    expect(bodies(subs.local, 'order.paid')).toEqual(['first', 'second', 'plain', 'plain']);
    expect(subs.ws.events('order.paid').map((e) => Buffer.from(e.d).toString())).toEqual(['first', 'second', 'plain', 'plain']);
    expect(subs.ws.events('order.paid')[0]).toMatchObject({ id: first.body['id'], o: 1, e: first.body['epoch'] });
    expect(b.stats().published).toBe(4 + 1);
  });

  it('refuses a malformed key with 400 bad_request before reading the body, and publishes nothing', async () => {
    const b = await startBroker();
    for (const key of ['', 'x'.repeat(65), 'a b', 'a/b', 'a,b', 'e\u00ff']) {
      const res = await fetch(publishUrl(b, 'a.b'), { method: 'POST', body: 'x', headers: { 'Idempotency-Key': key } });
      expect([key, res.status, ((await res.json()) as { code: string }).code]).toEqual([key, 400, 'bad_request']);
    }
    expect((await post(b, 'a.b', 'x', { 'Idempotency-Key': 'x'.repeat(64) })).status).toBe(202);
    expect((await post(b, 'a.b', 'x', { 'Idempotency-Key': 'A-z_0.9:ok' })).status).toBe(202);
    expect(b.stats().published).toBe(2);
  });

  it('scopes keys per publisher: each principal, each anonymous client address', async () => {
    const b = await startBroker({
      tokens: [
        { id: 'billing', sha256: sha('billing-token'), publish: ['>'], subscribe: ['>'] },
        { id: 'shipping', sha256: sha('shipping-token'), publish: ['>'] },
      ],
    });
    const seen: string[] = [];
    b.subscribe('s.>', (e) => seen.push(Buffer.from(e.data).toString()));
    const as = (token: string): Record<string, string> => ({ Authorization: `Bearer ${token}`, 'Idempotency-Key': 'k1' });
    const billing = await post(b, 's.x', 'billing', as('billing-token'));
    expect(await post(b, 's.x', 'billing again', as('billing-token'))).toEqual(billing);
    const shipping = await post(b, 's.x', 'shipping', as('shipping-token'));
    expect(shipping.body['offset']).toBe(2);
    await waitFor('both events', () => seen.length === 2);

    // Anonymous clients (a broker without credentials, behind a trusted proxy): one scope per address.
    const anon = await startBroker({ trustedProxies: ['127.0.0.1'] });
    const from = (address: string): Record<string, string> => ({ 'X-Forwarded-For': address, 'Idempotency-Key': 'k1' });
    const one = await post(anon, 's.x', 'from .2', from('127.0.0.2'));
    expect(await post(anon, 's.x', 'from .2 again', from('127.0.0.2'))).toEqual(one);
    expect((await post(anon, 's.x', 'from .3', from('127.0.0.3'))).body['offset']).toBe(2);
    expect(anon.stats().published).toBe(2);
  });

  it('is one scope with the same principal\'s WebSocket publishes (message id i)', async () => {
    const b = await startBroker({ tokens: [{ id: 'svc', sha256: sha('svc-token'), publish: ['>'], subscribe: ['>'] }] });
    const seen: string[] = [];
    b.subscribe('w.>', (e) => seen.push(Buffer.from(e.data).toString()));
    const ws = await RawClient.open(b.url);
    ws.send({ t: FrameType.hello, v: PROTOCOL_VERSION, tk: 'svc-token' });
    ws.welcome = (await ws.waitFrame('welcome', (f) => f.t === FrameType.welcome)) as WelcomeFrame;
    const ack = await ws.request({ t: FrameType.publish, c: 'w.x', d: text('over ws'), i: 'msg-1' });
    expect(ack.t).toBe(FrameType.ack);
    const http = await post(b, 'w.x', 'over http', { Authorization: 'Bearer svc-token', 'Idempotency-Key': 'msg-1' });
    expect(http).toEqual({ status: 202, body: { id: ack.t === FrameType.ack ? ack.id : '', offset: 1, epoch: ack.t === FrameType.ack ? ack.e : '' } });
    await b.publish('w.end', text('end'));
    await waitFor('the marker', () => seen.includes('end'));
    expect(seen).toEqual(['over ws', 'end']);
  });

  it('forgets a key after idempotencyWindow: the same key then publishes again', async () => {
    const clock = steppedClock();
    const b = await startBroker({ clock, idempotencyWindow: 1000 });
    const first = await post(b, 'a.b', '1', { 'Idempotency-Key': 'k' });
    clock.advance(500); // real time passes too: well within the window
    expect(await post(b, 'a.b', '2', { 'Idempotency-Key': 'k' })).toEqual(first);
    clock.advance(1000);
    expect((await post(b, 'a.b', '3', { 'Idempotency-Key': 'k' })).body['offset']).toBe(2);

    // idempotencyWindow 0: off, every publish goes through.
    const off = await startBroker({ idempotencyWindow: 0 });
    await post(off, 'a.b', '1', { 'Idempotency-Key': 'k' });
    expect((await post(off, 'a.b', '2', { 'Idempotency-Key': 'k' })).body['offset']).toBe(2);
  });
});
