import type { IncomingMessage, ServerResponse } from 'node:http';
import { CrierError, ErrorCode } from '@crier/protocol';
import type { BrokerCore } from './core.js';
import { applyCors, originAllowed } from './cors.js';
import { sendJson } from './http-response.js';
import { validatePublish } from './publish-validation.js';

/** HTTP status of each error code an HTTP publish can answer. */
const STATUS_OF: Readonly<Record<string, number>> = {
  [ErrorCode.badChannel]: 400,
  [ErrorCode.badFrame]: 400,
  [ErrorCode.payloadTooLarge]: 413,
  [ErrorCode.shuttingDown]: 503,
  [ErrorCode.forbiddenOrigin]: 403,
};

const EMPTY = new Uint8Array(0);
/** What every publish answer adds to the defaults of `sendJson`: nothing in it may load. */
const PUBLISH_HEADERS = { 'Content-Security-Policy': "default-src 'none'" } as const;

/**
 * `POST <base>/publish/<channel>`: the body's raw bytes become one event on `<channel>` (URL
 * encoded), through the same in-process publish as a socket's. Labels come from `?label=a&label=b`,
 * `?labels=a,b` or a `Crier-Labels: a,b` header (all of them, in that order), the key from
 * `?key=k` or a `Crier-Key` header (not both). Answers `202 {id, offset, epoch}`, or
 * `{code, message}` with the socket's error codes.
 *
 * The body is never buffered past `maxPayload`: a `Content-Length` above it is refused before
 * reading, and a body that streams past it is answered 413 at once and its connection cut.
 */
export function handlePublish(core: BrokerCore, req: IncomingMessage, res: ServerResponse, rawChannel: string): void {
  if (applyCors(req, res, core.options.corsOrigins)) return; // a preflight, answered
  if (req.method !== 'POST') {
    sendJson(req, res, 405, { code: 'method_not_allowed', message: 'publish answers POST only' }, { ...PUBLISH_HEADERS, Allow: 'POST' });
    return;
  }
  const maxPayload = core.options.maxPayload;
  let channel: string;
  let labels: string[] | undefined;
  let key: string | undefined;
  try {
    if (core.closing) throw new CrierError(ErrorCode.shuttingDown, 'the broker is shutting down');
    // A page from another site must not publish through its visitor's browser (CSRF).
    if (!originAllowed(req, core.options.allowedOrigins)) {
      throw new CrierError(ErrorCode.forbiddenOrigin, `origin ${req.headers.origin} is not in allowedOrigins`);
    }
    channel = decodeChannel(rawChannel);
    ({ labels, key } = labelsAndKey(req));
    // Everything but the data is checked before a byte of the body is read.
    validatePublish(channel, EMPTY, labels, key, maxPayload);
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > maxPayload) {
      throw new CrierError(ErrorCode.payloadTooLarge, `a body of ${declared} bytes exceeds maxPayload ${maxPayload}`);
    }
  } catch (err) {
    fail(core, req, res, err);
    return;
  }

  const chunks: Buffer[] = [];
  let received = 0;
  const onData = (chunk: Buffer): void => {
    received += chunk.length;
    if (received <= maxPayload) {
      chunks.push(chunk);
      return;
    }
    // Past the cap: answer now, keep nothing, read no further.
    req.off('data', onData);
    req.off('end', onEnd);
    chunks.length = 0;
    fail(core, req, res, new CrierError(ErrorCode.payloadTooLarge, `the body exceeds maxPayload ${maxPayload} bytes`));
  };
  const onEnd = (): void => {
    try {
      if (core.closing) throw new CrierError(ErrorCode.shuttingDown, 'the broker is shutting down');
      const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received);
      validatePublish(channel, data, labels, key, maxPayload);
      sendJson(req, res, 202, core.publish(channel, data, labels, key), PUBLISH_HEADERS);
    } catch (err) {
      fail(core, req, res, err);
    }
  };
  req.on('data', onData);
  req.on('end', onEnd);
  // A client that goes away mid-body publishes nothing; its socket error is not ours to raise.
  req.on('error', ignore);
}

function ignore(): void {}

function decodeChannel(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new CrierError(ErrorCode.badChannel, 'the channel in the path is not valid percent-encoding');
  }
}

/** Labels and key from the query string and the `Crier-Labels` / `Crier-Key` headers. */
function labelsAndKey(req: IncomingMessage): { labels: string[] | undefined; key: string | undefined } {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
  const labels = [...query.getAll('label')];
  for (const list of query.getAll('labels')) labels.push(...splitList(list));
  const header = req.headers['crier-labels'];
  if (header !== undefined) labels.push(...splitList(Array.isArray(header) ? header.join(',') : header));
  const keys = query.getAll('key');
  const keyHeader = req.headers['crier-key'];
  if (typeof keyHeader === 'string') keys.push(keyHeader);
  if (keys.length > 1) throw new CrierError(ErrorCode.badFrame, 'give the key once (query parameter key or header Crier-Key)');
  return { labels: labels.length > 0 ? labels : undefined, key: keys[0] };
}

function splitList(list: string): string[] {
  return list.split(',').map((s) => s.trim());
}

function fail(core: BrokerCore, req: IncomingMessage, res: ServerResponse, err: unknown): void {
  if (!(err instanceof CrierError)) {
    core.log.error({ err }, 'HTTP publish failed');
    sendJson(req, res, 500, { code: 'internal', message: 'the broker could not publish the event' }, PUBLISH_HEADERS);
    return;
  }
  // Refused before anything was published (not a bad request): counted and logged.
  if (err.code === ErrorCode.forbiddenOrigin || err.code === ErrorCode.shuttingDown) core.refusals.refuse(err.code, 'publish', req);
  const status = STATUS_OF[err.code] ?? 400;
  if (status !== 413) {
    sendJson(req, res, status, { code: err.code, message: err.message }, PUBLISH_HEADERS);
    return;
  }
  // The rest of the body is not wanted: close the connection rather than read it to the end.
  sendJson(req, res, status, { code: err.code, message: err.message }, { ...PUBLISH_HEADERS, Connection: 'close' });
  const socket = req.socket;
  // On loopback and most sockets the answer is in the kernel already; otherwise wait for it.
  if (socket.writableLength === 0) socket.destroy();
  else res.once('finish', () => socket.destroy());
}
