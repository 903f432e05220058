// Fair reading: a connection's frames handled per event-loop turn are bounded, and past the
// budget its socket is paused until the next turn. Asserted by counting, never by time.
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, FrameType, encodeFrame, type Frame } from '@crier/protocol';
import type { Connection } from '../src/transport/connection.js';
import type { Ingress } from '../src/transport/ingress.js';
import { MAX_FRAMES_PER_MESSAGE } from '../src/transport/frame-handlers.js';
import type { Broker } from '../src/index.js';
import { READ_BUDGET_FRAMES } from '../src/transport/read-turns.js';
import { RawClient, cleanup, startBroker, text, waitFor } from './helpers.js';

afterEach(cleanup);

const coreOf = (broker: Broker): Ingress => (broker as unknown as { ingress: Ingress }).ingress;
const PING = Buffer.from(encodeFrame({ t: FrameType.ping }));
const pongs = (c: RawClient): number => c.frames.filter((f: Frame) => f.t === FrameType.pong).length;

describe('fair reading', () => {
  it('handles at most READ_BUDGET_FRAMES frames of one connection per turn, pausing its socket until the next', async () => {
    const broker = await startBroker();
    const core = coreOf(broker);
    const client = await RawClient.connect(broker.url);
    const conn: Connection = core.byUuid.get(client.welcome!.u)!;
    // Count what the broker does per turn: a pong queued is a ping handled.
    const perTurn = new Map<number, number>();
    const enqueue = conn.enqueueControl.bind(conn);
    conn.enqueueControl = (frame) => {
      perTurn.set(core.reads.turn, (perTurn.get(core.reads.turn) ?? 0) + 1);
      enqueue(frame);
    };
    let pauses = 0;
    let resumes = 0;
    const { pause, resume } = conn.ws;
    conn.ws.pause = () => { pauses++; pause.call(conn.ws); };
    conn.ws.resume = () => { resumes++; resume.call(conn.ws); };

    // 1,000 one-frame messages read in one turn, as from one large socket read.
    for (let i = 0; i < 1000; i++) core.reads.read(conn, PING, true);
    expect(conn.readFrames).toBe(READ_BUDGET_FRAMES);
    expect(conn.deferred).toHaveLength(1000 - READ_BUDGET_FRAMES);
    expect(conn.ws.isPaused).toBe(true);
    expect(core.reads.pausedCount).toBe(1);

    await client.waitFrame('1000 pongs', () => pongs(client) >= 1000);
    await waitFor('the socket to read again', () => conn.deferred === undefined && !conn.ws.isPaused);
    expect([...perTurn.values()]).toEqual([256, 256, 256, 232]);
    expect([pauses, resumes]).toEqual([3, 1]);
    expect(pongs(client)).toBe(1000);
  });

  it('refuses the frames of one message past MAX_FRAMES_PER_MESSAGE with one rate_limited error, and keeps the connection', async () => {
    const broker = await startBroker();
    const client = await RawClient.connect(broker.url);
    client.send(Buffer.concat(Array.from({ length: 300 }, () => PING)));
    const error = await client.waitFrame('the refusal', (f) => f.t === FrameType.error);
    expect(error).toMatchObject({ code: ErrorCode.rateLimited });
    expect(pongs(client)).toBe(MAX_FRAMES_PER_MESSAGE);
    expect((await client.request({ t: FrameType.subscribe, r: 0, p: 'a.b' })).t).toBe(FrameType.ack);
    expect(pongs(client)).toBe(MAX_FRAMES_PER_MESSAGE);
  });

  it('loses and reorders nothing: 2,000 publishes sent at once are all acked in order', async () => {
    const broker = await startBroker({ publishRate: 1_000_000 });
    const client = await RawClient.connect(broker.url);
    for (let r = 1; r <= 2000; r++) client.send({ t: FrameType.publish, r, c: 'a.b', d: text('x') });
    await client.waitFrame('the last ack', (f) => f.t === FrameType.ack && f.r === 2000);
    const acks = client.frames.filter((f) => f.t === FrameType.ack).map((f) => (f as { r: number }).r);
    expect(acks).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
  });

  it('a connection refused mid-turn (quit) stops being read', async () => {
    const broker = await startBroker();
    const core = coreOf(broker);
    const client = await RawClient.connect(broker.url);
    const conn = core.byUuid.get(client.welcome!.u)!;
    for (let i = 0; i < 300; i++) core.reads.read(conn, PING, true);
    core.reads.read(conn, Buffer.from(encodeFrame({ t: FrameType.quit })), true);
    expect(conn.deferred).toHaveLength(300 - READ_BUDGET_FRAMES + 1);
    await client.waitClose();
    expect(pongs(client)).toBeLessThanOrEqual(300);
    expect(conn.state).toBe('freed');
  });
});
