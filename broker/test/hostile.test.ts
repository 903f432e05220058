import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  CloseCode,
  FrameType,
  decodeUntrustedFrame,
  encodeFrame,
  isErrorCode,
  type ErrorFrame,
  type Frame,
} from '@crier/protocol';
import type { Broker } from '../src/index.js';
import { closeReason } from '../src/transport/connection.js';
import { RawClient, cleanup, startBroker, text, waitFor } from './helpers.js';

// Hostile input: every case gets its clear error (or close code), and a well-behaved subscriber
// on the same broker keeps receiving throughout. One broker for the file, as in production.

let broker: Broker;
let watcher: RawClient;
let ticks = 0;

beforeAll(async () => {
  broker = await startBroker({ maxPayload: 4096 });
  watcher = await RawClient.connect(broker.url);
  await watcher.subscribe('watch.tick');
});
afterAll(cleanup);

/** The well-behaved subscriber still gets events (and the broker is alive). */
async function watcherStillReceives(): Promise<void> {
  ticks++;
  broker.publish('watch.tick', text(String(ticks)));
  await watcher.waitEvents(ticks, 'watch.tick');
  expect(watcher.closed).toBeUndefined();
}

const isError = (f: Frame): f is ErrorFrame => f.t === FrameType.error;

/** Sends `payload` and resolves with the error frame that answers it. */
async function errorFor(c: RawClient, payload: Uint8Array | string): Promise<ErrorFrame> {
  const before = c.frames.filter(isError).length;
  c.send(payload);
  return waitFor('an error answer', () => c.frames.filter(isError)[before], { wakeOn: [c.changed] });
}

/** Sends `payload` on a fresh socket before any hello; resolves with how it was closed. */
async function closeBeforeHello(payload: Uint8Array | string): Promise<{ code: number; reason: string; frames: Frame[] }> {
  const c = await RawClient.open(broker.url);
  c.send(payload);
  const closed = await c.waitClose();
  return { ...closed, frames: c.frames };
}

// Raw msgpack pieces for what no encoder would produce.
const u8 = (...parts: (number[] | Uint8Array)[]): Uint8Array => new Uint8Array(parts.flatMap((p) => [...p]));
const str = (s: string): number[] => {
  const b = [...new TextEncoder().encode(s)];
  return [0xa0 | b.length, ...b];
};
/** Any value as msgpack (the protocol's encoder does not check shapes). */
const plain = { encode: (value: unknown): Uint8Array => encodeFrame(value as Frame) };

describe('after hello: an error answer, and the connection goes on', () => {
  let c: RawClient;
  beforeAll(async () => {
    c = await RawClient.connect(broker.url);
  });

  it('random bytes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 200 }), async (bytes) => {
        let valid = true;
        try {
          decodeUntrustedFrame(bytes, { maxFrameBytes: 1e9, maxStrLength: 1e9, maxBinLength: 1e9, maxArrayLength: 1e9, maxMapLength: 1e9, maxDepth: 1e9 });
        } catch {
          valid = false;
        }
        fc.pre(!valid); // a random valid frame (say, quit) is not hostile
        const e = await errorFor(c, bytes);
        expect(isErrorCode(e.code)).toBe(true);
        expect(['bad_frame', 'frame_too_large', 'unknown_type']).toContain(e.code);
      }),
      { numRuns: 150, seed: 42 },
    );
    expect(c.closed).toBeUndefined();
    await watcherStillReceives();
  });

  it('valid msgpack of the wrong shape', async () => {
    const cases: [unknown, number | undefined][] = [
      [[1, 2, 3], undefined],
      [42, undefined],
      ['hello', undefined],
      [{}, undefined],
      [{ t: 'publish' }, undefined],
      [{ t: FrameType.subscribe, r: 7 }, 7],
      [{ t: FrameType.publish, r: 8, c: 'a.b', d: 'not bytes' }, 8],
      [{ t: FrameType.publish, r: 9, c: 12, d: new Uint8Array(1) }, 9],
      [{ t: FrameType.publish, r: 10, c: 'a.b', d: new Uint8Array(1), l: 'x' }, 10],
      [{ t: FrameType.publish, r: 11, c: 'a.b', d: new Uint8Array(1), l: [1] }, 11],
      [{ t: FrameType.subscribe, r: -1, p: 'a' }, undefined],
    ];
    for (const [value, r] of cases) {
      const e = await errorFor(c, plain.encode(value));
      expect([e.code, e.r], JSON.stringify(value)).toEqual(['bad_frame', r]);
    }
    await watcherStillReceives();
  });

  it('unknown frame types and frames only a broker sends', async () => {
    expect(await errorFor(c, plain.encode({ t: 99, r: 5 }))).toMatchObject({ code: 'unknown_type', r: 5 });
    const event = encodeFrame({ t: FrameType.event, c: 'a.b', d: text(''), id: 'x', o: 1, e: 'e', ts: 1 });
    expect(await errorFor(c, event)).toMatchObject({ code: 'unknown_type', msg: expect.stringContaining('broker') });
    expect(await errorFor(c, encodeFrame({ t: FrameType.ack, r: 6 }))).toMatchObject({ code: 'unknown_type' });
    expect(await errorFor(c, encodeFrame({ t: FrameType.hello, v: 1 }))).toMatchObject({ code: 'hello_required' });
    await watcherStillReceives();
  });

  it('huge declared lengths and deep nesting', async () => {
    const tPublish = [...str('t'), FrameType.publish];
    const huge = [
      u8([0x82], tPublish, str('d'), [0xc6, 0xff, 0xff, 0xff, 0xff]), // bin32 of 4 GiB
      u8([0x82], tPublish, str('c'), [0xdb, 0x7f, 0xff, 0xff, 0xff]), // str32 of 2 GiB
      u8([0x82], tPublish, str('l'), [0xdd, 0xff, 0xff, 0xff, 0xff]), // array32 of 4 G items
      u8([0xdf, 0xff, 0xff, 0xff, 0xff]), // map32 of 4 G entries
      u8(new Array<number>(1000).fill(0x91), [0x00]), // 1000 nested arrays
      u8([0x81], str('t'), new Array<number>(500).fill(0x81).flatMap(() => [0x81, 0xa1, 0x78]), [0x00]),
    ];
    for (const bytes of huge) {
      const e = await errorFor(c, bytes);
      expect(['frame_too_large', 'bad_frame']).toContain(e.code);
    }
    // Data past maxPayload inside an acceptable frame: payload_too_large, with its request id.
    expect(await errorFor(c, encodeFrame({ t: FrameType.publish, r: 77, c: 'a.b', d: new Uint8Array(4097) })))
      .toMatchObject({ code: 'payload_too_large', r: 77 });
    await watcherStillReceives();
  });

  it('__proto__, constructor and prototype keys', async () => {
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      const bytes = u8([0x83], str('t'), [FrameType.subscribe], str('r'), [1], str(key), [0x80]);
      const e = await errorFor(c, bytes);
      expect(e.code).toBe('bad_frame');
    }
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    await watcherStillReceives();
  });

  it('a text message', async () => {
    expect(await errorFor(c, 'hello as text')).toMatchObject({ code: 'bad_frame', msg: expect.stringContaining('binary') });
    await watcherStillReceives();
  });

  it('a pattern as publish target, invalid channel names and patterns', async () => {
    const badChannels = ['user.*', 'user.>', '>', '', 'a..b', 'a.', '.a', 'a b', 'ü.x', 'x'.repeat(256), Array(17).fill('a').join('.')];
    for (const ch of badChannels) {
      const e = await errorFor(c, encodeFrame({ t: FrameType.publish, r: 3, c: ch, d: text('') }));
      expect([e.code, e.r], ch).toEqual(['bad_channel', 3]);
    }
    // Invalid UTF-8 in a channel name: the codec refuses it before the grammar sees it.
    const invalidUtf8 = u8([0x83], str('t'), [FrameType.publish], str('c'), [0xa3, 0x61, 0xff, 0x62], str('d'), [0xc4, 0x00]);
    const utf8Error = await errorFor(c, invalidUtf8);
    expect(utf8Error.code).toBe('bad_frame');
    expect(utf8Error.msg).toContain('invalid UTF-8');
    for (const p of ['a.>.b', 'a*', '>x', 'a.**', '', 'a..b']) {
      const e = await errorFor(c, encodeFrame({ t: FrameType.subscribe, r: 4, p }));
      expect([e.code, e.r], p).toEqual(['bad_pattern', 4]);
    }
    expect(c.closed).toBeUndefined();
    expect(broker.stats().subscriptions).toBe(1); // only the watcher's
    await watcherStillReceives();
  });
});

describe('subscriptions a client cannot abuse', () => {
  it('an unsubscribe naming a filtered subscription by a crafted pattern is refused, and leaves nothing behind', async () => {
    const c = await RawClient.connect(broker.url);
    const before = broker.stats().subscriptions;
    for (let i = 0; i < 20; i++) {
      expect(await c.request({ t: FrameType.subscribe, r: 10 + i, p: 'leak.x', f: { l: ['x'] } })).toMatchObject({ t: FrameType.ack });
      // The filtered subscription's internal key: a pattern with a space can never be valid.
      const e = await errorFor(c, encodeFrame({ t: FrameType.unsubscribe, r: 9000 + i, p: 'leak.x [["x"],0,0]' } as Frame));
      expect(e.code).toBe('bad_pattern');
      expect(await c.request({ t: FrameType.unsubscribe, r: 200 + i, p: 'leak.x', f: { l: ['x'] } })).toMatchObject({ t: FrameType.ack });
    }
    expect(broker.stats().subscriptions).toBe(before);
    c.ws.close();
    await waitFor('the connection to be gone', () => broker.stats().subscriptions === before);
  });

  it('bounds the characters all filters of one connection may hold', async () => {
    const c = await RawClient.connect(broker.url);
    const keys = Array.from({ length: 256 }, (_, i) => `${String(i).padStart(3, '0')}${'k'.repeat(253)}`); // 64 KiB
    expect(await c.request({ t: FrameType.subscribe, r: 1, p: 'big.a', f: { k: keys } })).toMatchObject({ t: FrameType.ack });
    const e = await errorFor(c, encodeFrame({ t: FrameType.subscribe, r: 9002, p: 'big.b', f: { k: ['one-more'] } }));
    expect([e.code, e.r]).toEqual(['bad_filter', 9002]);
    expect(await c.request({ t: FrameType.unsubscribe, r: 3, p: 'big.a', f: { k: keys } })).toMatchObject({ t: FrameType.ack });
    expect(await c.request({ t: FrameType.subscribe, r: 4, p: 'big.b', f: { k: ['one-more'] } })).toMatchObject({ t: FrameType.ack }); // room again
    c.ws.close();
  });
});

describe('before hello: the socket is closed with a code that says why', () => {
  it('undecodable bytes close with 4000', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 64 }), async (bytes) => {
        let valid = true;
        try {
          decodeUntrustedFrame(bytes);
        } catch {
          valid = false;
        }
        fc.pre(!valid);
        const closed = await closeBeforeHello(bytes);
        expect(closed.code).toBe(CloseCode.badFrame);
        expect(closed.reason).toMatch(/^(bad_frame|frame_too_large|unknown_type): /);
        expect(Buffer.byteLength(closed.reason)).toBeLessThanOrEqual(123);
      }),
      { numRuns: 25, seed: 7 },
    );
    await watcherStillReceives();
  });

  it('a text message closes with 4000', async () => {
    expect(await closeBeforeHello('{"t":1,"v":1}')).toMatchObject({ code: CloseCode.badFrame, reason: expect.stringContaining('binary') });
  });

  it('a request before hello is answered hello_required and closed with 4002', async () => {
    const closed = await closeBeforeHello(encodeFrame({ t: FrameType.subscribe, r: 1, p: 'a.b' }));
    expect(closed.code).toBe(CloseCode.helloRejected);
    expect(closed.frames).toEqual([{ t: FrameType.error, r: 1, code: 'hello_required', msg: expect.any(String) }]);
  });

  it('an unsupported version or a bad uuid closes with 4002 and says which', async () => {
    expect(await closeBeforeHello(encodeFrame({ t: FrameType.hello, v: 2 }))).toMatchObject({
      code: CloseCode.helloRejected, reason: expect.stringMatching(/^unsupported_version: /),
    });
    for (const u of ['', 'x'.repeat(65), 'has space', 'a/b', 'ü']) {
      expect(await closeBeforeHello(encodeFrame({ t: FrameType.hello, v: 1, u })), u).toMatchObject({
        code: CloseCode.helloRejected, reason: expect.stringMatching(/^bad_uuid: /),
      });
    }
    await watcherStillReceives();
  });

  it('a close reason is cut to 123 bytes on a character boundary', () => {
    for (const long of ['ü'.repeat(100), '😀'.repeat(40), `x${'é'.repeat(70)}`, 'a'.repeat(200)]) {
      const cut = closeReason(long);
      expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(123);
      expect(Buffer.byteLength(cut)).toBeGreaterThan(119);
      expect(long.startsWith(cut)).toBe(true);
      expect(cut).not.toMatch(/[\uD800-\uDBFF]$/); // no half of a surrogate pair
    }
    expect(closeReason('short')).toBe('short');
  });

  it('nothing was left behind by any of it', async () => {
    await watcherStillReceives();
    await waitFor('only the watcher and the after-hello client to remain', () => broker.stats().connections === 2);
    expect(broker.stats()).toMatchObject({ subscriptions: 1, slowConsumers: 0 });
  });
});
