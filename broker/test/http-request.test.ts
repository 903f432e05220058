// POST /request/<channel>: request/reply over HTTP, answered by a WebSocket responder (raw client).
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, FrameType } from '@crier/protocol';
import { RawClient, cleanup, startBroker, waitFor } from './helpers.js';
import { replyTo, requestsOf, respond, waitRequests } from './request-helpers.js';

afterEach(cleanup);

const httpUrl = (wsUrl: string, path: string): string => new URL(path, wsUrl.replace(/^ws/, 'http')).toString();

async function post(url: string, body: string | Uint8Array, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', body, headers });
}

describe('POST /request/<channel>', () => {
  it('answers 200 with the reply\'s bytes, and its id, time and labels as headers; the body, labels and key reach the responder', async () => {
    const b = await startBroker();
    const responder = await RawClient.connect(b.url);
    await responder.subscribe('calc.*');
    const stop = respond(responder, (d) => `${Number(d) * 2}`);
    const res = await post(httpUrl(b.url, '/request/calc.double?label=eu&key=k1'), '21', { 'Content-Type': 'text/plain' });
    stop();
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('42');
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('crier-id')).toMatch(/.+/);
    expect(Math.abs(Number(res.headers.get('crier-time')) - Date.now())).toBeLessThan(5000);
    expect(res.headers.get('crier-labels')).toBeNull();
    const [event] = requestsOf(responder);
    expect(event).toMatchObject({ c: 'calc.double', l: ['eu'], k: 'k1', o: 0 });
    // Reply labels come back percent-encoded, comma-separated.
    const pending = post(httpUrl(b.url, '/request/calc.labels'), 'y');
    const second = (await waitRequests(responder, 2))[1];
    replyTo(responder, second!, 'labelled', ['a,b', 'é']);
    const withLabels = await pending;
    expect(withLabels.status).toBe(200);
    expect(withLabels.headers.get('crier-labels')).toBe('a%2Cb,%C3%A9');
  });

  it('answers 503 no_responders at once and 504 timeout (?timeout= or Crier-Timeout, bounded by maxRequestTimeout), as JSON errors', async () => {
    const b = await startBroker({ maxRequestTimeout: 300 });
    const nobody = await post(httpUrl(b.url, '/request/none.here'), 'x');
    expect(nobody.status).toBe(503);
    expect(await nobody.json()).toMatchObject({ code: ErrorCode.noResponders });
    expect(nobody.headers.get('retry-after')).toBeNull();
    const silent = await RawClient.connect(b.url);
    await silent.subscribe('mute.*');
    let started = Date.now();
    const timedOut = await post(httpUrl(b.url, '/request/mute.x?timeout=100ms'), 'x');
    expect(timedOut.status).toBe(504);
    expect(await timedOut.json()).toMatchObject({ code: ErrorCode.timeout });
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    started = Date.now();
    const capped = await post(httpUrl(b.url, '/request/mute.x'), 'x', { 'Crier-Timeout': '1h' });
    expect(capped.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(3000);
    const bad = await post(httpUrl(b.url, '/request/mute.x?timeout=soon'), 'x');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'bad_request' });
    expect(b.stats().requests).toMatchObject({ sent: 3, noResponders: 1, timedOut: 2, pending: 0 });
  });

  it('validates like a publish: 400 bad_channel, 413 past maxPayload, 405 for another method', async () => {
    const b = await startBroker({ maxPayload: 100 });
    expect((await post(httpUrl(b.url, '/request/a.*'), 'x')).status).toBe(400);
    const big = await post(httpUrl(b.url, '/request/a.b'), 'x'.repeat(101));
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ code: ErrorCode.payloadTooLarge });
    const get = await fetch(httpUrl(b.url, '/request/a.b'));
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(b.stats().requests.sent).toBe(0);
  });

  it('is bounded per client address: the publish rate (429) and maxPendingRequests (429)', async () => {
    const b = await startBroker({ maxPendingRequests: 1, publishRate: 1, publishBurst: 3 });
    const silent = await RawClient.connect(b.url);
    await silent.subscribe('slow.*');
    const waiting = post(httpUrl(b.url, '/request/slow.a?timeout=5s'), 'x');
    await waitRequests(silent, 1);
    const second = await post(httpUrl(b.url, '/request/slow.b'), 'x');
    expect(second.status).toBe(429);
    expect(await second.json()).toMatchObject({ code: ErrorCode.rateLimited });
    replyTo(silent, requestsOf(silent)[0]!, 'done');
    expect((await waiting).status).toBe(200);
    await post(httpUrl(b.url, '/request/slow.c?timeout=10ms'), 'x'); // the third of the burst
    const over = await post(httpUrl(b.url, '/request/slow.d'), 'x');
    expect(over.status).toBe(429);
    expect(over.headers.get('retry-after')).toMatch(/^\d+$/);
  });

  it('needs a credential with a publish grant on the channel: 401, 403, both counted', async () => {
    const sha = (t: string): string => createHash('sha256').update(t).digest('hex');
    const b = await startBroker({ tokens: [{ id: 'svc', sha256: sha('svc-token'), publish: ['svc.>'] }] });
    expect((await post(httpUrl(b.url, '/request/svc.x'), 'x')).status).toBe(401);
    const forbidden = await post(httpUrl(b.url, '/request/other.x'), 'x', { Authorization: 'Bearer svc-token' });
    expect(forbidden.status).toBe(403);
    expect(await forbidden.json()).toMatchObject({ code: ErrorCode.forbidden });
    const allowed = await post(httpUrl(b.url, '/request/svc.x'), 'x', { Authorization: 'Bearer svc-token' });
    expect(allowed.status).toBe(503); // allowed, and nobody answers
    const metrics = await (await fetch(httpUrl(b.url, '/metrics'))).text();
    expect(metrics).toMatch(/crier_refused_total\{reason="unauthorized"\} 1/);
    expect(metrics).toMatch(/crier_refused_total\{reason="forbidden"\} 1/);
    expect(metrics).toMatch(/crier_requests_no_responders_total 1/);
  });

  it('forgets a request whose HTTP client went away; its reply is dropped', async () => {
    const b = await startBroker();
    const responder = await RawClient.connect(b.url);
    await responder.subscribe('gone.*');
    const controller = new AbortController();
    const abandoned = post(httpUrl(b.url, '/request/gone.x?timeout=20s'), 'x').catch(() => undefined);
    void abandoned;
    const aborted = fetch(httpUrl(b.url, '/request/gone.y?timeout=20s'), { method: 'POST', body: 'y', signal: controller.signal }).catch(() => 'aborted');
    await waitRequests(responder, 2);
    expect(b.stats().requests.pending).toBe(2);
    controller.abort();
    expect(await aborted).toBe('aborted');
    await waitFor('the abandoned request to be freed', () => b.stats().requests.pending === 1);
    const event = requestsOf(responder).find((e) => e.c === 'gone.y')!;
    replyTo(responder, event, 'nobody waits');
    await waitFor('the reply to be dropped', () => b.stats().requests.repliesDropped === 1);
    replyTo(responder, requestsOf(responder).find((e) => e.c === 'gone.x')!, 'ok');
    expect(await ((await abandoned) as Response).text()).toBe('ok');
    expect(responder.frames.filter((f) => f.t === FrameType.error)).toEqual([]);
  });
});
