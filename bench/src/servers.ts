import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cpuTimeMs, startServer, type Server } from './processes.js';

/** A server under test, in its own process pinned to cpu 0, and how to read its memory and CPU time. */
export interface BenchServer extends Server {
  name: string;
  kind: 'crier' | 'naive';
  /** CPU time the server process used so far (user + system, all threads), in ms. */
  cpuTimeMs(): number;
  /** Resident set size of the server process, from /proc, in bytes. */
  rss(): number;
  /** V8 heap in use, in bytes, as the server reports it. */
  heapUsed(): Promise<number>;
}

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : NaN;
}

function httpBase(url: string): string {
  return url.replace(/^ws/, 'http').replace(/\/$/, '');
}

/** A crier broker process with `args`, pinned to `cpu` (`undefined`: not pinned). */
export async function startCrier(args: string[] = [], cpu: number | undefined = 0): Promise<BenchServer> {
  const cli = fileURLToPath(new URL('../../broker/dist/cli.js', import.meta.url));
  // Every load client comes from 127.0.0.1: the per-address limits (1,000 connections, 16 before
  // hello, 100 handshakes a second) would refuse the workloads' thousands of sockets.
  const perAddress = ['--max-connections-per-ip', '10000000', '--max-pending-per-ip', '10000000', '--handshake-rate', '1000000000'];
  // Stopped with SIGTERM: no drain window (the load clients are gone or about to be).
  const drain = ['--drain-window', '0'];
  const server = await startServer(cli, ['--port', '0', '--host', '127.0.0.1', '--log-level', 'warn', ...perAddress, ...drain, ...args], cpu);
  return {
    ...server,
    name: 'crier',
    kind: 'crier',
    cpuTimeMs: () => cpuTimeMs(server.process.pid!),
    rss: () => rssOf(server.process.pid!),
    heapUsed: async () => {
      const stats = (await (await fetch(`${httpBase(server.url)}/stats`)).json()) as { memory?: { heapUsed?: number } };
      return stats.memory?.heapUsed ?? NaN;
    },
  };
}

export async function startNaive(): Promise<BenchServer> {
  const script = fileURLToPath(new URL('./naive-server.js', import.meta.url));
  const server = await startServer(script, [], 0);
  return {
    ...server,
    name: 'naive ws',
    kind: 'naive',
    cpuTimeMs: () => cpuTimeMs(server.process.pid!),
    rss: () => rssOf(server.process.pid!),
    heapUsed: async () => ((await (await fetch(`${httpBase(server.url)}/mem`)).json()) as { heapUsed: number }).heapUsed,
  };
}
