import { CrierError, ErrorCode, FrameType, isErrorCode, type AckFrame, type ClientFrame, type ErrorFrame, type EventsFrame, type ReplyAnswerFrame } from '@crier/protocol';
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
 * timeout error, `ms` is how long it waits (default: requestTimeout). False (nothing sent,
 * nothing pending) when not connected.
 */
export type SendRequest = <T = AckFrame>(frame: (r: number) => ClientFrame, answer: Answer<T>, what: string, ms?: number) => boolean;

interface Entry {
  /** Resolved with the frame that answers it, whose type the request knows. */
  answer: Answer<never>;
  /** When it times out (the clock's `now()`), and after how long, and what it is (for the error). */
  due: number;
  ms: number;
  what: string;
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
 *
 * One timer serves them all: it is set for the earliest deadline, and when it fires it rejects
 * what is due and is set again for the next one. An answered request costs no timer call at all
 * (a timer per request was a measurable part of a publisher's cost).
 */
export class PendingRequests {
  private nextId = 1;
  private readonly waiting = new Map<number, Entry>();
  private timer: unknown;
  /** When the timer fires; Infinity when it is not set. */
  private timerAt = Infinity;

  constructor(
    private readonly clock: Timers,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Registers a request about to be sent; returns its id. `what` names it in a timeout error;
   * `ms` (default: the client's requestTimeout) is how long it waits.
   */
  add<T>(answer: Answer<T>, what: string, ms = this.timeoutMs): number {
    const id = this.nextId++;
    const due = this.clock.now() + ms;
    this.waiting.set(id, { answer, due, ms, what });
    if (due < this.timerAt) this.arm(due);
    return id;
  }

  private arm(due: number): void {
    this.clock.clearTimeout(this.timer);
    this.timerAt = due;
    this.timer = this.clock.setTimeout(this.sweep, due - this.clock.now());
  }

  private disarm(): void {
    this.clock.clearTimeout(this.timer);
    this.timerAt = Infinity;
  }

  private readonly sweep = (): void => {
    this.timerAt = Infinity;
    const now = this.clock.now();
    let next = Infinity;
    for (const [id, entry] of this.waiting) {
      if (entry.due > now) next = Math.min(next, entry.due);
      else {
        this.waiting.delete(id);
        entry.answer.reject(new CrierError(ErrorCode.timeout, `no answer to ${entry.what} within ${entry.ms} ms`, id));
      }
    }
    // A rejection may have sent (and timed) a request already: only an earlier one moves the timer.
    if (next < this.timerAt) this.arm(next);
  };

  /**
   * Settles the request an `ack`, `error`, `events` or `reply` frame answers (any other frame,
   * and one that answers no request waiting, changes nothing); a request's `rewound` hook takes
   * an `events` frame without settling it.
   */
  settle(frame: AckFrame | ErrorFrame | EventsFrame | ReplyAnswerFrame): void {
    const id = frame.r!;
    const entry = this.waiting.get(id);
    if (!entry) return;
    if (frame.t === FrameType.events && entry.answer.rewound) return entry.answer.rewound(frame);
    this.waiting.delete(id);
    if (!this.waiting.size) this.disarm(); // nothing waits: no timer either
    if (frame.t === FrameType.error) entry.answer.reject(errorFromFrame(frame));
    else entry.answer.resolve(frame as never);
  }

  /** Rejects every request (the connection dropped, or the client closed). */
  rejectAll(code: ErrorCode, message: string): void {
    const entries = [...this.waiting];
    this.waiting.clear();
    this.disarm();
    for (const [id, entry] of entries) entry.answer.reject(new CrierError(code, message, id));
  }
}
