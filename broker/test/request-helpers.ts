// Request/reply over raw clients: what a requester and a responder see on the wire.
import { FrameType, type ErrorFrame, type EventFrame, type Frame, type ReplyAnswerFrame } from '@crier/protocol';
import { text, waitFor, type RawClient } from './helpers.js';

let nextR = 10_000;

/** Sends a request and resolves with its answer: a `reply` frame or an `error` with its `r`. */
export async function ask(
  client: RawClient, channel: string, data: string, extra: { to?: number; l?: string[]; k?: string } = {},
): Promise<ReplyAnswerFrame | ErrorFrame> {
  const r = nextR++;
  client.send({ t: FrameType.request, r, c: channel, d: text(data), ...extra });
  return answerTo(client, r);
}

/** The answer to request `r`: a `reply` frame or an `error` carrying `r`. */
export function answerTo(client: RawClient, r: number, timeoutMs?: number): Promise<ReplyAnswerFrame | ErrorFrame> {
  return client.waitFrame(`the answer to request ${r}`, (f) => (f.t === FrameType.reply || f.t === FrameType.error) && 'r' in f && f.r === r, timeoutMs) as Promise<
    ReplyAnswerFrame | ErrorFrame
  >;
}

/** Sends a request without waiting; returns its `r`. */
export function sendRequest(client: RawClient, channel: string, data: string, extra: { to?: number; l?: string[]; k?: string } = {}): number {
  const r = nextR++;
  client.send({ t: FrameType.request, r, c: channel, d: text(data), ...extra });
  return r;
}

/** The request events (those with `rp`) a client got, on `channel` if given. */
export function requestsOf(client: RawClient, channel?: string): EventFrame[] {
  return client.events(channel).filter((e) => e.rp !== undefined);
}

/** Resolves once `client` got `n` request events. */
export function waitRequests(client: RawClient, n: number, channel?: string): Promise<EventFrame[]> {
  return waitFor(`${n} request events`, () => {
    const got = requestsOf(client, channel);
    return got.length >= n && got;
  }, { wakeOn: [client.changed] });
}

/** Answers a request event. */
export function replyTo(client: RawClient, event: EventFrame | string, data: string, labels?: string[]): void {
  const rp = typeof event === 'string' ? event : event.rp!;
  client.send({ t: FrameType.reply, rp, d: text(data), ...(labels === undefined ? {} : { l: labels }) });
}

/** A responder: answers every request event it gets with `answer(data)`. */
export function respond(client: RawClient, answer: (data: string, event: EventFrame) => string): () => void {
  const answered = new Set<string>();
  const tick = (): void => {
    for (const event of requestsOf(client)) {
      if (answered.has(event.rp!)) continue;
      answered.add(event.rp!);
      replyTo(client, event, answer(Buffer.from(event.d).toString(), event));
    }
  };
  client.changed.add(tick);
  tick();
  return () => client.changed.delete(tick);
}

export const body = (f: { d: Uint8Array }): string => Buffer.from(f.d).toString();

/** Errors without `r` a client got (answers to fire-and-forget frames such as replies). */
export function errorsWithoutR(client: RawClient): ErrorFrame[] {
  return client.frames.filter((f: Frame): f is ErrorFrame => f.t === FrameType.error && f.r === undefined);
}
