import { CrierError, ErrorCode } from '@crier/protocol';
import type { ResolvedOptions } from './options.js';

/**
 * What refreshes the credential in band before it expires (withTokenRefresh of
 * `@crier/sdk-web/refresh`): told each expiry the broker gives, and when the connection is down.
 */
export interface Refresher {
  /** A `welcome` or an `auth` ack said when the credential expires (`x`, absent: never). */
  expires(x: number | undefined): void;
  /** The connection is down: no refresh until the next welcome. */
  stop(): void;
}

/**
 * The connection's credential: `options.token`, then what `getToken()` answers.
 *
 * getToken is asked for a hello when no credential is held, after the broker closed with 4007
 * (the credential expired), or when the one held is past the expiry the broker gave. Refreshing
 * it in band before then (an `auth` frame on the live connection) is `refresher`'s, set by
 * `@crier/sdk-web/refresh`: without it the broker closes with 4007 at expiry and the client
 * reconnects with a fresh credential.
 */
export class Credential {
  /** The credential held; `undefined` once the broker said it expired (4007). */
  private heldToken: string | undefined;
  /** When the connection's credential expires (ms since the Unix epoch), when the broker said. */
  expiry: number | undefined;
  /** @internal See {@link Refresher}. */
  refresher: Refresher | undefined;

  constructor(
    /** @internal */
    readonly options: ResolvedOptions,
  ) {
    this.heldToken = options.token;
  }

  /** The credential for a hello: the one held, or a fresh one from getToken when it is needed. */
  forHello(): string | undefined | Promise<string> {
    const x = this.expiry;
    const held = this.heldToken !== undefined && (x === undefined || x > this.options.clock.now());
    if (held || !this.options.fetchToken) return this.heldToken;
    // Neither the credential nor its expiry stands any more: a failed getToken leaves none.
    this.heldToken = this.expiry = undefined;
    return this.fetch();
  }

  /** The broker closed with 4007: the credential held is spent, the next hello needs getToken's. */
  expired(): void {
    this.heldToken = undefined;
  }

  /** A `welcome` or an `auth` ack said when the credential expires (`x`). */
  expires(x: number | undefined): void {
    this.expiry = x;
    this.refresher?.expires(x);
  }

  /** The connection is down. */
  stop(): void {
    this.refresher?.stop();
  }

  /** @internal getToken's answer, kept as the credential; its failure as an `unauthorized` error saying why. */
  async fetch(): Promise<string> {
    try {
      // Anything but a string would make a malformed hello.
      return (this.heldToken = String(await this.options.fetchToken!()));
    } catch (err) {
      throw new CrierError(ErrorCode.unauthorized, `getToken failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
