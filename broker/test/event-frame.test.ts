import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FrameType, decodeFrame, encodeFrame } from '@crier/protocol';
import { StreamEvent, eventNames } from '../src/engine/stream-event.js';

// StreamEvent encodes its event frame in one pass, straight into a WebSocket message (bench W3):
// the bytes must be exactly what the protocol's generic encoder makes of the same frame.

interface Fields {
  channel: string;
  data: Uint8Array;
  id: string;
  offset: number;
  epoch: string;
  seq: number;
  time: number;
  labels: string[] | undefined;
  key: string | undefined;
}

function generic(f: Fields): Uint8Array {
  return encodeFrame({ t: FrameType.event, c: f.channel, d: f.data, id: f.id, o: f.offset, e: f.epoch, s: f.seq, ts: f.time, l: f.labels, k: f.key });
}

function made(f: Fields): StreamEvent {
  return new StreamEvent(f.channel, f.data, f.id, f.offset, f.epoch, f.seq, f.time, f.labels, f.key);
}

/** The payload of one unmasked binary WebSocket message, its header checked. */
function payloadOf(message: Buffer): Buffer {
  expect(message[0]).toBe(0x82);
  let len = message[1]!;
  let head = 2;
  if (len === 126) {
    len = message.readUInt16BE(2);
    head = 4;
  } else if (len === 127) {
    len = message.readUInt32BE(2) * 2 ** 32 + message.readUInt32BE(6);
    head = 10;
  }
  expect(message.length).toBe(head + len);
  return message.subarray(head);
}

const base: Fields = {
  channel: 'news.sport',
  data: new Uint8Array(100).fill(42),
  id: 'AbCdEfGhIj-1a',
  offset: 1,
  epoch: 'AbCdEfGhIj.0',
  seq: 1,
  time: 1_764_590_000_000,
  labels: undefined,
  key: undefined,
};

describe('StreamEvent frame', () => {
  it('is the generic encoding, and its message is that frame behind a WebSocket header', () => {
    const event = made(base);
    expect(Buffer.from(event.frame).equals(Buffer.from(generic(base)))).toBe(true);
    expect(payloadOf(event.message!).equals(Buffer.from(event.frame))).toBe(true);
    expect(decodeFrame(event.frame)).toMatchObject({ t: FrameType.event, c: 'news.sport', o: 1, s: 1, ts: base.time });
  });

  it('matches the generic encoding at every size class of strings, binary, arrays and integers', () => {
    const sizes = [0, 1, 31, 32, 125, 126, 255, 256, 65_535, 65_536, 70_000];
    for (const n of sizes) {
      const f: Fields = { ...base, data: new Uint8Array(n).fill(7), channel: 'c'.repeat(Math.max(1, Math.min(n, 300))), key: 'k'.repeat(n) };
      expect(Buffer.from(made(f).frame).equals(Buffer.from(generic(f))), `size ${n}`).toBe(true);
      expect(payloadOf(made(f).message!).length).toBe(generic(f).length);
    }
    for (const x of [0, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, 0x100000000, Number.MAX_SAFE_INTEGER]) {
      const f: Fields = { ...base, offset: x, seq: x, time: x };
      expect(Buffer.from(made(f).frame).equals(Buffer.from(generic(f))), `integer ${x}`).toBe(true);
    }
    for (const n of [0, 1, 15, 16, 300]) {
      const f: Fields = { ...base, labels: Array.from({ length: n }, (_, i) => `l${i}`) };
      expect(Buffer.from(made(f).frame).equals(Buffer.from(generic(f))), `${n} labels`).toBe(true);
    }
  });

  it('carries pr: 1 on a high-priority event, on the fast path and the generic one; a normal event has no pr', () => {
    for (const f of [base, { ...base, labels: ['a'], key: 'k' }, { ...base, channel: 'café' }]) {
      const event = new StreamEvent(f.channel, f.data, f.id, f.offset, f.epoch, f.seq, f.time, f.labels, f.key, undefined, 1);
      const expected = encodeFrame({ t: FrameType.event, c: f.channel, d: f.data, id: f.id, o: f.offset, e: f.epoch, s: f.seq, ts: f.time, l: f.labels, k: f.key, pr: 1 });
      expect(Buffer.from(event.frame).equals(Buffer.from(expected))).toBe(true);
      expect(payloadOf(event.message!).equals(Buffer.from(event.frame))).toBe(true);
      expect(decodeFrame(event.frame)).toMatchObject({ pr: 1 });
      expect(decodeFrame(made(f).frame)).not.toHaveProperty('pr');
    }
  });

  it('falls back to the generic encoder for what its fast path does not cover', () => {
    for (const f of [
      { ...base, channel: 'café' },
      { ...base, key: 'ключ' },
      { ...base, labels: ['a', '😀'] },
      { ...base, time: 1.5 }, // a test clock may give fractions
      { ...base, id: 'x\u0080' },
    ]) {
      const event = made(f);
      expect(Buffer.from(event.frame).equals(Buffer.from(generic(f)))).toBe(true);
      expect(payloadOf(event.message!).equals(Buffer.from(event.frame))).toBe(true);
    }
  });

  it('matches the generic encoding for arbitrary events (property)', () => {
    const str = fc.string({ unit: fc.constantFrom('a', 'Z', '.', '-', '_', 'é', '\u00ff', '😀'), maxLength: 40 });
    const uint = fc.oneof(fc.nat(), fc.maxSafeNat(), fc.integer({ min: 0, max: 0x1_0000_0000 }));
    fc.assert(
      fc.property(
        fc.record({
          channel: str,
          data: fc.uint8Array({ maxLength: 400 }),
          id: str,
          offset: uint,
          epoch: str,
          seq: uint,
          time: fc.oneof(uint, fc.double({ noNaN: true, min: 0, max: 1e15 })),
          labels: fc.option(fc.array(str, { maxLength: 20 }), { nil: undefined }),
          key: fc.option(str, { nil: undefined }),
        }),
        (f) => {
          const event = made(f);
          expect(Buffer.from(event.frame).equals(Buffer.from(generic(f)))).toBe(true);
          expect(payloadOf(event.message!).equals(Buffer.from(event.frame))).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("written from its channel's names (the memory engine's), is the generic encoding of the id that the names make", () => {
    const prefix = 'AbCdEfGhIj-';
    const seqs = [1, 2, 36, 37, 1296, 1297, 36 ** 5, 36 ** 5 + 1, 2 ** 32, Number.MAX_SAFE_INTEGER];
    for (const channel of ['news.sport', 'c'.repeat(31), 'c'.repeat(32), 'c'.repeat(300)]) {
      const names = eventNames(channel, 'AbCdEfGhIj.0', prefix)!;
      for (const seq of seqs) {
        for (const extra of [{}, { labels: ['a', 'b'], key: 'k' }, { time: 1.5 }]) {
          const f: Fields = { ...base, channel, seq, ...extra, id: `${prefix}${(seq - 1).toString(36)}` };
          for (const priority of [0, 1]) {
            const event = new StreamEvent(f.channel, f.data, names, f.offset, f.epoch, f.seq, f.time, f.labels, f.key, undefined, priority);
            const expected = encodeFrame({ t: FrameType.event, c: f.channel, d: f.data, id: f.id, o: f.offset, e: f.epoch, s: f.seq, ts: f.time, l: f.labels, k: f.key, pr: priority === 1 ? 1 : undefined });
            expect(Buffer.from(event.frame).equals(Buffer.from(expected)), `${channel.length} ${seq} ${JSON.stringify(extra)} ${priority}`).toBe(true);
            expect(payloadOf(event.message!).equals(Buffer.from(event.frame))).toBe(true);
            expect(event.id).toBe(f.id);
          }
        }
      }
    }
    // Names that are not ASCII are not made: such a channel's events are encoded from their strings.
    expect(eventNames('café', 'e', prefix)).toBeUndefined();
    expect(eventNames('c', 'é', prefix)).toBeUndefined();
  });

  it('keeps the stored frame of an event read back from history, with no message', () => {
    const frame = generic(base);
    const event = new StreamEvent(base.channel, undefined, base.id, base.offset, base.epoch, base.seq, base.time, undefined, undefined, frame);
    expect(event.frame).toBe(frame);
    expect(event.message).toBeUndefined();
    expect(Buffer.from(event.data).equals(Buffer.from(base.data))).toBe(true);
  });
});
