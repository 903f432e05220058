import { CrierError, ErrorCode, FrameType, assertEventLabels, encodeFrame, type ReplyFrame, type RequestFrame } from '@crier/protocol';
import { validatePublish } from '../core/publish-validation.js';
import type { Connection } from './connection.js';
import type { Ingress } from './ingress.js';
import type { RequestOutcome } from './requests.js';

// The `request` and `reply` frames of a WebSocket connection (see requests.ts for the routing).
// Each throws the CrierError that answers it, as every frame handler does.

/**
 * A request: checked like a publish (the connection's publish rate, channel, size, labels and
 * key, a publish grant on its channel), bounded by `maxPendingRequests`, then sent; answered
 * later with a `reply` frame (its `r`, its channel) or an `error` with its `r`.
 */
export function handleRequest(ingress: Ingress, conn: Connection, frame: RequestFrame): void {
  const r = frame.r;
  // First, before any validation: a flooder's refused request costs no more than this check.
  if (!conn.publishBucket.take(ingress.now())) {
    ingress.refusals.refuse(ErrorCode.rateLimited, 'websocket', conn);
    const { publishRate, publishBurst } = ingress.options;
    throw new CrierError(ErrorCode.rateLimited, `over the publish rate of this connection (requests count as publishes): ${publishRate} per second, ${publishBurst} at once`);
  }
  validatePublish(frame.c, frame.d, frame.l, frame.k, ingress.options.maxPayload);
  if (!conn.principal.publish.allows(frame.c)) {
    ingress.refusals.refuse(ErrorCode.forbidden, 'websocket', conn);
    throw new CrierError(ErrorCode.forbidden, `no grant of ${conn.principal.id} allows publishing (or requesting) to ${frame.c}`);
  }
  const requests = ingress.requests;
  const requester = requests.requesterOf(conn);
  if (!requests.hasRoom(requester)) {
    ingress.refusals.refuse(ErrorCode.rateLimited, 'websocket', conn);
    throw new CrierError(ErrorCode.rateLimited,
      `this connection has ${ingress.options.maxPendingRequests} requests waiting for replies already (maxPendingRequests): wait for one to end`);
  }
  const channel = frame.c;
  requests.start(requester, { channel, data: frame.d, labels: frame.l, key: frame.k, timeout: frame.to }, (outcome: RequestOutcome) => {
    if ('reply' in outcome) {
      const { data, id, time, labels } = outcome.reply;
      conn.enqueueControl(encodeFrame({ t: FrameType.reply, r, c: channel, d: data, id, ts: time, l: labels }));
      return;
    }
    const { code, message } = outcome.error;
    if (code === ErrorCode.unavailable) ingress.refusals.refuse(ErrorCode.unavailable, 'websocket', conn);
    conn.enqueueControl(encodeFrame({ t: FrameType.error, r, code, msg: message }));
  });
}

/**
 * A reply, fire-and-forget: no grant needed (the token is the capability), but it counts against
 * the connection's publish rate and `maxPayload`. Only a malformed token, an oversized payload,
 * bad labels or the rate get an `error` (without `r`: a reply has none); a reply that answers
 * nothing (late, second, forged) is dropped silently and counted.
 */
export function handleReply(ingress: Ingress, conn: Connection, frame: ReplyFrame): void {
  if (!conn.publishBucket.take(ingress.now())) {
    ingress.refusals.refuse(ErrorCode.rateLimited, 'websocket', conn);
    const { publishRate, publishBurst } = ingress.options;
    throw new CrierError(ErrorCode.rateLimited, `over the publish rate of this connection (replies count as publishes): ${publishRate} per second, ${publishBurst} at once`);
  }
  const maxPayload = ingress.options.maxPayload;
  if (frame.d.length > maxPayload) {
    throw new CrierError(ErrorCode.payloadTooLarge, `reply data of ${frame.d.length} bytes exceeds maxPayload ${maxPayload}`);
  }
  assertEventLabels(frame.l);
  ingress.requests.reply(frame.rp, frame.d, frame.l);
}
