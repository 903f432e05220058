import { afterEach, describe, expect, it } from 'vitest';
import { FrameType, encodeFrame } from '@crier/protocol';
import { BATCH_BYTES, frameMessages } from '../src/transport/connection.js';
import { RawClient, cleanup, startBroker, text, waitFor } from './helpers.js';

afterEach(cleanup);

/** Splits a buffer of back-to-back WebSocket frames into their payloads, checking each header. */
function messagesOf(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < buf.length) {
    expect(buf[at]).toBe(0x82); // FIN + binary, unmasked
    let len = buf[at + 1]!;
    let head = 2;
    if (len === 126) {
      len = buf.readUInt16BE(at + 2);
      head = 4;
    } else if (len === 127) {
      len = buf.readUInt32BE(at + 2) * 2 ** 32 + buf.readUInt32BE(at + 6);
      head = 10;
    }
    out.push(buf.subarray(at + head, at + head + len));
    at += head + len;
  }
  return out;
}

describe('frameMessages', () => {
  it('puts frames into one message with the right header for each size class', () => {
    for (const size of [10, 125, 126, 1000, 65_535, 65_536, 200_000]) {
      const frame = new Uint8Array(size).fill(3);
      const msgs = messagesOf(frameMessages([frame], size));
      expect(msgs.map((m) => m.length)).toEqual([size]);
    }
  });

  it(`splits a long queue into messages of at most ${BATCH_BYTES} bytes, keeping order`, () => {
    const frames = Array.from({ length: 100 }, (_, i) => new Uint8Array(10_000).fill(i));
    const msgs = messagesOf(frameMessages(frames, 100 * 10_000));
    expect(msgs.length).toBe(Math.ceil(100 / Math.floor(BATCH_BYTES / 10_000)));
    for (const m of msgs) expect(m.length).toBeLessThanOrEqual(BATCH_BYTES);
    const joined = Buffer.concat(msgs);
    frames.forEach((f, i) => expect(joined[i * 10_000]).toBe(i));
  });

  it('gives a frame larger than a batch a message of its own', () => {
    const big = new Uint8Array(BATCH_BYTES + 1);
    const small = new Uint8Array(5);
    expect(messagesOf(frameMessages([small, big, small], big.length + 10)).map((m) => m.length)).toEqual([5, BATCH_BYTES + 1, 5]);
  });
});

describe('batching on the wire', () => {
  it('sends the events of one tick to a subscriber as one WebSocket message, in order', async () => {
    const b = await startBroker();
    const sub = await RawClient.connect(b.url);
    await sub.subscribe('tick.x');
    const before = sub.raw.length;
    for (let i = 0; i < 50; i++) b.publish('tick.x', text(String(i))); // all within this tick
    const events = await sub.waitEvents(50, 'tick.x');
    expect(events.map((e) => new TextDecoder().decode(e.d))).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
    expect(sub.raw.length - before).toBe(1);
  });

  it('accepts several frames in one message from a client, handled in order', async () => {
    const b = await startBroker();
    const sub = await RawClient.connect(b.url);
    await sub.subscribe('many.x');
    const pub = await RawClient.connect(b.url);
    const frames = [1, 2, 3].map((r) => encodeFrame({ t: FrameType.publish, r, c: 'many.x', d: text(String(r)) }));
    pub.ws.send(Buffer.concat(frames));
    const events = await sub.waitEvents(3, 'many.x');
    expect(events.map((e) => e.o)).toEqual([1, 2, 3]);
    const acks = await waitFor('three publish acks', () => {
      const a = pub.frames.flatMap((f) => (f.t === FrameType.ack && f.id !== undefined ? [f.r] : []));
      return a.length === 3 && a;
    });
    expect(acks).toEqual([1, 2, 3]);
  });
});
