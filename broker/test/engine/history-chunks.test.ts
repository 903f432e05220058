// The memory engine copies each retained frame into its channel's chunks (a few buffers per
// channel instead of one per event) and gives ids from the stream position. These tests hold that
// what history gives back is byte for byte what was sent, whatever the chunk boundaries, trims and
// compactions, and that a frame given out before a compaction is not changed by it.
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, FrameType, type EventFrame } from '@crier/protocol';
import { ChannelStore, MAX_CHUNK_BYTES } from '../../src/engine/channel-store.js';
import { MemoryEngine } from '../../src/engine/memory-engine.js';
import { StreamEvent } from '../../src/engine/stream-event.js';
import { ManualClock } from '../manual-clock.js';

const limits = { channelCacheSize: 1000, historySize: 100, historyBytes: 1024 * 1024, historyTtl: 60_000, historyTotalBytes: 64 * 1024 * 1024 };

function engine(overrides: Partial<typeof limits> = {}, clock = new ManualClock()): { engine: MemoryEngine; sent: StreamEvent[] } {
  const e = new MemoryEngine({ ...limits, ...overrides, idempotencyWindow: 0, idempotencyKeys: 0 }, clock);
  const sent: StreamEvent[] = [];
  void e.start((event) => sent.push(event));
  return { engine: e, sent };
}

/** The frame a live event was sent with, copied (its message may come from a shared pool). */
const copy = (event: StreamEvent): number[] => [...event.frame];

const payload = (i: number, size: number): Uint8Array => Uint8Array.from({ length: size }, (_, k) => (i * 31 + k) & 0xff);

describe('memory engine history in chunks', () => {
  it('gives back every retained frame byte for byte, across chunk boundaries, with the ids it published', () => {
    const { engine: e, sent } = engine();
    const frames: number[][] = [];
    // Sizes that straddle chunks: small, medium, and some larger than a chunk.
    const sizes = [1, 10, 100, 300, 1000, 5000, MAX_CHUNK_BYTES + 10, 7, 2000, 40];
    for (let i = 0; i < 60; i++) {
      e.publish({ channel: 'a.b', data: payload(i, sizes[i % sizes.length]!), labels: i % 3 === 0 ? ['x', 'y'] : undefined, key: i % 4 === 0 ? `k${i}` : undefined });
      frames.push(copy(sent.at(-1)!));
    }
    const page = e.history('a.b', undefined, 1000) as Awaited<ReturnType<MemoryEngine['history']>>;
    expect(page.events.map((ev) => [...ev.frame])).toEqual(frames);
    expect(page.events.map((ev) => ev.id)).toEqual(sent.map((ev) => ev.id));
    expect(page.events.map((ev) => ev.seq)).toEqual(sent.map((ev) => ev.seq));
    for (const ev of page.events) {
      const decoded = decodeFrame(ev.frame) as EventFrame;
      expect(decoded.id).toBe(ev.id);
      expect([...ev.data]).toEqual([...decoded.d]);
    }
  });

  it('encodes a restored event as the generic encoder does', () => {
    const { engine: e } = engine();
    e.publish({ channel: 'c', data: payload(1, 20), labels: ['l'], key: 'k' });
    const [ev] = (e.history('c', undefined, 10) as Awaited<ReturnType<MemoryEngine['history']>>).events;
    expect([...ev!.frame]).toEqual([...encodeFrame({ t: FrameType.event, c: 'c', d: ev!.data, id: ev!.id, o: 1, e: ev!.epoch, s: ev!.seq, ts: ev!.time, l: ['l'], k: 'k' })]);
  });

  it('keeps frames intact through trims by count, by bytes and by age, and replays them in stream order', () => {
    const clock = new ManualClock();
    const { engine: e, sent } = engine({ historySize: 20, historyBytes: 8000 }, clock);
    const frames = new Map<number, number[]>();
    for (let i = 0; i < 300; i++) {
      clock.advance(10);
      e.publish({ channel: i % 2 === 0 ? 'even' : 'odd', data: payload(i, (i * 37) % 900) });
      frames.set(sent.at(-1)!.seq, copy(sent.at(-1)!));
    }
    const page = e.replay('>', 0, 1000) as Awaited<ReturnType<MemoryEngine['replay']>>;
    expect(page.events.length).toBeGreaterThan(10);
    for (const ev of page.events) expect([...ev.frame]).toEqual(frames.get(ev.seq));
    // Age out all but the newest few.
    clock.advance(60_000 - 25);
    const young = e.history('even', undefined, 100) as Awaited<ReturnType<MemoryEngine['history']>>;
    expect(young.events.length).toBeGreaterThan(0);
    expect(young.events.length).toBeLessThan(5);
    for (const ev of young.events) expect([...ev.frame]).toEqual(frames.get(ev.seq));
  });

  it('compacts a channel whose chunks are mostly dead frames; frames given out before stay as they were', () => {
    const clock = new ManualClock();
    const { engine: e, sent } = engine({ historyTtl: 1000 }, clock);
    // A burst of events fills big chunks…
    for (let i = 0; i < 90; i++) e.publish({ channel: 'burst', data: payload(i, 400) });
    const before = (e.history('burst', undefined, 1000) as Awaited<ReturnType<MemoryEngine['history']>>).events;
    const held = before.map((ev) => ev.frame);
    const heldCopies = held.map((f) => [...f]);
    // …then they age out but for two late ones, which a compaction moves to a chunk of their size.
    clock.advance(900);
    e.publish({ channel: 'burst', data: payload(1000, 50) });
    e.publish({ channel: 'burst', data: payload(1001, 60) });
    clock.advance(200);
    const late = (e.history('burst', undefined, 1000) as Awaited<ReturnType<MemoryEngine['history']>>).events;
    expect(late.map((ev) => [...ev.frame])).toEqual(sent.slice(-2).map(copy));
    const log = e.store.peek('burst')!;
    expect(log.pinned).toBeLessThanOrEqual(4 * log.frameBytes + 256);
    // Later publishes reuse nothing the views given out point into.
    for (let i = 0; i < 50; i++) e.publish({ channel: 'burst', data: payload(2000 + i, 400) });
    expect(held.map((f) => [...f])).toEqual(heldCopies);
  });

  it('sends each live event as a WebSocket message written in history, never written again', () => {
    const clock = new ManualClock();
    const { engine: e, sent } = engine({ historySize: 5, historyTtl: 1000 }, clock);
    const held: { message: Buffer; bytes: number[] }[] = [];
    for (let i = 0; i < 400; i++) {
      if (i % 50 === 49) clock.advance(2000); // ages everything out: empty logs, compactions
      e.publish({ channel: `c${i % 3}`, data: payload(i, (i * 53) % 700) });
      const ev = sent.at(-1)!;
      const message = ev.message!;
      // Its message is its frame behind an unmasked binary header, the frame a view into it.
      expect(message[0]).toBe(0x82);
      expect(ev.frame.buffer).toBe(message.buffer);
      expect(ev.frame.byteOffset + ev.frame.length).toBe(message.byteOffset + message.length);
      held.push({ message, bytes: [...message] });
    }
    for (const h of held) expect([...h.message]).toEqual(h.bytes);
    // History keeps the very bytes that were sent.
    for (let i = 0; i < 3; i++) e.publish({ channel: 'c1', data: payload(1000 + i, 30) });
    const page = e.history('c1', undefined, 10) as Awaited<ReturnType<MemoryEngine['history']>>;
    expect(page.events.length).toBeGreaterThanOrEqual(3);
    const last = sent.filter((ev) => ev.channel === 'c1').slice(-page.events.length);
    expect(page.events.map((ev) => [...ev.frame])).toEqual(last.map(copy));
    expect(page.events.at(-1)!.frame.buffer).toBe(last.at(-1)!.frame.buffer);
  });

  it('gives each event a buffer of its own when history is off', () => {
    const { engine: e, sent } = engine({ historySize: 0 });
    e.publish({ channel: 'a', data: payload(1, 10) });
    e.publish({ channel: 'a', data: payload(2, 10) });
    expect(sent[0]!.message!.buffer).not.toBe(sent[1]!.message!.buffer);
    expect(sent[0]!.message!.byteOffset).toBe(0);
    expect(sent[0]!.message!.buffer.byteLength).toBe(sent[0]!.message!.length);
  });

  it('copies in an event whose message was written elsewhere (not in the room it was given)', () => {
    const store = new ChannelStore(limits, () => 0, () => 0);
    const frames: number[][] = [];
    for (let i = 0; i < 30; i++) {
      const log = store.sequence('s');
      // Every other one in its own buffer: its room is left unused.
      const own = i % 2 === 0;
      const room = own ? undefined : store.room(log);
      const event = new StreamEvent('s', payload(i, 50 + i * 20), store.nextId(), log.offset, log.epoch, store.seq, 0, undefined, undefined, undefined, 0, room);
      if (own) expect(event.message!.byteOffset).toBe(0);
      store.retain(log, event);
      frames.push([...event.frame]);
    }
    expect(store.read('s', undefined, 100).events.map((ev) => [...ev.frame])).toEqual(frames);
  });

  it('keeps each event\'s own fields when records of trimmed events are reused', () => {
    const { engine: e, sent } = engine({ historySize: 3 });
    for (let i = 0; i < 40; i++) {
      const channel = `r${i % 2}`;
      e.publish({ channel, data: payload(i, 10 + i), labels: i % 3 === 0 ? [`l${i}`] : undefined, key: i % 4 === 0 ? `k${i}` : undefined });
      const page = e.history(channel, undefined, 10) as Awaited<ReturnType<MemoryEngine['history']>>;
      const mine = sent.filter((ev) => ev.channel === channel).slice(-3);
      expect(page.events.map((ev) => [ev.seq, ev.offset, ev.id, ev.labels, ev.key, [...ev.frame]]))
        .toEqual(mine.map((ev) => [ev.seq, ev.offset, ev.id, ev.labels, ev.key, copy(ev)]));
    }
  });

  it('holds no chunk for a channel whose history is empty, and ids follow the stream position', () => {
    const store = new ChannelStore({ ...limits, historyTtl: 10 }, () => 0, () => 0);
    expect(store.idOf(1)).toBe(`${store.epoch}-0`);
    expect(store.idOf(37)).toBe(`${store.epoch}-10`);
    const clock = new ManualClock();
    const { engine: e } = engine({ historyTtl: 10 }, clock);
    e.publish({ channel: 'x', data: payload(1, 100) });
    clock.advance(20);
    expect((e.history('x', undefined, 10) as Awaited<ReturnType<MemoryEngine['history']>>).events).toEqual([]);
    const log = e.store.peek('x')!;
    expect(log.chunk).toBeUndefined();
    expect(log.pinned).toBe(0);
    expect(log.frameBytes).toBe(0);
  });
});
