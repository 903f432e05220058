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
import { handleMessage } from './transport/frame-handlers.js';
import { Ingress } from './transport/ingress.js';
import { SseHub } from './transport/sse.js';
import { createRequestListener } from './http/endpoints.js';
import { startKeepAlive } from './transport/keep-alive.js';
import { loadStaticAssets } from './http/static-assets.js';
import { createLogger, redactConfig } from './observe/logger.js';
import { resolveOptions, type BrokerOptions, type ResolvedOptions } from './config/options.js';
import { brokerPaths, statsUrlOf, type BrokerPaths } from './config/paths.js';
import { validatePublish } from './core/publish-validation.js';
import { CrierSocket } from './transport/socket.js';
import { readTlsPair, type TlsFiles, type TlsPair } from './config/tls.js';
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
  const engine = resolved.engine ?? new MemoryEngine({ ...resolved, idempotencyKeys: IDEMPOTENCY_KEYS }, resolved.clock);
  const core = new BrokerCore(resolved, log, resolved.clock, engine);
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
    return publishResult(await this.ingress.core.publish({ channel, data, labels: options.labels, key: options.key }));
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

  close(): Promise<void> {
    return (this.closed ??= this.shutdown());
  }

  private async shutdown(): Promise<void> {
    const { ingress, server } = this;
    const core = ingress.core;
    ingress.closing = true;
    // Until the sockets have drained the broker keeps listening, answering `readyz` (and every
    // publish or upgrade) with 503, so a load balancer sees it draining rather than gone.
    core.flush(); // what was queued goes out ahead of the close frames
    this.sse.closeAll();
    for (const conn of [...ingress.connections]) ingress.closeConnection(conn, CloseCode.goingAway, 'broker shutting down');
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
