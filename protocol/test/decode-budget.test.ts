// Issue 9, finding 1: decode amplification inside the limits. A 1 MiB frame of 1,024 arrays of
// 1,024 empty maps was decoded in full (~80 MiB of heap, ~150 ms) before any shape check, and the
// same junk inside an unknown field of a valid ping was decoded and answered. Every frame the
// broker decodes (decodeUntrustedFrame(s), BudgetedReader) now costs at most `maxValues` steps;
// these tests count the steps, never the time.
import { describe, expect, it } from 'vitest';
import {
  CrierError,
  DEFAULT_DECODE_LIMITS,
  FrameType,
  decodeUntrustedFrame,
  decodeUntrustedFrames,
  encodeFrame,
  type DecodeLimits,
  type Frame,
} from '../src/index.js';
import { DEFAULT_MAX_VALUES, MAX_MESSAGE_VALUES } from '../src/limits.js';
import { BudgetedReader, decodeBudgetedMsgpack, type FrameFields } from '../src/budgeted-reader.js';
import { MsgpackError, encodeMsgpack } from '../src/msgpack.js';

const MAX = DEFAULT_DECODE_LIMITS.maxValues!;

/** An array of 1,024 arrays of 1,024 empty maps: 1 MiB + 3 KiB of msgpack, 1,049,601 values. */
function emptyMapGrid(): Uint8Array {
  const row = [0xdc, 0x04, 0x00, ...new Array<number>(1024).fill(0x80)]; // array16 of 1024 fixmap(0)
  const out = new Uint8Array(3 + 1024 * row.length);
  out.set([0xdc, 0x04, 0x00]);
  for (let i = 0; i < 1024; i++) out.set(row, 3 + i * row.length);
  return out;
}

/** `{t: <type>, <field>: <raw>}` with `raw` spliced in as the field's msgpack value. */
function frameWith(type: number, field: string, raw: Uint8Array, extra: Uint8Array = new Uint8Array(0)): Uint8Array {
  const name = new TextEncoder().encode(field);
  const head = [0x82 + (extra.length > 0 ? 1 : 0), 0xa1, 0x74, type, 0xa0 | name.length, ...name];
  const out = new Uint8Array(head.length + raw.length + extra.length);
  out.set(head);
  out.set(raw, head.length);
  out.set(extra, head.length + raw.length);
  return out;
}

function decodeError(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): CrierError {
  try {
    decodeUntrustedFrame(bytes, limits);
  } catch (err) {
    if (err instanceof CrierError) return err;
    throw err;
  }
  throw new Error('expected the frame to be refused');
}

/** Decodes like decodeUntrustedFrames would and returns how far the reader got: bytes and values. */
function steps(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): { pos: number; values: number; error: string } {
  const reader = new BudgetedReader(bytes, limits);
  const known: FrameFields = { byType: [], any: { t: 0, r: 0, c: 0, d: 0, l: 1 } };
  try {
    reader.frame(known);
  } catch (err) {
    if (!(err instanceof MsgpackError)) throw err;
    return { pos: reader.pos, values: reader.values, error: err.message };
  }
  return { pos: reader.pos, values: reader.values, error: '' };
}

describe('decode budget: a frame costs at most maxValues steps', () => {
  const grid = emptyMapGrid();

  it('has a documented default', () => {
    expect(DEFAULT_MAX_VALUES).toBe(2048);
    expect(MAX).toBe(DEFAULT_MAX_VALUES);
    expect(grid.length).toBeGreaterThan(1024 * 1024);
    expect(grid.length).toBeLessThanOrEqual(DEFAULT_DECODE_LIMITS.maxFrameBytes);
  });

  it('refuses the finding\'s message (a non-map) at its first byte', () => {
    const err = decodeError(grid);
    expect(err.code).toBe('bad_frame');
    expect(err.message).toContain('must be a msgpack map');
    const s = steps(grid);
    expect(s.pos).toBe(0); // not one byte past the header
    expect(s.values).toBe(0);
    // decodeUntrustedFrames too, and it visits nothing.
    const seen: Frame[] = [];
    expect(() => decodeUntrustedFrames(grid, DEFAULT_DECODE_LIMITS, (f) => seen.push(f))).toThrowError(/must be a msgpack map/);
    expect(seen).toEqual([]);
  });

  it('refuses the same junk in an unknown field of a valid ping after maxValues steps, unbuilt', () => {
    const ping = frameWith(FrameType.ping, 'junk', grid);
    const err = decodeError(ping);
    expect(err.code).toBe('frame_too_large');
    expect(err.message).toContain(`more than ${MAX} values`);
    const s = steps(ping);
    expect(s.values).toBeLessThanOrEqual(MAX);
    expect(s.pos).toBeLessThan(4 * MAX); // a few KiB read of the 1 MiB
  });

  it('refuses it inside a known field as well (a container where a string belongs is skipped, not built)', () => {
    const publish = frameWith(FrameType.publish, 'c', grid);
    expect(decodeError(publish).code).toBe('frame_too_large');
    const s = steps(publish);
    expect(s.values).toBeLessThanOrEqual(MAX);
    expect(s.pos).toBeLessThan(4 * MAX);
  });

  it('refuses a declared length past the budget at its header, before allocating', () => {
    const limits = { ...DEFAULT_DECODE_LIMITS, maxArrayLength: 100_000 };
    const n = 60_000;
    const labels = new Uint8Array(3 + n).fill(0xa0); // array16 of 60,000 empty strings
    labels.set([0xdc, n >> 8, n & 0xff]);
    const frame = frameWith(FrameType.publish, 'l', labels);
    expect(decodeError(frame, limits).code).toBe('frame_too_large');
    const s = steps(frame, limits);
    expect(s.pos).toBe(6 + 3); // the frame's head (6 bytes) and the array's header, nothing more
  });

  it('skips an unknown field that fits the budget without building it, and keeps the frame', () => {
    const junk = encodeMsgpack(Array.from({ length: 30 }, () => Array.from({ length: 30 }, () => ({}))));
    const frame = decodeUntrustedFrame(frameWith(FrameType.ping, 'junk', junk));
    expect(frame).toEqual({ t: FrameType.ping });
    // Strings in a skipped field are not decoded: invalid UTF-8 there costs nothing and harms nothing.
    expect(decodeUntrustedFrame(frameWith(FrameType.ping, 'zz', new Uint8Array([0xa2, 0xff, 0xfe])))).toEqual({ t: FrameType.ping });
    // A field of another frame type is unknown to this one: a ping's `c` is skipped.
    expect(decodeUntrustedFrame(frameWith(FrameType.ping, 'c', junk))).toEqual({ t: FrameType.ping });
  });

  it('answers a container where a scalar belongs with bad_frame and the request id', () => {
    const r = new Uint8Array([0xa1, 0x72, 0x09]); // r: 9
    const err = decodeError(frameWith(FrameType.publish, 'c', encodeMsgpack([['x']]), r));
    expect(err.code).toBe('bad_frame');
    expect(err.requestId).toBe(9);
    // Labels hold strings, not lists.
    expect(decodeError(encodeFrame({ t: FrameType.publish, r: 4, c: 'a', d: new Uint8Array(1), l: [['x']] } as unknown as Frame)).requestId).toBe(4);
  });

  it('decodes the largest frames of the protocol well within the budget', () => {
    // A broker's largest frame costs as little (a client's decoder never reads it: unknown_type).
    const dropped = encodeFrame({ t: FrameType.dropped, n: 5, c: Array.from({ length: 100 }, (_, i): [string, number] => [`ch.${i}`, i]) });
    expect(steps(dropped).values).toBeLessThan(MAX / 4);
    expect(decodeError(dropped).code).toBe('unknown_type');
    const f = { l: Array.from({ length: 16 }, (_, i) => `l${i}`), la: true, k: Array.from({ length: 256 }, (_, i) => `k${i}`) };
    const subscribe = encodeFrame({ t: FrameType.subscribe, r: 1, p: 'a.*', f });
    expect(decodeUntrustedFrame(subscribe)).toEqual({ t: FrameType.subscribe, r: 1, p: 'a.*', f });
    const publish = encodeFrame({
      t: FrameType.publish, r: 2, c: 'a.b', d: new Uint8Array(10), l: Array.from({ length: 16 }, (_, i) => `l${i}`), k: 'k', i: 'm'.repeat(64),
    });
    expect(decodeUntrustedFrame(publish)).toMatchObject({ t: FrameType.publish, c: 'a.b', r: 2 });
  });

  it('counts per frame: a message of several frames each near the budget decodes', () => {
    const near = encodeFrame({ t: FrameType.subscribe, r: 1, p: 'a', f: { k: Array.from({ length: 1000 }, (_, i) => `k${i}`) } });
    expect(steps(near).values).toBeGreaterThan(1000);
    const message = new Uint8Array([...near, ...near, ...near]);
    const seen: Frame[] = [];
    decodeUntrustedFrames(message, DEFAULT_DECODE_LIMITS, (frame) => seen.push(frame));
    expect(seen).toHaveLength(3);
  });

  it('holds a message of many valid frames to MAX_MESSAGE_VALUES: the frames before stand, the rest is not read', () => {
    const heavy = encodeFrame({ t: FrameType.publish, c: 'a', d: new Uint8Array(1), l: Array.from({ length: 1000 }, (_, i) => `l${i}`) });
    const perFrame = steps(heavy).values;
    const message = new Uint8Array(heavy.length * 300);
    for (let i = 0; i < 300; i++) message.set(heavy, i * heavy.length);
    let seen = 0;
    let error: unknown;
    try {
      decodeUntrustedFrames(message, DEFAULT_DECODE_LIMITS, () => seen++);
    } catch (err) {
      error = err;
    }
    expect(seen).toBe(Math.ceil(MAX_MESSAGE_VALUES / perFrame));
    expect(error).toBeInstanceOf(CrierError);
    expect((error as CrierError).code).toBe('frame_too_large');
    // A message of ordinary frames is far from it.
    const ordinary = encodeFrame({ t: FrameType.publish, r: 1, c: 'user.created', d: new Uint8Array(100), l: ['a'], k: 'k' });
    const many = new Uint8Array(ordinary.length * 256);
    for (let i = 0; i < 256; i++) many.set(ordinary, i * ordinary.length);
    let n = 0;
    decodeUntrustedFrames(many, DEFAULT_DECODE_LIMITS, () => n++);
    expect(n).toBe(256);
  });

  it('takes a smaller budget from the limits, and limits written without one get the default', () => {
    const frame = encodeFrame({ t: FrameType.publish, c: 'a', d: new Uint8Array(1), l: ['a', 'b', 'c', 'd'] });
    expect(decodeError(frame, { ...DEFAULT_DECODE_LIMITS, maxValues: 8 }).code).toBe('frame_too_large');
    const { maxValues: _omitted, ...older } = DEFAULT_DECODE_LIMITS;
    expect(decodeUntrustedFrame(frame, older)).toMatchObject({ l: ['a', 'b', 'c', 'd'] });
    expect(decodeError(frameWith(FrameType.ping, 'junk', grid), older).code).toBe('frame_too_large');
  });

  it('holds decodeBudgetedMsgpack to the budget too', () => {
    expect(() => decodeBudgetedMsgpack(grid, { ...DEFAULT_DECODE_LIMITS, maxDepth: 8 })).toThrowError(/more than 2048 values/);
  });
});
