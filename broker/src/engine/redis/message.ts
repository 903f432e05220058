import { DEFAULT_DECODE_LIMITS, FrameType, decodeFrame, encodeFrame, type DecodeLimits } from '@crier/protocol';
import type { PublishRequest } from '../engine.js';
import { StreamEvent } from '../stream-event.js';

// How an event travels through Redis: `<seq> <offset> <channel epoch> <time>|` (the header the
// publish script writes) followed by the publisher's payload: the queue group choices when the
// channel matches a group (`g<name> <pattern> <instance>,…|`, see groups.ts), then an event
// frame holding the channel, data, labels and key (its sequencing fields still empty).

/** What the publish script gave an event. */
export interface Header {
  seq: number;
  offset: number;
  epoch: string;
  time: number;
}

const BAR = 0x7c; // '|'
const G = 0x67; // 'g': queue group choices

/** The publisher's part of the message: the request as an event frame, not sequenced yet. */
export function encodePayload(request: PublishRequest): Uint8Array {
  return encodeFrame({
    t: FrameType.event, c: request.channel, d: request.data, id: '', o: 0, e: '', s: 0, ts: 0, l: request.labels, k: request.key,
    pr: request.priority === 1 ? 1 : undefined,
  });
}

/** Parses `<seq> <offset> <epoch> <time>` (no bar). */
export function parseHeader(text: string): Header {
  const [seq, offset, epoch, time] = text.split(' ');
  return { seq: Number(seq), offset: Number(offset), epoch: epoch!, time: Number(time) };
}

/** Where a message's payload starts: after the header's bar, and after the queue group choices if any. */
function payloadStart(message: Uint8Array): number {
  const bar = message.indexOf(BAR);
  if (bar < 0) throw new Error('not a crier message: no header');
  if (message[bar + 1] !== G) return bar + 1; // a frame starts with a map's byte, never 'g'
  const end = message.indexOf(BAR, bar + 1);
  if (end < 0) throw new Error('not a crier message: queue group choices without their end');
  return end + 1;
}

/** Limits for decoding payloads: as large as the broker's payloads may be. */
export function payloadLimits(maxPayload: number): DecodeLimits {
  const bytes = Math.max(DEFAULT_DECODE_LIMITS.maxFrameBytes, maxPayload + 65_536);
  return { ...DEFAULT_DECODE_LIMITS, maxFrameBytes: bytes, maxBinLength: bytes };
}

/** The event a message carries. */
export function messageEvent(message: Uint8Array, limits: DecodeLimits): StreamEvent {
  const start = payloadStart(message);
  const header = parseHeader(Buffer.from(message.buffer, message.byteOffset, message.indexOf(BAR)).toString('latin1'));
  const frame = decodeFrame(message.subarray(start), limits);
  if (frame.t !== FrameType.event) throw new Error('not a crier message: its payload is not an event');
  return sequenced(frame.c, frame.d, frame.l, frame.k, header, frame.pr === 1 ? 1 : 0);
}

/** The event of `request` as the publish script sequenced it. */
export function requestEvent(request: PublishRequest, header: Header): StreamEvent {
  return sequenced(request.channel, request.data, request.labels, request.key, header, request.priority === 1 ? 1 : 0);
}

function sequenced(
  channel: string, data: Uint8Array, labels: string[] | undefined, key: string | undefined, h: Header, priority: number,
): StreamEvent {
  return new StreamEvent(channel, data, eventId(h), h.offset, h.epoch, h.seq, h.time, labels, key, undefined, priority);
}

/**
 * An event's id: unique in the stream epoch, the same on every node. A channel epoch is
 * `<stream epoch>.<seq it began at>`, so the stream epoch is read from it.
 */
export function eventId(h: Header): string {
  return `${h.epoch.slice(0, h.epoch.indexOf('.'))}-${h.seq.toString(36)}`;
}
