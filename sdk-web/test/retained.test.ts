// Retained events: client.history() over the history/events frames. Scripted sockets where the
// order of frames is the point; the fake broker for the bytes across a socket.
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { CloseCode, CrierError, ErrorCode, FrameType, encodeFrame, type EventFrame } from '@crier/protocol';
import { connect } from '../src/client.js';
import type { CrierClient, CrierEvent } from '../src/types.js';
import { startFakeBroker, type FakeBroker } from './fake-broker.js';
import { scriptedClient } from './scripted-client.js';
import { waitFor } from './wait-for.js';

const event = (n: number, c = 'a.b'): EventFrame => ({ t: FrameType.event, c, d: new Uint8Array([n]), id: `ev-${n}`, o: n, e: 'E', ts: 1000 + n, s: n });
const asEvent = (n: number, c = 'a.b'): CrierEvent => ({ channel: c, data: new Uint8Array([n]), id: `ev-${n}`, offset: n, epoch: 'E', time: 1000 + n });
const bytesOf = (...ns: number[]): Uint8Array[] => ns.map((n) => encodeFrame(event(n)));
const numbers = (events: CrierEvent[]): number[] => events.map((e) => e.data[0]!);

describe('client.history (scripted)', () => {
  it('sends a history frame and resolves with the events as subscribers get them, the epoch, offset, complete and more', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    const page = client.history('a.b', { since: { epoch: 'E', offset: 3 }, limit: 2 });
    await Promise.resolve(); // sent once ready() resolved
    const [sent] = socket().sentOf(FrameType.history);
    expect(sent).toEqual({ t: FrameType.history, r: 1, c: 'a.b', e: 'E', o: 3, n: 2 });
    socket().receive({ t: FrameType.events, r: 1, ev: bytesOf(4, 5), e: 'E', o: 9, ok: true, m: true });
    await expect(page).resolves.toEqual({ events: [asEvent(4), asEvent(5)], epoch: 'E', offset: 9, complete: true, more: true });
  });

  it('asks for everything retained without options; complete is false only when the broker says ok: false', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    const all = client.history('a.b');
    const since = client.history('a.b', { since: { epoch: 'old', offset: 1 } });
    await Promise.resolve();
    expect(socket().sentOf(FrameType.history)).toEqual([
      { t: FrameType.history, r: 1, c: 'a.b' },
      { t: FrameType.history, r: 2, c: 'a.b', e: 'old', o: 1 },
    ]);
    socket().receive({ t: FrameType.events, r: 1, ev: [], e: 'E', o: 0 });
    socket().receive({ t: FrameType.events, r: 2, ev: bytesOf(1), e: 'E', o: 1, ok: false, m: false });
    await expect(all).resolves.toEqual({ events: [], epoch: 'E', offset: 0, complete: true, more: false });
    await expect(since).resolves.toMatchObject({ complete: false, more: false, events: [asEvent(1)] });
  });

  it('waits until connected before it sends', async () => {
    const { client, socket, welcome } = scriptedClient();
    const page = client.history('a.b');
    socket().open();
    await Promise.resolve();
    expect(socket().sentOf(FrameType.history)).toEqual([]);
    welcome();
    await client.ready(); // resolves after history's own wait for it
    expect(socket().sentOf(FrameType.history)).toHaveLength(1);
    socket().receive({ t: FrameType.events, r: 1, ev: [], e: 'E', o: 0 });
    await expect(page).resolves.toMatchObject({ events: [] });
  });

  it('rejects bad_channel for a pattern or a malformed name before anything is sent', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    await expect(client.history('a.*')).rejects.toMatchObject({ code: ErrorCode.badChannel });
    await expect(client.history('a..b')).rejects.toBeInstanceOf(CrierError);
    expect(socket().sentOf(FrameType.history)).toEqual([]);
  });

  it("rejects with the broker's error, timeout, disconnected, closed", async () => {
    const { client, socket, welcome, clock } = scriptedClient({ requestTimeout: 2000 });
    welcome({ ka: 0 });
    const refused = client.history('a.b');
    await Promise.resolve();
    socket().receive({ t: FrameType.error, r: 1, code: ErrorCode.forbidden, msg: 'no grant covers a.b' });
    await expect(refused).rejects.toMatchObject({ code: ErrorCode.forbidden, message: 'no grant covers a.b' });
    const late = client.history('a.b');
    await Promise.resolve();
    clock.advance(2000);
    await expect(late).rejects.toMatchObject({ code: ErrorCode.timeout });
    const dropped = client.history('a.b');
    await Promise.resolve();
    socket().fireClose(CloseCode.abnormal);
    await expect(dropped).rejects.toMatchObject({ code: ErrorCode.disconnected });
    const never = client.history('a.b'); // waits for a welcome that never comes
    await client.quit();
    await expect(never).rejects.toMatchObject({ code: ErrorCode.closed });
  });
});

describe('history against the fake broker', () => {
  const brokers: FakeBroker[] = [];
  const clients: CrierClient[] = [];
  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.quit()));
    await Promise.allSettled(brokers.splice(0).map((b) => b.close()));
  });

  it('history pages through a channel', async () => {
    const b = await startFakeBroker();
    brokers.push(b);
    const c = connect(b.url, { WebSocket, random: () => 0 });
    clients.push(c);
    for (const n of [1, 2, 3]) b.publish('h.x', new Uint8Array([n]));
    b.publish('h.other', new Uint8Array([9]));
    const first = await waitFor('the first page', c.history('h.x', { limit: 2 }));
    expect(numbers(first.events)).toEqual([1, 2]);
    expect(first).toMatchObject({ epoch: 'E1', offset: 3, complete: true, more: true });
    const last = first.events.at(-1)!;
    const next = await waitFor('the next page', c.history('h.x', { since: { epoch: last.epoch, offset: last.offset } }));
    expect(numbers(next.events)).toEqual([3]);
    expect(next.more).toBe(false);

  });
});
