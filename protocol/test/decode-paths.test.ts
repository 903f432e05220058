// The SDKs decode their broker's frames with the lean decodeFrame(s); the broker decodes its
// clients' frames with decodeUntrustedFrame(s) (value budget, field tables). On every valid
// frame, of every type, both must give the same frame.
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

const anyFrame: fc.Arbitrary<Frame> = fc.oneof(
  frame(FrameType.hello, { v: uint }, { u: str, tk: str, s: str }),
  frame(FrameType.welcome, { v: uint, u: str, ka: uint, lim: limits, s: str }, { x: uint }),
  frame(FrameType.auth, { r: uint, tk: str }),
  frame(FrameType.subscribe, { r: uint, p: str }, { f: filter }),
  frame(FrameType.unsubscribe, { r: uint, p: str }, { f: filter }),
  frame(FrameType.publish, { c: str, d: data }, { r: uint, l: strs, k: str }),
  frame(FrameType.quit, {}),
  frame(FrameType.ping, {}),
  frame(FrameType.pong, {}),
  frame(FrameType.ack, { r: uint }, { id: str, o: uint, e: str, x: uint }),
  frame(FrameType.error, { code: str, msg: str }, { r: uint }),
  frame(FrameType.event, { c: str, d: data, id: str, o: uint, e: str, ts: uint }, { l: strs, k: str }),
  frame(FrameType.dropped, { n: uint, c: fc.array(fc.tuple(str, uint), { maxLength: 100 }) }),
);

describe('the lean and the untrusted decoder agree on every valid frame', () => {
  it('decodeFrame and decodeUntrustedFrame give the frame that was encoded', () => {
    fc.assert(
      fc.property(anyFrame, (f) => {
        const bytes = encodeFrame(f);
        const lean = decodeFrame(bytes);
        expect(lean).toEqual(f);
        expect(decodeUntrustedFrame(bytes)).toEqual(lean);
      }),
      { numRuns: 3000 },
    );
  });

  it('decodeFrames and decodeUntrustedFrames visit the same frames of a message', () => {
    fc.assert(
      fc.property(fc.array(anyFrame, { minLength: 1, maxLength: 8 }), (frames) => {
        const parts = frames.map((f) => encodeFrame(f));
        const message = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let at = 0;
        for (const p of parts) {
          message.set(p, at);
          at += p.length;
        }
        const lean: Frame[] = [];
        const untrusted: Frame[] = [];
        decodeFrames(message, DEFAULT_DECODE_LIMITS, (f) => lean.push(f));
        decodeUntrustedFrames(message, DEFAULT_DECODE_LIMITS, (f) => untrusted.push(f));
        expect(lean).toEqual(frames);
        expect(untrusted).toEqual(lean);
      }),
      { numRuns: 500 },
    );
  });
});
