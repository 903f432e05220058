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
  private encodings: unknown[] | undefined;
  private bytes: Uint8Array | undefined;

  constructor(
    readonly channel: string,
    /**
     * The published bytes; `undefined` for an event read back from history, whose data is read
     * from its frame only if an encoding other than the frame needs it (a WebSocket replay never does).
     */
    data: Uint8Array | undefined,
    /** Unique within the engine's epoch, opaque. */
    readonly id: string,
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
  ) {
    this.bytes = data;
    this.frame = frame ?? encodeFrame({ t: FrameType.event, c: channel, d: data ?? new Uint8Array(0), id, o: offset, e: epoch, s: seq, ts: time, l: labels, k: key });
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
