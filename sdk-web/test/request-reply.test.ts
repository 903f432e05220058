// Request/reply on the client: request() sends a `request` frame and resolves with the `reply`
// that answers it; respond() answers request events (those with `rp`) with `reply` frames.
import { describe, expect, it } from 'vitest';
import { ErrorCode, FrameType } from '@crier/protocol';
import { scriptedClient } from './scripted-client.js';
import { tick, waitFor } from './wait-for.js';

const bytes = (...b: number[]): Uint8Array => new Uint8Array(b);

describe('request', () => {
  it('sends a request frame with its timeout and resolves with the reply as an event', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    const answer = client.request('svc.echo', bytes(1), { timeout: 2000, labels: ['x'] });
    await waitFor('the request frame', () => socket().sentOf(FrameType.request).length === 1);
    expect(socket().sentOf(FrameType.request)).toEqual([{ t: FrameType.request, r: 1, c: 'svc.echo', d: bytes(1), l: ['x'], to: 2000 }]);
    socket().receive({ t: FrameType.reply, r: 1, c: 'svc.echo', d: bytes(2), id: 'rep-1', ts: 7, l: ['ok'] });
    await expect(answer).resolves.toEqual({ channel: 'svc.echo', data: bytes(2), id: 'rep-1', offset: 0, epoch: '', time: 7, labels: ['ok'] });
  });

  it('rejects with the broker\'s no_responders at once, and with timeout when no reply comes in time', async () => {
    const { client, socket, welcome, clock } = scriptedClient();
    welcome({ ka: 0 });
    const nobody = client.request('svc.none', bytes(1));
    await waitFor('the request frame', () => socket().sentOf(FrameType.request).length === 1);
    socket().receive({ t: FrameType.error, r: 1, code: 'no_responders', msg: 'nobody subscribes to "svc.none"' });
    await expect(nobody).rejects.toMatchObject({ code: ErrorCode.noResponders, requestId: 1 });
    const slow = client.request('svc.slow', bytes(1), { timeout: 300 });
    await waitFor('the second request frame', () => socket().sentOf(FrameType.request).length === 2);
    clock.advance(300);
    await expect(slow).rejects.toMatchObject({ code: ErrorCode.timeout });
    socket().receive({ t: FrameType.reply, r: 2, c: 'svc.slow', d: bytes(9), id: 'late', ts: 1 }); // ignored
  });

  it('refuses bad input before anything is sent, and waits for the connection', async () => {
    const { client, socket, welcome } = scriptedClient();
    await expect(client.request('svc.*', bytes(1))).rejects.toMatchObject({ code: ErrorCode.badChannel });
    await expect(client.request('svc.a', bytes(1), { timeout: 0 })).rejects.toBeInstanceOf(RangeError);
    const later = client.request('svc.a', bytes(1));
    welcome({ lim: { mc: 3, mp: 4, bs: 1 } });
    await waitFor('the request frame', () => socket().sentOf(FrameType.request).length === 1);
    socket().receive({ t: FrameType.reply, r: 1, c: 'svc.a', d: bytes(), id: 'r', ts: 1 });
    await expect(later).resolves.toMatchObject({ channel: 'svc.a' });
    await expect(client.request('svc.a', bytes(1, 2, 3, 4, 5))).rejects.toMatchObject({ code: ErrorCode.payloadTooLarge });
  });
});

describe('respond', () => {
  it('answers each request event with what the handler returns, and ignores plain events', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    const seen: number[] = [];
    client.respond('svc.*', async (req) => {
      seen.push(req.data[0]!);
      if (req.data[0] === 3) return undefined; // no reply
      return req.data[0] === 2 ? { data: bytes(20), labels: ['done'] } : bytes(10);
    });
    const s = socket();
    expect(s.sentOf(FrameType.subscribe)).toEqual([{ t: FrameType.subscribe, r: 1, p: 'svc.*' }]);
    const request = (n: number, rp?: string) =>
      s.receive({ t: FrameType.event, c: 'svc.a', d: bytes(n), id: `e${n}`, o: 0, e: '', ts: 1, ...(rp ? { rp } : {}) });
    request(1, 'tok-1');
    request(2, 'tok-2');
    request(3, 'tok-3');
    request(4); // a plain event: not a request
    await waitFor('the replies', () => s.sentOf(FrameType.reply).length === 2);
    await tick();
    expect(seen).toEqual([1, 2, 3]);
    expect(s.sentOf(FrameType.reply)).toEqual([
      { t: FrameType.reply, rp: 'tok-1', d: bytes(10) },
      { t: FrameType.reply, rp: 'tok-2', d: bytes(20), l: ['done'] },
    ]);
  });
});
