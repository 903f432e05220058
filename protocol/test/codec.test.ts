import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encode } from '@msgpack/msgpack';
import {
  CrierError,
  DEFAULT_DECODE_LIMITS,
  FrameType,
  decodeFrame,
  decodeFrames,
  decodeUntrustedFrame,
  decodeUntrustedFrames,
  encodeFrame,
  limitsForPayload,
  type Frame,
  type EventFrame,
} from '../src/index.js';
import { concat } from './concat.js';

const bytes = (...b: number[]): Uint8Array => new Uint8Array(b);


// Both decoders (the SDKs' lean one, for broker→client frames, and the broker's budgeted one, for
// client→broker frames) are held to the same limits and shape checks: the hostile-input and
// message suites below run against each of them, each with frames of its own direction.
interface Direction {
  /** A frame this decoder reads, with a binary field `d` of `length` bytes. */
  withData(length: number): Frame;
  /** A small frame this decoder reads. */
  small: Frame;
  /** Values of this decoder's own frame types whose shape is wrong: bad_frame. */
  misshapen: [string, unknown][];
  /** Valid frames the other side reads and this one does not: unknown_type. */
  foreign: Frame[];
}

const brokerToClient: Direction = {
  withData: (n) => ({ t: FrameType.event, c: 'a', d: new Uint8Array(n), id: 'x', o: 1, e: 'e', ts: 1 }),
  small: { t: FrameType.ack, r: 7 },
  misshapen: [
    ['an event without an id', { t: 11, c: 'a', d: new Uint8Array(1), o: 1, e: 'e', ts: 1 }],
    ['an event with string data', { t: 11, c: 'a', d: 'text', id: 'x', o: 1, e: 'e', ts: 1 }],
    ['an ack with a negative id', { t: 9, r: -1 }],
    ['an event with labels not strings', { t: 11, c: 'a', d: new Uint8Array(1), id: 'x', o: 1, e: 'e', ts: 1, l: [1] }],
    ['a welcome with a fractional version', { t: 2, v: 1.5, u: 'u', ka: 1, lim: { mc: 1, mp: 1, bs: 1 }, s: 's' }],
    ['an events frame with a string among its events', { t: 15, r: 1, ev: ['x'] }],
    ['a request event with a numeric reply token', { t: 11, c: 'a', d: new Uint8Array(1), id: 'x', o: 0, e: '', ts: 1, rp: 5 }],
    ['a reply without its request id', { t: 17, c: 'a', d: new Uint8Array(1), id: 'x', ts: 1 }],
  ],
  foreign: [
    { t: FrameType.hello, v: 1 },
    { t: FrameType.subscribe, r: 3, p: 'a' },
    { t: FrameType.publish, r: 4, c: 'a', d: new Uint8Array(1) },
    { t: FrameType.history, r: 5, c: 'a' },
    { t: FrameType.request, r: 6, c: 'a', d: new Uint8Array(1), to: 100 },
    { t: FrameType.quit },
  ],
};

const clientToBroker: Direction = {
  withData: (n) => ({ t: FrameType.publish, r: 1, c: 'a', d: new Uint8Array(n) }),
  small: { t: FrameType.subscribe, r: 7, p: 'a.b' },
  misshapen: [
    ['subscribe without a pattern', { t: 3, r: 1 }],
    ['subscribe with a numeric pattern', { t: 3, r: 1, p: 5 }],
    ['publish with string data', { t: 5, r: 1, c: 'a', d: 'text' }],
    ['publish with a negative id', { t: 5, r: -1, c: 'a', d: new Uint8Array(1) }],
    ['publish with labels not strings', { t: 5, r: 1, c: 'a', d: new Uint8Array(1), l: [1] }],
    ['hello with a fractional version', { t: 1, v: 1.5 }],
    ['request without data', { t: 16, r: 1, c: 'a' }],
    ['request with a fractional timeout', { t: 16, r: 1, c: 'a', d: new Uint8Array(1), to: 1.5 }],
    ['reply without a token', { t: 17, d: new Uint8Array(1) }],
  ],
  foreign: [
    { t: FrameType.welcome, v: 1, u: 'u', ka: 1, lim: { mc: 1, mp: 1, bs: 1 }, s: 's' },
    { t: FrameType.ack, r: 3 },
    { t: FrameType.event, c: 'a', d: new Uint8Array(1), id: 'x', o: 1, e: 'e', ts: 1 },
    { t: FrameType.events, r: 5, ev: [] },
    { t: FrameType.dropped, n: 1, c: [] },
  ],
};

const decoders = [
  ['decodeFrame', decodeFrame, brokerToClient],
  ['decodeUntrustedFrame', decodeUntrustedFrame, clientToBroker],
] as const;

describe('encodeFrame / decode round trip, each frame by the decoder of its direction', () => {
  const data = new Uint8Array([0, 1, 2, 255]);
  const event = encodeFrame({ t: FrameType.event, c: 'a.b', d: data, id: 'x1', o: 1, e: 'ep1', ts: 1, s: 9 });
  const clientFrames: Frame[] = [
    { t: FrameType.hello, v: 1 },
    { t: FrameType.hello, v: 1, u: 'abc_DEF-1' },
    { t: FrameType.auth, r: 4, tk: 'a.b.c' },
    { t: FrameType.hello, v: 1, u: 'abc', tk: 'a.b.c', s: 'secret' },
    { t: FrameType.hello, v: 1, u: 'abc', s: 'secret', rp: { e: 'E1', s: 42 } },
    { t: FrameType.subscribe, r: 1, p: 'user.*' },
    { t: FrameType.subscribe, r: 1, p: 'user.*', w: 0 },
    { t: FrameType.unsubscribe, r: 2, p: 'user.>' },
    { t: FrameType.publish, r: 3, c: 'user.created', d: data },
    { t: FrameType.publish, r: 3, c: 'user.created', d: data, i: 'x1y2-a' },
    { t: FrameType.publish, c: 'user.created', d: data, l: ['a', 'b'], k: 'k1' },
    { t: FrameType.history, r: 7, c: 'user.created' },
    { t: FrameType.history, r: 7, c: 'user.created', e: 'ep1', o: 3, n: 10 },
    { t: FrameType.quit },
    { t: FrameType.ping },
    { t: FrameType.pong },
  ];
  const brokerFrames: Frame[] = [
    { t: FrameType.welcome, v: 1, u: 'abc', ka: 30000, lim: { mc: 100, mp: 1048576, bs: 1000 }, s: 'secret' },
    { t: FrameType.welcome, v: 1, u: 'abc', ka: 30000, lim: { mc: 100, mp: 1048576, bs: 1000 }, s: 'secret', x: 1796000000000 },
    { t: FrameType.welcome, v: 1, u: 'abc', ka: 1, lim: { mc: 1, mp: 1, bs: 1 }, s: 's', ep: 'E1', rs: { n: 2, why: 'history_evicted', f: ['a.*'] } },
    { t: FrameType.ping },
    { t: FrameType.pong },
    { t: FrameType.ack, r: 4 },
    { t: FrameType.ack, r: 5, id: 'x1', o: 7, e: 'ep1' },
    { t: FrameType.error, r: 6, code: 'bad_channel', msg: 'nope' },
    { t: FrameType.error, code: 'bad_channel', msg: 'fire-and-forget failed' },
    { t: FrameType.event, c: 'user.created', d: data, id: 'x1', o: 1, e: 'ep1', ts: 1700000000000 },
    { t: FrameType.event, c: 'a.b', d: new Uint8Array(0), id: 'x2', o: 2, e: 'ep1', ts: 1, s: 12, l: ['l'], k: 'k' },
    { t: FrameType.dropped, n: 3, c: [['user.created', 2], ['user.deleted', 1]] },
    { t: FrameType.events, r: 8, ev: [] },
    { t: FrameType.events, r: 8, ev: [event, event], e: 'ep1', o: 9, ok: true, m: false },
  ];
  it.each(clientFrames.map((f) => [f.t, f] as const))('client→broker type %i (decodeUntrustedFrame)', (_t, frame) => {
    expect(decodeUntrustedFrame(encodeFrame(frame))).toEqual(frame);
  });
  it.each(brokerFrames.map((f) => [f.t, f] as const))('broker→client type %i (decodeFrame)', (_t, frame) => {
    expect(decodeFrame(encodeFrame(frame))).toEqual(frame);
  });

  it('carries data byte for byte as a binary field', () => {
    const big = new Uint8Array(20_000).map((_, i) => i * 7);
    const published = decodeUntrustedFrame(encodeFrame({ t: FrameType.publish, c: 'a', d: big }));
    expect(published.t === FrameType.publish && published.d).toEqual(big);
    const delivered = decodeFrame(encodeFrame({ t: FrameType.event, c: 'a', d: big, id: 'x', o: 1, e: 'e', ts: 1 }));
    expect(delivered.t === FrameType.event && delivered.d).toEqual(big);
  });
});

describe.each(decoders)('%s rejects hostile input with one coded error', (name, decodeFrame, own) => {
  function decodeError(input: Uint8Array, limits = DEFAULT_DECODE_LIMITS): CrierError {
    try {
      decodeFrame(input, limits);
    } catch (err) {
      expect(err).toBeInstanceOf(CrierError);
      return err as CrierError;
    }
    throw new Error(`expected ${name} to throw`);
  }

  it('random bytes never throw anything but CrierError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (input) => {
        try {
          decodeFrame(input);
          return true;
        } catch (err) {
          return err instanceof CrierError && ['bad_frame', 'frame_too_large', 'unknown_type'].includes(err.code);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('random mutations of valid frames never throw anything but CrierError', () => {
    const valid = encodeFrame({ ...own.withData(20), l: ['x'], k: 'y' } as Frame);
    fc.assert(
      fc.property(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 }), fc.nat(valid.length), (i, b, cut) => {
        const input = valid.slice(0, Math.max(cut, 1));
        input[Math.min(i, input.length - 1)] = b;
        try {
          decodeFrame(input);
        } catch (err) {
          return err instanceof CrierError;
        }
        return true;
      }),
      { numRuns: 5000 },
    );
  });

  it('rejects a frame over maxFrameBytes before decoding it', () => {
    const limits = limitsForPayload(100);
    const err = decodeError(new Uint8Array(limits.maxFrameBytes + 1), limits);
    expect(err.code).toBe('frame_too_large');
  });

  it('rejects huge declared lengths without allocating them', () => {
    // str32, bin32, array32 and map32 each declaring ~4 GiB, as field d of {t: 5, d: …}
    // (a frame that is not a map is refused at its first byte, whatever it declares).
    for (const head of [0xdb, 0xc6, 0xdd, 0xdf]) {
      const err = decodeError(bytes(0x82, 0xa1, 0x74, 0x05, 0xa1, 0x64, head, 0xff, 0xff, 0xff, 0xf0, 1, 2, 3));
      expect(err.code).toBe('frame_too_large');
    }
  });

  it('rejects data past maxBinLength', () => {
    const limits = { ...DEFAULT_DECODE_LIMITS, maxBinLength: 10 };
    const frame = encodeFrame(own.withData(11));
    expect(decodeError(frame, limits).code).toBe('frame_too_large');
    expect(() => decodeFrame(encodeFrame(own.withData(10)), limits)).not.toThrow();
  });

  it('rejects deep nesting cheaply (a nesting bomb)', () => {
    // {t: 7, x: a million nested one-element arrays}
    const bomb = new Uint8Array(1_000_000).fill(0x91);
    bomb.set([0x82, 0xa1, 0x74, 0x07, 0xa1, 0x78]);
    const started = performance.now();
    expect(decodeError(bomb).code).toBe('frame_too_large');
    expect(decodeError(bomb).message).toContain('nesting too deep');
    // Not a speed assertion: the scan stops at depth 5, long before the millionth byte.
    expect(performance.now() - started).toBeLessThan(1000);
    expect(decodeError(encode({ t: 3, r: 1, p: [[[[['x']]]]] })).code).toBe('frame_too_large');
  });

  it.each(['__proto__', 'constructor', 'prototype'])('rejects the prototype key %j', (key) => {
    // Built by hand: a fixmap of two entries {t: 8, <key>: 1}.
    const keyBytes = new TextEncoder().encode(key);
    const input = bytes(0x82, 0xa1, 0x74, 0x08, 0xa0 | keyBytes.length, ...keyBytes, 0x01);
    const err = decodeError(input);
    expect(err.code).toBe('bad_frame');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('rejects extension types, the unused 0xc1 byte, truncation and trailing bytes', () => {
    // As field c of {t: 5, c: …}: known fields and skipped ones alike.
    expect(decodeError(bytes(0x81, 0xa1, 0x63, 0xd4, 0x01, 0x00)).message).toContain('unsupported msgpack type');
    expect(decodeError(bytes(0x81, 0xa1, 0x78, 0xc1)).message).toContain('unsupported msgpack type');
    expect(decodeError(bytes(0x82, 0xa1, 0x74)).message).toContain('truncated');
    expect(decodeError(bytes()).message).toContain('truncated');
    const ping = encodeFrame({ t: FrameType.ping });
    expect(decodeError(new Uint8Array([...ping, 0x00])).message).toContain('trailing bytes');
  });

  it.each([
    ['a number', 42],
    ['a string', 'hello'],
    ['an array', [7]],
    ['binary', new Uint8Array(3)],
    ['a map without t', { r: 1 }],
    ['a string t', { t: 'publish' }],
  ])('rejects %s as a frame with bad_frame', (_what, value) => {
    expect(decodeError(encode(value)).code).toBe('bad_frame');
  });

  it('rejects an unknown type with unknown_type, keeping the request id', () => {
    const err = decodeError(encode({ t: 99, r: 12 }));
    expect(err.code).toBe('unknown_type');
    expect(err.requestId).toBe(12);
  });

  it.each(own.misshapen)('rejects %s with bad_frame', (_what, value) => {
    expect(decodeError(encode(value)).code).toBe('bad_frame');
  });

  it('keeps the request id on a shape error so the answer can name the request', () => {
    const frame = { ...own.withData(1), r: 77, c: 5 };
    expect(decodeError(encode(frame)).requestId).toBe(77);
  });

  it.each(own.foreign.map((f) => [f.t, f] as const))('refuses frame type %i, the other direction\'s, with unknown_type and its request id', (t, frame) => {
    const err = decodeError(encodeFrame(frame));
    expect(err.code).toBe('unknown_type');
    expect(err.message).toContain(`unknown frame type ${t}`);
    expect(err.requestId).toBe('r' in frame ? frame.r : undefined);
  });

});

describe('unknown fields', () => {
  it('decodeUntrustedFrame ignores them (skipped, not decoded) and treats nil optional fields as absent', () => {
    const frame = decodeUntrustedFrame(encode({ t: 5, c: 'a', d: new Uint8Array(1), xx: 1, k: null }));
    expect(frame).toEqual({ t: 5, c: 'a', d: new Uint8Array(1) });
  });

  it('decodeFrame decodes them like the rest and leaves them on the frame; nil optional fields are absent', () => {
    const frame = decodeFrame(encode({ t: 9, r: 1, xx: 1, id: null }));
    expect(frame).toEqual({ t: 9, r: 1, xx: 1 });
  });
});

describe.each([
  ['decodeFrames', decodeFrames as typeof decodeUntrustedFrames, decodeFrame as typeof decodeUntrustedFrame, brokerToClient],
  ['decodeUntrustedFrames', decodeUntrustedFrames, decodeUntrustedFrame, clientToBroker],
] as const)('%s: one or more frames per message', (_name, decodeFrames, decodeFrame, own) => {
  const a = encodeFrame({ t: FrameType.ping });
  const b = encodeFrame(own.small);
  const c = encodeFrame(own.withData(2));

  it('visits every frame in order', () => {
    const seen: unknown[] = [];
    decodeFrames(concat(a, b, c, a), DEFAULT_DECODE_LIMITS, (f) => seen.push(f));
    expect(seen).toEqual([decodeFrame(a), decodeFrame(b), decodeFrame(c), decodeFrame(a)]);
  });

  it('visits the frames before a malformed one, then throws a coded error', () => {
    const seen: unknown[] = [];
    const bad = concat(a, b, new Uint8Array([0xc1]), c);
    expect(() => decodeFrames(bad, DEFAULT_DECODE_LIMITS, (f) => seen.push(f))).toThrowError(expect.objectContaining({ code: 'bad_frame' }));
    expect(seen).toHaveLength(2);
  });

  it('holds each frame, not the message, to maxFrameBytes', () => {
    const limits = { ...DEFAULT_DECODE_LIMITS, maxFrameBytes: c.length };
    let n = 0;
    decodeFrames(concat(c, c, c), limits, () => n++);
    expect(n).toBe(3);
    const big = encodeFrame(own.withData(50));
    expect(() => decodeFrames(concat(c, big), limits, () => {})).toThrowError(expect.objectContaining({ code: 'frame_too_large' }));
  });

  it('rejects a message that ends inside a frame', () => {
    expect(() => decodeFrames(concat(a, b.subarray(0, b.length - 1)), DEFAULT_DECODE_LIMITS, () => {})).toThrowError(/truncated/);
  });
});

describe('decodeFrames reads the numbers encodeFrame writes', () => {
  it('uints, negative fixints, int32, float64, uint64; not the widths only other encoders use (float32, int8, int16, int64)', () => {
    const frame = { t: FrameType.ack, r: 1, a: [0, 127, 255, 65535, 2 ** 32 - 1, 2 ** 40, -1, -32, -33, -40_000, -(2 ** 31), 1.5, -2.25] };
    const seen: unknown[] = [];
    decodeFrames(encodeFrame(frame as never), DEFAULT_DECODE_LIMITS, (f) => seen.push(f));
    expect(seen).toEqual([frame]);
    for (const head of [0xca, 0xd0, 0xd1, 0xd3]) {
      const bytes = new Uint8Array([0x82, 0xa1, 0x74, FrameType.ack, 0xa1, 0x72, head, 0, 0, 0, 0, 0, 0, 0, 0]);
      expect(() => decodeFrames(bytes, DEFAULT_DECODE_LIMITS, () => {})).toThrowError(expect.objectContaining({ code: 'bad_frame', message: expect.stringContaining('unsupported msgpack type') }));
      expect(() => decodeFrame(bytes)).not.toThrowError(/unsupported/); // decodeFrame's reader reads them
    }
  });
});

describe('decodeFrames with an event maker', () => {
  const make = (...fields: unknown[]) => ({ made: fields });
  const ev: EventFrame = { t: FrameType.event, c: 'a.b', d: new Uint8Array([1]), id: 'x', o: 3, e: 'E', ts: 9, s: 4, l: ['p'], k: 'key', rp: 'tok' };

  it('makes each event from its fields, and visits other frames as frames', () => {
    const seen: unknown[] = [];
    const bare = { t: FrameType.event, c: 'a', d: new Uint8Array(0), id: 'y', o: 1, e: 'E', ts: 1, l: null };
    decodeFrames(concat(encodeFrame(ev), encodeFrame({ t: FrameType.ack, r: 2 }), encodeFrame(bare as never)), DEFAULT_DECODE_LIMITS, (f) => seen.push(f), make);
    expect(seen).toEqual([
      { made: ['a.b', new Uint8Array([1]), 'x', 3, 'E', 9, 4, ['p'], 'key', 'tok', undefined] },
      { t: FrameType.ack, r: 2 },
      { made: ['a', new Uint8Array(0), 'y', 1, 'E', 1, undefined, undefined, undefined, undefined, undefined] },
    ]);
  });

  it('passes a high-priority event\'s pr to the maker', () => {
    const seen: unknown[] = [];
    decodeFrames(encodeFrame({ ...ev, pr: 1 }), DEFAULT_DECODE_LIMITS, (f) => seen.push(f), make);
    expect(seen).toEqual([{ made: ['a.b', new Uint8Array([1]), 'x', 3, 'E', 9, 4, ['p'], 'key', 'tok', 1] }]);
  });

  it('gives a channel or epoch that repeats the same string, and a new one its own', () => {
    const seen: { made: unknown[] }[] = [];
    const frames = [['a.b', 'E'], ['a.b', 'E'], ['a.c', 'E'], ['a.c', 'F'], ['a.b', 'É']].map(([c, e], i) =>
      encodeFrame({ t: FrameType.event, c: c!, d: new Uint8Array([i]), id: `i${i}`, o: i, e: e!, ts: 1 }));
    decodeFrames(concat(...frames), DEFAULT_DECODE_LIMITS, (f) => seen.push(f as { made: unknown[] }), make);
    expect(seen.map((f) => [f.made[0], f.made[4], f.made[2]])).toEqual([
      ['a.b', 'E', 'i0'], ['a.b', 'E', 'i1'], ['a.c', 'E', 'i2'], ['a.c', 'F', 'i3'], ['a.b', 'É', 'i4'],
    ]);
  });

  it('passes fields it does not know, whatever their keys, and takes a known key only when all of it matches', () => {
    const seen: unknown[] = [];
    // Short ASCII keys (1 to 3 bytes) are matched by their bytes, any other key is read as usual.
    // (15 fields at most: a fixmap, as the broker writes events.)
    const odd = { t: FrameType.event, zz: 1, c: 'a.b', '\u0000c': 'not the channel', cc: 'nor this', d: new Uint8Array([1]), id: 'x', ids: 'no',
      o: 3, 'é': ['v'], e: 'E', unknown_field: { a: [1, 2] }, ts: 9, s: 4, pr: 1 };
    decodeFrames(concat(encodeFrame(odd as never), encodeFrame(ev)), DEFAULT_DECODE_LIMITS, (f) => seen.push(f), make);
    expect(seen).toEqual([
      { made: ['a.b', new Uint8Array([1]), 'x', 3, 'E', 9, 4, undefined, undefined, undefined, 1] },
      { made: ['a.b', new Uint8Array([1]), 'x', 3, 'E', 9, 4, ['p'], 'key', 'tok', undefined] },
    ]);
  });

  it('refuses a malformed event with bad_frame, after the frames before it; without a maker it is visited as decoded', () => {
    for (const bad of [
      { t: FrameType.event, c: 'a', d: new Uint8Array(1), o: 1, e: 'E', ts: 1 },
      { t: FrameType.event, c: 'a', d: 'text', id: 'x', o: 1, e: 'E', ts: 1 },
      { t: FrameType.event, c: 'a', d: new Uint8Array(1), id: 'x', o: 1, e: 'E', ts: 1, rp: 7 },
      { t: FrameType.event, c: 'a', d: new Uint8Array(1), id: 'x', o: 1, e: 'E', ts: 1, pr: 'high' },
    ]) {
      const bytes = concat(encodeFrame({ t: FrameType.ack, r: 1 }), encodeFrame(bad as never));
      const seen: unknown[] = [];
      expect(() => decodeFrames(bytes, DEFAULT_DECODE_LIMITS, (f) => seen.push(f), make)).toThrowError(
        expect.objectContaining({ code: 'bad_frame', message: expect.stringContaining('malformed event') }),
      );
      expect(seen).toEqual([{ t: FrameType.ack, r: 1 }]);
      const plain: unknown[] = [];
      decodeFrames(bytes, DEFAULT_DECODE_LIMITS, (f) => plain.push(f));
      expect(plain).toEqual([{ t: FrameType.ack, r: 1 }, bad]);
    }
  });

  it('refuses a value that is not a map with a numeric t with bad_frame', () => {
    for (const bad of [7, 'ack', null, [FrameType.ack], { r: 1 }, { t: 'ack' }]) {
      expect(() => decodeFrames(encode(bad), DEFAULT_DECODE_LIMITS, () => {}, make)).toThrowError(expect.objectContaining({ code: 'bad_frame' }));
    }
  });

  it('an event whose first field is not t is read the generic way, and is still an event frame', () => {
    const { t, ...rest } = ev;
    const seen: unknown[] = [];
    decodeFrames(encodeFrame({ ...rest, t } as never), DEFAULT_DECODE_LIMITS, (f) => seen.push(f), make);
    expect(seen).toEqual([{ ...rest, t }]);
  });
});
