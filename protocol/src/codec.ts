import { CrierError, ErrorCode } from './errors.js';
import { FrameType, type Frame } from './frames.js';
import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from './limits.js';
import { MsgpackError, MsgpackReader, encodeMsgpack, type FrameFields } from './msgpack.js';

/**
 * Encodes a frame as msgpack. The result is a fresh copy the caller owns, backed by a plain
 * `ArrayBuffer` (so the DOM's `WebSocket.send` accepts it as is).
 */
export function encodeFrame(frame: Frame): Uint8Array<ArrayBuffer> {
  return encodeMsgpack(frame);
}

type Rec = Record<string, unknown>;
type FieldCheck = (value: unknown) => boolean;

const isStr: FieldCheck = (v) => typeof v === 'string';
const isBin: FieldCheck = (v) => v instanceof Uint8Array;
const isUint: FieldCheck = (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isStrArray: FieldCheck = (v) => Array.isArray(v) && v.every(isStr);
const isFilter: FieldCheck = (v) =>
  isPlainRecord(v) &&
  (v['l'] === undefined || v['l'] === null || isStrArray(v['l'])) &&
  (v['la'] === undefined || v['la'] === null || typeof v['la'] === 'boolean') &&
  (v['k'] === undefined || v['k'] === null || isStrArray(v['k']));
const isLimits: FieldCheck = (v) =>
  isPlainRecord(v) && isUint(v['mc']) && isUint(v['mp']) && isUint(v['bs']);
const isDropCounts: FieldCheck = (v) =>
  Array.isArray(v) &&
  v.every((p) => Array.isArray(p) && p.length === 2 && isStr(p[0]) && isUint(p[1]));

/** Per frame type: required and optional fields with their checks. Unknown fields are ignored. */
const shapes: ReadonlyMap<number, { req: [string, FieldCheck][]; opt: [string, FieldCheck][] }> =
  new Map([
    [FrameType.hello, { req: [['v', isUint]], opt: [['u', isStr], ['tk', isStr], ['s', isStr]] }],
    [FrameType.welcome, { req: [['v', isUint], ['u', isStr], ['ka', isUint], ['lim', isLimits], ['s', isStr]], opt: [['x', isUint]] }],
    [FrameType.auth, { req: [['r', isUint], ['tk', isStr]], opt: [] }],
    // A filter's types are checked here, its bounds by canonicalFilter (bad_filter).
    [FrameType.subscribe, { req: [['r', isUint], ['p', isStr]], opt: [['f', isFilter]] }],
    [FrameType.unsubscribe, { req: [['r', isUint], ['p', isStr]], opt: [['f', isFilter]] }],
    [FrameType.publish, { req: [['c', isStr], ['d', isBin]], opt: [['r', isUint], ['l', isStrArray], ['k', isStr]] }],
    [FrameType.quit, { req: [], opt: [] }],
    [FrameType.ping, { req: [], opt: [] }],
    [FrameType.pong, { req: [], opt: [] }],
    [FrameType.ack, { req: [['r', isUint]], opt: [['id', isStr], ['o', isUint], ['e', isStr], ['x', isUint]] }],
    [FrameType.error, { req: [['code', isStr], ['msg', isStr]], opt: [['r', isUint]] }],
    [FrameType.event, {
      req: [['c', isStr], ['d', isBin], ['id', isStr], ['o', isUint], ['e', isStr], ['ts', isUint]],
      opt: [['l', isStrArray], ['k', isStr]],
    }],
    [FrameType.dropped, { req: [['n', isUint], ['c', isDropCounts]], opt: [] }],
  ]);

/**
 * How deep containers may nest in a field of each kind: all the decoder builds of a frame. A
 * deeper one (a list where a string belongs) is skipped unbuilt and fails its check.
 */
const nestingOf: ReadonlyMap<FieldCheck, number> = new Map([
  [isUint, 0], [isStr, 0], [isBin, 0], [isStrArray, 1], [isLimits, 1], [isFilter, 2], [isDropCounts, 2],
]);

/** The fields the decoder builds, per frame type and for all types together; others are skipped. */
const frameFields: FrameFields = (() => {
  const any: Record<string, number> = { t: 0 };
  const byType: Record<string, number>[] = [];
  for (const [type, { req, opt }] of shapes) {
    const fields: Record<string, number> = { t: 0 };
    for (const [name, check] of [...req, ...opt]) {
      // A check this table does not know still decodes, within the depth and value limits.
      const nest = nestingOf.get(check) ?? Infinity;
      fields[name] = nest;
      any[name] = Math.max(Object.hasOwn(any, name) ? any[name]! : 0, nest);
    }
    byType[type] = fields;
  }
  return { byType, any };
})();

function isPlainRecord(v: unknown): v is Rec {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/**
 * Decodes one frame and checks it against `limits` and its type's shape. Only the fields its
 * type uses are built (others are skipped), at most `limits.maxValues` values are visited, and a
 * frame that is not a map is refused at its first byte. Throws a
 * {@link CrierError} (`frame_too_large`, `bad_frame` or `unknown_type`) and nothing else; when
 * the frame's request id could be read, the error carries it.
 */
export function decodeFrame(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): Frame {
  if (bytes.length > limits.maxFrameBytes) {
    throw new CrierError(ErrorCode.frameTooLarge, `frame of ${bytes.length} bytes exceeds ${limits.maxFrameBytes}`);
  }
  const reader = new MsgpackReader(bytes, limits);
  let value: unknown;
  try {
    value = reader.frame(frameFields);
  } catch (err) {
    throw codecError(err);
  }
  if (reader.pos !== bytes.length) throw new CrierError(ErrorCode.badFrame, 'malformed frame: trailing bytes after frame');
  return checkFrame(value);
}

/**
 * Decodes every frame of one WebSocket message, which holds one or more frames back to back,
 * and calls `visit` with each in order. Each frame is held to `limits` (`maxFrameBytes` counts
 * per frame, not per message). A malformed frame throws like {@link decodeFrame}, after the
 * frames before it were visited; what follows it is lost, since its boundaries are unknown.
 */
export function decodeFrames(bytes: Uint8Array, limits: DecodeLimits, visit: (frame: Frame) => void): void {
  const reader = new MsgpackReader(bytes, limits);
  while (reader.pos < bytes.length) {
    const start = reader.pos;
    let value: unknown;
    try {
      value = reader.frame(frameFields);
    } catch (err) {
      throw codecError(err);
    }
    if (reader.pos - start > limits.maxFrameBytes) {
      throw new CrierError(ErrorCode.frameTooLarge, `frame of ${reader.pos - start} bytes exceeds ${limits.maxFrameBytes}`);
    }
    visit(checkFrame(value));
  }
}

function codecError(err: unknown): CrierError {
  if (err instanceof MsgpackError) {
    return new CrierError(err.tooLarge ? ErrorCode.frameTooLarge : ErrorCode.badFrame, `malformed frame: ${err.message}`);
  }
  return new CrierError(ErrorCode.badFrame, `malformed frame: ${String(err)}`); // never expected
}

/** Checks a decoded value against its frame type's shape. */
function checkFrame(value: unknown): Frame {
  if (!isPlainRecord(value)) throw new CrierError(ErrorCode.badFrame, 'a frame must be a msgpack map');
  const requestId = isUint(value['r']) ? (value['r'] as number) : undefined;
  const type = value['t'];
  if (typeof type !== 'number') throw new CrierError(ErrorCode.badFrame, 'frame has no numeric type field "t"', requestId);
  const shape = shapes.get(type);
  if (!shape) throw new CrierError(ErrorCode.unknownType, `unknown frame type ${type}`, requestId);
  for (const [field, check] of shape.req) {
    if (!check(value[field])) throw new CrierError(ErrorCode.badFrame, `frame type ${type}: field "${field}" is missing or of the wrong type`, requestId);
  }
  for (const [field, check] of shape.opt) {
    const v = value[field];
    if (v !== undefined && v !== null && !check(v)) {
      throw new CrierError(ErrorCode.badFrame, `frame type ${type}: field "${field}" is of the wrong type`, requestId);
    }
    if (v === null) delete value[field];
  }
  return value as unknown as Frame;
}
