import {
  CloseCode,
  CrierError,
  DEFAULT_MAX_PAYLOAD,
  FRAME_ENVELOPE_BYTES,
  FrameType,
  PROTOCOL_VERSION,
  decodeFrames,
  drainDelayOf,
  encodeClientFrame,
  ErrorCode,
  errorOfCloseReason,
  shouldReconnect,
  type BrokerFrame,
  type ClientFrame,
  type DecodeLimits,
  type EventMaker,
  type ResumeOutcome,
  type WelcomeFrame,
} from '@crier/protocol';
import { backoffDelay } from './backoff.js';
import { Credential } from './credential.js';
import { Event, high } from './event.js';
import { KeepAlive, WAKE_PROBE_GRACE_MAX } from './keep-alive.js';
import type { PageHooks } from './lifecycle.js';
import type { ResolvedOptions } from './options.js';
import type { ClientLimits, ClientSession, ClientState, StateInfo } from './types.js';
import { OPEN, toBytes, type WebSocketLike } from './websocket.js';

/**
 * Publishes written in one tick travel as one WebSocket message of frames back to back (the
 * broker reads several frames per message), up to this many; the broker reads 256 at most, and
 * a publish frame holds about 30 msgpack values at most (labels), well within its per-message
 * value budget at this count.
 */
const BATCH_FRAMES = 64;
/** High-priority events remembered above the resume position (see Connection's makeEvent). */
const AHEAD_MAX = 256;

/** What the connection tells the client. */
export interface ConnectionHooks {
  /** Reports a failure nobody awaits (getToken failed, a frame that could not be handled). */
  fail(error: CrierError): void;
  /** A `welcome` arrived: requests can be sent. Called before the state becomes `connected`. */
  welcome(): void;
  /** Any frame from the current socket but `welcome` and `ping` (answered here); an event as an {@link Event}. */
  frame(frame: BrokerFrame | Event): void;
  /** The welcome (just handled, the state `connected`) answered a resume: how it went. */
  resumed(outcome: ResumeOutcome): void;
  /** The socket was lost (`final`: the client will not reconnect). Called before the state changes. */
  down(final: boolean, info: StateInfo): void;
  changed(state: ClientState, info: StateInfo): void;
}

interface MessageLike {
  data: unknown;
}
interface CloseLike {
  code: number;
  reason: string;
}

const noop = (): void => {};

function send(socket: WebSocketLike, bytes: Uint8Array<ArrayBuffer>): void {
  try {
    socket.send(bytes);
  } catch {
    // Sending on a socket that is going away: its close event reports the loss.
  }
}

/**
 * One logical connection over a succession of sockets: opens a socket, says `hello`, waits for
 * `welcome`, answers pings, watches for silence, and after a loss decides (by close code) whether
 * to open another one after a backoff delay.
 *
 * Every socket's handlers first check that it is still the current socket, so a late `close` or
 * `message` from a socket the client already gave up on never disturbs the state.
 *
 * A page in the back/forward cache is `suspended`: no socket, state `reconnecting`, and no retry
 * until `pageBack()`.
 */
export class Connection implements PageHooks {
  state: ClientState = 'connecting';
  uuid: string | undefined;
  /** The session secret of `uuid`, from its last `welcome` (or the options). */
  secret: string | undefined;
  /** The broker's stream epoch, from the last `welcome` (or `options.resume`). */
  epoch: string | undefined;
  /** The highest stream position (`s`) of an event received in `epoch`: where a resume starts. */
  seq!: number;
  limits: ClientLimits | undefined;
  private socket: WebSocketLike | undefined;
  /** True when a `welcome` arrived on the current socket: frames sent now reach that broker. */
  welcomed = false;
  private attempt = 0;
  private retryTimer: unknown;
  private handshakeTimer: unknown;
  private keepAlive: KeepAlive | undefined;
  /**
   * The size of a frame from the broker (an event of its `maxPayload` and its envelope), from its
   * last `welcome`: all the decoder holds the broker's frames to (see protocol's decodeFrames).
   */
  decodeLimits: Pick<DecodeLimits, 'maxFrameBytes'> = { maxFrameBytes: DEFAULT_MAX_PAYLOAD + FRAME_ENVELOPE_BYTES };
  private quitting: Promise<void> | undefined;
  private socketClosed: (() => void) | undefined;
  private suspended = false;
  /** @internal */
  readonly credential: Credential;
  private readonly clock: ResolvedOptions['clock'];
  /** Publish frames written this tick, not sent yet, for `batchSocket`; and their bytes. */
  private batch: Uint8Array<ArrayBuffer>[] = [];
  private batchBytes = 0;
  private batchSocket: WebSocketLike | undefined;

  constructor(
    private readonly url: string,
    /** @internal */
    readonly options: ResolvedOptions,
    private readonly hooks: ConnectionHooks,
  ) {
    // A resumed session brings its position as well.
    ({ uuid: this.uuid, secret: this.secret, epoch: this.epoch, seq: this.seq = 0 } = (options.resume ?? options) as Partial<ClientSession>);
    this.credential = new Credential(options);
    this.clock = options.clock;
    // The first socket is opened synchronously so a bad URL throws from `connect()` itself.
    this.open(true);
  }

  /** Bytes sent on the current socket and not yet on the network (0 without a socket). */
  get bufferedAmount(): number {
    return this.socket?.bufferedAmount ?? 0;
  }

  /** Sends a frame on the current socket. False (nothing sent) when not connected. */
  send(frame: ClientFrame): boolean {
    if (!this.welcomed || !this.socket) return false;
    this.write(this.socket, frame);
    return true;
  }

  /**
   * Sends `quit`, closes the socket and never reconnects. Resolves when the socket has closed.
   * `reason` is the state change's (`quit()`, or the page's `pagehide`); the close code is 1000.
   */
  quit(reason = 'quit'): Promise<void> {
    if (this.quitting) return this.quitting;
    const info: StateInfo = { code: CloseCode.normal, reason };
    const socket = this.socket;
    this.stopTimers();
    // Set before anything user-visible happens, so a listener calling quit() again gets this promise.
    this.quitting = !socket
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          // Resolve on the close event, or after requestTimeout if a dead peer never completes it.
          const timer = this.clock.setTimeout(() => this.socketClosed?.(), this.options.requestMs);
          this.socketClosed = () => {
            this.clock.clearTimeout(timer);
            this.socket = undefined;
            this.socketClosed = undefined;
            resolve();
          };
        });
    if (socket) {
      // The quit frame goes out before the close frame, so the broker frees the stream at once.
      if (socket.readyState === OPEN) this.write(socket, { t: FrameType.quit });
      this.closeSocket(socket, CloseCode.normal, 'quit');
    }
    if (this.state !== 'closed') {
      this.hooks.down(true, info);
      this.setState('closed', info);
    }
    return this.quitting;
  }

  /**
   * Closes the socket and waits, without retrying and without closing the client, until
   * `pageBack()`: for a page entering the back/forward cache, which an open socket would keep out.
   */
  suspend(): void {
    if (this.state === 'closed' || this.suspended) return;
    this.suspended = true;
    this.abandon(CloseCode.normal, 'pagehide');
  }

  /** Reconnects now after `suspend()` (otherwise the same as `wake()`). */
  pageBack(): void {
    if (!this.suspended) return this.wake();
    this.suspended = false;
    if (this.state !== 'closed') this.retryNow();
  }

  /**
   * Checks the connection now (the page became visible, the network came back): when connected,
   * a `ping` that must be answered within `min(keepAliveInterval, 3 s)`, else the socket is taken
   * for dead and the client reconnects at once; when waiting to reconnect, tries now.
   */
  wake(): void {
    if (this.state === 'closed' || this.suspended) return;
    if (this.keepAlive) {
      const ka = this.limits?.keepAliveInterval ?? 0;
      this.keepAlive.probe(ka > 0 ? Math.min(ka, WAKE_PROBE_GRACE_MAX) : WAKE_PROBE_GRACE_MAX);
    } else if (!this.socket) this.retryNow();
    // Otherwise a socket is still opening: the handshake timeout covers it.
  }

  private retryNow(): void {
    this.clock.clearTimeout(this.retryTimer);
    this.attempt = 0;
    this.open(false);
  }

  private open(first: boolean): void {
    let socket: WebSocketLike;
    try {
      socket = new this.options.WebSocket(this.url);
    } catch (err) {
      if (first) throw err;
      return this.lost(CloseCode.abnormal, err instanceof Error ? err.message : String(err));
    }
    this.socket = socket;
    this.welcomed = false;
    // Bytes must arrive synchronously: a browser's default ('blob') would not. An implementation
    // that already hands over bytes (ws's 'nodebuffer') is left alone: asking it for ArrayBuffers
    // costs a copy per message.
    if (socket.binaryType === 'blob') socket.binaryType = 'arraybuffer';
    // The credential may come from an async getToken, asked while the socket opens: hello goes
    // out once both are there. A getToken that fails is reported, and the attempt is a loss
    // (4007: ask again before the next one), retried with backoff.
    let tk = this.credential.forHello();
    const hello = (): void => {
      // The secret of the stream we held proves a reconnect is its holder taking it back; its
      // position asks the broker to resume it (restore its subscriptions, replay what they missed).
      if (socket === this.socket && socket.readyState === OPEN && typeof tk !== 'object') {
        const e = this.epoch;
        this.write(socket, { t: FrameType.hello, v: PROTOCOL_VERSION, u: this.uuid, tk, s: this.secret, rp: e ? { e, s: this.seq } : undefined });
      }
    };
    if (typeof tk === 'object') {
      tk.then(
        (token) => {
          tk = token;
          hello();
        },
        (err: CrierError) => {
          if (socket !== this.socket) return;
          this.hooks.fail(err);
          this.abandon(CloseCode.tokenExpired, 'getToken failed');
        },
      );
    }
    socket.onopen = hello;
    socket.onmessage = (event: MessageLike) => {
      if (socket === this.socket && this.state !== 'closed') this.receive(event.data);
    };
    socket.onclose = (event: CloseLike) => {
      if (socket !== this.socket) return;
      if (this.socketClosed) this.socketClosed();
      else this.lost(event.code, event.reason);
    };
    // Errors are always followed by a close event, which is where they are handled. The listener
    // must exist anyway: `ws` throws an "Unhandled 'error' event" without one.
    socket.onerror = noop;
    const timeout = this.options.requestMs;
    this.handshakeTimer = this.clock.setTimeout(
      () => this.abandon(CloseCode.helloTimeout, `no welcome within ${timeout} ms`),
      timeout,
    );
  }

  private receive(data: unknown): void {
    const bytes = toBytes(data);
    if (!bytes) return; // a text message: crier speaks binary only
    this.keepAlive?.received();
    try {
      // A message holds one or more frames (the broker batches a tick's frames).
      decodeFrames(bytes, this.decodeLimits, this.handleFrame, this.makeEvent);
    } catch (err) {
      // The decoder checks the msgpack; the broker, the client's one trusted peer, is trusted
      // with each frame's fields: a frame that is not what its type says breaks its handling
      // here, and is reported like one the decoder refused. (Users' handlers and listeners never
      // throw into this: each runs isolated, see listeners.ts.)
      this.hooks.fail(err instanceof CrierError ? err : new CrierError(ErrorCode.badFrame, `malformed frame: ${String(err)}`));
    }
  }

  /**
   * A live event: the stream position it carries is where a resume would start. But a
   * high-priority one may have overtaken normal events below it, still on their way: it leaves
   * the position alone (a resume must bring those), and its own position is remembered, so that
   * its copy in a resume's replay is skipped (`null`): each event once across a resume. Positions
   * at or below `seq` are never replayed, and are forgotten; past {@link AHEAD_MAX} the oldest is
   * (its copy would then come twice, never be lost).
   */
  private readonly makeEvent: EventMaker<Event | null> = (c, d, id, o, e, ts, s, l, k, rp, pr) => {
    const ahead = this.ahead;
    if (s! > this.seq) {
      if (!pr) {
        this.seq = s!;
        if (ahead.size) for (const p of ahead) if (p <= s!) ahead.delete(p);
      } else if (ahead.has(s!)) return null;
      else if (ahead.add(s!).size > AHEAD_MAX) ahead.delete(ahead.values().next().value!);
    }
    return new Event(c, d, id, o, e, ts, l, k, rp, high(pr));
  };

  /** Positions of high-priority events received above `seq` (see makeEvent). */
  private readonly ahead = new Set<number>();

  private readonly handleFrame = (frame: BrokerFrame | Event | null): void => {
    if (this.state === 'closed' || !frame) return;
    if (frame instanceof Event) this.hooks.frame(frame);
    else if (frame.t === FrameType.welcome) this.welcome(frame);
    else if (frame.t === FrameType.ping) this.send({ t: FrameType.pong });
    // The client acts on `ack`, `error`, `event` and `dropped`, and ignores the rest: a `pong`
    // (already counted as a sign of life), or a client frame.
    else this.hooks.frame(frame);
  };

  private welcome(frame: WelcomeFrame): void {
    if (this.welcomed) return;
    this.clock.clearTimeout(this.handshakeTimer);
    this.welcomed = true;
    this.attempt = 0;
    this.uuid = frame.u;
    this.secret = frame.s;
    // Positions count within an epoch: in another one (a restarted broker) ours mean nothing.
    if (frame.ep !== this.epoch) this.seq = 0, this.ahead.clear();
    this.epoch = frame.ep;
    this.credential.expires(frame.x);
    this.limits = { maxChannels: frame.lim.mc, maxPayload: frame.lim.mp, bufferSize: frame.lim.bs, keepAliveInterval: frame.ka };
    // Events may carry up to the broker's maxPayload: decode with limits that allow it.
    this.decodeLimits = { maxFrameBytes: Math.max(frame.lim.mp, DEFAULT_MAX_PAYLOAD) + FRAME_ENVELOPE_BYTES };
    // With ka 0 (a broker that sends no pings) it only serves wake-up probes.
    this.keepAlive = new KeepAlive(this.clock, frame.ka, {
      ping: () => this.send({ t: FrameType.ping }),
      // An unanswered probe reconnects at once, with the backoff reset.
      dead: (grace) =>
        this.abandon(
          CloseCode.keepAliveTimeout,
          `keep-alive: ${grace === undefined ? `silent for ${2 * frame.ka}` : `no pong within ${grace}`} ms`,
          grace !== undefined,
        ),
    });
    this.hooks.welcome();
    this.setState('connected', {});
    if (frame.rs) this.hooks.resumed(frame.rs);
  }

  /**
   * Gives up on the current socket (no welcome in time, silence, suspend) and handles the loss
   * now; `now`: reconnect at once, with the backoff reset.
   */
  private abandon(code: number, reason: string, now = false): void {
    const socket = this.socket;
    this.socket = undefined; // its own close event, whenever it comes, is ignored
    if (socket) this.closeSocket(socket, code, reason);
    this.lost(code, reason, now);
  }

  private lost(code: number, reason: string, now = false): void {
    this.stopTimers();
    this.socket = undefined;
    const info: StateInfo = { code, reason };
    const backoff = this.options.backoff;
    // The credential expired: the next hello needs getToken's; without getToken, nothing would do.
    const expired = code === CloseCode.tokenExpired;
    if (expired) this.credential.expired();
    // A suspended client is not lost: it reconnects on pageBack() whatever the code.
    if (!this.suspended && (backoff === false || !shouldReconnect(code) || (expired && !this.options.fetchToken))) {
      // A close that refuses the client for good says why with a stable code (a refused
      // handshake, 4006 forbidden_origin; a refused hello, 4002 unsupported_version; a refused
      // credential, 4008 unauthorized): an error. So does an expired one without getToken (4007).
      const refusal =
        (expired || !shouldReconnect(code)) &&
        (errorOfCloseReason(reason) ?? (expired ? { code: ErrorCode.unauthorized, message: `the credential expired ${reason}` } : undefined));
      if (refusal) this.hooks.fail(new CrierError(refusal.code, refusal.message));
      this.hooks.down(true, info);
      return this.setState('closed', info);
    }
    this.hooks.down(false, info);
    this.setState('reconnecting', info);
    if (this.quitting || this.suspended) return; // a state listener quit, or waiting for pageBack()
    if (now || backoff === false) return this.retryNow(); // (false only to narrow: handled above)
    // A draining broker names the delay to wait (spread over its drain window): waited, plus the
    // backoff's jitter (its first delay, since a welcome reset the attempts), in place of it.
    const delay = ((code === CloseCode.draining && drainDelayOf(reason)) || 0) + backoffDelay(this.attempt++, backoff, this.options.random);
    this.retryTimer = this.clock.setTimeout(() => this.open(false), delay);
  }

  /** Nothing more of the current socket (no requests, no timers) and no retry pending. */
  private stopTimers(): void {
    this.welcomed = false;
    this.clock.clearTimeout(this.retryTimer);
    this.clock.clearTimeout(this.handshakeTimer);
    this.credential.stop();
    this.keepAlive?.stop();
    this.keepAlive = undefined;
  }

  private setState(state: ClientState, info: StateInfo): void {
    if (state === this.state) return;
    this.state = state;
    this.hooks.changed(state, info);
  }

  /**
   * Sends a frame on `socket`. A publish waits for the end of the tick, to go out with the other
   * publishes of the tick in one message (bounded by the broker's message size, `maxPayload` plus
   * the envelope, and BATCH_FRAMES); any other frame sends what waits first, then itself.
   */
  private write(socket: WebSocketLike, frame: ClientFrame): void {
    // A fresh copy backed by its own ArrayBuffer (never a SharedArrayBuffer).
    const bytes = encodeClientFrame(frame);
    if (frame.t !== FrameType.publish || socket !== this.socket) {
      this.flush();
      return send(socket, bytes);
    }
    const max = (this.limits?.maxPayload ?? DEFAULT_MAX_PAYLOAD) + FRAME_ENVELOPE_BYTES;
    if (this.batch.length === BATCH_FRAMES || this.batchBytes + bytes.length > max) this.flush();
    if (!this.batch.length) {
      this.batchSocket = socket;
      queueMicrotask(this.flush);
    }
    this.batch.push(bytes);
    this.batchBytes += bytes.length;
  }

  /** Sends the publishes waiting for the end of the tick, in one message. */
  private readonly flush = (): void => {
    const batch = this.batch;
    if (!batch.length) return;
    this.batch = [];
    this.batchBytes = 0;
    let bytes = batch[0]!;
    if (batch.length > 1) {
      bytes = new Uint8Array(batch.reduce((n, b) => n + b.length, 0));
      let at = 0;
      for (const b of batch) {
        bytes.set(b, at);
        at += b.length;
      }
    }
    send(this.batchSocket!, bytes);
  };

  private closeSocket(socket: WebSocketLike, code: number, reason: string): void {
    if (socket === this.batchSocket) this.flush(); // what it was given goes before its close
    try {
      socket.close(code, reason);
    } catch {
      // Already closing, or an implementation that refuses the code: it is closing either way.
    }
  }
}
