// Several crier-broker processes on one Redis (the Redis engine), as an operator runs them, and a
// TCP load balancer in front of them whose upstream a test switches from one node to another.
// Every wait has a deadline; nothing sleeps.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect as tcpConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Signal, waitFor } from './wait-for.js';

const CLI = fileURLToPath(new URL('../../broker/dist/cli.js', import.meta.url));

/** One broker process of a deployment on one Redis. */
export interface BrokerNode {
  /** Its `--node-name`. */
  readonly name: string;
  /** ws://127.0.0.1:port/ */
  readonly url: string;
  readonly port: number;
  /** http://127.0.0.1:port */
  readonly http: string;
  readonly process: ChildProcess;
  /** Its stderr (JSON log lines), as they came. */
  readonly logs: string[];
  /** GET /stats, parsed. */
  stats(): Promise<Stats>;
  /** GET /readyz's status code. */
  readyz(): Promise<number>;
  /** SIGTERM (clean) by default, or SIGKILL (a crash); resolves once the process exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** The parts of `/stats` the multi-node tests read. */
export interface Stats {
  connections: number;
  subscriptions: number;
  published: number;
  delivered: number;
  dropped: number;
  memory: { rss: number; heapUsed: number };
  sessions: { parked: number; resumed: number; notRecovered: number };
  engine: { kind: string; ready: boolean; node?: string; lastError?: string; [figure: string]: unknown };
}

export interface NodeOptions {
  /** `--node-name`. */
  name: string;
  /** `--redis`. */
  redis: string;
  /** `--redis-prefix`: one per test, so tests on one Redis never see each other's keys. */
  prefix: string;
  /** More flags, after the defaults (later flags win). */
  args?: string[];
}

let setprivWorks: boolean | undefined;

/** node (or `setpriv --pdeathsig KILL node`: same pid, killed with the test process however it ends). */
function command(args: string[]): [string, string[]] {
  setprivWorks ??= spawnSync('setpriv', ['--pdeathsig', 'KILL', 'true'], { stdio: 'ignore' }).status === 0;
  return setprivWorks ? ['setpriv', ['--pdeathsig', 'KILL', process.execPath, ...args]] : [process.execPath, args];
}

/** Starts `crier-broker --redis …` on 127.0.0.1 and a free port; resolves once it printed its address. */
export async function startNode(options: NodeOptions): Promise<BrokerNode> {
  const [file, argv] = command([
    CLI, '--host', '127.0.0.1', '--port', '0', '--log-level', 'info', '--log-format', 'json', '--drain-window', '0',
    '--redis', options.redis, '--redis-prefix', options.prefix, '--node-name', options.name, ...(options.args ?? []),
  ]);
  const proc = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  let printed: string | undefined;
  let exited: string | undefined;
  const changed = new Signal();
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    printed ??= /ws:\/\/\S+/.exec(line)?.[0];
    changed.notify();
  });
  createInterface({ input: proc.stderr! }).on('line', (line) => {
    logs.push(line);
    changed.notify();
  });
  proc.once('exit', (code, signal) => {
    exited = `${code ?? signal}`;
    changed.notify();
  });
  const url = await waitFor(`crier-broker ${options.name} to print its address`, () => {
    if (printed === undefined && exited !== undefined) throw new Error(`crier-broker ${options.name} exited (${exited}) before listening:\n${logs.join('\n')}`);
    return printed;
  }, { timeoutMs: 15_000, wake: changed, seen: () => logs.slice(-5).join('\n') });
  const port = Number(new URL(url).port);
  const http = `http://127.0.0.1:${port}`;
  return {
    name: options.name,
    url,
    port,
    http,
    process: proc,
    logs,
    stats: async () => (await (await fetch(`${http}/stats`)).json()) as Stats,
    readyz: async () => {
      const res = await fetch(`${http}/readyz`);
      await res.arrayBuffer();
      return res.status;
    },
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill(signal);
      }),
  };
}

/**
 * A TCP load balancer on 127.0.0.1 and a free port: each new connection goes to the node it
 * points at when the connection is made. `target` repoints it (the connections already made stay
 * where they are, as with a real balancer); `reset` cuts every connection; `refuse` turns new ones
 * away (reset at once), as a balancer with no healthy upstream does.
 */
export interface Balancer {
  readonly port: number;
  /** `ws://127.0.0.1:${port}/` */
  readonly url: string;
  /** Relayed connections open now. */
  readonly connections: number;
  target(port: number): void;
  refuse(on: boolean): void;
  reset(): void;
  close(): Promise<void>;
}

export async function startBalancer(upstream: number): Promise<Balancer> {
  let target = upstream;
  let refusing = false;
  const pairs = new Set<[Socket, Socket]>();
  const hardClose = (s: Socket): void => {
    if (s.destroyed) return;
    if (s.connecting) s.destroy();
    else s.resetAndDestroy();
  };
  const server: Server = createServer((client) => {
    client.on('error', () => {});
    if (refusing) return hardClose(client);
    const up = tcpConnect({ host: '127.0.0.1', port: target });
    const pair: [Socket, Socket] = [client, up];
    pairs.add(pair);
    up.on('error', () => hardClose(client));
    client.on('error', () => hardClose(up));
    const gone = (): void => {
      pairs.delete(pair);
      hardClose(client);
      hardClose(up);
    };
    client.on('close', gone);
    up.on('close', gone);
    client.setNoDelay(true);
    up.setNoDelay(true);
    client.pipe(up);
    up.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `ws://127.0.0.1:${port}/`,
    get connections() {
      return pairs.size;
    },
    target: (p) => void (target = p),
    refuse: (on) => void (refusing = on),
    reset: () => {
      for (const [a, b] of [...pairs]) {
        hardClose(a);
        hardClose(b);
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const [a, b] of [...pairs]) {
          a.destroy();
          b.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
