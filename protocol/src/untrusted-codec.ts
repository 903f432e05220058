// The broker's frame decoder: every message a client sends goes through decodeUntrustedFrames.
// A client is anyone on the internet, so what one frame may cost is bounded whatever its bytes
// hold (BudgetedReader: a value budget per frame, only the fields its type uses built). The SDKs
// decode their broker's frames with the lean decodeFrames (codec.ts) instead: an SDK's only peer
// is its broker, which already decides everything the client sees, and this module (field
// tables, budget) stays out of the browser bundle because nothing the SDKs import reaches it.
import { CrierError, ErrorCode } from './errors.js';
import { FrameType, type ClientFrame } from './frames.js';
import { DEFAULT_DECODE_LIMITS, MAX_MESSAGE_VALUES, type DecodeLimits } from './limits.js';
import { BudgetedReader, type FrameFields } from './budgeted-reader.js';
import {
  checkFrame,
  codecError,
  isBin,
  isBool,
  isPlainRecord,
  isStr,
  isStrArray,
  isUint,
  type FieldCheck,
  type Shapes,
} from './codec.js';

const isPosition: FieldCheck = (v) => isPlainRecord(v) && isStr(v['e']) && isUint(v['s']);
const isFilter: FieldCheck = (v) =>
  isPlainRecord(v) &&
  (v['l'] === undefined || v['l'] === null || isStrArray(v['l'])) &&
  (v['la'] === undefined || v['la'] === null || typeof v['la'] === 'boolean') &&
  (v['k'] === undefined || v['k'] === null || isStrArray(v['k']));

/**
 * The frames a client sends (ping and pong go both ways): all the broker's decoder knows. A
 * broker→client frame (an event, an ack) is `unknown_type` here, like a type nobody defined.
 */
const clientShapes: Shapes = new Map([
  [FrameType.hello, { req: [['v', isUint]], opt: [['u', isStr], ['tk', isStr], ['s', isStr], ['rp', isPosition]] }],
  [FrameType.auth, { req: [['r', isUint], ['tk', isStr]], opt: [] }],
  // A filter's types are checked here, its bounds by canonicalFilter (bad_filter).
  [FrameType.subscribe, { req: [['r', isUint], ['p', isStr]], opt: [['f', isFilter], ['w', isUint], ['g', isStr], ['pe', isBool]] }],
  [FrameType.unsubscribe, { req: [['r', isUint], ['p', isStr]], opt: [['f', isFilter], ['g', isStr]] }],
  [FrameType.publish, { req: [['c', isStr], ['d', isBin]], opt: [['pr', isUint], ['r', isUint], ['l', isStrArray], ['k', isStr], ['i', isStr]] }],
  [FrameType.quit, { req: [], opt: [] }],
  [FrameType.ping, { req: [], opt: [] }],
  [FrameType.pong, { req: [], opt: [] }],
  [FrameType.history, { req: [['r', isUint], ['c', isStr]], opt: [['e', isStr], ['o', isUint], ['n', isUint]] }],
  [FrameType.request, { req: [['r', isUint], ['c', isStr], ['d', isBin]], opt: [['l', isStrArray], ['k', isStr], ['to', isUint]] }],
  [FrameType.reply, { req: [['rp', isStr], ['d', isBin]], opt: [['l', isStrArray]] }],
  [FrameType.presence, { req: [['r', isUint], ['p', isStr]], opt: [['m', isBool]] }],
]);

/**
 * {@link checkFrame} against the client→broker shapes, with an `unknown_type` message that says
 * which frames a broker reads (a broker→client frame is refused like an undefined type).
 */
function checkClientFrame(value: unknown): ClientFrame {
  const t = isPlainRecord(value) ? value['t'] : undefined;
  if (typeof t === 'number' && !clientShapes.has(t)) {
    const r = value as Record<string, unknown>;
    throw new CrierError(ErrorCode.unknownType, `unknown frame type ${t}: not one a client sends a broker`, isUint(r['r']) ? (r['r'] as number) : undefined);
  }
  return checkFrame(value, clientShapes) as ClientFrame;
}

/**
 * How deep containers may nest in a field of each kind: all the decoder builds of a frame. A
 * deeper one (a list where a string belongs) is skipped unbuilt and fails its check.
 */
const nestingOf: ReadonlyMap<FieldCheck, number> = new Map([
  [isUint, 0], [isStr, 0], [isBin, 0], [isBool, 0], [isStrArray, 1], [isFilter, 2],
]);

/** The fields the decoder builds, per frame type and for all types together; others are skipped. */
const frameFields: FrameFields = (() => {
  const any: Record<string, number> = { t: 0 };
  const byType: Record<string, number>[] = [];
  for (const [type, { req, opt }] of clientShapes) {
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

/**
 * Decodes one frame from an untrusted peer (a client) and checks it against `limits` and its
 * type's shape, like {@link decodeFrame} but for the client→broker frames (hello, auth,
 * subscribe, unsubscribe, publish, quit, ping, pong, history; any other type is `unknown_type`),
 * and also: only the fields its type uses are built (others are
 * skipped), at most `limits.maxValues` values are visited, and a frame that is not a map is
 * refused at its first byte. Throws a {@link CrierError} (`frame_too_large`, `bad_frame` or
 * `unknown_type`) and nothing else; when the frame's request id could be read, the error carries it.
 */
export function decodeUntrustedFrame(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): ClientFrame {
  if (bytes.length > limits.maxFrameBytes) {
    throw new CrierError(ErrorCode.frameTooLarge, `frame of ${bytes.length} bytes exceeds ${limits.maxFrameBytes}`);
  }
  const reader = new BudgetedReader(bytes, limits);
  let value: unknown;
  try {
    value = reader.frame(frameFields);
  } catch (err) {
    throw codecError(err);
  }
  if (reader.pos !== bytes.length) throw new CrierError(ErrorCode.badFrame, 'malformed frame: trailing bytes after frame');
  return checkClientFrame(value);
}

/**
 * Decodes every frame of one WebSocket message from an untrusted peer (the broker reading a
 * client) like {@link decodeFrames}, each frame held to every limit of `limits` as in
 * {@link decodeUntrustedFrame}: `maxValues` and `maxFrameBytes` count per frame. The frames of
 * one message hold {@link MAX_MESSAGE_VALUES} values at most: past it, the frames visited so far
 * stand and the rest is refused (`frame_too_large`) without being decoded.
 */
export function decodeUntrustedFrames(bytes: Uint8Array, limits: DecodeLimits, visit: (frame: ClientFrame) => void): void {
  const reader = new BudgetedReader(bytes, limits);
  let values = 0;
  while (reader.pos < bytes.length) {
    if (values >= MAX_MESSAGE_VALUES) {
      throw new CrierError(ErrorCode.frameTooLarge, `malformed frame: more than ${MAX_MESSAGE_VALUES} values in one message: the rest of it is not read`);
    }
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
    values += reader.values;
    visit(checkClientFrame(value));
  }
}
