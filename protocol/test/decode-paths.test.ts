// The SDKs decode their broker's frames with the lean decodeFrame(s); the broker decodes its
// clients' frames with decodeUntrustedFrame(s) (value budget, field tables). Each decodes every
// valid frame of its own direction as it was encoded, refuses every frame only the other
// direction carries with unknown_type, and on ping and pong (both directions) both agree.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DEFAULT_DECODE_LIMITS,
  FrameType,
  decodeFrame,
  decodeFrames,
  decodeUntrustedFrame,
  decodeUntrustedFrames,
  encodeFrame,
  type Frame,
} from '../src/index.js';
import { concat } from './concat.js';

const uint = fc.maxSafeNat();
const str = fc.string({ maxLength: 40 });
const strs = fc.array(str, { maxLength: 20 });
const data = fc.uint8Array({ maxLength: 300 });

/** Builds a frame from required fields and optional ones (left out when absent). */
function frame<R extends Record<string, fc.Arbitrary<unknown>>, O extends Record<string, fc.Arbitrary<unknown>>>(
  t: number,
  required: R,
  optional: O = {} as O,
): fc.Arbitrary<Frame> {
  return fc.record({ t: fc.constant(t), ...required, ...optional }, { requiredKeys: ['t', ...Object.keys(required)] as never }) as fc.Arbitrary<unknown> as fc.Arbitrary<Frame>;
}

const filter = fc.record({ l: fc.array(str, { maxLength: 16 }), la: fc.boolean(), k: fc.array(str, { maxLength: 256 }) }, { requiredKeys: [] });
const limits = fc.record({ mc: uint, mp: uint, bs: uint });

const position = fc.record({ e: str, s: uint });
const outcome = fc.record({ n: uint, why: str, f: strs }, { requiredKeys: ['n'] });

const bothWays = [frame(FrameType.ping, {}), frame(FrameType.pong, {})];

const clientFrame: fc.Arbitrary<Frame> = fc.oneof(
  frame(FrameType.hello, { v: uint }, { u: str, tk: str, s: str, rp: position }),
  frame(FrameType.auth, { r: uint, tk: str }),
  frame(FrameType.subscribe, { r: uint, p: str }, { f: filter, w: uint }),
  frame(FrameType.unsubscribe, { r: uint, p: str }, { f: filter }),
  frame(FrameType.publish, { c: str, d: data }, { r: uint, l: strs, k: str, i: str }),
  frame(FrameType.history, { r: uint, c: str }, { e: str, o: uint, n: uint }),
  frame(FrameType.quit, {}),
  ...bothWays,
);

const brokerFrame: fc.Arbitrary<Frame> = fc.oneof(
  frame(FrameType.welcome, { v: uint, u: str, ka: uint, lim: limits, s: str }, { x: uint, ep: str, rs: outcome }),
  frame(FrameType.ack, { r: uint }, { id: str, o: uint, e: str, x: uint }),
  frame(FrameType.error, { code: str, msg: str }, { r: uint }),
  frame(FrameType.event, { c: str, d: data, id: str, o: uint, e: str, ts: uint }, { s: uint, l: strs, k: str }),
  frame(FrameType.dropped, { n: uint, c: fc.array(fc.tuple(str, uint), { maxLength: 100 }) }),
  frame(FrameType.events, { r: uint, ev: fc.array(data, { maxLength: 8 }) }, { e: str, o: uint, ok: fc.boolean(), m: fc.boolean() }),
  ...bothWays,
);

const isBothWays = (f: Frame): boolean => f.t === FrameType.ping || f.t === FrameType.pong;

/** The error code `decode` throws for `bytes`, or `undefined` when it decodes them. */
function refusal(decode: (bytes: Uint8Array) => unknown, bytes: Uint8Array): string | undefined {
  try {
    decode(bytes);
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

describe('each decoder reads its own direction, and only that', () => {
  it('decodeFrame gives every broker→client frame as encoded; decodeUntrustedFrame refuses those that are not also client frames with unknown_type', () => {
    fc.assert(
      fc.property(brokerFrame, (f) => {
        const bytes = encodeFrame(f);
        expect(decodeFrame(bytes)).toEqual(f);
        if (isBothWays(f)) expect(decodeUntrustedFrame(bytes)).toEqual(f);
        else expect(refusal(decodeUntrustedFrame, bytes)).toBe('unknown_type');
      }),
      { numRuns: 1500 },
    );
  });

  it('decodeUntrustedFrame gives every client→broker frame as encoded; decodeFrame refuses those that are not also broker frames with unknown_type', () => {
    fc.assert(
      fc.property(clientFrame, (f) => {
        const bytes = encodeFrame(f);
        expect(decodeUntrustedFrame(bytes)).toEqual(f);
        if (isBothWays(f)) expect(decodeFrame(bytes)).toEqual(f);
        else expect(refusal(decodeFrame, bytes)).toBe('unknown_type');
      }),
      { numRuns: 1500 },
    );
  });

  it('decodeFrames and decodeUntrustedFrames visit every frame of a message of their direction', () => {
    const message = (frames: Frame[]): Uint8Array => concat(...frames.map((f) => encodeFrame(f)));
    fc.assert(
      fc.property(fc.array(brokerFrame, { minLength: 1, maxLength: 8 }), fc.array(clientFrame, { minLength: 1, maxLength: 8 }), (fromBroker, fromClient) => {
        const lean: Frame[] = [];
        const untrusted: Frame[] = [];
        decodeFrames(message(fromBroker), DEFAULT_DECODE_LIMITS, (f) => lean.push(f));
        decodeUntrustedFrames(message(fromClient), DEFAULT_DECODE_LIMITS, (f) => untrusted.push(f));
        expect(lean).toEqual(fromBroker);
        expect(untrusted).toEqual(fromClient);
      }),
      { numRuns: 500 },
    );
  });
});
