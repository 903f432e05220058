import type { IncomingMessage } from 'node:http';

/**
 * A request body gathered into one buffer as it streams, never past `cap` bytes. Each chunk is
 * copied in and let go at once: a body sent as a million one-byte chunks holds one buffer
 * (at most `cap`, briefly a second one while it grows), not a million chunks that each keep
 * their socket read buffer alive (~350 MiB for 1 MB, as measured in issue 9).
 */
export class BodyBuffer {
  private buf: Buffer;
  private length = 0;
  /** Buffers allocated so far (the first one included): a handful, whatever the chunking. */
  allocations = 1;

  /**
   * @param cap the most bytes the body may hold
   * @param expected the declared length when there is one (allocated at once), else undefined:
   *   the buffer starts at 64 KiB (or `cap`) and doubles, up to `cap`
   */
  constructor(
    private readonly cap: number,
    expected?: number,
  ) {
    const initial = expected !== undefined && expected <= cap ? expected : Math.min(INITIAL_BYTES, cap);
    this.buf = Buffer.allocUnsafe(initial);
  }

  /** Bytes gathered. */
  get size(): number {
    return this.length;
  }

  /** Bytes held (what the body costs in memory now). */
  get capacity(): number {
    return this.buf.length;
  }

  /** Copies `chunk` in. False, keeping nothing more, when it would take the body past `cap`. */
  append(chunk: Uint8Array): boolean {
    const end = this.length + chunk.length;
    if (end > this.cap) return false;
    if (end > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.min(this.cap, Math.max(end, this.buf.length * 2)));
      this.buf.copy(next, 0, 0, this.length);
      this.buf = next;
      this.allocations++;
    }
    this.buf.set(chunk, this.length);
    this.length = end;
    return true;
  }

  /**
   * The body. A buffer of exactly its size: the one gathered into when it is full (a declared
   * length), else a copy, so the event does not keep the spare capacity alive.
   */
  bytes(): Buffer {
    if (this.length === this.buf.length) return this.buf;
    return Buffer.from(this.buf.subarray(0, this.length));
  }

  /** Lets the buffer go (the body was refused). */
  release(): void {
    this.buf = EMPTY;
    this.length = 0;
  }
}

const INITIAL_BYTES = 64 * 1024;
const EMPTY = Buffer.alloc(0);

/**
 * Reads `req`'s body into one {@link BodyBuffer} of at most `cap` bytes (`declared`: its
 * Content-Length, when given): `onBody` with it at the end; or `onTooLarge` as soon as it passes
 * `cap`, keeping nothing more (and `onBody` is never called). A client that goes away mid-body
 * calls neither; its socket error is not ours to raise.
 */
export function readBody(
  req: IncomingMessage, cap: number, declared: number | undefined, onBody: (body: Buffer) => void, onTooLarge: () => void,
): void {
  const body = new BodyBuffer(cap, declared);
  const onData = (chunk: Buffer): void => {
    if (body.append(chunk)) return;
    req.off('data', onData);
    req.off('end', onEnd);
    body.release();
    onTooLarge();
  };
  const onEnd = (): void => onBody(body.bytes());
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', () => {});
}
