// The fault proxy's own tests, against plain TCP servers and a `ws` server on 127.0.0.1. Every wait
// is for an event with a deadline; the only timing assertions are lower bounds.
import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { WebSocket, WebSocketServer } from 'ws';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';
import { Signal, waitFor } from './wait-for.js';

const cleanups: (() => Promise<unknown> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** One end of a TCP connection as a test sees it: what it read, how it closed, a signal on each. */
class Peer {
  readonly changed = new Signal();
  closed = false;
  error: NodeJS.ErrnoException | undefined;
  private readonly chunks: Buffer[] = [];
  private bytes = 0;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.bytes += chunk.length;
      this.changed.notify();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => (this.error = err));
    socket.on('close', () => {
      this.closed = true;
      this.changed.notify();
    });
  }

  get length(): number {
    return this.bytes;
  }

  received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Whether what was read so far ends with `suffix`, without copying all of it. */
  endsWith(suffix: Buffer): boolean {
    const tail: Buffer[] = [];
    let length = 0;
    for (let i = this.chunks.length - 1; i >= 0 && length < suffix.length; i--) {
      tail.unshift(this.chunks[i]!);
      length += this.chunks[i]!.length;
    }
    return length >= suffix.length && Buffer.concat(tail).subarray(-suffix.length).equals(suffix);
  }

  /** Resolves with everything read once at least `n` bytes came, and when the n-th came. */
  async waitForBytes(n: number, what: string, timeoutMs = 5000): Promise<{ bytes: Buffer; at: number }> {
    const at = await waitFor(what, () => this.bytes >= n && performance.now(), {
      timeoutMs,
      wake: this.changed,
      seen: () => `got ${this.bytes} bytes`,
    });
    return { bytes: this.received(), at };
  }

  async waitForClose(what: string): Promise<void> {
    await waitFor(what, () => this.closed, { wake: this.changed, seen: () => `open, error ${this.error?.code}` });
  }
}

/** A TCP server on 127.0.0.1 that echoes (or only reads), with the server side of each connection. */
async function startServer(mode: 'echo' | 'sink'): Promise<{ port: number; peers: Peer[]; accepted: Signal }> {
  const peers: Peer[] = [];
  const accepted = new Signal();
  const server = createServer((socket) => {
    const peer = new Peer(socket);
    if (mode === 'echo') socket.pipe(socket);
    peers.push(peer);
    accepted.notify();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    for (const peer of peers) peer.socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { port: (server.address() as AddressInfo).port, peers, accepted };
}

async function serverPeer(server: { peers: Peer[]; accepted: Signal }, i: number): Promise<Peer> {
  return waitFor(`server connection ${i + 1}`, () => server.peers[i], { wake: server.accepted });
}

async function proxyTo(port: number): Promise<FaultProxy> {
  const proxy = await startFaultProxy({ port });
  cleanups.push(() => proxy.close());
  return proxy;
}

/** A TCP client of `port`, its writes buffered until it connects. */
function dial(port: number): Peer {
  const peer = new Peer(connect({ host: '127.0.0.1', port }));
  cleanups.push(() => void peer.socket.destroy());
  return peer;
}

/** Writes `bytes` on each socket; resolves once the kernel took all of them, fails after 5 s. */
async function written(sockets: Socket[], bytes: Uint8Array | string, what: string): Promise<void> {
  const done = new Signal();
  let left = sockets.length;
  let failed: Error | undefined;
  for (const socket of sockets) {
    socket.write(bytes, (err) => {
      left--;
      failed ??= err ?? undefined;
      done.notify();
    });
  }
  await waitFor(what, () => {
    if (failed) throw failed;
    return left === 0;
  }, { wake: done, seen: () => `${left} not done` });
}

/** Round trip of `bytes` through an echo server: resolves when all came back. */
async function echo(peer: Peer, bytes: Buffer | string): Promise<Buffer> {
  const before = peer.length;
  const size = Buffer.byteLength(bytes);
  peer.socket.write(bytes);
  const { bytes: all } = await peer.waitForBytes(before + size, `the echo of ${size} bytes`);
  return all.subarray(before);
}

describe('fault proxy', () => {
  it('relays bytes both ways, unchanged, and forwards a half-close after them', async () => {
    const server = await startServer('echo');
    const proxy = await proxyTo(server.port);
    expect(proxy.url).toBe(`ws://127.0.0.1:${proxy.port}/`);
    const client = dial(proxy.port);
    const sent = randomBytes(1024 * 1024);
    expect((await echo(client, sent)).equals(sent)).toBe(true);
    expect((await serverPeer(server, 0)).received().equals(sent)).toBe(true);
    expect(proxy.connections).toBe(1);

    client.socket.end(); // the echo server ends when it sees the end: both halves closed
    await client.waitForClose('the client to close after its half-close came back');
    expect(client.error).toBeUndefined();
    await proxy.whenConnections(0);
  });

  it('latency delays each direction by at least the delay', async () => {
    const server = await startServer('echo');
    const proxy = await proxyTo(server.port);
    const client = dial(proxy.port);
    await echo(client, 'warm'); // connected, upstream too
    proxy.latency(150);
    const start = performance.now();
    await echo(client, 'ping');
    expect(performance.now() - start).toBeGreaterThanOrEqual(2 * 150); // once up, once down
  });

  it('latency keeps order: a chunk read under a short delay never overtakes one read under a long delay', async () => {
    const server = await startServer('sink');
    const proxy = await proxyTo(server.port);
    const client = dial(proxy.port);
    const sent: string[] = [];
    // Alternate 200 ms and 0 ms between chunks, yielding so that the proxy reads each in its own
    // turn. Which delay each chunk gets depends on when the proxy reads it; none may overtake.
    for (let i = 0; i < 40; i++) {
      proxy.latency(i % 2 === 0 ? 200 : 0);
      sent.push(`<${i}>`);
      await written([client.socket], `<${i}>`, `chunk ${i} written`);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const total = Buffer.byteLength(sent.join(''));
    const { bytes } = await (await serverPeer(server, 0)).waitForBytes(total, 'every chunk');
    expect(bytes.toString()).toBe(sent.join(''));
  });

  it('throttle caps each direction: N bytes at R bytes/s take at least N/R s, and lifting it lets the rest flow', async () => {
    const server = await startServer('sink');
    const proxy = await proxyTo(server.port);
    const client = dial(proxy.port);
    const upstream = await serverPeer(server, 0);
    const rate = 20_000;
    const n = 10_000; // half a second's worth, each way at once
    proxy.throttle(rate);
    const up = randomBytes(n);
    const down = randomBytes(n);
    const start = performance.now();
    client.socket.write(up);
    upstream.socket.write(down);
    const [atServer, atClient] = await Promise.all([
      upstream.waitForBytes(n, 'the bytes sent up'),
      client.waitForBytes(n, 'the bytes sent down'),
    ]);
    expect(atServer.bytes.equals(up)).toBe(true);
    expect(atClient.bytes.equals(down)).toBe(true);
    expect(atServer.at - start).toBeGreaterThanOrEqual((n / rate) * 1000);
    expect(atClient.at - start).toBeGreaterThanOrEqual((n / rate) * 1000);

    // At 1,000 bytes/s the next 100 kB would take 100 s: lifted once it started, it comes well in time.
    proxy.throttle(1000);
    const more = randomBytes(100_000);
    client.socket.write(more);
    await upstream.waitForBytes(n + 1, 'the first throttled bytes');
    expect(upstream.length).toBeLessThan(n + more.length);
    proxy.throttle(undefined);
    const { bytes } = await upstream.waitForBytes(n + more.length, 'the rest, unthrottled');
    expect(bytes.subarray(n).equals(more)).toBe(true);
  });

  it('blackhole swallows what it reads both ways while the sockets stay open; once off, new bytes flow', async () => {
    const server = await startServer('sink');
    const proxy = await proxyTo(server.port);
    const client = dial(proxy.port);
    const upstream = await serverPeer(server, 0);
    client.socket.write('before');
    upstream.socket.write('before');
    await Promise.all([upstream.waitForBytes(6, 'before, up'), client.waitForBytes(6, 'before, down')]);

    proxy.blackhole(true);
    // 32 MiB each way: a kernel buffers far less for a reader that does not read (its receive
    // window grows only as the reader reads), so the writes complete only if the proxy reads
    // them; had it forwarded what it read, the far end would have read most of it by then.
    const lost = Buffer.alloc(32 * 1024 * 1024);
    await written([client.socket, upstream.socket], lost, 'the writes into the blackhole');
    expect(upstream.length).toBe(6);
    expect(client.length).toBe(6);
    expect(client.closed || upstream.closed).toBe(false);
    expect(proxy.connections).toBe(1);

    proxy.blackhole(false);
    const after = Buffer.from('after the blackhole');
    client.socket.write(after);
    upstream.socket.write(after);
    for (const [peer, where] of [[upstream, 'up'], [client, 'down']] as const) {
      await waitFor(`the bytes after the blackhole, ${where}`, () => peer.endsWith(after), {
        wake: peer.changed,
        seen: () => `got ${peer.length} bytes`,
      });
      const bytes = peer.received();
      // Between them only zeros: the part of `lost` the proxy had not read yet when it was lifted.
      expect(bytes.subarray(0, 6).toString()).toBe('before');
      expect(bytes.subarray(6, -after.length).every((b) => b === 0)).toBe(true);
    }
  });

  it('reset destroys every relayed connection with an RST; new connections relay', async () => {
    const server = await startServer('echo');
    const proxy = await proxyTo(server.port);
    const clients = [dial(proxy.port), dial(proxy.port)];
    for (const client of clients) await echo(client, 'up');
    proxy.reset();
    for (const client of clients) {
      await client.waitForClose('the client to see the reset');
      expect(client.error?.code).toBe('ECONNRESET');
    }
    await (await serverPeer(server, 1)).waitForClose('the server side to close too');
    await proxy.whenConnections(0);

    const next = dial(proxy.port);
    expect((await echo(next, 'again')).toString()).toBe('again');
    expect(proxy.connections).toBe(1);
  });

  it('reset midFrame leaves a ws client half a message, then an abnormal close (1006)', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    cleanups.push(() => new Promise((resolve) => wss.close(resolve)));
    const proxy = await proxyTo((wss.address() as AddressInfo).port);
    const serverSide = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));

    const ws = new WebSocket(proxy.url);
    cleanups.push(() => ws.terminate());
    let raw: Socket | undefined;
    ws.on('upgrade', (res) => (raw = res.socket));
    const messages: unknown[] = [];
    ws.on('message', (data) => messages.push(data));
    ws.on('error', () => {});
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    await once(ws, 'open');
    const handshake = raw!.bytesRead;

    proxy.reset({ midFrame: true });
    const message = randomBytes(1024 * 1024);
    const server = await serverSide;
    server.on('error', () => {});
    server.send(message);

    expect(await closed).toBe(1006);
    expect(messages).toEqual([]);
    // Some of the frame came (its header at least), not all of it.
    expect(raw!.bytesRead).toBeGreaterThan(handshake);
    expect(raw!.bytesRead).toBeLessThan(handshake + message.length);
    await proxy.whenConnections(0);
  });

  it('refuse resets new connections without relaying them; live ones carry on, and off lets new ones in', async () => {
    const server = await startServer('echo');
    const proxy = await proxyTo(server.port);
    const live = dial(proxy.port);
    await echo(live, 'live');

    proxy.refuse(true);
    const refused = dial(proxy.port);
    refused.socket.write('knock');
    await refused.waitForClose('the refused client to close');
    expect(refused.error?.code).toBe('ECONNRESET');
    expect(refused.length).toBe(0);
    expect((await echo(live, 'still')).toString()).toBe('still');
    expect(proxy.connections).toBe(1);

    proxy.refuse(false);
    const next = dial(proxy.port);
    expect((await echo(next, 'in')).toString()).toBe('in');
    // Accepted in order: had the refused one been relayed, the server would have seen it first.
    expect(server.peers.map((p) => p.received().toString())).toEqual(['livestill', 'in']);
    expect(proxy.connections).toBe(2);
  });

  it('whenConnections resolves when the count is reached and rejects after its deadline', async () => {
    const server = await startServer('echo');
    const proxy = await proxyTo(server.port);
    const clients = [dial(proxy.port), dial(proxy.port), dial(proxy.port)];
    await proxy.whenConnections(3);
    expect(proxy.connections).toBe(3);
    clients[0]!.socket.destroy();
    await proxy.whenConnections(2);
    await expect(proxy.whenConnections(5, 100)).rejects.toThrow(
      'timed out after 100 ms waiting for 5 relayed connections (2 now)',
    );
  });

  it('close stops listening and destroys every connection', async () => {
    const server = await startServer('echo');
    const proxy = await proxyTo(server.port);
    const client = dial(proxy.port);
    await echo(client, 'hi');
    await proxy.close();
    expect(proxy.connections).toBe(0);
    await client.waitForClose('the client to close');
    await (await serverPeer(server, 0)).waitForClose('the server side to close');

    const late = dial(proxy.port);
    await late.waitForClose('a connection after close to fail');
    expect(late.error?.code).toBe('ECONNREFUSED');
  });
});
