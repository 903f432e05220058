// The msgpack reader for input from the internet: the broker decodes every client message with it
// (through decodeUntrustedFrames). Beyond the lean reader's limits, a frame costs at most
// `maxValues` steps whatever its bytes hold, and only the fields its type uses are built.
//
// A subclass in its own module so that nothing an SDK imports references it: esbuild drops the
// whole of it from the browser bundle (methods of MsgpackReader itself it could not drop).
// Its base, LimitedReader, holds the lengths and the depth to the limits.
import { DEFAULT_MAX_VALUES, type DecodeLimits } from './limits.js';
import { LimitedReader, MsgpackError, keyCache, readOne } from './msgpack.js';

/**
 * Which fields of a frame are decoded, and how deep containers may nest in each (0: a scalar, 1:
 * an array or map of scalars, ...). Any other field is skipped without being built.
 */
export interface FrameFields {
  /**
   * The fields of each frame type by `t`, used when `t` is a frame's first field (as encoders
   * write it). Plain objects and an array rather than maps: a property load on the same few key
   * strings is the cheapest lookup there is, and this runs for every field of every frame.
   */
  readonly byType: readonly (Readonly<Record<string, number>> | undefined)[];
  /** The fields of every frame type together, for a frame whose first field is not a known `t`. */
  readonly any: Readonly<Record<string, number>>;
}

/**
 * What a frame decodes to in place of a container nested deeper than its field allows (a list
 * where a string belongs, say): skipped unbuilt, it fails every field check, so the frame is
 * refused as `bad_frame` with its request id, as a wrongly typed scalar is.
 */
export const MISTYPED: unique symbol = Symbol('mistyped');

/** What a skipped binary reads as: one shared empty view, so skipping allocates nothing. */
const SKIPPED_BIN = new Uint8Array(0);

/**
 * A {@link LimitedReader} for untrusted bytes. Every value read or skipped (map keys included)
 * counts against `limits.maxValues`, per frame: a frame costs at most that many steps whatever
 * its bytes hold.
 *
 * `nest` says how deep containers may nest in the value being read: 0 for a scalar only (a
 * container there is skipped and stands as {@link MISTYPED}), a negative value to skip the
 * value without building it (strings not decoded, binaries not viewed, nothing allocated).
 */
export class BudgetedReader extends LimitedReader {
  /** Values read or skipped since the current frame began (map keys included). */
  values = 0;
  private readonly maxValues: number;
  constructor(bytes: Uint8Array, limits: DecodeLimits) {
    super(bytes, limits);
    this.maxValues = limits.maxValues ?? DEFAULT_MAX_VALUES;
  }

  override str(len: number, nest = 0): string {
    if (nest >= 0) return super.str(len);
    this.pass(len, this.decodeLimits.maxStrLength, 'string');
    return '';
  }

  override bin(len: number, nest = 0): Uint8Array {
    if (nest >= 0) return super.bin(len);
    this.pass(len, this.decodeLimits.maxBinLength, 'binary');
    return SKIPPED_BIN;
  }

  /** Passes over `len` bytes of a string or binary that is skipped, within its limit. */
  private pass(len: number, max: number, what: string): void {
    if (len > max) throw new MsgpackError(`${what} too long`, true);
    this.need(len);
    this.pos += len;
  }

  override array(len: number, nest = Infinity): unknown {
    this.items(len, len, false);
    const out = nest > 0 ? new Array<unknown>(len) : undefined;
    for (let i = 0; i < len; i++) {
      const v = this.read(out ? nest - 1 : -1);
      if (out) out[i] = v;
    }
    this.depth--;
    return out ?? (nest === 0 ? MISTYPED : undefined);
  }

  /**
   * A map. With `fields` (a frame), only the fields named there are built, each with its own
   * nesting, and when `t` comes first only that frame type's fields; others are skipped.
   */
  override readMap(len: number, nest = Infinity, fields?: FrameFields): unknown {
    this.items(len, len * 2, true);
    const build = nest > 0;
    const out: Record<string, unknown> = {};
    let known = fields?.any;
    for (let i = 0; i < len; i++) {
      if (!build) {
        this.read(-1);
        this.read(-1);
        continue;
      }
      const key = this.readKey();
      // Inherited properties ('toString') are not numbers: unknown like the rest.
      const n = known ? known[key] : nest - 1;
      if (typeof n !== 'number') {
        this.read(-1);
        continue;
      }
      const v = this.read(n);
      if (i === 0 && fields && key === 't' && typeof v === 'number') known = fields.byType[v] ?? fields.any;
      out[key] = v;
    }
    this.depth--;
    return build ? out : nest === 0 ? MISTYPED : undefined;
  }

  /**
   * Checks a container of `len` entries (`values` msgpack values) before anything is allocated
   * for it: the lean reader's checks, then the frame's value budget. Enters it.
   */
  private items(len: number, values: number, isMap: boolean): void {
    this.enter(len, values, isMap);
    if (this.values + values > this.maxValues) this.overBudget();
  }

  private overBudget(): never {
    throw new MsgpackError(`more than ${this.maxValues} values in one frame`, true);
  }

  /**
   * A map key, counted as one value (the lean reader's readKey(), written again rather than called
   * through super: it runs for every field of every frame the broker reads). One that is not a
   * string is refused at its first byte, never built.
   */
  override readKey(): string {
    const bytes = this.bytes;
    const p = this.pos;
    const b = bytes[p];
    if (b !== undefined && b >= 0xa1 && b <= 0xa3 && p + 1 + (b & 0x1f) <= bytes.length) {
      const len = b & 0x1f;
      let code = len;
      for (let i = 1; i <= len; i++) {
        const c = bytes[p + i]!;
        if (c >= 0x80) return this.read(0) as string;
        code = code * 256 + c;
      }
      const cached = keyCache.get(code);
      if (cached !== undefined) {
        if (++this.values > this.maxValues) this.overBudget();
        this.pos = p + 1 + len;
        return cached;
      }
      const key = this.read(0) as string;
      if (keyCache.size < 1024) keyCache.set(code, key);
      return key;
    }
    if (b === undefined || !((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb))) {
      this.need(1);
      throw new MsgpackError('map keys must be strings', false);
    }
    // Only here: the cached keys above are 1 to 3 bytes long, never one of these.
    const key = this.read(0) as string;
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') {
      throw new MsgpackError(`forbidden key "${key}"`, false);
    }
    return key;
  }

  /**
   * One value (see the class for `nest`; the default builds everything). `fields` makes a map
   * a frame (see {@link readMap}).
   */
  override read(nest = Infinity, fields?: FrameFields): unknown {
    this.need(1);
    if (++this.values > this.maxValues) this.overBudget();
    const b = this.bytes[this.pos++]!;
    if (b < 0x80) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b < 0x90) return this.readMap(b & 0x0f, nest, fields);
    if (b < 0xa0) return this.array(b & 0x0f, nest);
    if (b < 0xc0) return this.str(b & 0x1f, nest);
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.bin(this.uint(1), nest);
      case 0xc5: return this.bin(this.uint(2), nest);
      case 0xc6: return this.bin(this.uint(4), nest);
      case 0xca: this.need(4); this.pos += 4; return this.view.getFloat32(this.pos - 4);
      case 0xcb: this.need(8); this.pos += 8; return this.view.getFloat64(this.pos - 8);
      case 0xcc: return this.uint(1);
      case 0xcd: return this.uint(2);
      case 0xce: return this.uint(4);
      case 0xcf: return nest < 0 ? this.uint(4) + this.uint(4) : this.uint(8);
      case 0xd0: this.need(1); return this.view.getInt8(this.pos++);
      case 0xd1: this.need(2); this.pos += 2; return this.view.getInt16(this.pos - 2);
      case 0xd2: this.need(4); this.pos += 4; return this.view.getInt32(this.pos - 4);
      case 0xd3: {
        this.need(8);
        const n = this.view.getInt32(this.pos) * 0x100000000 + this.view.getUint32(this.pos + 4);
        this.pos += 8;
        if (!Number.isSafeInteger(n) && nest >= 0) throw new MsgpackError('integer beyond 2^53', false);
        return n;
      }
      case 0xd9: return this.str(this.uint(1), nest);
      case 0xda: return this.str(this.uint(2), nest);
      case 0xdb: return this.str(this.uint(4), nest);
      case 0xdc: return this.array(this.uint(2), nest);
      case 0xdd: return this.array(this.uint(4), nest);
      case 0xde: return this.readMap(this.uint(2), nest, fields);
      case 0xdf: return this.readMap(this.uint(4), nest, fields);
      default:
        // 0xc1 (never used) and the extension types.
        throw new MsgpackError(`unsupported msgpack type 0x${b.toString(16)}`, false);
    }
  }

  /**
   * One frame: a map (anything else is refused at its first byte) whose fields named in `known`
   * are decoded, each with containers nested no deeper than its entry allows ({@link MISTYPED}
   * stands for one nested deeper), and whose other fields are skipped without being built.
   * Resets the value budget: it counts per frame.
   */
  frame(known: FrameFields): Record<string, unknown> {
    this.values = 0;
    const b = this.bytes[this.pos];
    if (b === undefined || !((b >= 0x80 && b <= 0x8f) || b === 0xde || b === 0xdf)) {
      this.need(1);
      throw new MsgpackError('a frame must be a msgpack map', false);
    }
    return this.read(1, known) as Record<string, unknown>;
  }
}

/**
 * The lean `decodeMsgpack` held to the value budget too: exactly one msgpack value from `bytes`,
 * within every limit of `limits`. Throws {@link MsgpackError} only.
 */
export function decodeBudgetedMsgpack(bytes: Uint8Array, limits: DecodeLimits): unknown {
  return readOne(new BudgetedReader(bytes, limits));
}
