import { RateLimitedLog } from '../../observe/logger.js';
import type { LocalPresence, PresenceCount } from '../engine.js';
import { Gatherings, type GatherEnd } from './gather.js';
import type { PresenceLink, PresenceReport } from './presence-link.js';
import { RedisPresenceNotices } from './presence-notices.js';
import { isNoticeMessage } from './presence-wire.js';

// Presence over the nodes of a Redis deployment, by scatter-gather on pub/sub: a question goes to
// every live node (each subscribes to the deployment's presence channel), each answers its own
// count on the asking node's channel, and the asker sums them. Nothing is kept in Redis: a count
// is asked rarely next to how often subscriptions change, and a shared registry would cost a
// write per subscribe on every node. The PUBLISH answer says how many nodes got the question; a
// node silent for PRESENCE_TIMEOUT_MS is left out and the answer says `partial` (gather.ts).
//
//   on <prefix>w:              ?<origin instance> <key> <0|1> <pattern>     who subscribes to it (1: with ids)
//   on the origin's n:<i>:     !p<key> <n>[ <JSON array of ids>]            one node's answer
//
// Join/leave notices across nodes travel the same two channels (`+ - = x` on <prefix>w, `!pS !pR
// !pC` on a node's channel): see presence-notices.ts and presence-wire.ts. A question key is base 36 (lower case), so
// `!p` followed by an upper-case letter is never an answer to a question.

/** How long the asking node waits for every node's answer, in ms. */
export const PRESENCE_TIMEOUT_MS = 1000;
/** Ids one answer lists at most, over every node (the count stays exact). */
const MAX_MEMBERS = 1000;
/** Questions this node may have in flight at once: more are answered with this node's own count, partial. */
const MAX_IN_FLIGHT = 1000;
/** One warning of a kind per this many ms at most: a node sending what does not parse must not flood the log. */
const WARN_INTERVAL_MS = 10_000;

const P = 0x70; // 'p'
const BANG = 0x21; // '!'

/** A question this node asked: the counts and ids summed so far. */
interface Question {
  members: boolean;
  n: number;
  ids: Set<string>;
  resolve(count: PresenceCount): void;
  reject(err: unknown): void;
}

export class RedisPresence {
  private local: LocalPresence = () => ({ n: 0 });
  private readonly questions: Gatherings<Question>;
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
    this.questions = new Gatherings<Question>(link, PRESENCE_TIMEOUT_MS, MAX_IN_FLIGHT, (question, end) => this.finish(question, end));
    this.notices = new RedisPresenceNotices(link, this.report);
  }

  onPresence(local: LocalPresence): void {
    this.local = local;
  }

  /** Subscribers of `pattern` over every node that answers within PRESENCE_TIMEOUT_MS. */
  ask(pattern: string, members: boolean): Promise<PresenceCount> {
    if (this.questions.size >= MAX_IN_FLIGHT) return Promise.resolve({ ...this.local(pattern, members), partial: true });
    this.traffic.asked++;
    return new Promise<PresenceCount>((resolve, reject) => {
      const question: Question = { members, n: 0, ids: new Set(), resolve, reject };
      this.questions.start(question, (key) => Buffer.from(`?${this.link.instance} ${key} ${members ? 1 : 0} ${pattern}`, 'latin1'));
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
      if (isNoticeMessage(message)) this.notices.take(message);
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
    const key = text.slice(0, first);
    const question = this.questions.get(key);
    if (first < 0 || question === undefined) return; // late (timed out) or not ours
    const n = Number(second < 0 ? text.slice(first + 1) : text.slice(first + 1, second));
    if (!Number.isSafeInteger(n) || n < 0) return this.report.malformed({}, 'redis engine: a presence answer without a count, ignored');
    question.n += n;
    if (question.members && second >= 0) {
      try {
        const ids = JSON.parse(text.slice(second + 1)) as unknown;
        if (Array.isArray(ids)) {
          for (const id of ids) {
            if (question.ids.size >= MAX_MEMBERS) break;
            if (typeof id === 'string') question.ids.add(id);
          }
        }
      } catch (err) {
        this.report.malformed({ err }, 'redis engine: a presence answer whose ids do not parse');
      }
    }
    this.questions.answered(key);
  }

  /** Every question waiting is answered with what came (the engine closes). */
  close(): void {
    this.notices.close();
    this.questions.close();
  }

  private finish(question: Question, { complete, error }: GatherEnd): void {
    if (error !== undefined) return question.reject(error);
    const count: PresenceCount = { n: question.n };
    if (question.members) count.m = [...question.ids].sort();
    if (!complete) {
      count.partial = true;
      this.traffic.partial++;
    }
    question.resolve(count);
  }
}
