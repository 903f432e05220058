// Issue 9, findings 2 and 3: HTTP publish bodies. A 1 MB body sent as 1,000,000 one-byte chunks
// kept every chunk (~350 MiB of RSS); a body streaming past the cap was cut with bytes unread,
// and 2-20 of 50 clients saw ECONNRESET instead of the 413.
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BodyBuffer } from '../src/http/body-buffer.js';
import { RawClient, cleanup, startBroker, waitFor } from './helpers.js';

afterEach(cleanup);

/**
 * POSTs `total` bytes to `/publish/<channel>` with chunked encoding, `chunk` bytes per chunk, and
 * sends all of it whatever the answer; with `holdAt`, it stops after that many bytes until the
 * answer's head is in, then sends the rest (a client still sending after a 413, for sure). Resolves with the status line of the answer, or with the
 * socket error's code when there was any (a reset while sending or after the answer), once the
 * connection has closed (or, for a 202 on a kept-alive connection, once the answer is in).
 */
function chunkedPost(port: number, channel: string, total: number, chunk: number, fill = 'x', holdAt = Infinity): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    let error: string | undefined;
    let settled = false;
    const status = (): string => (answer ? answer.split('\r\n')[0]! : 'closed without an answer');
    const settle = (): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(error ?? status());
    };
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      answer += d;
      if (status().includes(' 202 ') && answer.endsWith('}')) settle();
      if (held && answer.includes('\r\n\r\n')) {
        held = false;
        writeMore();
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
    socket.on('close', settle);
    socket.write(`POST /publish/${channel} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const piece = `${chunk.toString(16)}\r\n${fill.repeat(chunk)}\r\n`;
    const perBlock = Math.max(1, Math.floor(16384 / piece.length));
    let sent = 0;
    let held = false;
    const writeMore = (): void => {
      while (sent < total && !socket.destroyed) {
        if (sent >= holdAt && !answer.includes('\r\n\r\n')) {
          held = true;
          return;
        }
        const n = Math.min(perBlock, Math.ceil((total - sent) / chunk));
        sent += n * chunk;
        if (!socket.write(piece.repeat(n))) return void socket.once('drain', writeMore);
      }
      if (!socket.destroyed) socket.write('0\r\n\r\n');
    };
    writeMore();
  });
}

describe('BodyBuffer: a body gathered into one buffer, whatever its chunking', () => {
  it('takes a million one-byte chunks in a handful of allocations, never holding more than the cap', () => {
    const cap = 1024 * 1024;
    const body = new BodyBuffer(cap);
    const one = new Uint8Array([0x61]);
    let refused = 0;
    for (let i = 0; i < 1_000_000; i++) if (!body.append(one)) refused++;
    expect(refused).toBe(0);
    expect(body.size).toBe(1_000_000);
    expect(body.capacity).toBeLessThanOrEqual(cap);
    // 64 KiB doubling to 1 MiB: 5 buffers in all (each let go as the next one takes over).
    expect(body.allocations).toBeLessThanOrEqual(5);
    expect(body.bytes()).toHaveLength(1_000_000);
  });

  it('allocates a declared length once, and refuses what passes the cap, keeping nothing more', () => {
    const body = new BodyBuffer(100, 10);
    for (let i = 0; i < 10; i++) body.append(new Uint8Array([i]));
    expect(body.allocations).toBe(1);
    expect([...body.bytes()]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const capped = new BodyBuffer(100);
    expect(capped.append(new Uint8Array(100))).toBe(true);
    expect(capped.append(new Uint8Array(1))).toBe(false);
    expect(capped.size).toBe(100);
    capped.release();
    expect(capped.capacity).toBe(0);
  });
});

describe('HTTP publish of a body in tiny chunks', () => {
  it('publishes 50,000 one-byte chunks as one event, byte for byte', async () => {
    const b = await startBroker();
    const sub = await RawClient.connect(b.url);
    await sub.subscribe('drip.x');
    expect(await chunkedPost(b.port, 'drip.x', 50_000, 1, 'z')).toBe('HTTP/1.1 202 Accepted');
    const [event] = await sub.waitEvents(1, 'drip.x');
    expect(event!.d).toHaveLength(50_000);
    expect(event!.d.every((x) => x === 0x7a)).toBe(true);
  });
});

describe('a body past the cap: every client gets its 413', () => {
  it('answers 50 clients sending oversize chunked bodies at once with 413, none with a reset', async () => {
    const b = await startBroker({ maxPayload: 64 * 1024 });
    // 8 times the cap, in 16 KiB chunks: each client is still sending when its answer is written.
    // Half of them send 128 KiB, wait for the answer, then send the rest: still sending after it.
    const outcomes = await Promise.all(Array.from({ length: 50 }, (_, i) =>
      chunkedPost(b.port, 'big.x', 512 * 1024, 16 * 1024, 'x', i % 2 === 0 ? 128 * 1024 : Infinity)));
    const counts: Record<string, number> = {};
    for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1;
    expect(counts).toEqual({ 'HTTP/1.1 413 Payload Too Large': 50 });
    expect(b.stats().published).toBe(0);
    // The broker goes on serving.
    expect(await chunkedPost(b.port, 'small.x', 10, 10)).toBe('HTTP/1.1 202 Accepted');
    await waitFor('the refused connections to be closed', () => b.stats().published === 1);
  });
});
