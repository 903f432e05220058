import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { CloseCode, DEFAULT_DECODE_LIMITS, FrameType, decodeFrames, encodeFrame, type Frame } from '@crier/protocol';
import type { Broker } from '@crier/broker';
import type { CrierClient } from '@crier/sdk-node';
import { Inbox, connectClient, getStats, startBroker, text, waitFor } from './helpers.js';

// The seeds' flows, end to end: a real broker on 127.0.0.1, sdk-node clients.
const brokers: Broker[] = [];
const clients: CrierClient[] = [];

async function broker(options: Parameters<typeof startBroker>[0] = {}): Promise<Broker> {
  const b = await startBroker(options);
  brokers.push(b);
  return b;
}

async function client(b: Broker | string, options: Parameters<typeof connectClient>[1] = {}): Promise<CrierClient> {
  const c = await connectClient(b, options);
  clients.push(c);
  return c;
}

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((c) => c.quit()));
  await Promise.allSettled(brokers.splice(0).map((b) => b.close()));
});

describe('publish and subscribe', () => {
  it('a service publishes user.created and two subscribers receive the same bytes', async () => {
    const b = await broker();
    const [service, ui1, ui2] = await Promise.all([client(b), client(b), client(b)]);
    const in1 = new Inbox(ui1, 'user.created');
    const in2 = new Inbox(ui2, 'user.created');
    await Promise.all([in1.subscription.ready, in2.subscription.ready]);

    const data = new Uint8Array([0, 1, 2, 250, 251, 252, 255]);
    const ack = await service.publish('user.created', data);
    expect(ack.offset).toBe(1);
    expect(typeof ack.id).toBe('string');

    const [[e1], [e2]] = await Promise.all([in1.waitForCount(1), in2.waitForCount(1)]);
    for (const e of [e1!, e2!]) {
      expect(e.channel).toBe('user.created');
      expect(e.data).toEqual(data);
      expect(e.id).toBe(ack.id);
      expect(e.offset).toBe(1);
      expect(e.epoch).toBe(ack.epoch);
      expect(Math.abs(e.time - Date.now())).toBeLessThan(60_000);
    }
  });

  it('user.* matches one segment, user.> one or more', async () => {
    const b = await broker();
    const [service, ui] = await Promise.all([client(b), client(b)]);
    const star = new Inbox(ui, 'user.*');
    const rest = new Inbox(ui, 'user.>');
    await Promise.all([star.subscription.ready, rest.subscription.ready]);

    await service.publish('user.created', text('a'));
    await service.publish('user.profile.updated', text('b'));
    await service.publish('order.created', text('c'));
    await service.publish('user', text('d'));
    await service.publish('user.deleted', text('e'));

    await rest.waitForCount(3);
    await star.waitForCount(2);
    expect(rest.texts()).toEqual(['a', 'b', 'e']);
    expect(star.texts()).toEqual(['a', 'e']);
  });

  it('a connection receives an event once even when several of its patterns match, and onEvent sees it once', async () => {
    const b = await broker();
    const [service, ui] = await Promise.all([client(b), client(b)]);
    const stream: string[] = [];
    ui.onEvent((e) => stream.push(e.channel));
    const a = new Inbox(ui, 'user.*');
    const c = new Inbox(ui, 'user.created');
    await Promise.all([a.subscription.ready, c.subscription.ready]);
    await service.publish('user.created', text('x'));
    await service.publish('user.deleted', text('y'));
    await a.waitForCount(2);
    await c.waitForCount(1);
    expect(stream).toEqual(['user.created', 'user.deleted']);
    expect(c.events).toHaveLength(1);
  });

  it('unsubscribe stops delivery', async () => {
    const b = await broker();
    const [service, ui] = await Promise.all([client(b), client(b)]);
    const gone = new Inbox(ui, 'user.created');
    const kept = new Inbox(ui, 'order.created');
    await Promise.all([gone.subscription.ready, kept.subscription.ready]);
    await gone.subscription.unsubscribe();

    await service.publish('user.created', text('not for you'));
    await service.publish('order.created', text('marker'));
    // Events from one publisher reach a subscriber in order: once the marker is here, the
    // earlier user.created would have been too.
    await kept.waitForCount(1);
    expect(gone.events).toHaveLength(0);
  });

  it('offsets count per channel', async () => {
    const b = await broker();
    const service = await client(b);
    const acks = [];
    for (const ch of ['a.x', 'a.x', 'b.x', 'a.x']) acks.push(await service.publish(ch, text('.')));
    expect(acks.map((a) => a.offset)).toEqual([1, 2, 1, 3]);
    expect(new Set(acks.map((a) => a.id)).size).toBe(4);
  });
});

describe('connection lifecycle', () => {
  it('quit frees the connection and its subscriptions at once, visible in /stats', async () => {
    const b = await broker({ keepAliveInterval: 600_000 });
    const ui = await client(b);
    await new Inbox(ui, 'user.*').subscription.ready;
    await new Inbox(ui, 'order.>').subscription.ready;
    expect(await getStats(b)).toMatchObject({ connections: 1, subscriptions: 2 });

    await ui.quit();
    expect(ui.state).toBe('closed');
    // The keep-alive is ten minutes: only quit can explain the connection going away.
    await waitFor('the connection to leave /stats', async () => {
      const s = await getStats(b);
      return s['connections'] === 0 && s['subscriptions'] === 0;
    });
  });

  it('a second connection with the same uuid and its session secret replaces the first, which is told and does not come back', async () => {
    const b = await broker();
    const first = await client(b, { uuid: 'billing-worker-1' });
    expect(first.uuid).toBe('billing-worker-1');
    const closes: (number | undefined)[] = [];
    first.on('state', (state, info) => {
      if (state === 'closed') closes.push(info.code);
    });

    const second = await client(b, { uuid: 'billing-worker-1', secret: first.secret! });
    expect(second.uuid).toBe('billing-worker-1');
    await waitFor('the first client to be closed as replaced', () => closes.length > 0);
    expect(closes).toEqual([CloseCode.replaced]);
    expect(first.state).toBe('closed');

    // The survivor works, and there is exactly one connection.
    const inbox = new Inbox(second, 'x.y');
    await inbox.subscription.ready;
    await second.publish('x.y', text('still here'));
    await inbox.waitForCount(1);
    expect((await getStats(b))['connections']).toBe(1);
  });

  it('a silent peer is freed by the keep-alive', async () => {
    const b = await broker({ keepAliveInterval: 100 });
    const healthy = await client(b);
    // A raw client that says hello and then never answers a ping.
    const raw = new WebSocket(b.url);
    raw.binaryType = 'nodebuffer';
    await new Promise((resolve) => raw.once('open', resolve));
    raw.send(encodeFrame({ t: FrameType.hello, v: 1 }));
    const closed = new Promise<number>((resolve) => raw.once('close', (code) => resolve(code)));
    await waitFor('two connections', async () => (await getStats(b))['connections'] === 2);

    expect(await closed).toBe(CloseCode.keepAliveTimeout);
    await waitFor('only the healthy client left', async () => (await getStats(b))['connections'] === 1);
    expect(healthy.state).toBe('connected'); // it answers pings, so it stays
  });

  it('the broker stopped and restarted on the same port: the client reconnects, resubscribes and receives again', async () => {
    const first = await startBroker();
    const port = first.port;
    const ui = await client(first.url, { reconnect: { initialDelay: 20, maxDelay: 200 } });
    const inbox = new Inbox(ui, 'user.*');
    await inbox.subscription.ready;
    const states: string[] = [];
    ui.on('state', (s) => states.push(s));

    await first.close();
    await waitFor('the client to notice', () => ui.state === 'reconnecting');

    const second = await broker({ port });
    await waitFor('the client to reconnect', () => ui.state === 'connected', 10_000);
    await waitFor('the subscription to be restored', async () => (await getStats(second))['subscriptions'] === 1);

    const service = await client(second);
    await service.publish('user.created', text('after restart'));
    await inbox.waitForCount(1);
    expect(inbox.texts()).toEqual(['after restart']);
    expect(states).toContain('reconnecting');
    expect(states.at(-1)).toBe('connected');
  });
});

describe('limits', () => {
  it('the max-channels limit answers max_channels and keeps the connection', async () => {
    const b = await broker({ maxChannels: 3 });
    const ui = await client(b);
    expect(ui.limits?.maxChannels).toBe(3);
    for (const p of ['a.1', 'a.2', 'a.3']) await ui.subscribe(p).ready;
    await expect(ui.subscribe('a.4').ready).rejects.toMatchObject({ code: 'max_channels' });
    // Still serving: an unsubscribe frees a slot.
    await ui.unsubscribe('a.1');
    await ui.subscribe('a.4').ready;
  });

  it('an oversized payload is refused with payload_too_large, and the connection goes on', async () => {
    const b = await broker({ maxPayload: 1024 });
    const service = await client(b);
    expect(service.limits?.maxPayload).toBe(1024);
    await expect(service.publish('big.data', new Uint8Array(1025))).rejects.toMatchObject({ code: 'payload_too_large' });
    const ack = await service.publish('big.data', new Uint8Array(1024));
    expect(ack.offset).toBe(1);
  });

  it('publishing to a pattern or an invalid name is refused with bad_channel', async () => {
    const b = await broker();
    const service = await client(b);
    await expect(service.publish('user.*', text('x'))).rejects.toMatchObject({ code: 'bad_channel' });
    await expect(service.publish('user..created', text('x'))).rejects.toMatchObject({ code: 'bad_channel' });
    await expect(service.subscribe('user.>.x').ready).rejects.toMatchObject({ code: 'bad_pattern' });
  });

  it('the broker itself refuses what a client that skips the SDK checks sends', async () => {
    const b = await broker({ maxPayload: 1024 });
    const raw = new WebSocket(b.url);
    raw.binaryType = 'nodebuffer';
    const frames: Frame[] = [];
    raw.on('message', (m: Buffer) => decodeFrames(new Uint8Array(m), DEFAULT_DECODE_LIMITS, (f) => frames.push(f)));
    await new Promise((resolve) => raw.once('open', resolve));
    raw.send(encodeFrame({ t: FrameType.hello, v: 1 }));
    raw.send(encodeFrame({ t: FrameType.publish, r: 1, c: 'user.*', d: text('x') }));
    raw.send(encodeFrame({ t: FrameType.publish, r: 2, c: 'user.created', d: new Uint8Array(1025) }));
    raw.send(encodeFrame({ t: FrameType.subscribe, r: 3, p: 'a..b' }));
    const errors = await waitFor('three error answers', () => {
      const e = frames.filter((f) => f.t === FrameType.error);
      return e.length === 3 && e;
    });
    expect(errors.map((e) => e.t === FrameType.error && [e.r, e.code])).toEqual([
      [1, 'bad_channel'],
      [2, 'payload_too_large'],
      [3, 'bad_pattern'],
    ]);
    raw.close();
  });
});
