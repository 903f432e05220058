import { ErrorCode } from '@crier/protocol';
import { AddressBuckets } from './token-bucket.js';

/** Seconds a client over a per-address cap is told to wait. */
const CAP_RETRY_AFTER_SECONDS = 5;

/** Why a client address may not open one more socket or stream now: its answer, and the limit. */
export interface AddressRefusal {
  code: typeof ErrorCode.tooManyConnections | typeof ErrorCode.rateLimited;
  /** The option the address ran into, for the log and the message. */
  limit: 'maxConnectionsPerIp' | 'maxPendingPerIp' | 'handshakeRate';
  message: string;
  retryAfter: number;
}

interface AddressCounts {
  /** Sockets (until they close) and SSE streams from the address. */
  open: number;
  /** Sockets from the address that have not been welcomed yet. */
  pending: number;
}

export interface AddressLimits {
  maxConnectionsPerIp: number;
  maxPendingPerIp: number;
  handshakeRate: number;
}

/**
 * Per client address: the open sockets and streams, the sockets that have not said hello, and a
 * token bucket of handshakes. One address cannot take the whole broker: without these, 20 sockets
 * that never said hello held every slot of `maxConnections: 20` until the hello timeout
 * (issue 9, finding 5). Addresses come from clientAddress (behind trusted proxies, the client's).
 * An address is forgotten when it holds nothing; the handshake buckets are bounded.
 */
export class AddressAdmission {
  private readonly counts = new Map<string, AddressCounts>();
  private readonly handshakes: AddressBuckets;

  constructor(private readonly limits: AddressLimits) {
    // A burst of twice the rate: a page with a few tabs reconnecting at once passes.
    this.handshakes = new AddressBuckets(limits.handshakeRate, 2 * limits.handshakeRate);
  }

  /**
   * Whether `address` may open one more socket (`socket`, which will be pending until its hello)
   * or SSE stream at `now` (ms); takes a handshake token when it may. The caps are checked first,
   * so an address refused for them spends no token.
   */
  admit(address: string, socket: boolean, now: number): AddressRefusal | undefined {
    const c = this.counts.get(address);
    const { maxConnectionsPerIp, maxPendingPerIp, handshakeRate } = this.limits;
    if (c !== undefined && c.open >= maxConnectionsPerIp) {
      return { code: ErrorCode.tooManyConnections, limit: 'maxConnectionsPerIp', retryAfter: CAP_RETRY_AFTER_SECONDS,
        message: `this address holds ${maxConnectionsPerIp} connections (maxConnectionsPerIp)` };
    }
    if (socket && c !== undefined && c.pending >= maxPendingPerIp) {
      return { code: ErrorCode.tooManyConnections, limit: 'maxPendingPerIp', retryAfter: CAP_RETRY_AFTER_SECONDS,
        message: `this address has ${maxPendingPerIp} sockets that did not say hello yet (maxPendingPerIp)` };
    }
    const refusing = this.handshakes.take(address, now);
    if (refusing !== undefined) {
      return { code: ErrorCode.rateLimited, limit: 'handshakeRate', retryAfter: refusing.retryAfterSeconds(),
        message: `this address opens more than ${handshakeRate} connections per second (handshakeRate)` };
    }
    return undefined;
  }

  /** A socket (pending until its hello) or a stream from `address` opened. */
  opened(address: string, pending: boolean): void {
    let c = this.counts.get(address);
    if (c === undefined) {
      c = { open: 0, pending: 0 };
      this.counts.set(address, c);
    }
    c.open++;
    if (pending) c.pending++;
  }

  /** A pending socket of `address` was welcomed, or freed before its hello. */
  settled(address: string): void {
    const c = this.counts.get(address);
    if (c === undefined || c.pending === 0) return;
    c.pending--;
  }

  /** A socket or stream of `address` closed. */
  closed(address: string): void {
    const c = this.counts.get(address);
    if (c === undefined) return;
    c.open--;
    if (c.open <= 0) this.counts.delete(address);
  }

  /** Open sockets and streams, and pending sockets, of `address` (for tests and stats). */
  of(address: string): { open: number; pending: number } {
    const c = this.counts.get(address);
    return { open: c?.open ?? 0, pending: c?.pending ?? 0 };
  }
}
