// A small spec-following SSE parser over a raw http request, no EventSource needed: for the
// tests of GET /events and of the HTTP session's stream.
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { Signal, waitFor } from './helpers.js';

export interface SseMessage {
  event: string;
  data: string;
  id: string;
}

/** One SSE response, parsed as an EventSource would (fields, multi-line data, comments, retry). */
export class SseClient {
  /** Notified on every chunk and at the end: what this stream's waits wake on. */
  readonly changed = new Signal();
  readonly messages: SseMessage[] = [];
  readonly comments: string[] = [];
  retry: number | undefined;
  ended = false;
  private buffer = '';
  private event = '';
  private data: string[] = [];
  private id = '';

  constructor(readonly req: ClientRequest, readonly res: IncomingMessage) {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => this.feed(chunk));
    res.on('close', () => {
      this.ended = true;
      this.changed.notify();
    });
  }

  static open(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    return new Promise((resolve, reject) => {
      const req = request(url, { headers: { Accept: 'text/event-stream', ...headers } }, (res) => resolve(new SseClient(req, res)));
      req.on('error', reject);
      req.end();
      openStreams.push(req);
    });
  }

  private feed(chunk: string): void {
    this.buffer += chunk;
    let nl: RegExpExecArray | null;
    const re = /\r\n|\r|\n/;
    while ((nl = re.exec(this.buffer)) !== null) {
      const line = this.buffer.slice(0, nl.index);
      this.buffer = this.buffer.slice(nl.index + nl[0].length);
      this.line(line);
    }
    this.changed.notify();
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length > 0) this.messages.push({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return void this.comments.push(line.slice(1).trim());
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id') this.id = value;
    else if (field === 'retry') this.retry = Number(value);
  }

  of(event: string): SseMessage[] {
    return this.messages.filter((m) => m.event === event);
  }

  wait(what: string, check: () => boolean, timeoutMs?: number): Promise<true> {
    return waitFor(what, () => check() || undefined, { timeoutMs, wakeOn: [this.changed] });
  }

  waitEvents(event: string, n: number): Promise<SseMessage[]> {
    return this.wait(`${n} "${event}" events`, () => this.of(event).length >= n).then(() => this.of(event));
  }

  close(): void {
    this.req.destroy();
  }
}

/** Every stream opened: a test's afterEach destroys what is left with {@link closeStreams}. */
const openStreams: ClientRequest[] = [];

export function closeStreams(): void {
  for (const req of openStreams.splice(0)) req.destroy();
}
