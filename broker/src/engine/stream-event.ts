import { FrameType, decodeFrame, encodeFrame, type EventFrame } from '@crier/protocol';

/**
 * A way to put an event on the wire (the SSE text, the in-process event object): each is made at
 * most once per event, by the first subscriber that needs it, and shared by every other one.
 */
export abstract class Encoding<T> {
  private static slots = 0;
  /** Where an event keeps this encoding once made. */
  readonly slot = Encoding.slots++;
  abstract encode(event: StreamEvent): T;
}

/**
 * One sequenced event, as the publish pipeline carries it from the engine to every subscriber and
 * as history keeps it: its fields, its place in the broker's stream (`seq`), and its event frame,
 * encoded once and sent (or replayed) as is to every WebSocket subscriber.
 */
export class StreamEvent {
  /** The msgpack `event` frame: the WebSocket encoding, made with the event (history stores it). */
  readonly frame: Uint8Array;
  /**
   * The frame as one binary WebSocket message (its unmasked header, then the frame, which is a
   * view into it), for a connection that sends this event alone in a turn; `undefined` for an
   * event read back from history. Made with the frame, in the same buffer: the common turn of a
   * subscriber (one event) is written as is, with no copy and no allocation per recipient.
   */
  readonly message: Buffer | undefined;
  private encodings: unknown[] | undefined;
  private bytes: Uint8Array | undefined;
  /** Its id, once made (see {@link id}). */
  private madeId: string | undefined;
  private readonly names: EventNames | undefined;

  constructor(
    readonly channel: string,
    /**
     * The published bytes; `undefined` for an event read back from history, whose data is read
     * from its frame only if an encoding other than the frame needs it (a WebSocket replay never does).
     */
    data: Uint8Array | undefined,
    /**
     * Its id (unique within the engine's epoch, opaque), or the {@link EventNames} of its channel
     * in the memory engine, which make the id from `seq` (see {@link id}).
     */
    id: string | EventNames,
    /** Position in the channel: 1, 2, 3… within the channel's epoch. */
    readonly offset: number,
    /** The channel's epoch: when it changes, offsets restarted at 1. */
    readonly epoch: string,
    /** Position in the engine's whole stream (every channel), increasing within the engine's epoch. */
    readonly seq: number,
    /** Publish time, ms since the Unix epoch. */
    readonly time: number,
    readonly labels: string[] | undefined,
    readonly key: string | undefined,
    frame?: Uint8Array,
    /**
     * 1: published with high priority (the frame carries `pr: 1`), sent in each connection's high
     * lane. An event restored from history says 0: a replay goes in stream order anyway.
     */
    readonly priority = 0,
    /**
     * Where its message is written (`size` bytes, never written again by anyone): the memory
     * engine gives room in its channel's history (see ChannelStore.reserve). By default, a buffer
     * of its own.
     */
    allocate?: (size: number) => Buffer,
  ) {
    this.bytes = data;
    if (typeof id === 'string') {
      this.madeId = id;
      this.names = undefined;
    } else {
      this.names = id;
    }
    if (frame !== undefined) {
      this.frame = frame;
      this.message = undefined;
    } else {
      const message = eventMessage(channel, data ?? EMPTY, this.names, this.madeId, offset, epoch, seq, time, labels, key, priority, allocate ?? ownBuffer);
      this.message = message;
      // The header's second byte tells its size (126: 2 more bytes of length, 127: 8 more).
      this.frame = message.subarray(message[1]! < 126 ? 2 : message[1] === 126 ? 4 : 10);
    }
  }

  /**
   * Unique within the engine's epoch, opaque. With {@link EventNames}, made on first use: the
   * frame has its bytes already, and most events are never asked for it (an ack, a log line and
   * the HTTP history are; a fire-and-forget publish's event is not).
   */
  get id(): string {
    return (this.madeId ??= memoryEventId(this.names!.idPrefix, this.seq));
  }

  /** The published bytes (never decoded by the broker). */
  get data(): Uint8Array {
    return (this.bytes ??= (decodeFrame(this.frame) as EventFrame).d);
  }

  /** The event in `encoding`, made on first use. */
  as<T>(encoding: Encoding<T>): T {
    const cache = (this.encodings ??= []);
    let value = cache[encoding.slot] as T | undefined;
    if (value === undefined) cache[encoding.slot] = value = encoding.encode(this);
    return value;
  }
}

const EMPTY = new Uint8Array(0);

/**
 * The memory engine's id of the event at stream position `seq`: its store's id prefix (the stream
 * epoch and `-`), then `seq - 1` in base 36. The one rule: writeId writes the same characters.
 */
export function memoryEventId(idPrefix: string, seq: number): string {
  return idPrefix + (seq - 1).toString(36);
}

/**
 * A channel's names as the memory engine writes them into each of its events, encoded once per
 * channel: the channel and its epoch as msgpack strings, and the event id's prefix (the stream
 * epoch and `-`), which `seq - 1` in base 36 follows. In bench W3 (1000 channels, one recipient
 * per event), measuring and writing these three strings per event, and making the id's string
 * (a template and a toString(36)), were ~200 of ~360 ns of the frame's encoding (micro-benchmark).
 */
export interface EventNames {
  /** The channel's msgpack string, then the epoch's, then the id prefix's characters (no header). */
  readonly bytes: Uint8Array;
  /** Where the channel's string ends in {@link bytes}, and the epoch's. */
  readonly channelEnd: number;
  readonly epochEnd: number;
  readonly idPrefix: string;
}

/**
 * The {@link EventNames} of `channel` in its epoch `epoch`, ids starting with `idPrefix`;
 * `undefined` when one of them is not ASCII (such events are encoded from their strings).
 */
export function eventNames(channel: string, epoch: string, idPrefix: string): EventNames | undefined {
  const c = asciiSize(channel);
  const e = asciiSize(epoch);
  const i = asciiSize(idPrefix);
  if (c < 0 || e < 0 || i < 0) return undefined;
  // One small array per channel (V8 keeps one of up to 64 bytes in its heap, no backing store).
  const bytes = new Uint8Array(c + e + idPrefix.length);
  writeAscii(bytes, 0, channel);
  writeAscii(bytes, c, epoch);
  for (let j = 0; j < idPrefix.length; j++) bytes[c + e + j] = idPrefix.charCodeAt(j);
  return { bytes, channelEnd: c, epochEnd: c + e, idPrefix };
}

/** Copies `from[start..end)` to `out` at `at`: a loop, as these are a few bytes (see {@link key1}). */
function copyBytes(out: Uint8Array, at: number, from: Uint8Array, start: number, end: number): number {
  for (let j = start; j < end; j++) out[at++] = from[j]!;
  return at;
}

/** Bytes of the header of an unmasked WebSocket message of `n` payload bytes. */
export function messageHeaderSize(n: number): number {
  return n < 126 ? 2 : n < 0x10000 ? 4 : 10;
}

/** Writes the header of an unmasked binary WebSocket message of `n` bytes at `at`; returns where the payload starts. */
export function writeMessageHeader(out: Uint8Array, at: number, n: number): number {
  out[at] = 0x82; // FIN, opcode 2 (binary), unmasked
  if (n < 126) {
    out[at + 1] = n;
    return at + 2;
  }
  if (n < 0x10000) {
    out[at + 1] = 126;
    out[at + 2] = n >>> 8;
    out[at + 3] = n & 0xff;
    return at + 4;
  }
  out[at + 1] = 127;
  const high = Math.floor(n / 0x100000000);
  const low = n >>> 0;
  out[at + 2] = high >>> 24;
  out[at + 3] = (high >>> 16) & 0xff;
  out[at + 4] = (high >>> 8) & 0xff;
  out[at + 5] = high & 0xff;
  out[at + 6] = low >>> 24;
  out[at + 7] = (low >>> 16) & 0xff;
  out[at + 8] = (low >>> 8) & 0xff;
  out[at + 9] = low & 0xff;
  return at + 10;
}

// ---- the event frame, encoded in one pass -------------------------------------------------
//
// The same bytes as the protocol's encodeFrame({ t: event, c, d, id, o, e, s, ts, l, k, pr }) (a
// test holds them equal), written straight into the message buffer: its size is counted first,
// then one allocation. The generic encoder walks the frame object key by key, writes into a
// shared buffer and copies the result out; for bench W3 (one recipient per event) that walk and
// copy, plus the copy into each connection's message, were ~6% of the broker's time. Anything
// the fast path does not cover (a non-ASCII string, a number that is not a safe non-negative
// integer) goes through encodeFrame.

/** msgpack bytes of a string of `n` ASCII characters; -1 when `s` is not ASCII. */
function asciiSize(s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) >= 0x80) return -1;
  return (n <= 31 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5) + n;
}

/** msgpack bytes of a non-negative safe integer; -1 for any other number. */
function uintSize(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) return -1;
  return n < 0x80 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9;
}

function writeAscii(out: Uint8Array, at: number, s: string): number {
  const n = s.length;
  if (n <= 31) out[at++] = 0xa0 | n;
  else if (n < 0x100) {
    out[at++] = 0xd9;
    out[at++] = n;
  } else if (n < 0x10000) {
    out[at++] = 0xda;
    out[at++] = n >>> 8;
    out[at++] = n & 0xff;
  } else {
    out[at++] = 0xdb;
    at = writeUint32(out, at, n);
  }
  for (let i = 0; i < n; i++) out[at++] = s.charCodeAt(i);
  return at;
}

function writeUint32(out: Uint8Array, at: number, n: number): number {
  out[at] = n >>> 24;
  out[at + 1] = (n >>> 16) & 0xff;
  out[at + 2] = (n >>> 8) & 0xff;
  out[at + 3] = n & 0xff;
  return at + 4;
}

function writeUint(out: Uint8Array, at: number, n: number): number {
  if (n < 0x80) out[at++] = n;
  else if (n < 0x100) {
    out[at++] = 0xcc;
    out[at++] = n;
  } else if (n < 0x10000) {
    out[at++] = 0xcd;
    out[at++] = n >>> 8;
    out[at++] = n & 0xff;
  } else if (n < 0x100000000) {
    out[at++] = 0xce;
    at = writeUint32(out, at, n);
  } else {
    out[at++] = 0xcf;
    at = writeUint32(out, at, Math.floor(n / 0x100000000));
    at = writeUint32(out, at, n >>> 0);
  }
  return at;
}

/**
 * A key of one character at `at` (a fixstr: 0xa1, the character), written byte by byte: a
 * TypedArray `set` of one or two bytes is a builtin call, and an event frame has eight keys
 * (~130 ns per event, measured alone).
 */
function key1(out: Uint8Array, at: number, a: number): number {
  out[at] = 0xa1;
  out[at + 1] = a;
  return at + 2;
}

/** A key of two characters at `at` (see {@link key1}). */
function key2(out: Uint8Array, at: number, a: number, b: number): number {
  out[at] = 0xa2;
  out[at + 1] = a;
  out[at + 2] = b;
  return at + 3;
}

/** A key of the event frame: its msgpack bytes (a fixstr), for the sizes. */
function key(k: string): Uint8Array {
  const b = new Uint8Array(1 + k.length);
  writeAscii(b, 0, k);
  return b;
}
const K_T = key('t');
const K_C = key('c');
const K_D = key('d');
const K_ID = key('id');
const K_O = key('o');
const K_E = key('e');
const K_S = key('s');
const K_TS = key('ts');
const K_L = key('l');
const K_K = key('k');
const K_PR = key('pr');
const FIXED_KEYS = K_T.length + K_C.length + K_D.length + K_ID.length + K_O.length + K_E.length + K_S.length + K_TS.length;

/**
 * `size` bytes in a buffer of their own: not pooled, as whoever keeps the frame (history) would
 * keep a pool's whole slab alive. (Each costs an ArrayBuffer, its backing store allocated, tracked
 * and freed by the collector: in bench W3, ~4% of the broker's time and more in collections,
 * which is why the memory engine gives its own room instead.)
 */
const ownBuffer = (size: number): Buffer => Buffer.allocUnsafeSlow(size);

/** Digits of `n` (a non-negative safe integer) in base 36. */
function base36Digits(n: number): number {
  let digits = 1;
  for (let x = n; x >= 36; x = Math.floor(x / 36)) digits++;
  return digits;
}

const BASE36 = new TextEncoder().encode('0123456789abcdefghijklmnopqrstuvwxyz');

/**
 * The id of `names` for `n` (its prefix, then `n` in base 36, as toString(36) writes it) as a
 * msgpack string of `length` characters.
 */
function writeId(out: Uint8Array, at: number, names: EventNames, n: number, length: number): number {
  if (length <= 31) out[at++] = 0xa0 | length;
  else {
    out[at++] = 0xd9;
    out[at++] = length;
  }
  const digitsAt = copyBytes(out, at, names.bytes, names.epochEnd, names.bytes.length);
  const end = at + length;
  for (let j = end - 1, x = n; j >= digitsAt; j--) {
    out[j] = BASE36[x % 36]!;
    x = Math.floor(x / 36);
  }
  return end;
}

/**
 * The event frame as one WebSocket message: header, then the msgpack frame. With `names`, the
 * channel, epoch and id are written from them (`id` is unused); without, from the strings.
 */
function eventMessage(
  channel: string, data: Uint8Array, names: EventNames | undefined, id: string | undefined, offset: number, epoch: string, seq: number,
  time: number, labels: string[] | undefined, key: string | undefined, priority: number, allocate: (size: number) => Buffer,
): Buffer {
  const t = FrameType.event;
  const d = data.length;
  const dHead = d < 0x100 ? 2 : d < 0x10000 ? 3 : 5;
  const o = uintSize(offset);
  let c: number;
  let e: number;
  let i: number;
  let idLength = 0;
  if (names !== undefined) {
    c = names.channelEnd;
    e = names.epochEnd - names.channelEnd;
    // (The memory engine's ids are short: a prefix of 11 characters, at most 11 digits.)
    idLength = Number.isSafeInteger(seq) && seq >= 1 ? names.idPrefix.length + base36Digits(seq - 1) : 256;
    i = idLength < 256 ? (idLength <= 31 ? 1 : 2) + idLength : -1; // -1: the generic encoder
  } else {
    c = asciiSize(channel);
    e = asciiSize(epoch);
    i = asciiSize(id!);
  }
  const s = uintSize(seq);
  const ts = uintSize(time);
  let fast = c > 0 && i > 0 && o > 0 && e > 0 && s > 0 && ts > 0;
  let size = 1 + FIXED_KEYS + uintSize(t) + c + dHead + d + i + o + e + s + ts;
  let fields = 8;
  if (labels !== undefined) {
    fields++;
    size += K_L.length + (labels.length <= 15 ? 1 : labels.length < 0x10000 ? 3 : 5);
    for (let j = 0; j < labels.length && fast; j++) {
      const l = asciiSize(labels[j]!);
      if (l < 0) fast = false;
      size += l;
    }
  }
  if (key !== undefined) {
    fields++;
    const k = asciiSize(key);
    if (k < 0) fast = false;
    size += K_K.length + k;
  }
  // Only a high-priority event carries `pr` (1): a normal one is as it always was, byte for byte.
  if (priority === 1) {
    fields++;
    size += K_PR.length + 1;
  }
  if (!fast) {
    id ??= memoryEventId(names!.idPrefix, seq);
    const frame = encodeFrame({ t, c: channel, d: data, id, o: offset, e: epoch, s: seq, ts: time, l: labels, k: key, pr: priority === 1 ? 1 : undefined });
    const out = allocate(messageHeaderSize(frame.length) + frame.length);
    out.set(frame, writeMessageHeader(out, 0, frame.length));
    return out;
  }
  const out = allocate(messageHeaderSize(size) + size);
  let at = writeMessageHeader(out, 0, size);
  out[at++] = 0x80 | fields;
  at = key1(out, at, 0x74);
  at = writeUint(out, at, t);
  at = key1(out, at, 0x63);
  if (names !== undefined) {
    at = copyBytes(out, at, names.bytes, 0, names.channelEnd);
  } else {
    at = writeAscii(out, at, channel);
  }
  at = key1(out, at, 0x64);
  if (d < 0x100) {
    out[at++] = 0xc4;
    out[at++] = d;
  } else if (d < 0x10000) {
    out[at++] = 0xc5;
    out[at++] = d >>> 8;
    out[at++] = d & 0xff;
  } else {
    out[at++] = 0xc6;
    at = writeUint32(out, at, d);
  }
  out.set(data, at);
  at += d;
  at = key2(out, at, 0x69, 0x64);
  at = names !== undefined ? writeId(out, at, names, seq - 1, idLength) : writeAscii(out, at, id!);
  at = key1(out, at, 0x6f);
  at = writeUint(out, at, offset);
  at = key1(out, at, 0x65);
  if (names !== undefined) {
    at = copyBytes(out, at, names.bytes, names.channelEnd, names.epochEnd);
  } else {
    at = writeAscii(out, at, epoch);
  }
  at = key1(out, at, 0x73);
  at = writeUint(out, at, seq);
  at = key2(out, at, 0x74, 0x73);
  at = writeUint(out, at, time);
  if (labels !== undefined) {
    at = key1(out, at, 0x6c);
    const n = labels.length;
    if (n <= 15) out[at++] = 0x90 | n;
    else if (n < 0x10000) {
      out[at++] = 0xdc;
      out[at++] = n >>> 8;
      out[at++] = n & 0xff;
    } else {
      out[at++] = 0xdd;
      at = writeUint32(out, at, n);
    }
    for (const l of labels) at = writeAscii(out, at, l);
  }
  if (key !== undefined) {
    at = key1(out, at, 0x6b);
    at = writeAscii(out, at, key);
  }
  if (priority === 1) {
    at = key2(out, at, 0x70, 0x72);
    out[at++] = 1;
  }
  if (at !== out.length) throw new Error(`event frame: wrote ${at} bytes of ${out.length}`);
  return out;
}
