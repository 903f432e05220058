import { CrierError, ErrorCode, FrameType, isErrorCode, type AckFrame, type ClientFrame, type ErrorFrame, type EventsFrame } from '@crier/protocol';
import type { Timers } from './types.js';

/**
 * What a request does with its answer: an `ack` (`T`: `AckFrame`), or the `events` frame that
 * answers a `history` request (`T`: `EventsFrame`).
 */
export interface Answer<T = AckFrame> {
  resolve(answer: T): void;
  reject(error: CrierError): void;
  /**
   * An `events` frame for a request that waits on for its `ack` (a subscribe's rewind, which the
   * broker sends before it); without this, an `events` frame is the answer.
   */
  rewound?(frame: EventsFrame): void;
}

/**
 * Sends a request when connected: `frame` makes it with its request id, `what` names it in a
 * timeout error. False (nothing sent, nothing pending) when not connected.
 */
export type SendRequest = <T = AckFrame>(frame: (r: number) => ClientFrame, answer: Answer<T>, what: string) => boolean;

interface Entry {
  /** Resolved with the frame that answers it, whose type the request knows. */
  answer: Answer<never>;
  timer: unknown;
}

/** The broker's error frame as a `CrierError`; a code this SDK does not know becomes `internal`. */
export function errorFromFrame(frame: ErrorFrame): CrierError {
  const code = isErrorCode(frame.code) ? frame.code : ErrorCode.internal;
  const message = code === frame.code ? frame.msg : `${frame.code}: ${frame.msg}`;
  return new CrierError(code, message, frame.r);
}

/**
 * Whether a request failed because the connection or the client went away (`disconnected`,
 * `closed`) rather than because the broker refused it.
 */
export function isLoss(error: CrierError): boolean {
  return error.code === ErrorCode.disconnected || error.code === ErrorCode.closed;
}

/**
 * Requests waiting for their `ack` or `error`, by request id. Each one rejects with `timeout`
 * when no answer comes in time. Ids count up per client and are never reused, so a late answer
 * to a request that already timed out (or was rejected on a disconnect) finds nothing and is
 * ignored.
 */
export class PendingRequests {
  private nextId = 1;
  private readonly waiting = new Map<number, Entry>();

  constructor(
    private readonly clock: Timers,
    private readonly timeoutMs: number,
  ) {}

  /** Registers a request about to be sent; returns its id. `what` names it in a timeout error. */
  add<T>(answer: Answer<T>, what: string): number {
    const id = this.nextId++;
    const timer = this.clock.setTimeout(() => {
      this.waiting.delete(id);
      answer.reject(new CrierError(ErrorCode.timeout, `no answer to ${what} within ${this.timeoutMs} ms`, id));
    }, this.timeoutMs);
    this.waiting.set(id, { answer, timer });
    return id;
  }

  /**
   * Settles the request an `ack`, `error` or `events` frame answers (any other frame, and one
   * that answers no request waiting, changes nothing); a request's `rewound` hook takes an
   * `events` frame without settling it.
   */
  settle(frame: AckFrame | ErrorFrame | EventsFrame): void {
    const id = frame.r!;
    const entry = this.waiting.get(id);
    if (!entry) return;
    if (frame.t === FrameType.events && entry.answer.rewound) return entry.answer.rewound(frame);
    this.waiting.delete(id);
    this.clock.clearTimeout(entry.timer);
    if (frame.t === FrameType.error) entry.answer.reject(errorFromFrame(frame));
    else entry.answer.resolve(frame as never);
  }

  /** Rejects every request (the connection dropped, or the client closed). */
  rejectAll(code: ErrorCode, message: string): void {
    const entries = [...this.waiting];
    this.waiting.clear();
    for (const [id, entry] of entries) {
      this.clock.clearTimeout(entry.timer);
      entry.answer.reject(new CrierError(code, message, id));
    }
  }
}
