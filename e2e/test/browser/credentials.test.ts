// A page with a short-lived JWT from getToken(), in Chromium, against a broker process that
// requires credentials: it connects, is refused a channel outside its grant, and rides through
// in-band refreshes past its first token's expiry without a reconnect and without losing an event.
// The page loads crier.full.min.js: the in-band refresh is @crier/sdk-web/refresh's, built into
// the full client, not the core's (crier.min.js asks getToken at each connect only).
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { connect, encodeText, type CrierClient } from '@crier/sdk-node';
import { launchChromium, startBrokerProcess, startPageServer, type BrokerProcess } from './harness.js';
import { waitFor } from '../helpers.js';

const SECRET = 'browser-credential-test-secret-0123456789';
// The SDK refreshes a tenth of the lifetime before expiry: 4 s leaves ~0.3-0.4 s for the page's
// getToken and the auth round trip, enough on a loaded CI machine (2 s was not: 1 failure in CI).
const LIFETIME_S = 4;

/** An HS256 JWT, signed here as the application's login service would. */
function mint(sub: string, lifetimeS: number): string {
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + lifetimeS })}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

let browser: Browser;
let pages: Awaited<ReturnType<typeof startPageServer>>;
let broker: BrokerProcess;
let service: CrierClient;

beforeAll(async () => {
  browser = await launchChromium();
  pages = await startPageServer();
  broker = await startBrokerProcess([
    '--jwt-secret', SECRET, '--jwt-clock-tolerance', '0',
    '--jwt-subscribe', 'user.{sub}.>', '--jwt-publish', 'user.{sub}.>',
  ]);
  service = connect(broker.url, { token: mint('42', 600) });
  await service.ready();
});

afterAll(async () => {
  await service?.quit();
  await browser?.close();
  await pages?.close();
  await broker?.stop();
});

it('connects with getToken, is refused outside its grant, and refreshes in band past expiry with nothing lost', async () => {
  const page: Page = await browser.newPage();
  let minted = 0;
  await page.exposeFunction('mintToken', () => {
    minted++;
    return mint('42', LIFETIME_S);
  });
  await page.goto(`${pages.origin}/blank.html`);
  await page.addScriptTag({ url: `${broker.http}/crier.full.min.js` });
  await page.evaluate((url) => {
    const w = window as unknown as Record<string, unknown> & { Crier: typeof import('@crier/sdk-web/full') };
    const seen: string[] = [];
    const states: string[] = [];
    const errors: string[] = [];
    const client = w.Crier.connect(url, { getToken: () => (w['mintToken'] as () => Promise<string>)() });
    client.on('state', (s) => states.push(s));
    client.on('error', (e) => errors.push(e.code));
    client.subscribe('user.42.>', (e) => seen.push(w.Crier.decodeText(e.data)));
    Object.assign(w, { client, seen, states, errors });
  }, broker.url);
  await page.waitForFunction(() => (window as unknown as { states: string[] }).states.includes('connected'), undefined, { timeout: 10_000 });

  // Outside the grant: forbidden, and the connection stays.
  const refused = await page.evaluate(async () => {
    const client = (window as unknown as { client: import('@crier/sdk-web').CrierClient }).client;
    try {
      await client.subscribe('user.43.>').ready;
      return 'subscribed';
    } catch (err) {
      return (err as { code: string }).code;
    }
  });
  expect(refused).toBe('forbidden');
  await waitFor('the page subscription on the broker', async () => (await brokerStats())['subscriptions']! >= 1, 10_000);

  // Events in three rounds: before the first refresh, after it, and after the second one (by
  // then the first token has expired): the page sees every one, in order, on one connection.
  const sent: string[] = [];
  const round = async (r: number): Promise<void> => {
    for (let i = 0; i < 5; i++) {
      const text = `r${r}-${i}`;
      sent.push(text);
      await service.publish('user.42.tick', encodeText(text));
    }
    await page.waitForFunction((n) => (window as unknown as { seen: string[] }).seen.length >= n, sent.length, { timeout: 10_000 });
  };
  await round(0);
  await waitFor('the first in-band refresh', () => minted >= 2, 10_000);
  await round(1);
  await waitFor('the second in-band refresh (past the first token\'s expiry)', () => minted >= 3, 10_000);
  await round(2);

  const result = await page.evaluate(() => {
    const w = window as unknown as { seen: string[]; states: string[]; errors: string[] };
    return { seen: w.seen, states: w.states, errors: w.errors };
  });
  expect(result.seen).toEqual(sent);
  expect(result.states).toEqual(['connected']); // never reconnecting: the refreshes were in band
  expect(result.errors).toEqual([]);
  await page.close();
});

async function brokerStats(): Promise<Record<string, number>> {
  // /stats is for admins once credentials exist; the test reads it through the service's view
  // instead: an admin JWT (crier claim) minted here.
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256' })}.${b64({ sub: 'ops', exp: Math.floor(Date.now() / 1000) + 60, crier: { admin: true } })}`;
  const token = `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
  const res = await fetch(`${broker.http}/stats`, { headers: { Authorization: `Bearer ${token}` } });
  return (await res.json()) as Record<string, number>;
}
