import type { Clock, TimerHandle } from '../clock.js';
import type { Connection, DeferredMessage } from './connection.js';

/** Handles one client message (frame-handlers' handleMessage, given by the broker's composition). */
export type MessageHandler = (conn: Connection, bytes: Buffer, isBinary: boolean) => void;

/**
 * Frames one connection gets handled per event-loop turn. Past it (or past
 * {@link READ_BUDGET_BYTES}), its socket is paused until the next turn. One connection publishing
 * ~300 k events/s raised another client's p50 latency from 0.6 ms to 150 ms (issue 9, finding 6):
 * every message it had sent was handled before anyone else's.
 */
export const READ_BUDGET_FRAMES = 256;
// (One message holds at most as many frames: MAX_FRAMES_PER_MESSAGE in frame-handlers.)
/** Bytes of messages one connection gets handled per event-loop turn (see READ_BUDGET_FRAMES). */
export const READ_BUDGET_BYTES = 1024 * 1024;
/**
 * Fair reading: every connection gets a budget of frames and bytes per event-loop turn. A
 * connection that spends it is paused (`ws.pause()`, so the kernel's buffers fill and TCP slows
 * the sender, nobody else), and the messages `ws` had already read from its socket wait, in
 * order, for the next turn, when the budget renews and the socket reads again. A turn is ended by
 * one setImmediate, scheduled by the first message that arrives in it.
 */
export class ReadTurns {
  /** Advanced once per event-loop turn in which a client message arrived. */
  turn = 0;
  private throttled: Connection[] = [];
  private spare: Connection[] = [];
  private immediate: TimerHandle | undefined;
  private readonly endTurnBound = (): void => this.endTurn();

  constructor(
    private readonly handleMessage: MessageHandler,
    private readonly clock: Clock,
  ) {}

  /** One message from a client: handled now, or deferred while its connection is paused. */
  read(conn: Connection, bytes: Buffer, isBinary: boolean): void {
    if (conn.deferred !== undefined) {
      conn.deferred.push({ bytes, isBinary });
      return;
    }
    if (conn.readTurn !== this.turn) {
      conn.readTurn = this.turn;
      conn.readFrames = 0;
      conn.readBytes = 0;
      this.immediate ??= this.clock.defer(this.endTurnBound);
    }
    conn.messageFrames = 0;
    this.handleMessage(conn, bytes, isBinary);
    conn.readFrames += conn.messageFrames;
    conn.readBytes += bytes.length;
    if ((conn.readFrames >= READ_BUDGET_FRAMES || conn.readBytes >= READ_BUDGET_BYTES) && conn.state !== 'freed') this.throttle(conn);
  }

  /** Connections paused until the next turn right now. */
  get pausedCount(): number {
    return this.throttled.length;
  }

  /** Stops the pending end of turn (the broker is closed). */
  dispose(): void {
    if (this.immediate !== undefined) this.clock.clearDefer(this.immediate);
    this.immediate = undefined;
  }

  private throttle(conn: Connection): void {
    conn.deferred = [];
    conn.ws.pause();
    this.throttled.push(conn);
    this.immediate ??= this.clock.defer(this.endTurnBound);
  }

  private endTurn(): void {
    this.immediate = undefined;
    this.turn++;
    const list = this.throttled;
    this.throttled = this.spare;
    this.spare = list;
    for (let i = 0; i < list.length; i++) {
      const conn = list[i]!;
      const waiting: DeferredMessage[] = conn.deferred!;
      conn.deferred = undefined;
      let j = 0;
      while (j < waiting.length && conn.deferred === undefined && conn.state !== 'freed') {
        const m = waiting[j++]!;
        this.read(conn, m.bytes, m.isBinary);
      }
      if (conn.state === 'freed') {
        // Closed by the broker: what it sent is of no interest, but its socket must read again,
        // or the close handshake (the peer's close frame) would wait behind the pause.
        conn.ws.resume();
        continue;
      }
      if (conn.deferred !== undefined) {
        // Spent again: the rest of what it had read goes first next turn (it is paused: nothing newer).
        conn.deferred = j < waiting.length ? waiting.slice(j).concat(conn.deferred) : conn.deferred;
      } else if (conn.early === undefined) {
        conn.ws.resume(); // a hello being verified keeps its socket paused until the welcome
      }
    }
    list.length = 0;
  }
}
