// An optional entry point (`@crier/sdk-web/request`): request/reply. A request goes to whoever
// subscribes to its channel; the first reply answers it. The core bundle leaves it out;
// `@crier/sdk-web/full` has it as `client.request()` and `client.respond()`.
import { CrierError, ErrorCode, FrameType, assertChannel, type ReplyAnswerFrame } from '@crier/protocol';
import type { Client } from './client.js';
import { Event } from './event.js';
import type { CrierClient, CrierEvent, RequestOptions, Responder, Subscription, SubscribeOptions } from './types.js';

/** How long a request waits for its reply by default, ms. */
export const DEFAULT_REQUEST_TIMEOUT = 5000;

/**
 * Sends a request to whoever subscribes to `channel` and resolves with the first reply, as an
 * event: the reply's data, labels, id and time, on the request's channel (offset 0, epoch '').
 * Waits until connected. Rejects with a `CrierError`: `no_responders` at once when no
 * subscription anywhere matches the channel, `timeout` when no reply came within
 * `options.timeout` (the broker's `maxRequestTimeout` bounds it), `bad_channel`,
 * `payload_too_large`, `forbidden`, `rate_limited`, `disconnected` (the connection dropped before
 * the reply: a request is not sent again, since it may have been answered), `closed`.
 */
export async function request(client: CrierClient, channel: string, data: Uint8Array, options: RequestOptions = {}): Promise<CrierEvent> {
  const c = client as Client;
  assertChannel(channel);
  if (!(data instanceof Uint8Array)) throw new TypeError('crier: data must be a Uint8Array');
  const max = c.limits?.maxPayload;
  if (max !== undefined && data.length > max) {
    throw new CrierError(ErrorCode.payloadTooLarge, `data of ${data.length} bytes exceeds maxPayload (${max})`);
  }
  const timeout = options.timeout ?? DEFAULT_REQUEST_TIMEOUT;
  if (!(timeout > 0) || timeout === Infinity) throw new RangeError(`crier: options.timeout must be a finite number > 0, got ${String(timeout)}`);
  await c.ready();
  const f = await new Promise<ReplyAnswerFrame>((resolve, reject) =>
    c.ask(
      (r) => ({ t: FrameType.request, r, c: channel, d: data, l: options.labels, k: options.key, to: Math.ceil(timeout) }),
      { resolve, reject },
      `request to "${channel}"`,
      timeout,
    ) || reject(c.closedWith ?? new CrierError(ErrorCode.disconnected, `request to "${channel}": not connected`)),
  );
  return new Event(f.c, f.d, f.id, 0, '', f.ts, f.l, undefined, undefined);
}

/**
 * Answers the requests on `pattern`: `handler` gets each one as an event and returns the reply's
 * data (or a promise of it); `undefined` sends no reply. It is a subscription (`options` as
 * subscribe's), so it counts against `maxChannels`, is renewed after reconnects, and sees plain
 * events of its pattern too, which it ignores. A handler that throws (or rejects) sends no reply:
 * the requester gets `timeout`; the error is thrown outside, like a handler's.
 */
export function respond(client: CrierClient, pattern: string, handler: Responder, options?: SubscribeOptions): Subscription {
  const c = client as Client;
  return c.subscribe(pattern, (event) => {
    const rp = event.replyTo;
    if (rp === undefined) return;
    Promise.resolve()
      .then(() => handler(event))
      .then((reply) => {
        if (reply === undefined) return;
        const data = reply instanceof Uint8Array ? reply : reply.data;
        const labels = reply instanceof Uint8Array ? undefined : reply.labels;
        // Fire-and-forget: a reply that cannot be sent now (the connection dropped) is lost, and
        // the requester times out.
        c.connection.send({ t: FrameType.reply, rp, d: data, l: labels });
      })
      .catch((err: unknown) => {
        queueMicrotask(() => {
          throw err;
        });
      });
  }, options);
}
