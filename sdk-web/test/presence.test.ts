// Presence in the SDK: client.presence() over the presence frame, and watchPresence()'s notices
// (a subscribe with pe, asked again after a reconnection), on scripted sockets.
import { describe, expect, it, vi } from 'vitest';
import { CrierError, ErrorCode, FrameType } from '@crier/protocol';
import { presence, watchPresence, type PresenceChange } from '../src/presence.js';
import { catchRethrown } from './record.js';
import { scriptedClient } from './scripted-client.js';

describe('presence()', () => {
  it('sends a presence frame and resolves with the count, and the members when given', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    const plain = client.presence('room.1');
    const named = presence(client, 'room.*', { members: true });
    await Promise.resolve();
    expect(socket().sentOf(FrameType.presence)).toEqual([
      { t: FrameType.presence, r: 1, p: 'room.1' },
      { t: FrameType.presence, r: 2, p: 'room.*', m: true },
    ]);
    socket().receive({ t: FrameType.presence, r: 2, p: 'room.*', n: 3, m: ['jwt:a', 'jwt:b'] });
    socket().receive({ t: FrameType.presence, r: 1, p: 'room.1', n: 7 });
    await expect(plain).resolves.toEqual({ subscribers: 7 });
    await expect(named).resolves.toEqual({ subscribers: 3, members: ['jwt:a', 'jwt:b'] });
  });

  it('says partial when a node of the deployment did not answer', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    const answer = client.presence('room.1');
    await Promise.resolve();
    socket().receive({ t: FrameType.presence, r: 1, p: 'room.1', n: 4, pa: true });
    await expect(answer).resolves.toEqual({ subscribers: 4, partial: true });
  });

  it('rejects with the broker\'s error, and bad_pattern before anything is sent', async () => {
    const { client, socket, welcome } = scriptedClient();
    welcome();
    const refused = client.presence('secret.>');
    await Promise.resolve();
    socket().receive({ t: FrameType.error, r: 1, code: 'forbidden', msg: 'no grant' });
    await expect(refused).rejects.toMatchObject({ code: ErrorCode.forbidden });
    await expect(client.presence('a..b')).rejects.toBeInstanceOf(CrierError);
    await expect(client.presence('a..b')).rejects.toMatchObject({ code: ErrorCode.badPattern });
    expect(socket().sentOf(FrameType.presence)).toHaveLength(1);
  });
});

describe('watchPresence()', () => {
  it('subscribes, asks for notices with pe, hands each notice to the channel\'s listeners, and asks again after a reconnection', async () => {
    const { client, socket, welcome, clock } = scriptedClient();
    welcome();
    const seen: PresenceChange[] = [];
    const other: PresenceChange[] = [];
    const watch = watchPresence(client, 'room.1', (c) => seen.push(c));
    client.watchPresence('room.2', (c) => other.push(c));
    const subscribes = socket().sentOf(FrameType.subscribe);
    expect(subscribes.filter((f) => f.p === 'room.1')).toEqual([
      { t: FrameType.subscribe, r: expect.any(Number), p: 'room.1' },
      { t: FrameType.subscribe, r: expect.any(Number), p: 'room.1', pe: true },
    ]);
    socket().receive({ t: FrameType.presenceChange, c: 'room.1', j: true, n: 2, m: 'jwt:a' });
    socket().receive({ t: FrameType.presenceChange, c: 'room.1', j: false, n: 1 });
    socket().receive({ t: FrameType.presenceChange, c: 'room.9', j: true, n: 1 }); // nobody watches it
    expect(seen).toEqual([
      { channel: 'room.1', joined: true, subscribers: 2, member: 'jwt:a' },
      { channel: 'room.1', joined: false, subscribers: 1 },
    ]);
    expect(other).toEqual([]);
    // A reconnection: the notices are asked again.
    const first = socket();
    first.fireClose(1006);
    clock.advance(60_000);
    expect(socket()).not.toBe(first);
    welcome();
    expect(socket().sentOf(FrameType.subscribe).filter((f) => f.p === 'room.1' && f.pe === true)).toHaveLength(1);
    // Unsubscribed: no more notices, no more asking.
    void watch.unsubscribe();
    socket().receive({ t: FrameType.presenceChange, c: 'room.1', j: true, n: 2 });
    expect(seen).toHaveLength(2);
    expect(() => watchPresence(client, 'room.*', () => {})).toThrow(CrierError);
  });

  it('a listener that throws keeps neither the other listeners nor the connection from going on', () => {
    const thrown = catchRethrown();
    try {
      const { client, socket, welcome, rec } = scriptedClient();
      welcome();
      const seen: number[] = [];
      watchPresence(client, 'room.1', () => {
        throw new Error('listener bug');
      });
      watchPresence(client, 'room.1', (c) => seen.push(c.subscribers));
      socket().receive({ t: FrameType.presenceChange, c: 'room.1', j: true, n: 2 });
      expect(seen).toEqual([2]);
      expect(thrown).toEqual([new Error('listener bug')]);
      expect(rec.errors).toEqual([]);
      expect(client.state).toBe('connected');
    } finally {
      vi.unstubAllGlobals();
    }
  });
});
