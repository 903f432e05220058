import { CrierError, ErrorCode } from './errors.js';
import { FrameType, type BrokerFrame, type ClientFrame, type Frame } from './frames.js';
import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from './limits.js';
import { MsgpackError, MsgpackReader, decodeMsgpack, encodeClientMsgpack, encodeMsgpack, keyCode } from './msgpack.js';

/**
 * Encodes a frame as msgpack. The result is a fresh copy the caller owns, backed by a plain
 * `ArrayBuffer` (so the DOM's `WebSocket.send` accepts it as is).
 */
export function encodeFrame(frame: Frame): Uint8Array<ArrayBuffer> {
  return encodeMsgpack(frame);
}

/**
 * Encodes a frame a client sends, as the SDKs do: {@link encodeFrame}'s bytes, but for a number
 * that is not an integer from 0 to 2^32 - 1, which goes as a float64 (decoded to the same number).
 * Smaller in the browser bundle than encodeFrame, whose full number encoding the broker's frames
 * need (timestamps, negative values) and a client's do not.
 */
export function encodeClientFrame(frame: ClientFrame): Uint8Array<ArrayBuffer> {
  return encodeClientMsgpack(frame);
}

// The field checks, the shape type and checkFrame are exported for untrusted-codec.ts (the
// broker's decoder, which holds the client→broker shapes), not from the package.
type Rec = Record<string, unknown>;
export type FieldCheck = (value: unknown) => boolean;
/** Per frame type: required and optional fields with their checks. Unknown fields are ignored. */
export type Shapes = ReadonlyMap<number, { req: [string, FieldCheck][]; opt: [string, FieldCheck][] }>;

export const isStr: FieldCheck = (v) => typeof v === 'string';
export const isBin: FieldCheck = (v) => v instanceof Uint8Array;
export const isUint: FieldCheck = (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
export const isStrArray: FieldCheck = (v) => Array.isArray(v) && v.every(isStr);
const isBinArray: FieldCheck = (v) => Array.isArray(v) && v.every(isBin);
export const isBool: FieldCheck = (v) => typeof v === 'boolean';
const isLimits: FieldCheck = (v) => isPlainRecord(v) && isUint(v['mc']) && isUint(v['mp']) && isUint(v['bs']);
const isDropCounts: FieldCheck = (v) =>
  Array.isArray(v) &&
  v.every((p) => Array.isArray(p) && p.length === 2 && isStr(p[0]) && isUint(p[1]));

/**
 * The frames a broker sends (ping and pong go both ways): all the SDKs' lean decoder knows, so
 * the browser bundle carries no client→broker shapes. A client→broker frame is `unknown_type` here.
 */
const brokerShapes: Shapes = new Map([
  [FrameType.welcome, { req: [['v', isUint], ['u', isStr], ['ka', isUint], ['lim', isLimits], ['s', isStr]], opt: [['x', isUint], ['ep', isStr], ['rs', isPlainRecord]] }],
  [FrameType.ack, { req: [['r', isUint]], opt: [['id', isStr], ['o', isUint], ['e', isStr], ['x', isUint]] }],
  [FrameType.error, { req: [['code', isStr], ['msg', isStr]], opt: [['r', isUint]] }],
  [FrameType.event, {
    req: [['c', isStr], ['d', isBin], ['id', isStr], ['o', isUint], ['e', isStr], ['ts', isUint]],
    opt: [['s', isUint], ['l', isStrArray], ['k', isStr], ['rp', isStr], ['pr', isUint]],
  }],
  [FrameType.reply, { req: [['r', isUint], ['c', isStr], ['d', isBin], ['id', isStr], ['ts', isUint]], opt: [['l', isStrArray]] }],
  [FrameType.presence, { req: [['r', isUint], ['p', isStr], ['n', isUint]], opt: [['m', isStrArray], ['pa', isBool]] }],
  [FrameType.presenceChange, { req: [['c', isStr], ['j', isBool], ['n', isUint]], opt: [['m', isStr]] }],
  [FrameType.dropped, { req: [['n', isUint], ['c', isDropCounts]], opt: [] }],
  [FrameType.events, { req: [['r', isUint], ['ev', isBinArray]], opt: [['e', isStr], ['o', isUint], ['ok', isBool], ['m', isBool]] }],
  [FrameType.ping, { req: [], opt: [] }],
  [FrameType.pong, { req: [], opt: [] }],
]);

export function isPlainRecord(v: unknown): v is Rec {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/**
 * Decodes one frame from a trusted peer (what a broker sends an SDK) and checks it against
 * `limits` (all but `maxValues`) and its type's shape. It knows the broker→client frames only
 * (welcome, ack, error, event, dropped, events, ping, pong): any other type is `unknown_type`.
 * Throws a {@link CrierError} (`frame_too_large`, `bad_frame` or `unknown_type`) and nothing
 * else; when the frame's request id could be read, the error carries it. Unknown fields are
 * decoded like the rest and left on the frame. For bytes from the internet (a client's), use
 * {@link decodeUntrustedFrame}.
 */
export function decodeFrame(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): BrokerFrame {
  if (bytes.length > limits.maxFrameBytes) {
    throw new CrierError(ErrorCode.frameTooLarge, `frame of ${bytes.length} bytes exceeds ${limits.maxFrameBytes}`);
  }
  let value: unknown;
  try {
    value = decodeMsgpack(bytes, limits);
  } catch (err) {
    throw codecError(err);
  }
  return checkFrame(value, brokerShapes) as BrokerFrame;
}

/**
 * Makes an SDK's own event object from the checked fields of an `event` frame (see
 * {@link decodeFrames}): so each event is one object, built once, with no frame object before it.
 */
export type EventMaker<E> = (
  c: string, d: Uint8Array, id: string, o: number, e: string, ts: number,
  s: number | undefined, l: string[] | undefined, k: string | undefined, rp: string | undefined,
  /** The frame's `pr`: 1 on a high-priority event. */
  pr: number | undefined,
) => E;

/**
 * Decodes every frame of one WebSocket message from a trusted peer (an SDK reading its broker),
 * which holds one or more broker→client frames back to back, and calls `visit` with each in order.
 * The msgpack is checked (truncation, UTF-8, safe integers, string map keys, no prototype keys),
 * each frame held to `limits.maxFrameBytes` (per frame, not per message), and each must be a map
 * with a numeric `t`. The lengths and depth inside a frame are not held to the other limits
 * ({@link decodeFrame} holds them), and the fields of the frame's type are not walked: a broker
 * is trusted with both (the browser bundle carries no shape table), and whoever handles a frame reports one
 * that is not what its type says (the SDK: as `bad_frame`). A malformed frame throws a
 * {@link CrierError} after the frames before it were visited; what follows it is lost, since its
 * boundaries are unknown. The broker decodes what clients send with {@link decodeUntrustedFrames}.
 *
 * With `makeEvent`, an `event` frame (as brokers write it: a map whose first entry is `t`) is
 * read field by field into what `makeEvent` makes, its fields checked (a missing or mistyped one
 * is `bad_frame`), and that is visited instead of the frame: no map object per event.
 */
export function decodeFrames<E = never>(
  bytes: Uint8Array, limits: Pick<DecodeLimits, 'maxFrameBytes'>, visit: (frame: BrokerFrame | E) => void, makeEvent?: EventMaker<E>,
): void {
  const reader = new MsgpackReader(bytes);
  while (reader.pos < bytes.length) {
    const start = reader.pos;
    const head = bytes[start]!;
    // A fixmap of 2 to 15 entries whose first is 't': 11 (0xa1 0x74 0x0b).
    const event = makeEvent && head > 0x81 && head < 0x90 && bytes[start + 1] === 0xa1 && bytes[start + 2] === 0x74 && bytes[start + 3] === FrameType.event;
    let frame: unknown;
    try {
      frame = event ? readEvent(reader, head & 0x0f, makeEvent) : reader.read();
    } catch (err) {
      throw codecError(err);
    }
    if (reader.pos - start > limits.maxFrameBytes) {
      throw new CrierError(ErrorCode.frameTooLarge, `frame of ${reader.pos - start} bytes exceeds ${limits.maxFrameBytes}`);
    }
    if (event ? frame === undefined : typeof (frame as { t?: unknown } | null)?.t !== 'number') {
      throw new CrierError(ErrorCode.badFrame, event ? 'malformed event: a field missing or mistyped' : 'frame: not a map with a numeric "t"');
    }
    visit(frame as BrokerFrame | E);
  }
}

/** The last string read for a field, with its msgpack bytes (head included). */
interface Slot {
  b: Uint8Array;
  t: unknown;
}
const CHANNEL: Slot = { b: new Uint8Array(0), t: '' };
const EPOCH: Slot = { b: new Uint8Array(0), t: '' };

/**
 * The value at the reader; the slot's string without decoding it when the value's bytes are the
 * slot's (a string read from up to 66 bytes is kept for the next time).
 */
function cached(reader: MsgpackReader, slot: Slot): unknown {
  const { bytes, pos } = reader;
  const held = slot.b;
  let i = 0;
  while (i < held.length && bytes[pos + i] === held[i]) i++;
  if (i && i === held.length) {
    reader.pos = pos + i;
    return slot.t;
  }
  const v = reader.read();
  if (typeof v === 'string' && reader.pos - pos < 67) {
    slot.b = bytes.slice(pos, reader.pos);
    slot.t = v;
  }
  return v;
}

/**
 * The rest of an `event` frame of `n` entries whose first (`t`: 11) is checked, into
 * `makeEvent`'s object; `undefined` when a field fails its check (the event shape's). Unknown
 * fields are read and left out; msgpack nil in an optional field is absent, as checkFrame has it.
 */
function readEvent<E>(reader: MsgpackReader, n: number, makeEvent: EventMaker<E>): E | undefined {
  reader.pos++;
  reader.enter(n, n * 2, true);
  reader.pos += 3;
  let c, d, id, o, e, ts, s, l, k, rp, pr: unknown;
  for (let i = 1; i < n; i++) {
    // The key as a number (see keyCode), passed. A key that is none of the event's is passed too
    // (read the generic way, with its checks, when it is not 1 to 3 ASCII bytes), and its value.
    const key = keyCode(reader);
    // A channel and an epoch mostly repeat from one event to the next: met again, the same string.
    if (key === 0x163) c = cached(reader, CHANNEL);
    else if (key === 0x164) d = reader.read();
    else if (key === 0x26964) id = reader.read();
    else if (key === 0x16f) o = reader.read();
    else if (key === 0x165) e = cached(reader, EPOCH);
    else if (key === 0x27473) ts = reader.read();
    else if (key === 0x173) s = reader.read() ?? undefined;
    else if (key === 0x16c) l = reader.read() ?? undefined;
    else if (key === 0x16b) k = reader.read() ?? undefined;
    else if (key === 0x27270) rp = reader.read() ?? undefined;
    else if (key === 0x27072) pr = reader.read() ?? undefined;
    else {
      if (key < 0) reader.readKey();
      reader.read();
    }
  }
  if (
    // An optional field is absent (undefined) or of its type.
    !isStr(c) || !isBin(d) || !isStr(id) || !isUint(o) || !isStr(e) || !isUint(ts) ||
    !isUint(s ?? 0) || (l !== undefined && !isStrArray(l)) || !isStr(k ?? '') || !isStr(rp ?? '') || !isUint(pr ?? 0)
  ) return undefined;
  return makeEvent(c as string, d as Uint8Array, id as string, o as number, e as string, ts as number,
    s as number | undefined, l as string[] | undefined, k as string | undefined, rp as string | undefined, pr as number | undefined);
}

/** The coded error for what the msgpack reader threw (a `MsgpackError`; anything else is not expected). */
export function codecError(err: unknown): CrierError {
  const e = err as MsgpackError;
  return new CrierError(e.tooLarge ? ErrorCode.frameTooLarge : ErrorCode.badFrame, `malformed frame: ${e.message}`);
}

/** Checks a decoded value against its frame type's shape in `shapes`: a type not there is `unknown_type`. */
export function checkFrame(value: unknown, shapes: Shapes): Frame {
  if (!isPlainRecord(value)) throw new CrierError(ErrorCode.badFrame, 'frame must be a msgpack map');
  const requestId = isUint(value['r']) ? (value['r'] as number) : undefined;
  const type = value['t'];
  if (typeof type !== 'number') throw new CrierError(ErrorCode.badFrame, 'frame: no numeric "t"', requestId);
  const shape = shapes.get(type);
  if (!shape) throw new CrierError(ErrorCode.unknownType, `unknown frame type ${type}`, requestId);
  for (const [field, check] of shape.req) {
    if (!check(value[field])) throw new CrierError(ErrorCode.badFrame, `frame type ${type}: "${field}" missing or mistyped`, requestId);
  }
  for (const [field, check] of shape.opt) {
    const v = value[field];
    if (v !== undefined && v !== null && !check(v)) {
      throw new CrierError(ErrorCode.badFrame, `frame type ${type}: "${field}" mistyped`, requestId);
    }
    if (v === null) delete value[field];
  }
  return value as unknown as Frame;
}
