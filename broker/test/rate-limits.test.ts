// Rate limits: token buckets decided on an injected clock, never on the machine's speed.
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, FrameType, encodeFrame, type ErrorFrame, type Frame } from '@crier/protocol';
import type { Ingress } from '../src/transport/ingress.js';
import type { Broker } from '../src/index.js';
import { AddressBuckets, TokenBucket } from '../src/admission/token-bucket.js';
import { RawClient, cleanup, startBroker, text } from './helpers.js';

afterEach(cleanup);

/** The broker's core, with its clock stopped at `t` (advance it with the returned setter). */
function stopClock(broker: Broker): { core: Ingress; set: (ms: number) => void } {
  const core = (broker as unknown as { ingress: Ingress }).ingress;
  let t = 1_000_000;
  core.now = () => t;
  return { core, set: (ms) => (t = ms) };
}

/** POST /publish from a given loopback address; resolves with status, Retry-After and body. */
function post(broker: Broker, channel: string, localAddress = '127.0.0.1'): Promise<{ status: number; retryAfter: string | undefined; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: broker.port, path: `/publish/${channel}`, method: 'POST', localAddress }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode!, retryAfter: res.headers['retry-after'], body: JSON.parse(data) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end('x');
  });
}

describe('TokenBucket', () => {
  it('gives burst tokens at once, then rate per second, by the clock it is given', () => {
    const b = new TokenBucket(2, 3, 0);
    expect([b.take(0), b.take(0), b.take(0), b.take(0)]).toEqual([true, true, true, false]);
    expect(b.retryAfterSeconds()).toBe(1);
    expect(b.take(499)).toBe(false); // 0.998 tokens
    expect(b.take(500)).toBe(true);
    expect(b.take(10_000)).toBe(true); // refilled to the burst, never past it
    expect(b.full(10_000)).toBe(false);
    expect(b.full(10_500)).toBe(true);
    expect([b.take(10_500), b.take(10_500), b.take(10_500), b.take(10_500)]).toEqual([true, true, true, false]);
    expect(b.take(9_000)).toBe(false); // a clock going backwards refills nothing
    expect(new TokenBucket(0.5, 1, 0).retryAfterSeconds()).toBe(1);
    const slow = new TokenBucket(0.25, 1, 0);
    slow.take(0);
    expect(slow.retryAfterSeconds()).toBe(4);
  });

  it('AddressBuckets keeps one bucket per address, and a bounded number of them', () => {
    const buckets = new AddressBuckets(1, 1, 4);
    expect(buckets.take('a', 0)).toBeUndefined();
    expect(buckets.take('a', 0)).toBeInstanceOf(TokenBucket);
    expect(buckets.take('b', 0)).toBeUndefined();
    for (let i = 0; i < 100; i++) buckets.take(`x${i}`, 0);
    expect(buckets.size).toBeLessThanOrEqual(4);
  });
});

describe('publish rate per connection', () => {
  it('tells the limit in the welcome, refuses past it with the request id, keeps the connection, and counts it', async () => {
    const broker = await startBroker({ publishRate: 1, publishBurst: 2 });
    const { core, set } = stopClock(broker);
    const c = await RawClient.connect(broker.url);
    expect(c.welcome?.lim).toMatchObject({ pr: 1, pb: 2 });
    // Three publishes in one message: the clock does not move, the third is over the burst.
    const frames = [1, 2, 3].map((r) => encodeFrame({ t: FrameType.publish, r, c: 'a.b', d: text('x') }));
    c.send(Buffer.concat(frames));
    const third = (await c.waitFrame('the answer to publish 3', (f) => 'r' in f && f.r === 3)) as ErrorFrame;
    expect(third).toMatchObject({ t: FrameType.error, code: ErrorCode.rateLimited, r: 3 });
    expect(c.frames.filter((f: Frame) => f.t === FrameType.ack).map((f) => (f as { r: number }).r)).toEqual([1, 2]);
    expect(core.refusals.count(ErrorCode.rateLimited)).toBe(1);
    // A fire-and-forget publish over the rate is refused too (without r).
    c.send({ t: FrameType.publish, c: 'a.b', d: text('x') });
    await c.waitFrame('the refusal of a fire-and-forget publish', (f) => f.t === FrameType.error && f.r === undefined);
    expect(core.refusals.count(ErrorCode.rateLimited)).toBe(2);
    // The connection is kept, and a second later there is a token again.
    set(1_001_000);
    expect((await c.request({ t: FrameType.publish, r: 0, c: 'a.b', d: text('x') })).t).toBe(FrameType.ack);
    expect(c.closed).toBeUndefined();
    const metrics = await (await fetch(broker.url.replace(/^ws/, 'http') + 'metrics')).text();
    expect(metrics).toContain('crier_refused_total{reason="rate_limited"} 2');
  });

  it('each connection has its own bucket', async () => {
    const broker = await startBroker({ publishRate: 1, publishBurst: 1 });
    stopClock(broker);
    const a = await RawClient.connect(broker.url);
    const b = await RawClient.connect(broker.url);
    expect((await a.request({ t: FrameType.publish, r: 0, c: 'a', d: text('x') })).t).toBe(FrameType.ack);
    expect(await a.request({ t: FrameType.publish, r: 0, c: 'a', d: text('x') })).toMatchObject({ code: ErrorCode.rateLimited });
    expect((await b.request({ t: FrameType.publish, r: 0, c: 'a', d: text('x') })).t).toBe(FrameType.ack);
  });
});

describe('publish rate per client address over HTTP', () => {
  it('answers 429 rate_limited with Retry-After past the bucket of the address; another address has its own', async () => {
    const broker = await startBroker({ publishRate: 1, publishBurst: 1 });
    const { core, set } = stopClock(broker);
    expect((await post(broker, 'a.b')).status).toBe(202);
    const refused = await post(broker, 'a.b');
    expect(refused).toMatchObject({ status: 429, retryAfter: '1', body: { code: 'rate_limited' } });
    expect(core.refusals.count(ErrorCode.rateLimited)).toBe(1);
    expect((await post(broker, 'a.b', '127.0.0.2')).status).toBe(202);
    set(1_001_000);
    expect((await post(broker, 'a.b')).status).toBe(202);
  });
});
