// An optional entry point (`@crier/sdk-web/refresh`): getToken's credential refreshed in band,
// before it expires, with no reconnect. The core bundle leaves it out (a core client asks getToken
// at each connect, and reconnects with a fresh credential when the broker closes with 4007);
// `@crier/sdk-web/full` has it built in.
import { CrierError, FrameType, type AckFrame } from '@crier/protocol';
import type { Client } from './client.js';
import type { Credential, Refresher } from './credential.js';
import { isLoss } from './pending.js';
import type { CrierClient, Timers } from './types.js';

/**
 * Once a `welcome` (or an `auth` ack) says when the credential expires (`x`), getToken is asked a
 * little before then and the new credential goes in an `auth` frame on the live connection, so
 * no event is lost. A failed refresh is an `'error'` event and is tried again a bounded number of
 * times before expiry; after that the broker closes with 4007 and the client reconnects with a
 * fresh credential.
 */
class TokenRefresh implements Refresher {
  private timer: unknown;
  private failures = 0;
  private readonly clock: Timers;

  constructor(
    private readonly credential: Credential,
    private readonly client: Client,
  ) {
    this.clock = credential.options.clock;
  }

  /**
   * Schedules the refresh at `x - margin`, the margin a tenth of the time left and at most 30 s.
   * Nothing when `x` is absent or already past (a clock far ahead of the broker's: no refresh
   * loop, the 4007 reconnect renews it).
   */
  expires(x: number | undefined): void {
    this.failures = 0;
    const left = x! - this.clock.now(); // NaN without x: no refresh
    this.stop();
    if (left > 0) this.schedule(left - Math.min(30_000, left / 10));
  }

  stop(): void {
    this.clock.clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    this.stop();
    this.timer = this.clock.setTimeout(() => void this.refresh(), ms);
  }

  private async refresh(): Promise<void> {
    const x = this.credential.expiry!;
    try {
      const tk = await this.credential.fetch();
      // Not connected: nothing to refresh (the next welcome schedules its own).
      const ack = await new Promise<AckFrame | void>(
        (resolve, reject) => this.client.ask((r) => ({ t: FrameType.auth, r, tk }), { resolve, reject }, 'auth') || resolve(),
      );
      if (ack) this.credential.expires(ack.x);
    } catch (err) {
      const e = err as CrierError;
      // A lost connection is not a refusal: the next welcome schedules a refresh of its own.
      if (isLoss(e)) return;
      this.client.fail(new CrierError(e.code, `credential refresh failed: ${e.message}`));
      // Tried again 3 times at most, each at half the time left.
      const left = x - this.clock.now();
      if (++this.failures <= 3 && left > 0) this.schedule(left / 2);
    }
  }
}

/**
 * Refreshes `client`'s credential from its `getToken` in band, before it expires (see the
 * README's Credentials); returns `client`. Nothing to do for a client without `getToken`. Call
 * it right after `connect()`, before the first `welcome`.
 */
export function withTokenRefresh<C extends CrierClient>(client: C): C {
  const c = client as unknown as Client;
  const credential = c.connection.credential;
  if (credential.options.fetchToken) credential.refresher = new TokenRefresh(credential, c);
  return client;
}
