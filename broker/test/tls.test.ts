import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  DEFAULT_DECODE_LIMITS,
  FrameType,
  PROTOCOL_VERSION,
  decodeFrames,
  encodeFrame,
  type EventFrame,
  type Frame,
} from '@crier/protocol';
import { connect, type WebSocketConstructor } from '@crier/sdk-web';
import { createBroker, type Broker, type BrokerOptions } from '../src/index.js';
import { Signal, cleanup, startBroker, text, waitFor } from './helpers.js';

// TLS on the broker's own server: wss:// and https:// with a self-signed certificate made here
// by openssl (node:crypto cannot make one), a reload that swaps it for new connections only,
// and the crier-broker command with --tls-cert/--tls-key and SIGHUP.

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

interface Cert {
  certFile: string;
  keyFile: string;
  pem: Buffer;
  fingerprint: string;
}

let dir: string;
let first: Cert;
let second: Cert;

/** A self-signed certificate for 127.0.0.1 and localhost, valid one day. */
function makeCert(name: string): Cert {
  const certFile = join(dir, `${name}.cert.pem`);
  const keyFile = join(dir, `${name}.key.pem`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', keyFile, '-out', certFile,
  ], { stdio: 'ignore' });
  const pem = readFileSync(certFile);
  return { certFile, keyFile, pem, fingerprint: new X509Certificate(pem).fingerprint256 };
}

/** A fresh pair of files the broker serves from, holding `cert` to begin with. */
function servedFiles(cert: Cert): { tlsCert: string; tlsKey: string } {
  const own = mkdtempSync(join(dir, 'served-'));
  const files = { tlsCert: join(own, 'cert.pem'), tlsKey: join(own, 'key.pem') };
  install(cert, files);
  return files;
}

function install(cert: Cert, files: { tlsCert: string; tlsKey: string }): void {
  copyFileSync(cert.certFile, files.tlsCert);
  copyFileSync(cert.keyFile, files.tlsKey);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'crier-tls-'));
  first = makeCert('first');
  second = makeCert('second');
});

const sockets: WebSocket[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await cleanup();
});

/** A raw `ws` client over wss:// trusting `ca`: the frames it got, and the certificate it saw. */
class WssClient {
  readonly frames: Frame[] = [];
  readonly changed = new Signal();
  fingerprint: string | undefined;
  opened = false;
  closed: number | undefined;
  private nextRequest = 1;

  constructor(
    url: string,
    ca: Buffer[],
    readonly ws = new WebSocket(url, { ca, perMessageDeflate: false }),
  ) {
    sockets.push(ws);
    ws.on('upgrade', (res: IncomingMessage) => {
      this.fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
    });
    ws.on('open', () => {
      this.opened = true;
      this.changed.notify();
    });
    ws.on('message', (data: Buffer) => {
      decodeFrames(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), DEFAULT_DECODE_LIMITS, (f) => this.frames.push(f));
      this.changed.notify();
    });
    ws.on('close', (code: number) => {
      this.closed = code;
      this.changed.notify();
    });
    ws.on('error', () => {}); // a refused handshake shows as the close
  }

  /** Opens, says hello, and resolves with the client once welcomed. */
  static async connect(url: string, ca: Buffer[]): Promise<WssClient> {
    const client = new WssClient(url, ca);
    await waitFor(`the socket to ${url} to open`, () => client.opened || client.closed !== undefined, { wakeOn: [client.changed] });
    if (!client.opened) throw new Error(`could not open ${url}`);
    client.ws.send(encodeFrame({ t: FrameType.hello, v: PROTOCOL_VERSION }));
    await client.waitFrame('welcome', (f) => f.t === FrameType.welcome);
    return client;
  }

  async request(frame: Frame): Promise<Frame> {
    const r = this.nextRequest++;
    this.ws.send(encodeFrame({ ...frame, r } as Frame));
    return this.waitFrame(`the answer to request ${r}`, (f) => (f.t === FrameType.ack || f.t === FrameType.error) && f.r === r);
  }

  waitFrame(what: string, match: (f: Frame) => boolean): Promise<Frame> {
    return waitFor(what, () => this.frames.find(match), { wakeOn: [this.changed] });
  }

  waitEvent(channel: string): Promise<EventFrame> {
    return this.waitFrame(`an event on ${channel}`, (f) => f.t === FrameType.event && f.c === channel) as Promise<EventFrame>;
  }
}

/** One HTTPS request trusting `ca`: status, body, and the certificate the server showed. */
function httpsRequest(url: string, ca: Buffer[], init: { method?: string; body?: string } = {}): Promise<{ status: number; body: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method ?? 'GET', ca, agent: false }, (res) => {
      const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, fingerprint }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

const httpsUrl = (broker: Broker, path: string): string => broker.url.replace(/^wss:/, 'https:').replace(/\/$/, '') + path;

async function startTlsBroker(files: { tlsCert: string; tlsKey: string }, options: BrokerOptions = {}): Promise<Broker> {
  return startBroker({ ...files, ...options });
}

describe('TLS', () => {
  it('serves wss:// and https:// with the certificate: hello and a publish round trip, /healthz, HTTP publish', async () => {
    const broker = await startTlsBroker(servedFiles(first));
    expect(broker.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/$/);

    const c = await WssClient.connect(broker.url, [first.pem]);
    expect(c.fingerprint).toBe(first.fingerprint);
    expect(await c.request({ t: FrameType.subscribe, r: 0, p: 'tls.*' })).toMatchObject({ t: FrameType.ack });
    expect(await c.request({ t: FrameType.publish, c: 'tls.ws', d: text('over wss') })).toMatchObject({ t: FrameType.ack, o: 1 });
    expect(new TextDecoder().decode((await c.waitEvent('tls.ws')).d)).toBe('over wss');

    const health = await httpsRequest(httpsUrl(broker, '/healthz'), [first.pem]);
    expect(health).toMatchObject({ status: 200, fingerprint: first.fingerprint });
    expect(JSON.parse(health.body)).toEqual({ status: 'ok' });

    const published = await httpsRequest(httpsUrl(broker, '/publish/tls.http'), [first.pem], { method: 'POST', body: 'over https' });
    expect(published.status).toBe(202);
    expect(JSON.parse(published.body)).toMatchObject({ offset: 1 });
    expect(new TextDecoder().decode((await c.waitEvent('tls.http')).d)).toBe('over https');
  });

  it('refuses a client that does not trust the certificate', async () => {
    const broker = await startTlsBroker(servedFiles(first));
    const stranger = new WssClient(broker.url, [second.pem]);
    expect(await waitFor('the untrusting client to give up', () => stranger.closed, { wakeOn: [stranger.changed] })).toBe(1006);
    expect(stranger.opened).toBe(false);
  });

  it('works with the SDK given a WebSocket that trusts the certificate (what NODE_EXTRA_CA_CERTS does for sdk-node)', async () => {
    const broker = await startTlsBroker(servedFiles(first));
    const ca = [first.pem];
    class TrustingWebSocket extends WebSocket {
      constructor(url: string) {
        super(url, { ca });
        sockets.push(this);
      }
    }
    const client = connect(broker.url, { WebSocket: TrustingWebSocket as unknown as WebSocketConstructor });
    try {
      await client.ready();
      const got: string[] = [];
      await client.subscribe('sdk.>', (e) => got.push(new TextDecoder().decode(e.data))).ready;
      expect(await client.publish('sdk.tls', text('hi'))).toMatchObject({ offset: 1 });
      await waitFor('the SDK to get its event', () => got.length === 1 && got);
      expect(got).toEqual(['hi']);
    } finally {
      await client.quit();
    }
  });

  it('reloadTls() serves the new certificate to new connections and keeps the open ones', async () => {
    const files = servedFiles(first);
    const broker = await startTlsBroker(files);
    const ca = [first.pem, second.pem];
    const old = await WssClient.connect(broker.url, ca);
    expect(old.fingerprint).toBe(first.fingerprint);
    await old.request({ t: FrameType.subscribe, r: 0, p: 'reload.>' });

    install(second, files);
    await broker.reloadTls();

    const fresh = await WssClient.connect(broker.url, ca);
    expect(fresh.fingerprint).toBe(second.fingerprint);
    expect((await httpsRequest(httpsUrl(broker, '/healthz'), ca)).fingerprint).toBe(second.fingerprint);
    // The connection opened before the reload is still there, and still served.
    expect(await fresh.request({ t: FrameType.publish, c: 'reload.after', d: text('x') })).toMatchObject({ t: FrameType.ack });
    await old.waitEvent('reload.after');
    expect(old.closed).toBeUndefined();
    expect(broker.stats().connections).toBe(2);
  });

  it('a reload from broken files rejects naming the option, and the certificate in service stays', async () => {
    const files = servedFiles(first);
    const broker = await startTlsBroker(files);
    const ca = [first.pem, second.pem];

    writeFileSync(files.tlsCert, 'not a certificate\n');
    await expect(broker.reloadTls()).rejects.toThrow(/^reloadTls: tlsCert: .*holds no PEM certificate.*previous certificate stays in service/);
    expect((await WssClient.connect(broker.url, ca)).fingerprint).toBe(first.fingerprint);

    // The second certificate with the first one's key: each file reads, but they are no pair.
    copyFileSync(second.certFile, files.tlsCert);
    await expect(broker.reloadTls()).rejects.toThrow(/^reloadTls: tlsKey: .*is not the private key of the certificate/);
    expect((await httpsRequest(httpsUrl(broker, '/healthz'), ca)).fingerprint).toBe(first.fingerprint);

    // Fixed files load again.
    install(second, files);
    await broker.reloadTls();
    expect((await WssClient.connect(broker.url, ca)).fingerprint).toBe(second.fingerprint);
  });

  it('reloadTls() rejects on a broker without TLS', async () => {
    const broker = await startBroker();
    expect(broker.url).toMatch(/^ws:/);
    await expect(broker.reloadTls()).rejects.toThrow(/no tlsCert and tlsKey/);
  });

  it('createBroker refuses a half pair, unusable files and TLS with an attached server, with a TypeError naming the option', async () => {
    const files = servedFiles(first);
    const refused = async (options: BrokerOptions): Promise<Error> => {
      const err = await createBroker({ port: 0, host: '127.0.0.1', logger: false, ...options }).then(
        async (b) => {
          await b.close();
          throw new Error('createBroker succeeded');
        },
        (e: unknown) => e as Error,
      );
      expect(err).toBeInstanceOf(TypeError);
      return err;
    };
    expect((await refused({ tlsCert: files.tlsCert })).message).toMatch(/invalid option "tlsKey": required with tlsCert/);
    expect((await refused({ tlsKey: files.tlsKey })).message).toMatch(/invalid option "tlsCert": required with tlsKey/);
    expect((await refused({ tlsCert: join(dir, 'nope.pem'), tlsKey: files.tlsKey })).message).toMatch(/^createBroker: tlsCert: cannot read .*nope\.pem: ENOENT/);
    expect((await refused({ tlsCert: files.tlsCert, tlsKey: join(dir, 'nope.pem') })).message).toMatch(/^createBroker: tlsKey: cannot read/);
    expect((await refused({ tlsCert: files.tlsKey, tlsKey: files.tlsKey })).message).toMatch(/^createBroker: tlsCert: .* holds no PEM certificate/);
    expect((await refused({ tlsCert: files.tlsCert, tlsKey: files.tlsCert })).message).toMatch(/^createBroker: tlsKey: .* holds no usable private key/);
    expect((await refused({ tlsCert: second.certFile, tlsKey: files.tlsKey })).message).toMatch(/^createBroker: tlsKey: .* is not the private key of the certificate/);
    const { createServer } = await import('node:http');
    expect((await refused({ ...files, server: createServer() })).message).toMatch(/invalid option "tlsCert": not with server/);
  });
});

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: () => Promise<number | null>;
}

/** Spawns crier-broker with `args` and no EVENT_* variable but `env` (as cli.test.ts does). */
function spawnCli(args: string[], env: Record<string, string> = {}): Run {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('EVENT_')));
  const child = spawn(process.execPath, [CLI, '--port', '0', '--host', '127.0.0.1', ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  let code: number | null | undefined;
  child.on('exit', (c) => (code = c));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited: () => waitFor('the CLI to exit', () => code !== undefined && { code }, { wakeOn: [[child, 'exit']], timeoutMs: 10_000 }).then((r) => r.code),
  };
}

/** The JSON log lines the command wrote so far. */
function logLines(run: Run): { msg?: string; fingerprint?: string; err?: { message?: string } }[] {
  return run.stderr().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg?: string });
}

function waitLog(run: Run, msg: string, index = 0): Promise<{ fingerprint?: string; err?: { message?: string } }> {
  return waitFor(`the log line "${msg}" #${index + 1}`, () => logLines(run).filter((l) => l.msg === msg)[index], {
    wakeOn: [[run.child.stderr!, 'data']],
    timeoutMs: 10_000,
  });
}

describe('crier-broker with --tls-cert and --tls-key', () => {
  it('prints a wss:// URL, serves it, and reloads the certificate on SIGHUP without dropping a connection', async () => {
    const files = servedFiles(first);
    const run = spawnCli(['--tls-cert', files.tlsCert], { EVENT_TLS_KEY: files.tlsKey });
    const url = await waitFor('the CLI to print its URL', () => /listening on 127\.0\.0\.1:\d+: (wss:\/\/\S+) \(stats: (https:\/\/\S+)\)/.exec(run.stdout()) ?? undefined, {
      wakeOn: [[run.child.stdout!, 'data']],
      timeoutMs: 10_000,
    });
    expect(url[1]).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/$/);
    const ca = [first.pem, second.pem];
    expect((await httpsRequest(url[2]!, ca)).status).toBe(200);
    const old = await WssClient.connect(url[1]!, ca);
    expect(old.fingerprint).toBe(first.fingerprint);

    install(second, files);
    run.child.kill('SIGHUP');
    expect((await waitLog(run, 'TLS certificate reloaded')).fingerprint).toBe(second.fingerprint);
    expect((await WssClient.connect(url[1]!, ca)).fingerprint).toBe(second.fingerprint);

    writeFileSync(files.tlsKey, 'garbage\n');
    run.child.kill('SIGHUP');
    expect((await waitLog(run, 'TLS reload failed: the previous certificate stays in service')).err?.message).toMatch(/tlsKey: .*holds no usable private key/);
    expect((await WssClient.connect(url[1]!, ca)).fingerprint).toBe(second.fingerprint);

    // The connection from before both reloads is still open and served.
    expect(await old.request({ t: FrameType.subscribe, r: 0, p: 'still.here' })).toMatchObject({ t: FrameType.ack });
    expect(old.closed).toBeUndefined();
    run.child.kill('SIGINT'); // closes at once (SIGTERM drains: see drain.test.ts)
    expect(await run.exited()).toBe(0);
    expect(await waitFor('the old connection to be closed by the shutdown', () => old.closed, { wakeOn: [old.changed] })).toBe(1001);
  });

  it('exits 2 naming the missing half of the pair, and 1 naming the file it cannot use', async () => {
    const half = spawnCli(['--tls-cert', first.certFile]);
    expect(await half.exited()).toBe(2);
    expect(half.stderr()).toMatch(/^crier-broker: invalid config: tlsKey: required with tlsCert/);

    const unreadable = spawnCli(['--tls-cert', join(dir, 'nope.pem'), '--tls-key', first.keyFile]);
    expect(await unreadable.exited()).toBe(1);
    expect(unreadable.stderr()).toMatch(/crier-broker: cannot start: createBroker: tlsCert: cannot read .*nope\.pem/);
    expect(unreadable.stdout()).toBe('');
  });
});
