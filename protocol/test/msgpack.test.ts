import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decode as oracleDecode, encode as oracleEncode } from '@msgpack/msgpack';
import { DEFAULT_DECODE_LIMITS } from '../src/index.js';
import { decodeBudgetedMsgpack } from '../src/budgeted-reader.js';
import { MsgpackError, decodeMsgpack, encodeClientMsgpack, encodeMsgpack } from '../src/msgpack.js';

// @msgpack/msgpack is the oracle: crier's own codec must agree with it on everything it accepts.
const limits = { ...DEFAULT_DECODE_LIMITS, maxDepth: 8, maxMapLength: 64, maxArrayLength: 64, maxValues: 100_000 };
const safeKey = fc.string({ maxLength: 12 }).filter((k) => !['__proto__', 'constructor', 'prototype'].includes(k));
const leaf = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer({ min: -(2 ** 31), max: 2 ** 32 }),
  fc.maxSafeNat(),
  fc.double({ noNaN: true }),
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.uint8Array({ maxLength: 300 }),
);
const value = fc.letrec((tie) => ({
  v: fc.oneof({ depthSize: 'small', maxDepth: 4 }, leaf, fc.array(tie('v'), { maxLength: 6 }), fc.dictionary(safeKey, tie('v'), { maxKeys: 6 })),
})).v;

// Both readers: the lean one (MsgpackReader, the SDKs') and the budgeted one (the broker's).
describe.each([
  ['decodeMsgpack', decodeMsgpack],
  ['decodeBudgetedMsgpack', decodeBudgetedMsgpack],
] as const)('crier msgpack codec against @msgpack/msgpack (%s)', (_name, decodeMsgpack) => {
  it('what crier encodes, the oracle decodes to the same value', () => {
    fc.assert(fc.property(value, (v) => {
      expect(oracleDecode(encodeMsgpack(v))).toEqual(v);
    }), { numRuns: 3000 });
  });

  it('what the oracle encodes, crier decodes to the same value', () => {
    fc.assert(fc.property(value, (v) => {
      expect(decodeMsgpack(oracleEncode(v), limits)).toEqual(oracleDecode(oracleEncode(v)));
    }), { numRuns: 3000 });
  });

  it('encodes every integer width the oracle would read back exactly', () => {
    for (const n of [0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -1, -32, -33, -(2 ** 31), -(2 ** 31) - 1, 0.5, -1.25]) {
      expect(oracleDecode(encodeMsgpack(n))).toBe(n);
      expect(decodeMsgpack(oracleEncode(n), limits)).toBe(n);
    }
  });

  it('refuses invalid UTF-8 that the oracle would let through', () => {
    const bad = new Uint8Array([0xa2, 0xc3, 0x28]); // fixstr of 2 bytes, an invalid sequence
    expect(() => decodeMsgpack(bad, limits)).toThrowError(MsgpackError);
  });

  it('refuses 64-bit integers beyond 2^53 instead of rounding them', () => {
    const big = new Uint8Array([0xcf, 0x00, 0x20, 0, 0, 0, 0, 0, 1]); // 2^53 + 1
    expect(() => decodeMsgpack(big, limits)).toThrowError(/2\^53/);
  });

  it('refuses non-string map keys', () => {
    expect(() => decodeMsgpack(new Uint8Array([0x81, 0x01, 0x02]), limits)).toThrowError(/keys must be strings/);
  });

  it('returns binary as a view of the input, without copying', () => {
    const input = encodeMsgpack({ d: new Uint8Array([1, 2, 3]) });
    const out = decodeMsgpack(input, limits) as { d: Uint8Array };
    expect(out.d.buffer).toBe(input.buffer);
  });

  it('reuses its buffer across calls but hands out independent copies', () => {
    const a = encodeMsgpack('a'.repeat(5000));
    const b = encodeMsgpack('b');
    expect(oracleDecode(a)).toBe('a'.repeat(5000));
    expect(oracleDecode(b)).toBe('b');
  });
});

// The SDKs' encoder: the same bytes as encodeMsgpack where every number is an integer from 0 to
// 2^32 - 1 (all a client frame holds in practice), any other number as a float64 of the same value.
describe('encodeClientMsgpack (what the SDKs send)', () => {
  it('what it encodes, the oracle decodes to the same value', () => {
    // -0 aside: it goes as 0 (see the last case).
    const anyLeaf = fc.oneof(leaf, fc.double({ noNaN: true }).filter((d) => !Object.is(d, -0)));
    const noNegativeZero = fc.letrec((tie) => ({
      v: fc.oneof({ depthSize: 'small', maxDepth: 4 }, anyLeaf.filter((x) => !Object.is(x, -0)), fc.array(tie('v'), { maxLength: 6 }), fc.dictionary(safeKey, tie('v'), { maxKeys: 6 })),
    })).v;
    fc.assert(fc.property(noNegativeZero, (v) => {
      expect(oracleDecode(encodeClientMsgpack(v))).toEqual(v);
      expect(decodeBudgetedMsgpack(encodeClientMsgpack(v), limits)).toEqual(v);
    }), { numRuns: 3000 });
  });

  it('writes the bytes encodeMsgpack writes when every number is a 32-bit uint', () => {
    const uint32 = fc.oneof(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.constantFrom(0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1));
    const clientLeaf = fc.oneof(fc.constant(null), fc.boolean(), uint32, fc.string({ maxLength: 80 }), fc.uint8Array({ maxLength: 300 }));
    const clientValue = fc.letrec((tie) => ({
      v: fc.oneof({ depthSize: 'small', maxDepth: 3 }, clientLeaf, fc.array(tie('v'), { maxLength: 6 }), fc.dictionary(safeKey, tie('v'), { maxKeys: 6 })),
    })).v;
    fc.assert(fc.property(clientValue, (v) => {
      expect(encodeClientMsgpack(v)).toEqual(encodeMsgpack(v));
    }), { numRuns: 2000 });
  });

  it('writes any other number as a float64 of the same value', () => {
    for (const n of [-1, -0.5, 0.5, 2 ** 32, 2 ** 53 - 1, -(2 ** 31), 1e300]) {
      const bytes = encodeClientMsgpack(n);
      expect([bytes[0], bytes.length]).toEqual([0xcb, 9]);
      expect(oracleDecode(bytes)).toBe(n);
    }
    expect(encodeClientMsgpack({ a: undefined, b: 1 })).toEqual(encodeMsgpack({ b: 1 }));
    expect(encodeClientMsgpack(-0)).toEqual(new Uint8Array([0])); // a client sends none: it goes as 0
  });
});
