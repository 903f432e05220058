import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { nanoid } from 'nanoid';
import { CloseCode, ErrorCode, FRAME_ENVELOPE_BYTES } from '@crier/protocol';
import { clientAddress } from '../admission/client-address.js';
import { anonymousRefusal } from '../auth/http-auth.js';
import { readBody } from '../http/body-buffer.js';
import { applyCors, originAllowed } from '../http/cors.js';
import { sendJson } from '../http/response.js';
import type { RefusalReason } from '../observe/refusals.js';
import type { Connection } from './connection.js';
import type { Ingress } from './ingress.js';
import { connectionOnHelloTimeout } from './socket-listeners.js';
import type { CrierSocket } from './socket.js';

// The HTTP session: the WebSocket protocol, for clients behind a proxy that blocks WebSocket
// (sdk-web's fallback transport). One session is one connection to the broker, like a socket:
// the same hello and welcome, frames, acks, keep-alive, resume and limits. Only its carriage
// differs:
//
//   GET  <base>session             an event stream: `event: session` with the session id first, then
//                                  one `data:` line per broker message (its bytes in base64), and
//                                  `event: close` (`<code> <reason>`) when the broker closes it
//   POST <base>session/<id>        a body of client messages, back to back, as a socket message
//   POST <base>session/<id>/close  `?code=&reason=`: the client closes it
//
// The id is the capability (144 random bits): whoever holds it speaks for the session, as
// whoever holds a socket does. The connection writes WebSocket messages to its "socket" as it
// would to a TCP socket (see Connection.flush); SseBridge takes those bytes apart (unmasked
// server frames: a two to ten byte header, then the payload) and writes each payload as an
// event. Reads go through the connection's read turns like a socket's: a POST is answered once
// its messages were read, so a client that posts faster than its turns allow waits.

/** Bytes of one POST: the SDK puts up to four messages in one (see sdk-web's fallback.ts). */
const MESSAGES_PER_POST = 4;
/** POSTs of one session held at once while its reads wait for their turn. */
const MAX_HELD_POSTS = 4;
/** Seconds a client is told to wait when the broker is full, draining or closing. */
const RETRY_AFTER_SECONDS = 5;
const SESSION_ID = /^[A-Za-z0-9_-]{24}$/;

/** Turns the WebSocket messages a connection writes into events on its stream. */
class SseBridge {
  /** Header bytes of a message not complete yet, when a write ended inside one. */
  private partial: Buffer | undefined;

  constructor(private readonly res: ServerResponse) {}

  get writableLength(): number {
    return this.res.writableLength;
  }

  write(chunk: Buffer, callback?: (err?: Error | null) => void): boolean {
    let bytes = this.partial ? Buffer.concat([this.partial, chunk]) : chunk;
    this.partial = undefined;
    let out = '';
    let at = 0;
    while (at < bytes.length) {
      const head = bytes[at + 1];
      if (head === undefined) break;
      const short = head & 0x7f;
      const size = short === 126 ? 4 : short === 127 ? 10 : 2;
      if (at + size > bytes.length) break;
      const length = short === 126 ? bytes.readUInt16BE(at + 2) : short === 127 ? Number(bytes.readBigUInt64BE(at + 2)) : short;
      if (at + size + length > bytes.length) break;
      // Binary messages carry frames; the broker writes no other kind here (closes go through close()).
      if ((bytes[at]! & 0x0f) === 2) out += `data: ${bytes.toString('base64', at + size, at + size + length)}\n\n`;
      at += size + length;
    }
    if (at < bytes.length) this.partial = Buffer.from(bytes.subarray(at));
    bytes = Buffer.alloc(0);
    if (this.res.writableEnded) {
      callback?.(null);
      return false;
    }
    return this.res.write(out, callback);
  }
}

/** What a connection asks of its socket (`ws`'s WebSocket), for a session. */
class SessionControl {
  readyState = 1;
  /** Nothing waits inside it: what it is given goes to the response (SseBridge). */
  readonly bufferedAmount = 0;
  connection: Connection | undefined;
  private paused = false;
  /** POSTs whose messages wait for the connection's next read turn. */
  private readonly held: { body: Buffer; res: ServerResponse; req: IncomingMessage }[] = [];

  constructor(
    private readonly ingress: Ingress,
    private readonly res: ServerResponse,
    private readonly onGone: () => void,
  ) {}

  /** The broker closes the session: the client is told the code and reason. */
  close(code?: number, reason?: string): void {
    if (this.readyState !== 1) return;
    if (!this.res.writableEnded) this.res.end(`event: close\ndata: ${code ?? CloseCode.normal} ${(reason ?? '').replace(/[\r\n]/g, ' ')}\n\n`);
    this.gone(code ?? CloseCode.normal, reason ?? '');
  }

  terminate(): void {
    if (this.readyState !== 1) return;
    this.res.destroy();
    this.gone(CloseCode.abnormal, '');
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    while (!this.paused && this.held.length > 0 && this.readyState === 1) {
      const { body, res, req } = this.held.shift()!;
      this.read(res, body);
    }
  }

  /** A POST's body: read now, or when the connection's reads resume. */
  receive(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    if (!this.paused) return this.read(res, body);
    if (this.held.length >= MAX_HELD_POSTS) {
      return sendJson(req, res, 429, { code: ErrorCode.rateLimited, message: `at most ${MAX_HELD_POSTS} posts of a session wait at once` });
    }
    this.held.push({ body, res, req });
  }

  /** The client went away, or closed the session. */
  gone(code: number, reason: string): void {
    if (this.readyState !== 1) return;
    this.readyState = 3;
    for (const { req, res } of this.held.splice(0)) sendJson(req, res, 410, { code: 'session_closed', message: 'the session is closed' });
    this.onGone();
    if (this.connection) this.ingress.socketClosed(this.connection, code, reason);
  }

  private read(res: ServerResponse, body: Buffer): void {
    const conn = this.connection!;
    this.ingress.receivedBytes += body.length;
    this.ingress.reads.read(conn, body, true);
    res.writeHead(204, { 'Cache-Control': 'no-store' });
    res.end();
  }
}

/** The HTTP sessions of a broker, by id. */
export class HttpSessions {
  private readonly byId = new Map<string, SessionControl>();

  constructor(private readonly ingress: Ingress) {}

  get size(): number {
    return this.byId.size;
  }

  /** `<base>session` and below; `rest` is the path after `<base>session`. */
  handle(req: IncomingMessage, res: ServerResponse, rest: string): void {
    const ingress = this.ingress;
    if (applyCors(req, res, ingress.options.corsOrigins)) return;
    if (rest === '') {
      if (req.method !== 'GET') return sendJson(req, res, 405, { code: 'method_not_allowed', message: 'session answers GET only' }, { Allow: 'GET, OPTIONS' });
      return this.open(req, res);
    }
    const match = /^\/([^/]+)(\/close)?$/.exec(rest);
    const session = match && SESSION_ID.test(match[1]!) ? this.byId.get(match[1]!) : undefined;
    if (req.method !== 'POST') return sendJson(req, res, 405, { code: 'method_not_allowed', message: 'a session answers POST only' }, { Allow: 'POST, OPTIONS' });
    if (!session) return sendJson(req, res, 404, { code: 'session_closed', message: 'no such session: it was closed, or never opened' });
    if (match![2]) {
      const params = new URLSearchParams(req.url?.split('?')[1] ?? '');
      const code = Number(params.get('code') ?? CloseCode.normal);
      // As a socket's close: the stream is parked for a resume unless the client quit before.
      session.close(Number.isInteger(code) ? code : CloseCode.normal, params.get('reason')?.slice(0, 120) ?? '');
      res.writeHead(204, { 'Cache-Control': 'no-store' });
      return void res.end();
    }
    this.post(req, res, session);
  }

  private open(req: IncomingMessage, res: ServerResponse): void {
    const ingress = this.ingress;
    const refuse = (status: number, code: RefusalReason, message: string, limit?: string, retryAfter?: number): void => {
      ingress.refusals.refuse(code, 'session', req, limit);
      sendJson(req, res, status, { code, message }, retryAfter === undefined ? {} : { 'Retry-After': String(retryAfter) });
    };
    if (ingress.closing || ingress.draining) return refuse(503, ErrorCode.shuttingDown, 'the broker is shutting down', undefined, RETRY_AFTER_SECONDS);
    if (!originAllowed(req, ingress.options.allowedOrigins)) return refuse(403, ErrorCode.forbiddenOrigin, `origin ${req.headers.origin} is not in allowedOrigins`);
    const address = clientAddress(req, ingress.trustedProxies);
    const anonymous = anonymousRefusal(ingress, address);
    if (anonymous) return refuse(403, ErrorCode.forbidden, anonymous.message);
    if (ingress.openCount >= ingress.options.maxConnections) {
      return refuse(503, ErrorCode.tooManyConnections, 'the broker is at its connection limit', undefined, RETRY_AFTER_SECONDS);
    }
    if (ingress.bufferedBytes >= ingress.maxTotalBufferBytes) {
      return refuse(503, ErrorCode.tooManyConnections, 'the broker holds maxTotalBufferBytes of outbound data', 'maxTotalBufferBytes', RETRY_AFTER_SECONDS);
    }
    const perAddress = ingress.admission.admit(address, true, ingress.now());
    if (perAddress) return refuse(503, perAddress.code, perAddress.message, perAddress.limit, perAddress.retryAfter);

    const id = nanoid(24);
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Accel-Buffering': 'no', // nginx: stream, do not buffer
    });
    res.write(`retry: 86400000\nevent: session\ndata: ${id}\n\n`); // the client reconnects itself, with a new session
    const control = new SessionControl(ingress, res, () => this.byId.delete(id));
    const conn = ingress.addConnection(control as unknown as CrierSocket, new SseBridge(res) as unknown as Duplex, address);
    control.connection = conn;
    this.byId.set(id, control);
    conn.helloTimer = ingress.clock.setTimeout(() => connectionOnHelloTimeout(ingress, conn), ingress.options.helloTimeout);
    res.on('close', () => control.gone(CloseCode.abnormal, 'event stream closed'));
  }

  private post(req: IncomingMessage, res: ServerResponse, session: SessionControl): void {
    const cap = MESSAGES_PER_POST * (this.ingress.options.maxPayload + FRAME_ENVELOPE_BYTES);
    const declared = Number(req.headers['content-length']);
    if (declared > cap) {
      return sendJson(req, res, 413, { code: ErrorCode.frameTooLarge, message: `a post holds at most ${cap} bytes` }, { Connection: 'close' });
    }
    readBody(req, cap, Number.isInteger(declared) ? declared : undefined, (body) => session.receive(req, res, body), () =>
      sendJson(req, res, 413, { code: ErrorCode.frameTooLarge, message: `a post holds at most ${cap} bytes` }, { Connection: 'close' }));
  }
}
