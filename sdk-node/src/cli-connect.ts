import { CrierWebSocket } from './websocket.js';
import { CrierError, connect as connectWith, type ClientOptions, type CrierClientFull as CrierClient, type StateInfo, type WebSocketConstructor } from '@crier/sdk-web/full';

// How the `crier` command reaches the broker, and how it says that it could not.

/** A failure to report as `crier: <message>` with exit code 1. */
export class CliFailure extends Error {
  override name = 'CliFailure';
}

const SYSTEM_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host not found (DNS lookup failed)',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
};

/** `connection refused` for an ECONNREFUSED error (or one whose `cause` is), else its message. */
export function describeError(err: unknown): string {
  let e: unknown = err;
  for (let depth = 0; depth < 3 && e instanceof Error; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && SYSTEM_ERRORS[code]) return SYSTEM_ERRORS[code];
    if (e.name === 'TimeoutError') return 'no answer in time';
    e = (e as { cause?: unknown }).cause;
  }
  if (err instanceof AggregateError && err.errors.length > 0) return describeError(err.errors[0]);
  return err instanceof Error ? err.message : String(err);
}

/** The broker's `/stats` URL beside its WebSocket path: ws://h:p/ → http://h:p/stats. */
export function statsUrlOf(wsUrl: string): string {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  url.pathname = url.pathname.replace(/\/?$/, '/stats');
  url.search = '';
  url.hash = '';
  return url.href;
}

/** A client that remembers why its latest socket failed (the SDK only sees a close code). */
export interface CliClient {
  client: CrierClient;
  /** Why the broker cannot be reached, as far as known: `connection refused`, `no welcome …`. */
  lastProblem(): string | undefined;
}

export function connectCli(url: string, options: ClientOptions): CliClient {
  let socketError: unknown;
  let closeInfo: StateInfo | undefined;
  // ws's own error event carries the system error (ECONNREFUSED, ENOTFOUND, a 404 on upgrade;
  // `forbidden_origin: …` for a handshake refused for good, see CrierWebSocket); the SDK's
  // `onerror` ignores it, so listen beside it.
  class RecordingWebSocket extends CrierWebSocket {
    constructor(address: string | URL) {
      super(address);
      socketError = undefined;
      this.on('error', (err) => {
        socketError = err;
      });
    }
  }
  const client = connectWith(url, { ...options, WebSocket: RecordingWebSocket as unknown as WebSocketConstructor });
  client.on('state', (state, info) => {
    if (state === 'connected') {
      socketError = undefined;
      closeInfo = undefined;
    } else closeInfo = info;
  });
  return {
    client,
    lastProblem: () => {
      if (socketError !== undefined) return describeError(socketError);
      if (closeInfo?.reason) return closeInfo.reason;
      if (closeInfo?.code !== undefined) return `closed with code ${closeInfo.code}`;
      return undefined;
    },
  };
}

/**
 * Connects for a one-shot command: no reconnecting, the handshake and every request bounded by
 * `timeout`. Resolves when the broker welcomed the client; else throws a CliFailure saying why.
 */
export async function connectOnce(url: string, timeout: number, token?: string): Promise<CrierClient> {
  const cli = connectCli(url, { reconnect: false, requestTimeout: timeout, offline: 'fail', token });
  try {
    await cli.client.ready();
    return cli.client;
  } catch (err) {
    const why = cli.lastProblem() ?? (err instanceof CrierError ? err.message : String(err));
    throw new CliFailure(`cannot reach ${url}: ${why}`);
  }
}
