import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

/**
 * The trusted proxies of `trustedProxies`, in the form {@link clientAddress} compares: IPv4
 * addresses mapped into IPv6 (`::ffff:10.0.0.1`) are kept as plain IPv4, IPv6 in lower case.
 */
export function trustedProxySet(addresses: readonly string[]): ReadonlySet<string> {
  return new Set(addresses.map(normalizeAddress));
}

/** An address as {@link clientAddress} compares and reports it. */
export function normalizeAddress(address: string): string {
  const a = address.trim().toLowerCase();
  return a.startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a;
}

/**
 * The address of the client behind a request: the socket's remote address, unless that address
 * is a trusted proxy; then the right-most address of `X-Forwarded-For` that is not a trusted
 * proxy itself (each proxy appends the address it got the request from, so everything to the
 * left of the last untrusted hop is the client's to write and is never believed). When every
 * forwarded hop is trusted, the left-most one. A malformed entry stops the walk at the proxy:
 * the request is then taken to come from the proxy itself.
 *
 * Every decision about a client's address (loopback-only admission, per-address caps and rates,
 * refusal logs) goes through this one function.
 */
export function clientAddress(req: IncomingMessage, trusted: ReadonlySet<string> | undefined): string {
  const peer = normalizeAddress(req.socket.remoteAddress ?? '');
  if (trusted === undefined || trusted.size === 0 || !trusted.has(peer)) return peer;
  const header = req.headers['x-forwarded-for'];
  if (header === undefined) return peer;
  const hops = (Array.isArray(header) ? header.join(',') : header).split(',');
  let address = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = normalizeAddress(hops[i]!);
    if (isIP(hop) === 0) return address; // garbage: believe nothing further left
    address = hop;
    if (!trusted.has(hop)) return hop;
  }
  return address;
}
