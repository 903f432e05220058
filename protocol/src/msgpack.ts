// A msgpack encoder and a bounded decoder for crier's frames: maps with string keys, strings,
// binary, integers, floats, booleans, nil and arrays. Extension types are refused.
//
// Why not @msgpack/msgpack at run time: its decoder has no depth limit and lets invalid UTF-8
// through (both had to be patched around with a separate pass), its classes cannot be
// tree-shaken out of the browser bundle (8 KB of a 10 KB budget), and decoding an event frame
// through it was the SDK's largest cost in the W6 profile. It stays as the oracle that the
// property tests compare this codec against.
import type { DecodeLimits } from './limits.js';

/** A decode failure: the message is for people; the kind says whether a limit was hit. */
export class MsgpackError extends Error {
  constructor(
    message: string,
    readonly tooLarge: boolean,
  ) {
    super(message);
  }
}

// ---- encoding -----------------------------------------------------------------------------

let buf = new Uint8Array(2048);
let view = new DataView(buf.buffer);
let pos = 0;

function ensure(n: number): void {
  if (pos + n <= buf.length) return;
  let size = buf.length * 2;
  while (size < pos + n) size *= 2;
  const next = new Uint8Array(size);
  next.set(buf.subarray(0, pos));
  buf = next;
  view = new DataView(buf.buffer);
}

/**
 * Writes a length head: the fix form (`small | n`) up to `smallMax`, else the 8-, 16- or 32-bit
 * form. `b16` is the 16-bit form's type byte: msgpack puts the 8-bit form just before it (strings,
 * binaries, uints; arrays and maps, b16 >= 0xdc, have none) and the 32-bit form just after.
 */
function writeHead(small: number, smallMax: number, b16: number, n: number): void {
  ensure(5);
  if (n <= smallMax) buf[pos++] = small | n;
  else if (n < 0x100 && b16 < 0xdc) {
    buf[pos++] = b16 - 1;
    buf[pos++] = n;
  } else if (n < 0x10000) {
    buf[pos++] = b16;
    view.setUint16(pos, n);
    pos += 2;
  } else {
    buf[pos++] = b16 + 1;
    view.setUint32(pos, n);
    pos += 4;
  }
}

/** A head (see {@link writeHead}), then `bytes`. */
function writeBytes(small: number, smallMax: number, b16: number, bytes: Uint8Array): void {
  writeHead(small, smallMax, b16, bytes.length);
  ensure(bytes.length);
  buf.set(bytes, pos);
  pos += bytes.length;
}

function writeNumber(n: number): void {
  ensure(9);
  if (Number.isSafeInteger(n) && !Object.is(n, -0)) {
    // A uint below 2^32 is a length head's shape: positive fixint, then 0xcc, 0xcd, 0xce.
    if (n >= 0 && n < 0x100000000) return writeHead(0, 0x7f, 0xcd, n);
    if (n >= 0) {
      buf[pos++] = 0xcf;
      view.setUint32(pos, n / 0x100000000); // setUint32 truncates: the high word
      view.setUint32(pos + 4, n >>> 0);
      pos += 8;
      return;
    }
    if (n >= -32) {
      buf[pos++] = n & 0xff;
      return;
    }
    if (n >= -0x80000000) {
      buf[pos++] = 0xd2;
      view.setInt32(pos, n);
      pos += 4;
      return;
    }
  }
  buf[pos++] = 0xcb;
  view.setFloat64(pos, n);
  pos += 8;
}

function writeString(s: string): void {
  const n = s.length;
  const start = pos;
  // ASCII fast path (channel names, ids, keys): one byte per char, written in place; at the first
  // other char, written again through the encoder.
  writeHead(0xa0, 31, 0xda, n);
  ensure(n);
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) {
      pos = start;
      return writeBytes(0xa0, 31, 0xda, textEncoder.encode(s));
    }
    buf[pos++] = c;
  }
}

const textEncoder = new TextEncoder();

/** A map of `record`'s fields that are not `undefined`, each value written by `write`. */
function writeRecord(record: Record<string, unknown>, write: (v: unknown) => void): void {
  let count = 0;
  for (const k in record) if (record[k] !== undefined) count++;
  writeHead(0x80, 15, 0xde, count);
  for (const k in record) {
    const item = record[k];
    if (item === undefined) continue;
    writeString(k);
    write(item);
  }
}

function writeValue(v: unknown): void {
  ensure(1);
  if (v === null || v === undefined) buf[pos++] = 0xc0;
  else if (typeof v === 'number') writeNumber(v);
  else if (typeof v === 'string') writeString(v);
  else if (typeof v === 'boolean') buf[pos++] = v ? 0xc3 : 0xc2;
  else if (v instanceof Uint8Array) writeBytes(0, -1, 0xc5, v);
  else if (Array.isArray(v)) {
    writeHead(0x90, 15, 0xdc, v.length);
    for (const item of v) writeValue(item);
  } else if (typeof v === 'object') writeRecord(v as Record<string, unknown>, writeValue);
  else {
    throw new TypeError(`cannot encode a ${typeof v} as msgpack`);
  }
}

/**
 * One value of a frame a client sends, as {@link writeValue} writes it but for numbers: an
 * integer from 0 to 2^32 - 1 takes its shortest uint form (-0 too: as 0), any other number a
 * float64 (which every msgpack reader decodes to the same number). Client frames hold no other numbers in
 * practice (types, request ids, rewinds, positions), and this is what the browser bundle carries
 * instead of writeValue and writeNumber.
 */
function writeClientValue(v: unknown): void {
  ensure(9);
  if (v == null) buf[pos++] = 0xc0;
  else if (typeof v === 'number') {
    if (v >= 0 && v < 0x100000000 && v % 1 === 0) writeHead(0, 0x7f, 0xcd, v);
    else {
      buf[pos++] = 0xcb;
      view.setFloat64(pos, v);
      pos += 8;
    }
  } else if (typeof v === 'string') writeString(v);
  else if (typeof v === 'boolean') buf[pos++] = v ? 0xc3 : 0xc2;
  else if (v instanceof Uint8Array) writeBytes(0, -1, 0xc5, v);
  else if (Array.isArray(v)) {
    writeHead(0x90, 15, 0xdc, v.length);
    for (const item of v) writeClientValue(item);
  } else writeRecord(v as Record<string, unknown>, writeClientValue);
}

/**
 * Encodes a frame a client sends (see {@link writeClientValue}: numbers other than 32-bit uints
 * as float64) with the encoder's buffer: the SDKs' encoder. A fresh copy, like encodeMsgpack's.
 */
export function encodeClientMsgpack(value: unknown): Uint8Array<ArrayBuffer> {
  pos = 0;
  writeClientValue(value);
  return buf.slice(0, pos);
}

/**
 * Encodes `value` (maps skip `undefined` fields). The result is a fresh copy backed by its own
 * `ArrayBuffer`; the working buffer is reused across calls.
 */
export function encodeMsgpack(value: unknown): Uint8Array<ArrayBuffer> {
  pos = 0;
  writeValue(value);
  return buf.slice(0, pos);
}

// ---- decoding -----------------------------------------------------------------------------
//
// MsgpackReader is the lean reader: truncation, UTF-8, safe integers and map keys are checked,
// and everything is built; lengths and depth are not held to limits, and of the numbers it reads
// only those encodeMsgpack writes (no float32, int8, int16 or int64). It decodes what a broker
// sends an SDK (its one, trusted, peer), and is all of the decoder the browser bundle carries.
// LimitedReader adds the decode limits (lengths, depth) for decodeMsgpack and decodeFrame, and
// BudgetedReader (budgeted-reader.ts), a subclass of it only the broker's entry point references,
// the per-frame value budget and field tables for input from the internet. esbuild drops both
// from the bundle, as it would not drop methods of this class.

const textDecoder = new TextDecoder('utf-8', { fatal: true });
/**
 * Per length up to 64, an array reused for a short ASCII string's char codes: the string is then
 * made in one call (String.fromCharCode), where a char at a time made a string per char.
 */
const CODES: number[][] = [];
/**
 * Short ASCII map keys by their bytes (length, then up to 3 bytes, packed in one number). Shared
 * with BudgetedReader, whose readKey() is its own (it counts keys against the value budget).
 */
export const keyCache = new Map<number, string>();

/**
 * The map key at `reader` when it is 1 to 3 ASCII bytes, as a number (its length, then its bytes:
 * 'c' is 0x163, 'id' 0x26964), passed; -1 for any other value, which is left where it is.
 */
export function keyCode(reader: MsgpackReader): number {
  const { bytes, pos } = reader;
  const len = bytes[pos]! - 0xa0;
  if (!(len > 0 && len < 4 && pos + len < bytes.length)) return -1;
  let code = len;
  for (let i = 1; i <= len; i++) {
    const c = bytes[pos + i]!;
    if (c >= 0x80) return -1;
    code = code * 256 + c;
  }
  reader.pos = pos + 1 + len;
  return code;
}

/** Reads msgpack values one after another from `bytes` (no limits: see {@link LimitedReader}). */
// The methods are named apart from anything a user reads (`read`, not `value`; `readKey`, not
// `key`), so that the browser bundle can shorten them.
export class MsgpackReader {
  pos = 0;
  readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  need(n: number): void {
    if (this.pos + n > this.bytes.length) throw new MsgpackError('truncated', false);
  }

  /** Checks that `n` more bytes are there and passes them: their start. */
  take(n: number): number {
    this.need(n);
    return (this.pos += n) - n;
  }

  uint(width: number): number {
    const v = this.view;
    const p = this.take(width);
    if (width < 8) return width === 1 ? v.getUint8(p) : width === 2 ? v.getUint16(p) : v.getUint32(p);
    return this.safe(v.getUint32(p) * 0x100000000 + v.getUint32(p + 4));
  }

  /** `n`, an integer read from 8 bytes, if JavaScript holds it exactly. */
  safe(n: number): number {
    if (!Number.isSafeInteger(n)) throw new MsgpackError('integer beyond 2^53', false);
    return n;
  }

  str(len: number): string {
    const bytes = this.bytes;
    const start = this.take(len);
    // ASCII fast path for short strings; anything else through a fatal decoder, so invalid UTF-8
    // is refused rather than turned into replacement characters.
    if (len <= 64) {
      const codes = (CODES[len] ??= Array<number>(len));
      for (let i = 0; i < len; i++) if ((codes[i] = bytes[start + i]!) >= 0x80) return this.utf8(start, len);
      return String.fromCharCode.apply(null, codes);
    }
    return this.utf8(start, len);
  }

  utf8(start: number, len: number): string {
    try {
      return textDecoder.decode(this.bytes.subarray(start, start + len));
    } catch {
      throw new MsgpackError('invalid UTF-8', false);
    }
  }

  bin(len: number): Uint8Array {
    const start = this.take(len);
    return this.bytes.subarray(start, start + len); // a view: the caller's bytes are not copied
  }

  array(len: number): unknown {
    this.enter(len, len, false);
    const out = new Array<unknown>(len);
    for (let i = 0; i < len; i++) out[i] = this.read();
    return out;
  }

  readMap(len: number): unknown {
    this.enter(len, len * 2, true);
    const out: Record<string, unknown> = {};
    for (let i = 0; i < len; i++) {
      const key = this.readKey();
      out[key] = this.read();
    }
    return out;
  }

  /**
   * Checks a container of `len` entries (`values` msgpack values) before anything is allocated
   * for it: the bytes left (every value is at least one byte). LimitedReader checks more.
   */
  enter(_len: number, values: number, _isMap: boolean): void {
    this.need(values);
  }

  /**
   * A map key. Frames use the same few short keys over and over ('t', 'c', 'id', 'ts'), so ASCII
   * keys of 1 to 3 bytes come from a small cache: one lookup, and always the same string, which
   * makes the property store that follows cheaper too (measured on the W6 profile).
   */
  readKey(): string {
    const p = this.pos;
    const code = keyCode(this);
    if (code >= 0) {
      const cached = keyCache.get(code);
      if (cached !== undefined) return cached;
      this.pos = p;
      const key = this.read() as string;
      if (keyCache.size < 1024) keyCache.set(code, key);
      return key;
    }
    const key = this.read();
    if (typeof key !== 'string') throw new MsgpackError('map keys must be strings', false);
    // Only here: the cached keys above are 1 to 3 bytes long, never one of these.
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') {
      throw new MsgpackError(`forbidden key "${key}"`, false);
    }
    return key;
  }

  read(): unknown {
    const b = this.bytes[this.take(1)]!;
    if (b < 0x80) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b < 0x90) return this.readMap(b & 0x0f);
    if (b < 0xa0) return this.array(b & 0x0f);
    if (b < 0xc0) return this.str(b & 0x1f);
    if (b === 0xc0) return null;
    if (b === 0xc2 || b === 0xc3) return b === 0xc3;
    // The sized types come in runs by the width of their length: 1, 2, 4 (and 8) bytes.
    if (b >= 0xc4 && b <= 0xc6) return this.bin(this.uint(1 << (b - 0xc4)));
    if (b >= 0xcc && b <= 0xcf) return this.uint(1 << (b - 0xcc));
    if (b >= 0xd9 && b <= 0xdb) return this.str(this.uint(1 << (b - 0xd9)));
    if (b >= 0xdc) return b < 0xde ? this.array(this.uint(2 << (b & 1))) : this.readMap(this.uint(2 << (b & 1)));
    // A float64 and an int32: the only other numbers encodeMsgpack writes (LimitedReader reads
    // the rest: float32, int8, int16, int64).
    if (b === 0xcb) return this.view.getFloat64(this.take(8));
    if (b === 0xd2) return this.view.getInt32(this.take(4));
    return this.other(b);
  }

  /** A type the lean reader does not read: 0xc1 (never used), the extension types, and LimitedReader's. */
  other(b: number): unknown {
    throw new MsgpackError(`unsupported msgpack type 0x${b.toString(16)}`, false);
  }
}

/**
 * The lean reader within `limits` (all but `maxValues`): every string, binary, array and map
 * length, and the depth, checked before anything is built. For bytes whose sender is not the
 * reader's one trusted peer (decodeMsgpack, decodeFrame), and the base of BudgetedReader.
 */
export class LimitedReader extends MsgpackReader {
  depth = 0;
  constructor(
    bytes: Uint8Array,
    readonly decodeLimits: DecodeLimits,
  ) {
    super(bytes);
  }

  override str(len: number): string {
    if (len > this.decodeLimits.maxStrLength) throw new MsgpackError('string too long', true);
    return super.str(len);
  }

  override bin(len: number): Uint8Array {
    if (len > this.decodeLimits.maxBinLength) throw new MsgpackError('binary too long', true);
    return super.bin(len);
  }

  /** The numbers encodeMsgpack never writes but other encoders do: float32 (0xca), int8, int16, int64 (0xd0, 0xd1, 0xd3). */
  override other(b: number): unknown {
    const v = this.view;
    if (b === 0xca) return v.getFloat32(this.take(4));
    if (b === 0xd0) return v.getInt8(this.take(1));
    if (b === 0xd1) return v.getInt16(this.take(2));
    if (b === 0xd3) {
      const p = this.take(8);
      return this.safe(v.getInt32(p) * 0x100000000 + v.getUint32(p + 4));
    }
    return super.other(b);
  }

  override array(len: number): unknown {
    const out = super.array(len);
    this.depth--;
    return out;
  }

  override readMap(len: number): unknown {
    const out = super.readMap(len);
    this.depth--;
    return out;
  }

  /**
   * Checks a container of `len` entries (`values` msgpack values) before anything is allocated
   * for it: its length, the bytes left (every value is at least one byte) and the depth. Enters
   * it (whoever calls this leaves it: `depth--`).
   */
  override enter(len: number, values: number, isMap: boolean): void {
    if (len > (isMap ? this.decodeLimits.maxMapLength : this.decodeLimits.maxArrayLength)) {
      throw new MsgpackError(isMap ? 'map too large' : 'array too large', true);
    }
    this.need(values);
    if (++this.depth > this.decodeLimits.maxDepth) throw new MsgpackError('nesting too deep', true);
  }
}

/**
 * Decodes exactly one msgpack value from `bytes` within `limits` (lengths, depth; not
 * `maxValues`), refusing extension types, invalid UTF-8, non-string map keys, prototype keys and
 * trailing bytes. Throws {@link MsgpackError} only. Binary values are views into `bytes`.
 */
export function decodeMsgpack(bytes: Uint8Array, limits: DecodeLimits): unknown {
  return readOne(new LimitedReader(bytes, limits));
}

/** Reads the one value `reader` holds: {@link decodeMsgpack} for either reader. */
export function readOne(reader: MsgpackReader): unknown {
  let value: unknown;
  try {
    value = reader.read();
  } catch (err) {
    if (err instanceof MsgpackError) throw err;
    throw new MsgpackError(`malformed msgpack: ${String(err)}`, false); // never expected
  }
  if (reader.pos !== reader.bytes.length) throw new MsgpackError('trailing bytes after frame', false);
  return value;
}
