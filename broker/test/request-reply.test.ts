// Request/reply over raw WebSocket clients, as a requester and a responder see it: the request
// event with its reply token, the first reply answering, no_responders at once, timeouts, the
// bounds, grants and filters, and what a request is not (sequenced, kept, replayed).
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, FrameType, PROTOCOL_VERSION, type DroppedFrame, type ErrorFrame, type EventsFrame, type ReplyAnswerFrame, type WelcomeFrame } from '@crier/protocol';
import { systemClock } from '../src/clock.js';
import { MemoryEngine } from '../src/engine/memory-engine.js';
import { AsyncEngine } from './engine/async-engine.js';
import { RawClient, cleanup, publishUntil, startBroker, text, waitFor } from './helpers.js';
import { answerTo, ask, body, errorsWithoutR, replyTo, requestsOf, respond, sendRequest, waitRequests } from './request-helpers.js';

afterEach(cleanup);

const metricsOf = async (url: string): Promise<string> => (await fetch(new URL('/metrics', url.replace(/^ws/, 'http')))).text();
const metric = (text: string, name: string): number => Number(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

describe('request/reply over WebSocket', () => {
  it('hands a request to the responder as an event with a reply token, and its reply to the requester', async () => {
    const b = await startBroker();
    const responder = await RawClient.connect(b.url);
    await responder.subscribe('math.*');
    const requester = await RawClient.connect(b.url);
    const r = sendRequest(requester, 'math.double', '21', { l: ['eu'], k: 'k1' });
    const [event] = await waitRequests(responder, 1);
    // Not sequenced: offset 0, no epoch, no stream position; a fresh id and the time.
    expect(event).toMatchObject({ t: FrameType.event, c: 'math.double', o: 0, e: '', l: ['eu'], k: 'k1', rp: expect.any(String), id: expect.any(String) });
    expect(event!.s).toBeUndefined();
    expect(Math.abs(event!.ts - Date.now())).toBeLessThan(5000);
    expect(body(event!)).toBe('21');
    replyTo(responder, event!, '42', ['done']);
    const answer = (await answerTo(requester, r)) as ReplyAnswerFrame;
    expect(answer).toMatchObject({ t: FrameType.reply, r, c: 'math.double', l: ['done'], id: expect.any(String) });
    expect(body(answer)).toBe('42');
    expect(answer.id).not.toBe(event!.id);
    // The reply itself is fire-and-forget: the responder gets nothing back.
    expect(responder.frames.filter((f) => f.t === FrameType.error)).toEqual([]);
    expect(b.stats().requests).toEqual({ pending: 0, sent: 1, delivered: 1, answered: 1, noResponders: 0, timedOut: 0, repliesDropped: 0 });
    // Not an event: nothing published.
    expect(b.stats().published).toBe(0);
  });

  it('works the same over an engine that answers later: a round trip, no_responders, and a request closed before the engine answered', async () => {
    const engine = new AsyncEngine(new MemoryEngine({
      channelCacheSize: 1000, historySize: 100, historyBytes: 1 << 20, historyTtl: 300_000, historyTotalBytes: 64 << 20, idempotencyWindow: 0, idempotencyKeys: 0,
    }, systemClock));
    const b = await startBroker({ engine });
    const responder = await RawClient.connect(b.url);
    await responder.subscribe('later.*');
    const stop = respond(responder, (d) => `later ${d}`);
    const requester = await RawClient.connect(b.url);
    expect(body((await ask(requester, 'later.x', '1')) as ReplyAnswerFrame)).toBe('later 1');
    expect(await ask(requester, 'nobody.x', '2')).toMatchObject({ code: ErrorCode.noResponders });
    stop();
    engine.hold('request');
    const leaving = await RawClient.connect(b.url);
    sendRequest(leaving, 'later.y', '3');
    await waitFor('the engine to hold the request', () => engine.pending === 1);
    leaving.ws.terminate();
    await waitFor('the request to be freed with its connection', () => b.stats().requests.pending === 0);
    engine.unhold();
    await waitRequests(responder, 2);
    replyTo(responder, requestsOf(responder)[1]!, 'nobody waits');
    await waitFor('the orphan reply to be dropped', () => b.stats().requests.repliesDropped === 1);
    expect(b.stats().requests).toMatchObject({ sent: 3, answered: 1, noResponders: 1 });
  });

  it('answers no_responders at once when no subscription matches (in-process and SSE subscribers cannot reply)', async () => {
    const b = await startBroker();
    const requester = await RawClient.connect(b.url);
    const other = await RawClient.connect(b.url);
    await other.subscribe('other.>');
    b.subscribe('svc.>', () => {}); // an in-process subscriber has no way to reply
    const started = Date.now();
    const answer = (await ask(requester, 'svc.none', 'x', { to: 20_000 })) as ErrorFrame;
    expect(answer).toMatchObject({ t: FrameType.error, code: ErrorCode.noResponders });
    expect(answer.msg).toContain('svc.none');
    expect(Date.now() - started).toBeLessThan(2000); // not the timeout
    expect(b.stats().requests).toMatchObject({ sent: 1, noResponders: 1, pending: 0 });
  });

  it('answers timeout with the request id when nobody replies within `to`, and bounds `to` by maxRequestTimeout', async () => {
    const b = await startBroker({ maxRequestTimeout: 300 });
    const responder = await RawClient.connect(b.url);
    await responder.subscribe('slow.op');
    const requester = await RawClient.connect(b.url);
    let started = Date.now();
    const short = (await ask(requester, 'slow.op', 'x', { to: 100 })) as ErrorFrame;
    expect(short).toMatchObject({ code: ErrorCode.timeout });
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    started = Date.now();
    const capped = (await ask(requester, 'slow.op', 'x', { to: 600_000 })) as ErrorFrame;
    expect(capped).toMatchObject({ code: ErrorCode.timeout });
    expect(Date.now() - started).toBeLessThan(3000);
    // A reply after the timeout is dropped, counted.
    const [first] = requestsOf(responder);
    replyTo(responder, first!, 'late');
    await waitFor('the late reply to be counted', () => b.stats().requests.repliesDropped === 1);
    expect(requester.frames.filter((f) => f.t === FrameType.reply)).toEqual([]);
    expect(b.stats().requests).toMatchObject({ sent: 2, timedOut: 2, pending: 0 });
  });

  it('answers the first reply; later ones to the same token are dropped and counted', async () => {
    const b = await startBroker();
    const [one, two] = [await RawClient.connect(b.url), await RawClient.connect(b.url)];
    await one.subscribe('q.*');
    await two.subscribe('q.>');
    const requester = await RawClient.connect(b.url);
    const r = sendRequest(requester, 'q.who', '?');
    const [[e1], [e2]] = await Promise.all([waitRequests(one, 1), waitRequests(two, 1)]);
    expect(e1!.rp).toBe(e2!.rp); // one request, one token, every responder
    replyTo(one, e1!, 'one');
    const answer = (await answerTo(requester, r)) as ReplyAnswerFrame;
    replyTo(two, e2!, 'two');
    replyTo(one, e1!, 'one again');
    await waitFor('both later replies to be dropped', () => b.stats().requests.repliesDropped === 2);
    expect(body(answer)).toBe('one');
    expect(requester.frames.filter((f) => f.t === FrameType.reply)).toHaveLength(1);
    const text = await metricsOf(b.url);
    expect(metric(text, 'crier_replies_dropped_total')).toBe(2);
    expect(metric(text, 'crier_replies_total')).toBe(1);
    expect(metric(text, 'crier_requests_total')).toBe(1);
    expect(metric(text, 'crier_requests_pending')).toBe(0);
  });

  it('a subscriber matched by several patterns gets a request once', async () => {
    const b = await startBroker();
    const responder = await RawClient.connect(b.url);
    await responder.subscribe('a.b');
    await responder.subscribe('a.*');
    await responder.subscribe('a.>');
    const requester = await RawClient.connect(b.url);
    const stop = respond(responder, (d) => `re:${d}`);
    const answer = (await ask(requester, 'a.b', 'hi')) as ReplyAnswerFrame;
    stop();
    expect(body(answer)).toBe('re:hi');
    expect(requestsOf(responder)).toHaveLength(1);
    expect(b.stats().requests.delivered).toBe(1);
  });

  it('refuses a malformed token with bad_frame, and drops a forged or unknown one silently without disturbing the request', async () => {
    const b = await startBroker();
    const responder = await RawClient.connect(b.url);
    await responder.subscribe('bank.*');
    const thief = await RawClient.connect(b.url);
    const requester = await RawClient.connect(b.url);
    const r = sendRequest(requester, 'bank.balance', 'me');
    const [event] = await waitRequests(responder, 1);
    const rp = event!.rp!;
    replyTo(thief, 'not a token', 'x');
    await waitFor('bad_frame for the malformed token', () => errorsWithoutR(thief).length === 1 && errorsWithoutR(thief));
    expect(errorsWithoutR(thief)[0]).toMatchObject({ code: ErrorCode.badFrame });
    // Same node, requester and request, other random bits: a guess.
    const forged = `${rp.slice(0, -16)}${rp.endsWith('A'.repeat(16)) ? 'B' : 'A'.repeat(16)}`.slice(0, rp.length);
    replyTo(thief, forged, 'stolen');
    replyTo(thief, rp.replace(/:[0-9a-z]+:([A-Za-z0-9_-]{16})$/, ':zzzz:$1'), 'unknown request');
    replyTo(thief, `othernode#abc:0:0:${'x'.repeat(16)}`, 'another node');
    await waitFor('three dropped replies', () => b.stats().requests.repliesDropped === 3);
    expect(errorsWithoutR(thief)).toHaveLength(1); // dropped silently
    replyTo(responder, event!, 'the real one');
    expect(body((await answerTo(requester, r)) as ReplyAnswerFrame)).toBe('the real one');
  });

  it('bounds a reply: maxPayload (payload_too_large), the connection publish rate (rate_limited)', async () => {
    const b = await startBroker({ maxPayload: 1024, publishRate: 1, publishBurst: 2 });
    const responder = await RawClient.connect(b.url);
    await responder.subscribe('big.*');
    const requester = await RawClient.connect(b.url);
    const r = sendRequest(requester, 'big.one', 'x');
    const [event] = await waitRequests(responder, 1);
    responder.send({ t: FrameType.reply, rp: event!.rp!, d: new Uint8Array(2000) });
    await waitFor('payload_too_large', () => errorsWithoutR(responder).find((e) => e.code === ErrorCode.payloadTooLarge));
    replyTo(responder, event!, 'fits'); // the second of the burst of 2
    expect(body((await answerTo(requester, r)) as ReplyAnswerFrame)).toBe('fits');
    replyTo(responder, event!, 'over the rate');
    await waitFor('rate_limited', () => errorsWithoutR(responder).find((e) => e.code === ErrorCode.rateLimited));
    // The requester's own requests count against its rate too.
    expect((await ask(requester, 'big.one', 'a', { to: 50 }))).toMatchObject({ code: ErrorCode.timeout });
    expect((await ask(requester, 'big.one', 'b'))).toMatchObject({ code: ErrorCode.rateLimited });
  });

  it('validates a request as a publish: channel, payload, labels', async () => {
    const b = await startBroker({ maxPayload: 100 });
    const requester = await RawClient.connect(b.url);
    expect(await ask(requester, 'a.*', 'x')).toMatchObject({ code: ErrorCode.badChannel });
    expect(await ask(requester, 'a..b', 'x')).toMatchObject({ code: ErrorCode.badChannel });
    expect(await ask(requester, 'a.b', 'x'.repeat(101))).toMatchObject({ code: ErrorCode.payloadTooLarge });
    expect(await ask(requester, 'a.b', 'x', { l: [''] })).toMatchObject({ code: ErrorCode.badFrame });
    expect(b.stats().requests.sent).toBe(0);
  });

  it('bounds the requests waiting per connection (maxPendingRequests): rate_limited, counted as a refusal', async () => {
    const b = await startBroker({ maxPendingRequests: 2 });
    const responder = await RawClient.connect(b.url);
    await responder.subscribe('held.*');
    const requester = await RawClient.connect(b.url);
    const r1 = sendRequest(requester, 'held.1', 'x');
    sendRequest(requester, 'held.2', 'x');
    const third = (await ask(requester, 'held.3', 'x')) as ErrorFrame;
    expect(third).toMatchObject({ code: ErrorCode.rateLimited });
    expect(third.msg).toContain('maxPendingRequests');
    expect(metric(await metricsOf(b.url), 'crier_refused_total{reason="rate_limited"}')).toBe(1);
    // Another connection has its own bound.
    const other = await RawClient.connect(b.url);
    sendRequest(other, 'held.4', 'x');
    await waitRequests(responder, 3);
    // One answered: room for one more.
    replyTo(responder, requestsOf(responder)[0]!, 'ok');
    await answerTo(requester, r1);
    sendRequest(requester, 'held.5', 'x');
    await waitRequests(responder, 4);
    expect(b.stats().requests.pending).toBe(3);
  });

  it('frees a requester\'s pending requests at once when its connection closes; their replies are dropped', async () => {
    const b = await startBroker();
    const responder = await RawClient.connect(b.url);
    await responder.subscribe('job.*');
    const requester = await RawClient.connect(b.url);
    sendRequest(requester, 'job.a', '1', { to: 60_000 });
    sendRequest(requester, 'job.b', '2', { to: 60_000 });
    const events = await waitRequests(responder, 2);
    expect(b.stats().requests.pending).toBe(2);
    requester.ws.terminate();
    await waitFor('the pending requests to be freed', () => b.stats().requests.pending === 0);
    for (const event of events) replyTo(responder, event, 'nobody waits');
    await waitFor('both replies dropped', () => b.stats().requests.repliesDropped === 2);
  });

  it('applies subscription filters to requests: only passing subscriptions get one, none passing is no_responders', async () => {
    const b = await startBroker();
    const eu = await RawClient.connect(b.url);
    expect((await eu.request({ t: FrameType.subscribe, r: 0, p: 'geo.*', f: { l: ['eu'] } })).t).toBe(FrameType.ack);
    const keyed = await RawClient.connect(b.url);
    expect((await keyed.request({ t: FrameType.subscribe, r: 0, p: 'geo.*', f: { k: ['k1'] } })).t).toBe(FrameType.ack);
    const stopEu = respond(eu, () => 'eu');
    const stopKeyed = respond(keyed, () => 'keyed');
    const requester = await RawClient.connect(b.url);
    expect(body((await ask(requester, 'geo.find', 'x', { l: ['eu'] })) as ReplyAnswerFrame)).toBe('eu');
    expect(body((await ask(requester, 'geo.find', 'x', { k: 'k1' })) as ReplyAnswerFrame)).toBe('keyed');
    expect(await ask(requester, 'geo.find', 'x', { l: ['us'], k: 'k2' })).toMatchObject({ code: ErrorCode.noResponders });
    stopEu();
    stopKeyed();
    expect(requestsOf(eu)).toHaveLength(1);
    expect(requestsOf(keyed)).toHaveLength(1);
  });

  it('needs a publish grant on the channel to request (forbidden, counted); a responder needs none to reply', async () => {
    const sha = (t: string): string => createHash('sha256').update(t).digest('hex');
    const b = await startBroker({
      tokens: [
        { id: 'asker', sha256: sha('asker-token'), publish: ['ask.>'] },
        { id: 'answerer', sha256: sha('answerer-token'), subscribe: ['ask.>'] },
      ],
    });
    const login = async (tk: string): Promise<RawClient> => {
      const c = await RawClient.open(b.url);
      c.send({ t: FrameType.hello, v: PROTOCOL_VERSION, tk });
      c.welcome = (await c.waitFrame('welcome', (f) => f.t === FrameType.welcome)) as WelcomeFrame;
      return c;
    };
    const asker = await login('asker-token');
    const answerer = await login('answerer-token');
    await answerer.subscribe('ask.*');
    const stop = respond(answerer, (d) => `answered ${d}`);
    expect(body((await ask(asker, 'ask.q', 'x')) as ReplyAnswerFrame)).toBe('answered x');
    stop();
    const refused = (await ask(asker, 'other.q', 'x')) as ErrorFrame;
    expect(refused).toMatchObject({ code: ErrorCode.forbidden });
    expect((await ask(answerer, 'ask.q', 'x'))).toMatchObject({ code: ErrorCode.forbidden });
    expect(metric(await metricsOf(b.url), 'crier_refused_total{reason="forbidden"}')).toBe(2);
    expect(b.stats().requests.sent).toBe(1);
  });

  it('a request is not kept in history, not replayed on resume, and not counted as a publish', async () => {
    const b = await startBroker();
    const responder = await RawClient.connect(b.url);
    await responder.subscribe('hist.*');
    const requester = await RawClient.connect(b.url);
    const r = sendRequest(requester, 'hist.a', 'req');
    await waitRequests(responder, 1);
    replyTo(responder, requestsOf(responder)[0]!, 'ok');
    await answerTo(requester, r);
    await requester.request({ t: FrameType.publish, c: 'hist.a', d: text('event') });
    await responder.waitEvents(2);
    const r2 = 77;
    requester.send({ t: FrameType.history, r: r2, c: 'hist.a' });
    const events = (await requester.waitFrame('history', (f) => f.t === FrameType.events && f.r === r2)) as EventsFrame;
    expect(events.ev).toHaveLength(1); // the publish only
    expect(b.stats().published).toBe(1);
    // The responder drops; a request meanwhile finds nobody (a parked stream is not a responder)…
    const last = responder.events().at(-1)!;
    responder.ws.terminate();
    await waitFor('the stream to be parked', () => b.stats().sessions.parked === 1);
    expect(await ask(requester, 'hist.b', 'while away')).toMatchObject({ code: ErrorCode.noResponders });
    await requester.request({ t: FrameType.publish, c: 'hist.b', d: text('missed') });
    // …and its resume replays the missed event, never the request.
    const back = await RawClient.open(b.url);
    back.send({ t: FrameType.hello, v: PROTOCOL_VERSION, u: responder.welcome!.u, s: responder.welcome!.s, rp: { e: responder.welcome!.ep!, s: last.s! } });
    await back.waitFrame('welcome', (f) => f.t === FrameType.welcome);
    await back.waitEvents(1);
    expect(back.events().map(body)).toEqual(['missed']);
    expect(requestsOf(back)).toEqual([]);
  });

  it('a slow consumer\'s full queue drops a request as it drops events: counted, told by `dropped`; nobody else got it: no_responders', async () => {
    const b = await startBroker({ bufferSize: 16, maxBufferBytes: 256 * 1024 });
    const [pub, fast, frozen, requester] = await Promise.all([1, 2, 3, 4].map(() => RawClient.connect(b.url)));
    await fast!.subscribe('feed.x');
    await frozen!.subscribe('feed.>');
    frozen!.ws.pause();
    await publishUntil(fast!, (payload) => pub!.send({ t: FrameType.publish, c: 'feed.x', d: payload }), () => b.stats().slowConsumers > 0);
    const dropped = b.stats().dropped;
    expect(await ask(requester!, 'feed.q', 'x')).toMatchObject({ code: ErrorCode.noResponders });
    expect(b.stats().dropped).toBe(dropped + 1);
    frozen!.ws.resume();
    const notice = (await frozen!.waitFrame('the dropped notice', (f) => f.t === FrameType.dropped, 15_000)) as DroppedFrame;
    expect(notice.c).toContainEqual(['feed.q', 1]);
    expect(requestsOf(frozen!)).toEqual([]);
  }, 60_000);
});
