// A small broker that speaks just enough of the protocol for SDK tests, on 127.0.0.1 and a free
// port. Tests can read every frame a client sent, make a connection silent, send any frame, close
// a socket with any code, and intercept requests to answer them their own way.
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  CloseCode,
  ErrorCode,
  FrameType,
  PROTOCOL_VERSION,
  channelProblem,
  decodeUntrustedFrame,
  encodeFrame,
  matchPattern,
  type BrokerFrame,
  type ClientFrame,
  type EventFrame,
  type PublishFrame,
} from '@crier/protocol';
import { changed } from './wait-for.js';

export interface FakeBrokerOptions {
  /** `ka` sent in `welcome`, in ms. @default 60_000 */
  keepAlive?: number;
  /** Send a `ping` every `keepAlive` ms on each connection. @default false */
  ping?: boolean;
  /** @default 100 */
  maxChannels?: number;
  /** @default 1_048_576 */
  maxPayload?: number;
  /** @default 1000 */
  bufferSize?: number;
  /**
   * Checks the credential of a `hello` or an `auth` frame: its expiry (`x`, ms since the Unix
   * epoch; `undefined`: none), or `false` to refuse it (hello: close 4008; auth: an `unauthorized`
   * error, the connection stays). @default every credential is accepted, without expiry
   */
  credential?: (tk: string | undefined) => number | undefined | false;
  /** Sees every client frame first; return true when it handled it (the default is skipped). */
  intercept?: (connection: FakeConnection, frame: ClientFrame) => boolean;
  /**
   * The stream epoch: with it, welcomes carry `ep`, events their stream position `s`, and a
   * hello with `rp` resumes a stream that dropped without `quit` (its patterns restored, every
   * event after `rp.s` that they match replayed right after the welcome, `rs` saying how many).
   * A stream of another epoch, or one that quit or is still held, is not resumed (`window_passed`).
   * @default undefined (no resume)
   */
  epoch?: string;
}

type FrameOf<T extends ClientFrame['t']> = Extract<ClientFrame, { t: T }>;

export class FakeConnection {
  readonly frames: ClientFrame[] = [];
  readonly patterns = new Set<string>();
  uuid: string | undefined;
  /** When true, the connection answers nothing and sends no pings (the socket stays open). */
  silent = false;
  /** Set when the socket closed. */
  closed: { code: number; reason: string } | undefined;

  constructor(readonly socket: WebSocket) {}

  send(frame: BrokerFrame): void {
    this.socket.send(encodeFrame(frame));
  }

  close(code: number, reason = ''): void {
    this.socket.close(code, reason);
  }

  /** The frames of one type received so far. */
  received<T extends ClientFrame['t']>(t: T): FrameOf<T>[] {
    return this.frames.filter((f): f is FrameOf<T> => f.t === t);
  }
}

export interface FakeBroker {
  readonly url: string;
  /** Every connection so far, oldest first (closed ones included). */
  readonly connections: FakeConnection[];
  /** Delivers an event to every open connection with a matching pattern; returns the frame. */
  publish(channel: string, data: Uint8Array, extra?: { labels?: string[]; key?: string }): EventFrame;
  /**
   * What a publish frame does: delivers its event, or, for a message id (`i`) seen before, the
   * first event of that id again without delivering anything (the broker's idempotency).
   */
  accept(frame: PublishFrame): EventFrame;
  /** Every event published, in stream order. */
  readonly log: EventFrame[];
  close(): Promise<void>;
}

export async function startFakeBroker(options: FakeBrokerOptions = {}): Promise<FakeBroker> {
  const ka = options.keepAlive ?? 60_000;
  const lim = { mc: options.maxChannels ?? 100, mp: options.maxPayload ?? 1024 * 1024, bs: options.bufferSize ?? 1000 };
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const connections: FakeConnection[] = [];
  const offsets = new Map<string, number>();
  let nextUuid = 1;
  let nextEvent = 1;
  const log: EventFrame[] = [];
  const byMessageId = new Map<string, EventFrame>();

  const publish: FakeBroker['publish'] = (channel, data, extra = {}) => {
    const offset = (offsets.get(channel) ?? 0) + 1;
    offsets.set(channel, offset);
    const event: EventFrame = { t: FrameType.event, c: channel, d: data, id: `ev-${nextEvent}`, o: offset, e: 'E1', ts: Date.now(), l: extra.labels, k: extra.key };
    if (options.epoch !== undefined) event.s = nextEvent;
    nextEvent++;
    log.push(event);
    const bytes = encodeFrame(event);
    for (const c of connections) {
      if (c.closed || c.silent || c.uuid === undefined) continue;
      // Once per connection, however many of its patterns match.
      if ([...c.patterns].some((p) => matchPattern(p, channel))) c.socket.send(bytes);
    }
    return event;
  };

  const accept = (f: PublishFrame): EventFrame => {
    const first = f.i === undefined ? undefined : byMessageId.get(f.i);
    if (first) return first;
    const event = publish(f.c, f.d, { labels: f.l, key: f.k });
    if (f.i !== undefined) byMessageId.set(f.i, event);
    return event;
  };

  /** The patterns of a stream that dropped without quit, if it can be resumed from `rp`. */
  const parked = (uuid: string | undefined, rp: { e: string } | undefined): Set<string> | undefined => {
    if (rp === undefined || rp.e !== options.epoch) return undefined;
    const last = connections.filter((c) => c.uuid === uuid).at(-2); // the one before the new connection
    const quit = last?.frames.some((f) => f.t === FrameType.quit);
    return last && last.closed && !quit ? last.patterns : undefined;
  };

  const handle = (c: FakeConnection, f: ClientFrame): void => {
    if (options.intercept?.(c, f) || c.silent) return;
    switch (f.t) {
      case FrameType.hello: {
        if (f.v !== PROTOCOL_VERSION) return c.close(CloseCode.helloRejected, 'unsupported_version');
        const x = options.credential?.(f.tk);
        if (x === false) return c.close(CloseCode.unauthorized, 'unauthorized: credential refused');
        c.uuid = f.u ?? `fake-${nextUuid++}`;
        for (const other of connections) {
          if (other !== c && !other.closed && other.uuid === c.uuid) other.close(CloseCode.replaced, 'replaced');
        }
        const ep = options.epoch;
        const welcome = { t: FrameType.welcome, v: PROTOCOL_VERSION, u: c.uuid, ka, lim, s: `secret-${c.uuid}`, x, ep } as const;
        if (f.rp === undefined || ep === undefined) return c.send(welcome);
        const patterns = parked(f.u, f.rp);
        if (!patterns) return c.send({ ...welcome, rs: { n: 0, why: 'window_passed' } });
        for (const p of patterns) c.patterns.add(p);
        const missed = log.filter((e) => e.s! > f.rp!.s && [...patterns].some((p) => matchPattern(p, e.c)));
        c.send({ ...welcome, rs: { n: missed.length } });
        for (const e of missed) c.send(e);
        return;
      }
      case FrameType.auth: {
        const x = options.credential?.(f.tk);
        if (x === false) return c.send({ t: FrameType.error, r: f.r, code: ErrorCode.unauthorized, msg: 'credential refused' });
        return c.send({ t: FrameType.ack, r: f.r, x });
      }
      case FrameType.subscribe: {
        const problem = channelProblem(f.p, true);
        if (problem) return c.send({ t: FrameType.error, r: f.r, code: ErrorCode.badPattern, msg: problem });
        if (!c.patterns.has(f.p) && c.patterns.size >= lim.mc) {
          return c.send({ t: FrameType.error, r: f.r, code: ErrorCode.maxChannels, msg: 'too many subscriptions' });
        }
        c.patterns.add(f.p);
        if (f.w !== undefined) {
          // Rewind: the last w matching events (w 0: the last of each channel), before the ack.
          const matching = log.filter((e) => matchPattern(f.p, e.c));
          const ev = f.w > 0 ? matching.slice(-f.w) : matching.filter((e, i) => !matching.slice(i + 1).some((later) => later.c === e.c));
          c.send({ t: FrameType.events, r: f.r, ev: ev.map((e) => encodeFrame(e)) });
        }
        return c.send({ t: FrameType.ack, r: f.r });
      }
      case FrameType.unsubscribe:
        c.patterns.delete(f.p);
        return c.send({ t: FrameType.ack, r: f.r });
      case FrameType.publish: {
        const problem = channelProblem(f.c, false);
        const code = problem ? ErrorCode.badChannel : f.d.length > lim.mp ? ErrorCode.payloadTooLarge : undefined;
        if (code) return c.send({ t: FrameType.error, r: f.r, code, msg: problem ?? 'too large' });
        const event = accept(f);
        if (f.r !== undefined) c.send({ t: FrameType.ack, r: f.r, id: event.id, o: event.o, e: event.e });
        return;
      }
      case FrameType.history: {
        // The channel's events after offset o (all without it), at most n; offsets are 'E1's.
        const all = log.filter((e) => e.c === f.c && (f.o === undefined || e.o > f.o));
        const ev = all.slice(0, f.n ?? all.length);
        return c.send({ t: FrameType.events, r: f.r, ev: ev.map((e) => encodeFrame(e)), e: 'E1', o: offsets.get(f.c) ?? 0, ok: true, m: ev.length < all.length });
      }
      case FrameType.quit:
        return c.close(CloseCode.normal, 'quit');
      case FrameType.ping:
        return c.send({ t: FrameType.pong });
      default:
    }
  };

  server.on('connection', (socket) => {
    const c = new FakeConnection(socket);
    connections.push(c);
    socket.on('error', () => {});
    const pinger = options.ping ? setInterval(() => c.silent || c.send({ t: FrameType.ping }), ka) : undefined;
    socket.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) return;
      const frame = decodeUntrustedFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      c.frames.push(frame);
      handle(c, frame);
      changed();
    });
    socket.on('close', (code, reason) => {
      clearInterval(pinger);
      c.closed = { code, reason: reason.toString() };
      changed();
    });
    changed();
  });

  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}`,
    connections,
    publish,
    accept,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of server.clients) c.terminate();
        server.close(() => resolve());
      }),
  };
}
