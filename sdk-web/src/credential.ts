import { CrierError, ErrorCode, FrameType, type AckFrame } from '@crier/protocol';
import type { ResolvedOptions } from './options.js';
import { isLoss, type SendRequest } from './pending.js';

/** What the credential asks of the client. */
export interface CredentialHooks {
  /** Sends a request (here, `auth` frames). */
  ask: SendRequest;
  /** Reports a failure nobody awaits (getToken failed, the broker refused a refresh). */
  error(error: CrierError): void;
}

/**
 * The connection's credential: `options.token`, then what `getToken()` answers.
 *
 * getToken is asked for a hello when no credential is held, after the broker closed with 4007
 * (the credential expired), or when the one held is past its expiry; and, once a `welcome` (or an
 * `auth` ack) says when the credential expires (`x`), for an in-band refresh a little before then:
 * an `auth` frame on the live connection, so no event is lost. A failed refresh is an `'error'`
 * event and is tried again a bounded number of times before expiry; after that the broker closes
 * with 4007 and the client reconnects with a fresh credential.
 */
export class Credential {
  /** The credential held; `undefined` once the broker said it expired (4007). */
  private heldToken: string | undefined;
  /** When the connection's credential expires (ms since the Unix epoch), when the broker said. */
  private expiry: number | undefined;
  private timer: unknown;
  private failures = 0;

  constructor(
    private readonly options: ResolvedOptions,
    private readonly hooks: CredentialHooks,
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

  /**
   * A `welcome` or an `auth` ack said when the credential expires: with getToken, schedule its
   * refresh at `x - margin`, the margin a tenth of the time left and at most 30 s. Nothing when
   * `x` is absent or already past (a clock far ahead of the broker's: no refresh loop, the 4007
   * reconnect renews it).
   */
  expires(x: number | undefined): void {
    this.stop();
    this.expiry = x;
    this.failures = 0;
    const left = x! - this.options.clock.now(); // NaN without x: no refresh
    if (this.options.fetchToken && left > 0) this.schedule(left - Math.min(30_000, left / 10));
  }

  /** The connection is down: no refresh until the next welcome. */
  stop(): void {
    this.options.clock.clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    this.stop();
    this.timer = this.options.clock.setTimeout(() => void this.refresh(), ms);
  }

  private async refresh(): Promise<void> {
    const x = this.expiry!;
    try {
      const tk = await this.fetch();
      // Not connected: nothing to refresh (the next welcome schedules its own).
      const ack = await new Promise<AckFrame | void>(
        (resolve, reject) => this.hooks.ask((r) => ({ t: FrameType.auth, r, tk }), { resolve, reject }, 'auth') || resolve(),
      );
      if (ack) this.expires(ack.x);
    } catch (err) {
      const e = err as CrierError;
      // A lost connection is not a refusal: the next welcome schedules a refresh of its own.
      if (isLoss(e)) return;
      this.hooks.error(new CrierError(e.code, `credential refresh failed: ${e.message}`));
      // Tried again 3 times at most, each at half the time left.
      const left = x - this.options.clock.now();
      if (++this.failures <= 3 && left > 0) this.schedule(left / 2);
    }
  }

  /** getToken's answer, kept as the credential; its failure as an `unauthorized` error saying why. */
  private async fetch(): Promise<string> {
    try {
      // Anything but a string would make a malformed hello.
      return (this.heldToken = String(await this.options.fetchToken!()));
    } catch (err) {
      throw new CrierError(ErrorCode.unauthorized, `getToken failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
