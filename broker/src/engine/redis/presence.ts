import type { TimerHandle } from '../../clock.js';
import { RateLimitedLog } from '../../observe/logger.js';
import type { LocalPresence, PresenceCount } from '../engine.js';
import { RedisPresenceNotices } from './presence-notices.js';

// Presence over the nodes of a Redis deployment, by scatter-gather on pub/sub: a question goes to
// every live node (each subscribes to the deployment's presence channel), each answers its own
// count on the asking node's channel, and the asker sums them. Nothing is kept in Redis: a count
// is asked rarely next to how often subscriptions change, and a shared registry would cost a
// write per subscribe on every node. The PUBLISH answer says how many nodes got the question; a
// node silent for PRESENCE_TIMEOUT_MS is left out and the answer says `partial`.
//
//   on <prefix>w:              ?<origin instance> <key> <0|1> <pattern>     who subscribes to it (1: with ids)
//   on the origin's n:<i>:     !p<key> <n>[ <JSON array of ids>]            one node's answer
//
// Join/leave notices across nodes travel the same two channels (`+ - = x` on <prefix>w, `!pS !pR
// !pC` on a node's channel): see presence-notices.ts. A question key is base 36 (lower case), so
// `!p` followed by an upper-case letter is never an answer to a question.

/** How long the asking node waits for every node's answer, in ms. */
export const PRESENCE_TIMEOUT_MS = 1000;
/** Ids one answer lists at most, over every node (the count stays exact). */
const MAX_MEMBERS = 1000;
/** Questions this node may have in flight at once: more are refused `unavailable`. */
const MAX_IN_FLIGHT = 1000;
/** One warning of a kind per this many ms at most: a node sending what does not parse must not flood the log. */
const WARN_INTERVAL_MS = 10_000;

const P = 0x70; // 'p'
const BANG = 0x21; // '!'

/** What presence traffic needs from the engine around it. */
export interface PresenceLink {
  readonly instance: string;
  /** The deployment's key prefix (the live nodes are read under it). */
  readonly prefix: string;
  /** Runs a script (routed by the deployment's key). */
  evaluate(source: string, args: string[]): Promise<unknown>;
  /** Runs `callback` once, after the I/O of this turn. */
  defer(callback: () => void): void;
  /** Monotonic ms. */
  now(): number;
  /** Publishes `message` on the presence channel: resolves with the nodes that got it. */
  broadcast(message: Buffer): Promise<number>;
  /** Sends `message` on the channel of node `instance`. Fire and forget. */
  toNode(instance: string, message: Buffer): void;
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimer(handle: TimerHandle): void;
  warn(fields: object, message: string): void;
}

/** How presence traffic reports trouble: warnings rate-limited per message; `malformed` also counts one. */
export interface PresenceReport {
  warn(fields: Record<string, unknown>, message: string): void;
  /** A message from another node that does not parse, or whose handling failed: counted, then warned. */
  malformed(fields: Record<string, unknown>, message: string): void;
}

interface Gather {
  members: boolean;
  /** Nodes the question reached (the PUBLISH answer), once known. */
  expected: number | undefined;
  answered: number;
  n: number;
  ids: Set<string>;
  timer: TimerHandle;
  resolve(count: PresenceCount): void;
}

export class RedisPresence {
  private local: LocalPresence = () => ({ n: 0 });
  private readonly gathers = new Map<string, Gather>();
  private serial = 0;
  /**
   * Questions asked by this node, answered for others (its own included), and answers that came
   * partial; messages from other nodes (questions, answers, watches, news) that did not parse.
   */
  readonly traffic = { asked: 0, answered: 0, partial: 0, malformed: 0 };
  /** Join/leave notices across the nodes (the engine's PresenceCarrier). */
  readonly notices: RedisPresenceNotices;
  private readonly report: PresenceReport;

  constructor(private readonly link: PresenceLink) {
    const warn = (fields: Record<string, unknown>, message: string): void => link.warn(fields, message);
    const log = new RateLimitedLog({ info: warn, warn, error: warn }, WARN_INTERVAL_MS, 64, () => link.now());
    this.report = {
      warn: (fields, message) => void log.write('warn', message, fields, message),
      malformed: (fields, message) => {
        this.traffic.malformed++;
        log.write('warn', message, fields, message);
      },
    };
    this.notices = new RedisPresenceNotices(link, this.report);
  }

  onPresence(local: LocalPresence): void {
    this.local = local;
  }

  /** Subscribers of `pattern` over every node that answers within PRESENCE_TIMEOUT_MS. */
  ask(pattern: string, members: boolean): Promise<PresenceCount> {
    if (this.gathers.size >= MAX_IN_FLIGHT) return Promise.resolve({ ...this.local(pattern, members), partial: true });
    const key = (this.serial++).toString(36);
    this.traffic.asked++;
    return new Promise<PresenceCount>((resolve, reject) => {
      const gather: Gather = {
        members, expected: undefined, answered: 0, n: 0, ids: new Set(), resolve,
        timer: this.link.setTimeout(() => this.finish(key, true), PRESENCE_TIMEOUT_MS),
      };
      this.gathers.set(key, gather);
      this.link.broadcast(Buffer.from(`?${this.link.instance} ${key} ${members ? 1 : 0} ${pattern}`, 'latin1')).then((nodes) => {
        if (this.gathers.get(key) !== gather) return;
        gather.expected = nodes;
        if (gather.answered >= nodes) this.finish(key, false);
      }, (err: unknown) => {
        this.link.clearTimer(gather.timer);
        this.gathers.delete(key);
        reject(err);
      });
    });
  }

  /**
   * A message on the presence channel (a question, or a notices' watch message). A pub/sub
   * listener: nothing it meets throws out of it (what failed is counted `malformed`).
   */
  readonly onQuestion = (message: Buffer): void => {
    try {
      const text = message.toString('latin1');
      if (text[0] === '?') this.answer(text);
      else this.notices.onBroadcast(text);
    } catch (err) {
      this.report.malformed({ err: (err as Error).message }, 'redis engine: a presence message on the presence channel could not be handled, ignored');
    }
  };

  /** A question: this node's count, answered to the asking node. */
  private answer(text: string): void {
    const [origin, key, members, pattern] = text.slice(1).split(' ');
    if (origin === undefined || key === undefined || pattern === undefined) {
      return this.report.malformed({}, 'redis engine: a presence question without its header, ignored');
    }
    this.traffic.answered++;
    let count: PresenceCount;
    try {
      count = this.local(pattern, members === '1');
    } catch (err) {
      this.report.warn({ err }, 'redis engine: counting presence failed');
      return; // the asker leaves this node out, after its timeout
    }
    const ids = count.m === undefined ? '' : ` ${JSON.stringify(count.m.slice(0, MAX_MEMBERS))}`;
    this.link.toNode(origin, Buffer.from(`!p${key} ${count.n}${ids}`, 'utf8'));
  }

  /** Whether a message on this node's channel is a presence answer (`!p`). */
  static isAnswer(message: Buffer): boolean {
    return message[0] === BANG && message[1] === P;
  }

  /** A presence message on this node's channel (a pub/sub listener's: never throws, like {@link onQuestion}). */
  takeAnswer(message: Buffer): void {
    try {
      if (RedisPresenceNotices.owns(message)) this.notices.take(message);
      else this.takeCount(message);
    } catch (err) {
      this.report.malformed({ err: (err as Error).message }, 'redis engine: a presence message on this node\'s channel could not be handled, ignored');
    }
  }

  /** One node's answer to a question this node asked. */
  private takeCount(message: Buffer): void {
    const text = message.toString('utf8', 2);
    const first = text.indexOf(' ');
    const second = text.indexOf(' ', first + 1);
    const gather = this.gathers.get(text.slice(0, first));
    if (first < 0 || gather === undefined) return; // late (timed out) or not ours
    const n = Number(second < 0 ? text.slice(first + 1) : text.slice(first + 1, second));
    if (!Number.isSafeInteger(n) || n < 0) return this.report.malformed({}, 'redis engine: a presence answer without a count, ignored');
    gather.answered++;
    gather.n += n;
    if (gather.members && second >= 0) {
      try {
        const ids = JSON.parse(text.slice(second + 1)) as unknown;
        if (Array.isArray(ids)) {
          for (const id of ids) {
            if (gather.ids.size >= MAX_MEMBERS) break;
            if (typeof id === 'string') gather.ids.add(id);
          }
        }
      } catch (err) {
        this.report.malformed({ err }, 'redis engine: a presence answer whose ids do not parse');
      }
    }
    if (gather.expected !== undefined && gather.answered >= gather.expected) this.finish(text.slice(0, first), false);
  }

  /** Every question waiting is answered with what came (the engine closes). */
  close(): void {
    this.notices.close();
    for (const key of [...this.gathers.keys()]) this.finish(key, true);
  }

  private finish(key: string, timedOut: boolean): void {
    const gather = this.gathers.get(key);
    if (gather === undefined) return;
    this.gathers.delete(key);
    this.link.clearTimer(gather.timer);
    const count: PresenceCount = { n: gather.n };
    if (gather.members) count.m = [...gather.ids].sort();
    // Timed out with every node answered (the PUBLISH answer came last) is still complete.
    if (timedOut && (gather.expected === undefined || gather.answered < gather.expected)) {
      count.partial = true;
      this.traffic.partial++;
    }
    gather.resolve(count);
  }
}
