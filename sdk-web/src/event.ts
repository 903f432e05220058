import type { EventMaker } from '@crier/protocol';
import type { CrierEvent } from './types.js';

/**
 * One event as handlers get it, made straight from its frame's fields by the decoder (protocol's
 * `decodeFrames` with a maker): one object per event, of one shape, and no copy of a frame
 * object. Absent labels, key and reply token are `undefined`.
 */
export class Event implements CrierEvent {
  constructor(
    readonly channel: string,
    readonly data: Uint8Array,
    readonly id: string,
    readonly offset: number,
    readonly epoch: string,
    readonly time: number,
    readonly labels: string[] | undefined,
    readonly key: string | undefined,
    readonly replyTo: string | undefined,
    readonly priority?: 'high',
  ) {}
}

/** The maker of {@link Event}s, for retained events (history, rewinds): their `s` is not used. */
export const makeEvent: EventMaker<Event> = (c, d, id, o, e, ts, _s, l, k, rp, pr) => new Event(c, d, id, o, e, ts, l, k, rp, high(pr));

/** `'high'` for a frame's `pr` of 1 (a high-priority event), else `undefined`. */
export const high = (pr: number | undefined): 'high' | undefined => (pr ? 'high' : undefined);
