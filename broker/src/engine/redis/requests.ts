import { FrameType, decodeFrame, encodeFrame, type DecodeLimits } from '@crier/protocol';
import type { ReplyMessage, ReplySink, RequestMessage, RequestSink } from '../engine.js';
import { NO_GROUPS } from './groups.js';

// Request/reply between the nodes of a Redis deployment. Requests are not sequenced: they skip the
// publish script and go straight on the pub/sub channels events use (so interest routing works),
// as a message the nodes tell from an event by its first byte:
//
//   on the event channels:     ?<origin instance> <key>[ g<choices>]|<event frame>   a request
//                              (the choices: one node per queue group it matches, see groups.ts)
//   on a node's channel n:<i>: !d<key> <0|1>                            "this copy reached nobody / someone"
//                              !a<reply token>|<reply frame>             a reply to a request <i> holds
//
// The PUBLISH answer counts the copies sent (a node subscribed by name and by pattern gets two);
// every copy is answered, so the requester's node knows nobody answers only once every copy came
// back "nobody". An event message starts with a digit (its sequence header), never `?`.

const QUESTION = 0x3f; // '?'
const BANG = 0x21; // '!'
const SPACE = 0x20;
const BAR = 0x7c; // '|'
const D = 0x64; // 'd'
const A = 0x61; // 'a'

/** How long a requester's node waits for every copy of a request to be answered, in ms. */
export const TALLY_TIMEOUT_MS = 2000;
/** Requests whose copies a node remembers (so a request matched twice is delivered once). */
const SEEN_MAX = 10_000;
/** How long a node remembers a request it delivered, in ms (its copies arrive back to back). */
const SEEN_MS = 5000;

/** A request this node sent: the copies Redis counted, and what came back. */
interface Tally {
  /** Copies sent (the PUBLISH answers), once known. */
  expected: number | undefined;
  answered: number;
  resolve(delivered: boolean): void;
  at: number;
}

/** What the request traffic needs from the engine around it. */
export interface RequestLink {
  readonly instance: string;
  /** The queue group choices for a request on `channel` (`g…`), or undefined when it matches no group. */
  choose(channel: string, labels: string[] | undefined, key: string | undefined): string | undefined;
  /** The groups a choices text gives this node. */
  chosenIn(choices: string): ReadonlySet<string>;
  readonly limits: DecodeLimits;
  /** Monotonic ms. */
  now(): number;
  /** Sends `message` on this deployment's channel of node `instance`. Fire and forget. */
  toNode(instance: string, message: Buffer): void;
  /** Publishes a request message on the event channels of `channel`: resolves with the copies sent. */
  publish(channel: string, message: Buffer): Promise<number>;
  warn(fields: object, message: string): void;
}

/** Figures for `/stats`. */
export interface RequestTraffic {
  /** Requests this node sent, those that came from other nodes (or itself), and replies forwarded. */
  sent: number;
  received: number;
  forwarded: number;
}

/** The request/reply traffic of one Redis engine (see the message formats above). */
export class RedisRequests {
  private requestSink: RequestSink = () => 0;
  private replySink: ReplySink = () => {};
  private readonly tallies = new Map<string, Tally>();
  private serial = 0;
  /** Requests already delivered here, by `<origin> <key>`, with when (oldest first). */
  private readonly seen = new Map<string, number>();
  readonly traffic: RequestTraffic = { sent: 0, received: 0, forwarded: 0 };

  constructor(private readonly link: RequestLink) {}

  onRequests(requests: RequestSink, replies: ReplySink): void {
    this.requestSink = requests;
    this.replySink = replies;
  }

  /** Sends a request to every node of its interest; resolves whether any delivered it to someone. */
  request(request: RequestMessage): Promise<boolean> {
    const key = (this.serial++).toString(36);
    this.traffic.sent++;
    const choices = this.link.choose(request.channel, request.labels, request.key);
    const header = choices === undefined ? `?${this.link.instance} ${key}|` : `?${this.link.instance} ${key} ${choices}|`;
    const message = Buffer.concat([Buffer.from(header, 'latin1'), request.frame]);
    return new Promise<boolean>((resolve, reject) => {
      const tally: Tally = { expected: undefined, answered: 0, resolve, at: this.link.now() };
      this.tallies.set(key, tally);
      this.link.publish(request.channel, message).then((copies) => {
        if (this.tallies.get(key) !== tally) return; // settled already: someone got it
        tally.expected = copies;
        this.settle(key, tally);
      }, (err: unknown) => {
        this.tallies.delete(key);
        reject(err);
      });
    });
  }

  /** Forwards a reply to the node that holds its request. */
  reply(instance: string, reply: ReplyMessage): void {
    this.traffic.forwarded++;
    const frame = encodeFrame({ t: FrameType.reply, r: 0, c: '', d: reply.data, id: reply.id, ts: reply.time, l: reply.labels });
    this.link.toNode(instance, Buffer.concat([Buffer.from(`!a${reply.token}|`, 'latin1'), frame]));
  }

  /** Whether a message on an event channel is a request (an event's starts with a digit). */
  static isRequest(message: Buffer): boolean {
    return message[0] === QUESTION;
  }

  /** Whether a message on this node's channel is request traffic (`!d`, `!a`). */
  static isNodeTraffic(message: Buffer): boolean {
    return message[0] === BANG && (message[1] === D || message[1] === A);
  }

  /** A request from the event channels: delivered here once, and every copy answered to its node. */
  takeRequest(message: Buffer): void {
    const bar = message.indexOf(BAR);
    const space = message.indexOf(SPACE);
    if (bar < 0 || space < 0 || space > bar) return this.link.warn({}, 'redis engine: a request message without its header, ignored');
    const origin = message.toString('latin1', 1, space);
    const rest = message.toString('latin1', space + 1, bar);
    const cut = rest.indexOf(' ');
    const key = cut < 0 ? rest : rest.slice(0, cut);
    // Without choices no group member gets it: its node knew of no group then.
    const chosen = cut < 0 ? NO_GROUPS : this.link.chosenIn(rest.slice(cut + 1));
    const frame = message.subarray(bar + 1);
    const id = `${origin} ${key}`;
    let delivered = 0;
    if (!this.seen.has(id)) {
      this.remember(id);
      this.traffic.received++;
      let decoded;
      try {
        decoded = decodeFrame(frame, this.link.limits);
      } catch (err) {
        this.link.warn({ err }, 'redis engine: a request whose frame does not decode, ignored');
      }
      if (decoded?.t === FrameType.event) delivered = this.requestSink({ channel: decoded.c, labels: decoded.l, key: decoded.k, frame, chosen });
    }
    if (origin === this.link.instance) this.answered(key, delivered > 0);
    else this.link.toNode(origin, Buffer.from(`!d${key} ${delivered > 0 ? 1 : 0}`, 'latin1'));
  }

  /** Request traffic on this node's channel: an answer to one of its requests, or a reply. */
  takeNodeMessage(message: Buffer): void {
    if (message[1] === D) {
      const text = message.toString('latin1', 2);
      const space = text.indexOf(' ');
      this.answered(text.slice(0, space), text.slice(space + 1) === '1');
      return;
    }
    const bar = message.indexOf(BAR);
    if (bar < 0) return;
    const token = message.toString('latin1', 2, bar);
    try {
      const frame = decodeFrame(message.subarray(bar + 1), this.link.limits);
      if (frame.t !== FrameType.reply) return;
      this.replySink({ token, data: frame.d, labels: frame.l, id: frame.id, time: frame.ts });
    } catch (err) {
      this.link.warn({ err }, 'redis engine: a forwarded reply that does not decode, ignored');
    }
  }

  /**
   * Once a second: a request whose copies were not all answered in time (a node died, or lost its
   * connection, between them) is taken as delivered: its requester waits for its own timeout
   * rather than being told nobody answers. Old memories of delivered requests go.
   */
  sweep(): void {
    const stale = this.link.now() - TALLY_TIMEOUT_MS;
    for (const [key, tally] of this.tallies) {
      if (tally.at < stale) {
        this.tallies.delete(key);
        tally.resolve(true);
      }
    }
    const old = this.link.now() - SEEN_MS;
    for (const [id, at] of this.seen) {
      if (at >= old) break;
      this.seen.delete(id);
    }
  }

  /** Every request waiting is answered "delivered" (the engine closes: its requesters time out or go). */
  close(): void {
    for (const tally of this.tallies.values()) tally.resolve(true);
    this.tallies.clear();
  }

  private remember(id: string): void {
    if (this.seen.size >= SEEN_MAX) this.seen.delete(this.seen.keys().next().value as string);
    this.seen.set(id, this.link.now());
  }

  private answered(key: string, delivered: boolean): void {
    const tally = this.tallies.get(key);
    if (tally === undefined) return;
    tally.answered++;
    if (delivered) {
      this.tallies.delete(key);
      tally.resolve(true);
      return;
    }
    this.settle(key, tally);
  }

  /** Nobody answers once every copy counted came back "nobody" (none sent: at once). */
  private settle(key: string, tally: Tally): void {
    if (tally.expected === undefined || tally.answered < tally.expected) return;
    this.tallies.delete(key);
    tally.resolve(false);
  }
}
