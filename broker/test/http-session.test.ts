// HTTP sessions (`<path>/session`, the fallback transport of sdk-web): the socket's protocol over
// an event stream (broker → client) and POSTs (client → broker), read with raw HTTP, no SDK.
import { afterEach, describe, expect, it } from 'vitest';
import {
  CloseCode, DEFAULT_DECODE_LIMITS, FrameType, PROTOCOL_VERSION, decodeFrames, encodeFrame,
  type AckFrame, type EventFrame, type Frame, type WelcomeFrame,
} from '@crier/protocol';
import type { Broker } from '../src/index.js';
import { RawClient, cleanup, startBroker, text, waitFor } from './helpers.js';
import { SseClient, closeStreams } from './sse-client.js';

afterEach(async () => {
  closeStreams();
  await cleanup();
});

const httpBase = (b: Broker): string => b.url.replace(/^ws/, 'http').replace(/\/$/, '');

/** A session spoken by hand: the stream's messages decoded into frames, POSTs of frames. */
class Session {
  private next = 1;
  private constructor(readonly b: Broker, readonly stream: SseClient, readonly id: string) {}

  static async open(b: Broker, headers: Record<string, string> = {}): Promise<Session> {
    const stream = await SseClient.open(`${httpBase(b)}/session`, headers);
    const [open] = await stream.waitEvents('session', 1);
    return new Session(b, stream, open!.data);
  }

  frames(): Frame[] {
    const out: Frame[] = [];
    for (const m of this.stream.of('message')) decodeFrames(Buffer.from(m.data, 'base64'), DEFAULT_DECODE_LIMITS, (f) => out.push(f));
    return out;
  }

  waitFrame(what: string, match: (f: Frame) => boolean): Promise<Frame> {
    return waitFor(what, () => this.frames().find(match), { wakeOn: [this.stream.changed] });
  }

  post(...frames: Frame[]): Promise<Response> {
    const body = Buffer.concat(frames.map((f) => encodeFrame(f)));
    return fetch(`${httpBase(this.b)}/session/${this.id}`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
  }

  async hello(uuid?: string, secret?: string): Promise<WelcomeFrame> {
    expect((await this.post({ t: FrameType.hello, v: PROTOCOL_VERSION, u: uuid, s: secret })).status).toBe(204);
    return (await this.waitFrame('the welcome', (f) => f.t === FrameType.welcome)) as WelcomeFrame;
  }

  async request(frame: Frame): Promise<Frame> {
    const r = this.next++;
    expect((await this.post({ ...frame, r } as Frame)).status).toBe(204);
    return this.waitFrame(`the answer to ${r}`, (f) => (f.t === FrameType.ack || f.t === FrameType.error) && f.r === r);
  }
}

describe('HTTP sessions', () => {
  it('are off unless httpSessions is on: 404', async () => {
    const b = await startBroker();
    expect((await fetch(`${httpBase(b)}/session`)).status).toBe(404);
  });

  it('speak the protocol: hello and welcome, subscribe, events from a socket, acked publishes to a socket', async () => {
    const b = await startBroker({ httpSessions: true });
    const s = await Session.open(b);
    expect(s.id).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(s.stream.res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    const welcome = await s.hello();
    expect(welcome.u).toMatch(/\S/);
    expect(await s.request({ t: FrameType.subscribe, r: 0, p: 'user.*' })).toMatchObject({ t: FrameType.ack });
    await waitFor('the session counted as a connection', () => b.stats().connections === 1);

    const ws = await RawClient.connect(b.url);
    await ws.subscribe('order.>');
    await ws.request({ t: FrameType.publish, r: 0, c: 'user.created', d: text('hi') });
    const event = (await s.waitFrame('the event', (f) => f.t === FrameType.event)) as EventFrame;
    expect([event.c, Buffer.from(event.d).toString()]).toEqual(['user.created', 'hi']);

    // Several frames in one POST, as the SDK batches them: each handled, in order.
    const r = (n: number): Frame => ({ t: FrameType.publish, r: 100 + n, c: 'order.placed', d: text(String(n)) });
    expect((await s.post(r(1), r(2), r(3))).status).toBe(204);
    const acks = await waitFor('three acks', () => {
      const a = s.frames().filter((f): f is AckFrame => f.t === FrameType.ack && f.r > 100);
      return a.length === 3 && a;
    }, { wakeOn: [s.stream.changed] });
    expect(acks.map((a) => a.o)).toEqual([1, 2, 3]);
    expect((await ws.waitEvents(3, 'order.placed')).map((e) => Buffer.from(e.d).toString())).toEqual(['1', '2', '3']);
  });

  it('closes: the client with POST close (the stream ends, the connection is freed); the broker with an event naming the code', async () => {
    const b = await startBroker({ httpSessions: true });
    const s = await Session.open(b);
    const welcome = await s.hello();
    const res = await fetch(`${httpBase(b)}/session/${s.id}/close?code=1000&reason=bye`, { method: 'POST' });
    expect(res.status).toBe(204);
    await s.stream.wait('the stream to end', () => s.stream.ended);
    await waitFor('the connection freed', () => b.stats().connections === 0);
    expect((await s.post({ t: FrameType.ping })).status).toBe(404); // gone

    // Taken over by a socket with the same uuid and secret: the session hears 4001 replaced.
    const t = await Session.open(b);
    const w2 = await t.hello(welcome.u, welcome.s);
    await RawClient.connect(b.url, w2.u, w2.s);
    const [closed] = await t.stream.waitEvents('close', 1);
    expect(closed!.data).toMatch(new RegExp(`^${CloseCode.replaced} replaced`));
    await t.stream.wait('the stream to end', () => t.stream.ended);
  });

  it('a stream the client drops frees the connection; a malformed id, a wrong method and an oversize body are refused', async () => {
    const b = await startBroker({ httpSessions: true, maxPayload: 1024 });
    const s = await Session.open(b);
    await s.hello();
    s.stream.close();
    await waitFor('the connection freed', () => b.stats().connections === 0);
    expect((await fetch(`${httpBase(b)}/session/nope`, { method: 'POST', body: 'x' })).status).toBe(404);
    expect((await fetch(`${httpBase(b)}/session`, { method: 'POST' })).status).toBe(405);
    const t = await Session.open(b);
    const big = await fetch(`${httpBase(b)}/session/${t.id}`, { method: 'POST', body: new Uint8Array(4 * (1024 + 64 * 1024) + 1) });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ code: 'frame_too_large' });
  });

  it('are admitted like sockets: an origin outside allowedOrigins is refused and counted at the session door', async () => {
    const b = await startBroker({ httpSessions: true, allowedOrigins: ['https://app.example'] });
    const refused = await fetch(`${httpBase(b)}/session`, { headers: { origin: 'https://evil.example' } });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ code: 'forbidden_origin' });
    const ok = await Session.open(b, { origin: 'https://app.example' });
    await ok.hello();
  });
});
