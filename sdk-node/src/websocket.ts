import type { ClientRequest, IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import { CloseCode } from '@crier/sdk-web/full';

/** Answers to a handshake that refuse it for good: the same request would be refused again. */
const FINAL_STATUSES: ReadonlySet<number> = new Set([401, 403]);
/** The broker's refusals are a small `{code, message}`; a larger body is not read past this. */
const MAX_BODY_BYTES = 4096;
/** At most this many characters of the body's message go into the close reason. */
const MAX_MESSAGE = 200;
/** What an error code looks like (`forbidden_origin`): anything else in a body is not one. */
const CODE = /^[a-z][a-z0-9_]{0,63}$/;

/**
 * The `ws` WebSocket, with one difference: a handshake the broker refuses for good (HTTP 401 or
 * 403, such as 403 `forbidden_origin` from `allowedOrigins`) closes with
 * {@link CloseCode.handshakeRefused} (4006) and the reason `<code>: <message>` taken from the
 * answer's JSON body, instead of `ws`'s bare 1006. The client core treats 4006 as final (no
 * reconnect) and reports the code as an `error`. Every other answer is left to `ws`: a 503
 * `too_many_connections` still closes 1006 and is retried with backoff, as it is temporary.
 *
 * A browser cannot do this: it never shows a page the answer to a refused handshake, only a 1006
 * close, so a page keeps retrying with backoff.
 */
export class CrierWebSocket extends WebSocket {
  /** Set when the handshake was refused for good: what the `error` and `close` events report. */
  private refusal: { reason: string; error: Error } | undefined;

  /**
   * `ws` emits `unexpected-response` for a handshake answered with anything but 101, and aborts
   * the handshake itself when nobody listens (`emit` returned false). A final refusal is taken
   * over here (unless a listener of the caller's wants it): the body is read, then the handshake
   * aborted, and the `error` and `close` events that follow carry the refusal.
   */
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'unexpected-response' && this.listenerCount(event) === 0) {
      const [req, res] = args as [ClientRequest, IncomingMessage];
      if (!FINAL_STATUSES.has(res.statusCode ?? 0)) return false; // ws aborts: a 1006 close, retried
      this.readRefusal(req, res);
      return true;
    }
    const refusal = this.refusal;
    if (refusal !== undefined && event === 'error') return super.emit('error', refusal.error);
    if (refusal !== undefined && event === 'close') return super.emit('close', CloseCode.handshakeRefused, Buffer.from(refusal.reason));
    return super.emit(event, ...args);
  }

  private readRefusal(req: ClientRequest, res: IncomingMessage): void {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      // Closed meanwhile (close(), a handshake timeout): that close stands.
      if (this.readyState !== WebSocket.CONNECTING) return;
      const status = res.statusCode ?? 0;
      const reason = refusalReason(status, res.statusMessage, Buffer.concat(chunks).toString('utf8'));
      this.refusal = { reason, error: new Error(`${reason} (HTTP ${status} to the WebSocket handshake)`) };
      this.terminate(); // aborts the request: ws then emits 'error' and 'close', rewritten above
    };
    res.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= MAX_BODY_BYTES) finish();
    });
    res.on('end', finish);
    res.on('close', finish);
    res.on('error', finish);
    req.on('error', finish);
  }
}

/** `<code>: <message>` from a `{code, message}` body, else `HTTP <status> <status text>`. */
function refusalReason(status: number, statusText: string | undefined, body: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed === 'object' && parsed !== null) {
    const { code, message } = parsed as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && CODE.test(code)) {
      return typeof message === 'string' && message !== '' ? `${code}: ${message.slice(0, MAX_MESSAGE)}` : code;
    }
  }
  return `HTTP ${status}${statusText ? ` ${statusText}` : ''}`;
}
