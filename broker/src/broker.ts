import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerOptions as HttpServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { Server as TlsServer } from 'node:tls';
import { WebSocketServer, type Server as WsServer, type ServerOptions } from 'ws';
import {
  CloseCode,
  CrierError,
  ErrorCode,
  FRAME_ENVELOPE_BYTES,
  assertPattern,
  type SubscribeFilter,
} from '@crier/protocol';
import { createAuthenticator } from './auth/config.js';
import { BrokerCore, publishResult } from './core/core.js';
import { MemoryEngine } from './engine/memory-engine.js';
import { createRedisEngine } from './engine/redis/redis-engine.js';
import { handleMessage } from './transport/frame-handlers.js';
import { Ingress } from './transport/ingress.js';
import { SseHub } from './transport/sse.js';
import { createRequestListener } from './http/endpoints.js';
import { startKeepAlive } from './transport/keep-alive.js';
import { loadStaticAssets } from './http/static-assets.js';
import { createLogger, redactConfig } from './observe/logger.js';
import { resolveOptions, type BrokerOptions, type ResolvedOptions } from './config/options.js';
import { brokerPaths, statsUrlOf, type BrokerPaths } from './config/paths.js';
import { publishPriority, validatePublish } from './core/publish-validation.js';
import { CrierSocket } from './transport/socket.js';
import { readTlsPair, type TlsFiles, type TlsPair } from './config/tls.js';
import type { TimerHandle } from './clock.js';
import type { Connection } from './transport/connection.js';
import type { Broker, BrokerEvent, BrokerStats, BrokerSubscription, PublishOptions, PublishResult } from './types.js';
import { createUpgradeListener } from './transport/upgrade.js';

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/** How long a peer has to answer our close frame before `ws` destroys its socket. */
const CLOSE_TIMEOUT_MS = 2000;
/** Past this, `close()` stops waiting for sockets and destroys whatever is left. */
const SHUTDOWN_DEADLINE_MS = CLOSE_TIMEOUT_MS + 1000;
/** Message ids the memory engine remembers at most (within `idempotencyWindow`). */
const IDEMPOTENCY_KEYS = 100_000;
/** A message may carry `maxPayload` of data in this many fragments at most. */
const MAX_FRAGMENTS = 256;
/**
 * A drain closes its connections in batches at least this far apart: 100 batches over the
 * default 10 s window, however many connections (1,000 a batch at 100,000), not one timer each.
 */
const DRAIN_BATCH_MS = 100;

/**
 * Starts a broker: listening on `port` and `host`, or attached to `server`. Resolves once it
 * accepts connections. Throws a `TypeError` naming the option for an invalid one, and the
 * server's error when it cannot listen (e.g. `EADDRINUSE`).
 */
export async function createBroker(options: BrokerOptions = {}): Promise<Broker> {
  const resolved = resolveOptions(options);
  const tlsFiles = resolved.tlsCert !== undefined && resolved.tlsKey !== undefined ? { tlsCert: resolved.tlsCert, tlsKey: resolved.tlsKey } : undefined;
  const tls = tlsFiles === undefined ? undefined : await readTlsPair(tlsFiles).catch((err: Error) => {
    throw new TypeError(`createBroker: ${err.message}`);
  });
  // The dashboard's files, read once: a request never touches the disk.
  const assets = await loadStaticAssets();
  const log = createLogger(resolved.logger);
  const engine = resolved.engine ?? (resolved.redis !== undefined
    ? await createRedisEngine({
      ...resolved, url: resolved.redis, prefix: resolved.redisPrefix, node: resolved.nodeName, cluster: resolved.redisCluster,
      ca: resolved.redisCaFile === undefined ? undefined : await readFile(resolved.redisCaFile).catch((err: Error) => {
        throw new TypeError(`createBroker: invalid option "redisCaFile": ${err.message}`);
      }),
    }, resolved.clock, log)
    : new MemoryEngine({ ...resolved, idempotencyKeys: IDEMPOTENCY_KEYS }, resolved.clock));
  const core = new BrokerCore(resolved, log, resolved.clock, engine);
  // Join/leave notices across the nodes sharing the engine (Redis); one node: its own.
  const carrier = core.engine.presenceCarrier;
  if (carrier !== undefined) core.presence.carry(carrier);
  await core.start();
  const ingress: Ingress = new Ingress(core, createAuthenticator(resolved), (conn, bytes, isBinary) => handleMessage(ingress, conn, bytes, isBinary));
  const sse = new SseHub(ingress);
  const wssOptions: ServerOptions<typeof CrierSocket> & { closeTimeout: number } = {
    noServer: true,
    clientTracking: false, // the broker keeps its own registry
    perMessageDeflate: false,
    // The frame limit: a message past it is closed by ws with 1009; data past maxPayload inside
    // an acceptable frame gets a payload_too_large answer instead.
    maxPayload: resolved.maxPayload + FRAME_ENVELOPE_BYTES,
    maxFragments: MAX_FRAGMENTS,
    closeTimeout: CLOSE_TIMEOUT_MS,
    WebSocket: CrierSocket,
  };
  const wss: WsServer<typeof CrierSocket> = new WebSocketServer(wssOptions);
  const paths = brokerPaths(resolved.path);
  const owned = resolved.server === undefined;
  const server = resolved.server ?? createOwnServer(tls);

  // On a shared server the broker answers its own paths and hands every other request to the
  // listeners that were there before it (restored by close()).
  const previous = owned ? [] : (server.listeners('request') as RequestListener[]);
  const fallback = previous.length === 0 ? undefined : (req: IncomingMessage, res: ServerResponse) => {
    for (const listener of previous) listener.call(server, req, res);
  };
  const onRequest = createRequestListener(ingress, sse, paths, fallback, assets);
  const onUpgrade = createUpgradeListener({ ingress, wss, paths, server, attached: !owned });
  for (const listener of previous) server.off('request', listener);
  server.on('request', onRequest);
  server.on('upgrade', onUpgrade);

  if (owned) {
    try {
      await listen(server, resolved.port, resolved.host);
    } catch (err) {
      server.off('request', onRequest);
      server.off('upgrade', onUpgrade);
      throw err;
    }
    server.on('error', (err) => log.error({ err }, 'server error'));
  }
  // A shared store that lost its data (Redis restarted without persistence): every client is sent
  // to resume, where it is told its events since may be lost (broker_restarted).
  engine.onEpochChange(() => restartStreams(ingress, sse));
  const stopKeepAlive = startKeepAlive(ingress, sse);
  const broker = new RunningBroker(ingress, sse, resolved, server, owned, paths, tlsFiles, () => {
    stopKeepAlive();
    server.off('upgrade', onUpgrade);
    server.off('request', onRequest);
    for (const listener of [...previous].reverse()) server.prependListener('request', listener);
  });
  log.info({
    url: broker.url, stats: statsUrlOf(broker.url), config: redactConfig(resolved),
    ...(tls ? { tls: { fingerprint: tls.fingerprint, validTo: tls.validTo } } : {}),
  }, 'crier broker listening');
  if (!ingress.auth.enabled && resolved.allowAnonymous) {
    log.warn('allowAnonymous: clients without a credential may connect from anywhere and publish and subscribe to every channel');
  } else if (!ingress.auth.enabled) {
    log.info('no credential configured: serving loopback clients only (configure credentials, or allowAnonymous)');
  }
  return broker;
}

class RunningBroker implements Broker {
  private closed: Promise<void> | undefined;
  private draining: Drain | undefined;
  // The last port seen listening: `url` stays meaningful after close(), or while an attached
  // server is not listening (0 until it first is).
  private lastPort = 0;
  /** The reloads in flight, one after the other: the last one asked for is the pair in service. */
  private tlsReloads: Promise<void> = Promise.resolve();

  constructor(
    private readonly ingress: Ingress,
    private readonly sse: SseHub,
    private readonly options: ResolvedOptions,
    private readonly server: Server,
    private readonly owned: boolean,
    private readonly paths: BrokerPaths,
    private readonly tlsFiles: TlsFiles | undefined,
    private readonly detach: () => void,
  ) {}

  get port(): number {
    const address = this.server.address();
    if (typeof address === 'object' && address !== null) this.lastPort = address.port;
    return this.lastPort;
  }

  get url(): string {
    const address = this.server.address();
    const host = this.owned ? this.options.host : typeof address === 'object' && address !== null ? address.address : 'localhost';
    const scheme = this.server instanceof TlsServer ? 'wss' : 'ws'; // attached to an https.Server
    return `${scheme}://${urlHost(host)}:${this.port}${this.paths.upgrade}`;
  }

  async publish(channel: string, data: Uint8Array, options: PublishOptions = {}): Promise<PublishResult> {
    if (this.ingress.closing) throw new CrierError(ErrorCode.shuttingDown, 'the broker is closed');
    validatePublish(channel, data, options.labels, options.key, this.options.maxPayload);
    const priority = options.priority === undefined || options.priority === 'normal' ? 0 : options.priority === 'high' ? 1 : publishPriority(-1);
    return publishResult(await this.ingress.core.publish({ channel, data, labels: options.labels, key: options.key, priority }));
  }

  subscribe(pattern: string, handler: (event: BrokerEvent) => void, filter?: SubscribeFilter): BrokerSubscription {
    if (this.ingress.closing) throw new CrierError(ErrorCode.shuttingDown, 'the broker is closed');
    assertPattern(pattern);
    if (typeof handler !== 'function') throw new TypeError('subscribe: handler must be a function');
    const core = this.ingress.core;
    const sub = core.subscribeLocal(pattern, handler, filter);
    return { unsubscribe: () => core.unsubscribeLocal(sub) };
  }

  stats(): BrokerStats {
    return this.ingress.stats();
  }

  reloadTls(): Promise<void> {
    const reload = async (): Promise<void> => {
      const files = this.tlsFiles;
      if (files === undefined) throw new Error('reloadTls: this broker serves no TLS of its own (no tlsCert and tlsKey)');
      let pair: TlsPair;
      try {
        pair = await readTlsPair(files);
      } catch (err) {
        throw new Error(`reloadTls: ${(err as Error).message}; the previous certificate stays in service`, { cause: err });
      }
      // New handshakes get the new pair; connections already open keep theirs.
      (this.server as unknown as TlsServer).setSecureContext({ cert: pair.cert, key: pair.key });
      this.ingress.log.info({ fingerprint: pair.fingerprint, validTo: pair.validTo }, 'TLS certificate reloaded');
    };
    const done = this.tlsReloads.then(reload);
    this.tlsReloads = done.catch(() => undefined);
    return done;
  }

  drain(): Promise<void> {
    // After close() there is nothing left to drain: the shutdown is the stronger of the two.
    if (this.draining === undefined && this.closed !== undefined) return this.closed;
    this.draining ??= new Drain(this.ingress, this.sse, this.options.drainWindow);
    return this.draining.done;
  }

  close(): Promise<void> {
    return (this.closed ??= this.shutdown());
  }

  private async shutdown(): Promise<void> {
    const { ingress, server } = this;
    const core = ingress.core;
    ingress.closing = true;
    // A drain under way ends here: what it has not closed yet gets the 1001 below, at once.
    this.draining?.end();
    // Until the sockets have drained the broker keeps listening, answering `readyz` (and every
    // publish or upgrade) with 503, so a load balancer sees it draining rather than gone.
    core.flush(); // what was queued goes out ahead of the close frames
    this.sse.closeAll();
    for (const conn of [...ingress.connections]) ingress.closeConnection(conn, CloseCode.goingAway, 'broker shutting down');
    // HTTP requests still waiting for a reply are told (a socket's went with its connection).
    ingress.requests.closeAll();
    // Peers answer the close frame; `ws` destroys those that do not within CLOSE_TIMEOUT_MS.
    // The deadlines are a last resort should a socket outlive even that.
    if (!(await settle(ingress.whenSocketsClosed(), SHUTDOWN_DEADLINE_MS))) {
      for (const conn of ingress.sockets) conn.ws.terminate();
      if (!(await settle(ingress.whenSocketsClosed(), 1000))) {
        for (const conn of [...ingress.sockets]) ingress.socketClosed(conn, CloseCode.abnormal, 'terminated');
      }
    }
    this.detach();
    const serverClosed = this.owned ? new Promise<void>((resolve) => server.close(() => resolve())) : undefined;
    core.dispose();
    ingress.reads.dispose();
    await core.engine.close();
    if (serverClosed) {
      server.closeAllConnections(); // idle keep-alive HTTP connections would hold close() open
      await serverClosed;
    }
    ingress.log.info('crier broker closed');
  }
}

/**
 * One drain (lame-duck mode): newcomers are refused from the start, then the connections that
 * were open are closed with 4009 in batches spread evenly over `window` ms of the broker's clock,
 * the first batch at once and the last at `window - window / batches`. `done` resolves once every
 * socket has closed, or when the window and SHUTDOWN_DEADLINE_MS have passed (a peer that never
 * answers its close frame is `close()`'s to terminate).
 */
class Drain {
  readonly done: Promise<void>;
  private readonly conns: Connection[];
  private readonly perBatch: number;
  private readonly interval: number;
  private readonly started: number;
  private next = 0;
  private batches = 0;
  /** Connections this drain closed with 4009 (not those that left by themselves meanwhile). */
  private closed = 0;
  private batchTimer: TimerHandle | undefined;
  private readonly deadline: TimerHandle;
  private ended = false;
  private resolve!: () => void;

  constructor(private readonly ingress: Ingress, private readonly sse: SseHub, private readonly window: number) {
    const clock = ingress.clock;
    ingress.draining = true;
    this.started = clock.now();
    this.conns = [...ingress.connections];
    const batches = Math.max(1, Math.min(this.conns.length, Math.floor(window / DRAIN_BATCH_MS)));
    this.perBatch = Math.ceil(this.conns.length / batches);
    this.interval = window / batches;
    this.done = new Promise((resolve) => (this.resolve = resolve));
    ingress.log.info({ connections: this.conns.length, sseStreams: ingress.sseStreams, drainWindow: window }, 'draining: closing connections over the drain window (4009)');
    this.deadline = clock.setTimeout(() => this.end(), window + SHUTDOWN_DEADLINE_MS);
    void ingress.whenSocketsClosed().then(() => this.end());
    this.batch();
  }

  /** Closes the next batch, and schedules the one after on the clock (from the start: no drift). */
  private batch(): void {
    this.batchTimer = undefined;
    if (this.ended) return;
    const { ingress, conns } = this;
    const last = Math.min(conns.length, this.next + this.perBatch);
    for (; this.next < last; this.next++) {
      const conn = conns[this.next]!;
      if (conn.state === 'freed') continue; // it left by itself
      ingress.closeConnection(conn, CloseCode.draining, `draining: reconnect after ${reconnectDelay(this.window)} ms`);
      this.closed++;
    }
    this.batches++;
    if (this.next < conns.length) {
      const at = this.started + this.batches * this.interval;
      this.batchTimer = ingress.clock.setTimeout(() => this.batch(), Math.max(0, at - ingress.clock.now()));
    }
  }

  /** Every socket closed, the deadline passed, or `close()` came: stops, ends the streams, resolves. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    const { ingress } = this;
    if (this.batchTimer !== undefined) ingress.clock.clearTimer(this.batchTimer);
    ingress.clock.clearTimer(this.deadline);
    // SSE streams end last, not first: an EventSource comes back after its `retry:` (2 s), and a
    // 503 would stop it for good, where a refused connection (the broker gone) is retried. By
    // now the load balancer has had the whole window to see /readyz answer 503.
    this.sse.closeAll();
    ingress.log.info({ closed: this.closed, open: ingress.sockets.size, ms: Math.round(ingress.clock.now() - this.started) }, 'drained');
    this.resolve();
  }
}

/** Longest a client sent to resume after an engine epoch change is told to wait, in ms. */
const RESTART_SPREAD_MS = 2000;

/**
 * Closes every connection with 4009 (each told to reconnect after a random delay within
 * RESTART_SPREAD_MS) and ends every SSE stream: their resumes say what the new epoch lost.
 */
function restartStreams(ingress: Ingress, sse: SseHub): void {
  ingress.log.warn({ connections: ingress.connections.size, sseStreams: ingress.sseStreams },
    'the engine lost its stream (a new epoch): clients are sent to resume, and told what may be lost');
  ingress.core.flush();
  for (const conn of [...ingress.connections]) {
    if (conn.state === 'open') ingress.closeConnection(conn, CloseCode.draining, `draining: reconnect after ${Math.floor(Math.random() * RESTART_SPREAD_MS)} ms`);
  }
  sse.closeAll();
}

/**
 * The delay a drained client is told to wait before it reconnects: uniform in [0, window / 2].
 * The closes are spread over the window already, but a batch closes hundreds of clients in the
 * same millisecond (1,000 at 100,000 connections): told no delay, each batch would land on the
 * nodes that take them over as one burst of handshakes and credential checks. Spread over half a
 * window, every batch overlaps the next ones and the arrivals come at about the rate of the
 * closes (connections / window), and no client stays away longer than half the window (what it
 * missed meanwhile comes back with its resume). Random rather than assigned by position, so that
 * several brokers draining at once do not line their clients up on the same instants.
 */
function reconnectDelay(window: number): number {
  return Math.round(Math.random() * (window / 2));
}

/** Resolves true when `promise` settles within `ms`, false otherwise. */
async function settle(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, ms, false)));
  const done = await Promise.race([promise.then(() => true), timeout]);
  clearTimeout(timer);
  return done;
}

function createOwnServer(tls: TlsPair | undefined): Server {
  const hardening: HttpServerOptions = {
    // Defaults let a client drip headers for a minute before an upgrade.
    headersTimeout: 10_000,
    requestTimeout: 30_000,
    connectionsCheckingInterval: 2_000,
  };
  if (tls === undefined) return createServer(hardening);
  // The TLS handshake comes before any header: its own default deadline is two minutes.
  return createHttpsServer({ ...hardening, cert: tls.cert, key: tls.key, handshakeTimeout: 10_000 });
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

/** A host as it goes in a URL: wildcard addresses become loopback, IPv6 gets brackets. */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}
