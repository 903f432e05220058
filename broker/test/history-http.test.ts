// GET /history/<channel>: the retained events of one channel as JSON, admitted like POST /publish
// and GET /events (CORS, allowedOrigins, a credential whose subscribe grants cover the channel).
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '@crier/protocol';
import type { Broker } from '../src/index.js';
import type { HistoryJson } from '../src/http/history.js';
import type { Ingress } from '../src/transport/ingress.js';
import { RawClient, cleanup, startBroker, text } from './helpers.js';

afterEach(cleanup);

const sha = (t: string): string => createHash('sha256').update(t).digest('hex');
const ingressOf = (b: Broker): Ingress => (b as unknown as { ingress: Ingress }).ingress;
const httpUrl = (b: Broker, path: string): string => new URL(path, b.url.replace(/^ws/, 'http')).toString();

async function get(b: Broker, path: string, init: RequestInit = {}): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(httpUrl(b, path), init);
  const raw = await res.text();
  return { status: res.status, body: raw === '' ? {} : (JSON.parse(raw) as Record<string, unknown>), headers: res.headers };
}

async function history(b: Broker, path: string, init?: RequestInit): Promise<HistoryJson> {
  const res = await get(b, path, init);
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as unknown as HistoryJson;
}

describe('GET /history/<channel>', () => {
  it('answers the retained events with their fields, data as text or base64 like SSE, labels and key when set', async () => {
    const b = await startBroker();
    const first = await b.publish('user.created', text('{"id":42}'), { labels: ['eu', 'vip'], key: 'k42' });
    await b.publish('user.created', new Uint8Array([0xff, 0x00, 0xc3, 0x28]));
    await b.publish('user.created', text('base64:not really'));
    await b.publish('user.created', text('héllo\nworld ✓'));
    await b.publish('user.deleted', text('another channel'));
    const page = await history(b, '/history/user.created');
    expect(page).toEqual({
      channel: 'user.created', epoch: first.epoch, offset: 4, complete: true, more: false,
      events: [
        { id: first.id, offset: 1, epoch: first.epoch, time: expect.any(Number), data: '{"id":42}', labels: ['eu', 'vip'], key: 'k42' },
        { id: expect.any(String), offset: 2, epoch: first.epoch, time: expect.any(Number), data: `base64:${Buffer.from([0xff, 0x00, 0xc3, 0x28]).toString('base64')}` },
        { id: expect.any(String), offset: 3, epoch: first.epoch, time: expect.any(Number), data: `base64:${Buffer.from('base64:not really').toString('base64')}` },
        { id: expect.any(String), offset: 4, epoch: first.epoch, time: expect.any(Number), data: 'héllo\nworld ✓' },
      ],
    });
    expect(Math.abs(page.events[0]!.time - Date.now())).toBeLessThan(60_000);
    const res = await get(b, '/history/user.created');
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it('pages from a position: since and epoch, limit and more; a position of another epoch is not complete', async () => {
    const b = await startBroker();
    const { epoch } = await b.publish('a.b', text('1'));
    for (let i = 2; i <= 5; i++) await b.publish('a.b', text(String(i)));
    const data = (p: HistoryJson): string[] => p.events.map((e) => e.data);

    const one = await history(b, `/history/a.b?since=0&epoch=${epoch}&limit=2`);
    expect([data(one), one.complete, one.more, one.offset]).toEqual([['1', '2'], true, true, 5]);
    const two = await history(b, `/history/a.b?since=2&epoch=${epoch}&limit=2`);
    expect([data(two), two.complete, two.more]).toEqual([['3', '4'], true, true]);
    const three = await history(b, `/history/a.b?since=4&epoch=${epoch}&limit=2`);
    expect([data(three), three.complete, three.more]).toEqual([['5'], true, false]);
    const none = await history(b, `/history/a.b?since=5&epoch=${encodeURIComponent(epoch)}`);
    expect([data(none), none.complete, none.more]).toEqual([[], true, false]);

    // Offsets of another epoch say nothing: everything retained, and not complete.
    const other = await history(b, '/history/a.b?since=3&epoch=gone.0');
    expect([data(other), other.complete, other.epoch]).toEqual([['1', '2', '3', '4', '5'], false, epoch]);
    // A channel never published: empty, complete without a position.
    expect(await history(b, '/history/never.used')).toEqual({ channel: 'never.used', epoch: '', offset: 0, complete: true, more: false, events: [] });
  });

  it('limit defaults to historySize and may not exceed it; trimmed events make a position incomplete', async () => {
    const b = await startBroker({ historySize: 3 });
    const { epoch } = await b.publish('t.x', text('1'));
    for (let i = 2; i <= 5; i++) await b.publish('t.x', text(String(i)));
    const all = await history(b, '/history/t.x');
    expect(all.events.map((e) => e.offset)).toEqual([3, 4, 5]);
    expect(all.complete).toBe(true);
    const trimmed = await history(b, `/history/t.x?since=1&epoch=${epoch}`);
    expect([trimmed.events.map((e) => e.offset), trimmed.complete]).toEqual([[3, 4, 5], false]);
    const kept = await history(b, `/history/t.x?since=2&epoch=${epoch}`);
    expect([kept.events.map((e) => e.offset), kept.complete]).toEqual([[3, 4, 5], true]);
    expect(await get(b, '/history/t.x?limit=4')).toMatchObject({ status: 400, body: { code: 'bad_request', message: expect.stringContaining('1 to 3') } });

    // History off: limit is still 1 at least, and nothing is kept.
    const off = await startBroker({ historySize: 0 });
    await off.publish('t.x', text('1'));
    expect((await history(off, '/history/t.x?limit=1')).events).toEqual([]);
  });

  it('answers a bad channel or query with 400 and a stable code, another method with 405', async () => {
    const b = await startBroker();
    const code = async (path: string, init?: RequestInit): Promise<[number, unknown]> => {
      const res = await get(b, path, init);
      return [res.status, res.body['code']];
    };
    expect(await code('/history/user.*')).toEqual([400, 'bad_channel']);
    expect(await code('/history/a..b')).toEqual([400, 'bad_channel']);
    expect(await code('/history/')).toEqual([400, 'bad_channel']);
    expect(await code('/history/a%zz')).toEqual([400, 'bad_channel']);
    expect(await code('/history/a.b?since=1')).toEqual([400, 'bad_request']);
    expect(await code('/history/a.b?epoch=e')).toEqual([400, 'bad_request']);
    expect(await code('/history/a.b?since=-1&epoch=e')).toEqual([400, 'bad_request']);
    expect(await code('/history/a.b?since=1.5&epoch=e')).toEqual([400, 'bad_request']);
    expect(await code('/history/a.b?since=1&epoch=')).toEqual([400, 'bad_request']);
    expect(await code('/history/a.b?limit=0')).toEqual([400, 'bad_request']);
    expect(await code('/history/a.b?limit=abc')).toEqual([400, 'bad_request']);
    expect(await code('/history/a.b?limit=101')).toEqual([400, 'bad_request']);
    const post = await get(b, '/history/a.b', { method: 'POST', body: 'x' });
    expect([post.status, post.body['code'], post.headers.get('allow')]).toEqual([405, 'method_not_allowed', 'GET, OPTIONS']);
    // A percent-encoded name is decoded, under a path option too.
    const crier = await startBroker({ path: '/crier' });
    await crier.publish('a.b-c', text('x'));
    expect((await history(crier, '/crier/history/a.b%2Dc')).events.map((e) => e.data)).toEqual(['x']);
  });

  it('needs a credential whose subscribe grants cover the channel, and counts every refusal', async () => {
    const b = await startBroker({
      tokens: [
        { id: 'billing', sha256: sha('billing-token'), subscribe: ['billing.>'] },
        { id: 'writer', sha256: sha('writer-token'), publish: ['>'] },
      ],
    });
    await b.publish('billing.paid', text('7'));
    const bearer = (token: string): RequestInit => ({ headers: { Authorization: `Bearer ${token}` } });
    const refusals = ingressOf(b).refusals;

    expect((await history(b, '/history/billing.paid', bearer('billing-token'))).events.map((e) => e.data)).toEqual(['7']);
    const none = await get(b, '/history/billing.paid');
    expect([none.status, none.body['code'], none.headers.get('www-authenticate')]).toEqual([401, 'unauthorized', 'Bearer']);
    expect((await get(b, '/history/billing.paid', bearer('wrong-token'))).status).toBe(401);
    expect(refusals.count(ErrorCode.unauthorized)).toBe(2);
    // A publish grant is not a read grant; another channel is not covered.
    expect(await get(b, '/history/billing.paid', bearer('writer-token'))).toMatchObject({ status: 403, body: { code: 'forbidden' } });
    expect(await get(b, '/history/user.1', bearer('billing-token'))).toMatchObject({ status: 403, body: { code: 'forbidden' } });
    expect(refusals.count(ErrorCode.forbidden)).toBe(2);
    // The bad query of an authenticated client is a bad request, not a refusal.
    expect(await get(b, '/history/billing.paid?limit=0', bearer('billing-token'))).toMatchObject({ status: 400, body: { code: 'bad_request' } });
    expect(refusals.count(ErrorCode.forbidden)).toBe(2);
  });

  it('applies allowedOrigins (403 forbidden_origin, counted) and CORS, and answers 503 shutting_down while closing', async () => {
    const b = await startBroker({ allowedOrigins: ['https://app.example'], corsOrigins: ['https://app.example'] });
    await b.publish('a.b', text('x'));
    const foreign = await get(b, '/history/a.b', { headers: { Origin: 'https://evil.example' } });
    expect([foreign.status, foreign.body['code']]).toEqual([403, 'forbidden_origin']);
    expect(ingressOf(b).refusals.count(ErrorCode.forbiddenOrigin)).toBe(1);
    const ok = await get(b, '/history/a.b', { headers: { Origin: 'https://app.example' } });
    expect([ok.status, ok.headers.get('access-control-allow-origin')]).toEqual([200, 'https://app.example']);
    const preflight = await get(b, '/history/a.b', {
      method: 'OPTIONS', headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization' },
    });
    expect([preflight.status, preflight.headers.get('access-control-allow-headers')]).toEqual([204, 'authorization']);

    const stalled = await RawClient.connect(b.url);
    stalled.ws.pause(); // it will not answer the close frame: close() waits for it
    const closing = b.close();
    expect(await get(b, '/history/a.b')).toMatchObject({ status: 503, body: { code: 'shutting_down' } });
    expect(ingressOf(b).refusals.count(ErrorCode.shuttingDown)).toBe(1);
    stalled.ws.resume();
    await closing;
  });
});
