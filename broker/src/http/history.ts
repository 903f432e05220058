import type { IncomingMessage, ServerResponse } from 'node:http';
import { CrierError, ErrorCode, assertChannel } from '@crier/protocol';
import { refuseRequest } from '../auth/http-auth.js';
import type { Principal } from '../auth/principal.js';
import type { ChannelPosition, HistoryPage } from '../engine/engine.js';
import type { StreamEvent } from '../engine/stream-event.js';
import type { Ingress } from '../transport/ingress.js';
import { admitRead } from './read-admission.js';
import { dataAsText } from './event-data.js';
import { BAD_REQUEST, UNAVAILABLE_RETRY_AFTER_SECONDS, sendJson } from './response.js';

/** What every history answer adds to the defaults of `sendJson`: nothing in it may load. */
const HISTORY_HEADERS = { 'Content-Security-Policy': "default-src 'none'" } as const;

/** An offset in a query: a non-negative integer, as written by a client (no sign, no exponent). */
const OFFSET = /^\d{1,15}$/;

/** One event as `GET /history` answers it. */
export interface HistoryEventJson {
  id: string;
  offset: number;
  epoch: string;
  time: number;
  /** The data as text, or `base64:<standard base64>` (see {@link dataAsText}). */
  data: string;
  labels?: string[];
  key?: string;
}

/** The answer of `GET /history/<channel>`. */
export interface HistoryJson {
  channel: string;
  /** The channel's epoch now, and its latest offset (`''` and 0: nothing held for it). */
  epoch: string;
  offset: number;
  /** The events follow the asked position with nothing missing. */
  complete: boolean;
  /** More retained events follow the last one: ask again from its offset. */
  more: boolean;
  events: HistoryEventJson[];
}

/** A query that asks for something malformed: 400 `bad_request`. */
class BadQuery extends Error {}

/**
 * `GET <base>/history/<channel>?since=<offset>&epoch=<epoch>&limit=<n>`: the retained events of
 * one channel after a position (or all retained), oldest first, as JSON. Admitted like
 * `GET /events`: CORS, `allowedOrigins`, then a credential whose subscribe grants cover the
 * channel. `limit` is 1 to `historySize` (its default); `since` and `epoch` go together.
 */
export function handleHistory(ingress: Ingress, req: IncomingMessage, res: ServerResponse, rawChannel: string): void {
  admitRead(ingress, req, res, 'history', HISTORY_HEADERS, (principal) => readAs(ingress, req, res, rawChannel, principal));
}

function readAs(ingress: Ingress, req: IncomingMessage, res: ServerResponse, rawChannel: string, principal: Principal): void {
  let channel: string;
  let since: ChannelPosition | undefined;
  let limit: number;
  try {
    channel = decodeChannel(rawChannel);
    assertChannel(channel);
    if (!principal.subscribe.covers(channel)) {
      refuseRequest(ingress, req, res, 'history', new CrierError(ErrorCode.forbidden, `no grant of ${principal.id} covers reading ${channel}`), HISTORY_HEADERS);
      return;
    }
    ({ since, limit } = parseHistoryQuery(req.url, Math.max(1, ingress.options.historySize)));
  } catch (err) {
    if (err instanceof BadQuery) return sendJson(req, res, 400, { code: BAD_REQUEST, message: err.message }, HISTORY_HEADERS);
    if (err instanceof CrierError) return sendJson(req, res, 400, { code: err.code, message: err.message }, HISTORY_HEADERS);
    throw err;
  }
  const answer = (page: HistoryPage): void => sendJson(req, res, 200, historyJson(channel, page), HISTORY_HEADERS);
  const failed = (err: unknown): void => {
    if (err instanceof CrierError && err.code === ErrorCode.unavailable) {
      ingress.refusals.refuse(ErrorCode.unavailable, 'history', req);
      sendJson(req, res, 503, { code: err.code, message: err.message }, { ...HISTORY_HEADERS, 'Retry-After': String(UNAVAILABLE_RETRY_AFTER_SECONDS) });
      return;
    }
    ingress.log.error({ err, channel }, 'history read failed');
    sendJson(req, res, 500, { code: 'internal', message: 'the broker could not read the history' }, HISTORY_HEADERS);
  };
  let page: HistoryPage | Promise<HistoryPage>;
  try {
    page = ingress.core.engine.history(channel, since, limit);
  } catch (err) {
    return failed(err);
  }
  if (page instanceof Promise) page.then(answer, failed);
  else answer(page);
}

/** The position and page size of a history query; throws {@link BadQuery}. */
export function parseHistoryQuery(url: string | undefined, maxLimit: number): { since: ChannelPosition | undefined; limit: number } {
  const q = url?.indexOf('?') ?? -1;
  const params = new URLSearchParams(q === -1 ? '' : url!.slice(q + 1));
  const rawSince = params.get('since');
  const epoch = params.get('epoch');
  const rawLimit = params.get('limit');
  let limit = maxLimit;
  if (rawLimit !== null) {
    limit = OFFSET.test(rawLimit) ? Number(rawLimit) : 0;
    if (limit < 1 || limit > maxLimit) throw new BadQuery(`limit must be an integer from 1 to ${maxLimit} (historySize)`);
  }
  if (rawSince === null && epoch === null) return { since: undefined, limit };
  // An offset means nothing without the epoch it counts in (offsets restart in a new epoch).
  if (rawSince === null || epoch === null) throw new BadQuery('since and epoch go together: the offset and epoch of the last event you have');
  if (!OFFSET.test(rawSince)) throw new BadQuery('since must be a non-negative integer (an offset)');
  if (epoch === '' || epoch.length > 128) throw new BadQuery('epoch must be 1-128 characters (an epoch the broker gave)');
  return { since: { epoch, offset: Number(rawSince) }, limit };
}

/** A history page as JSON: the data of each event as text or `base64:…`, labels and key when set. */
export function historyJson(channel: string, page: HistoryPage): HistoryJson {
  return { channel, epoch: page.epoch, offset: page.offset, complete: page.complete, more: page.more, events: page.events.map(eventJson) };
}

function eventJson(event: StreamEvent): HistoryEventJson {
  const json: HistoryEventJson = { id: event.id, offset: event.offset, epoch: event.epoch, time: event.time, data: dataAsText(event.data) };
  if (event.labels !== undefined) json.labels = event.labels;
  if (event.key !== undefined) json.key = event.key;
  return json;
}

function decodeChannel(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new CrierError(ErrorCode.badChannel, 'the channel in the path is not valid percent-encoding');
  }
}
