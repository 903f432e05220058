import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { connect, encodeJson } from '@crier/sdk-node';
import { launchChromium, startBrokerProcess, type BrokerProcess } from './harness.js';

// The operator's view: the dashboard a broker serves at `/`, with no build step and nothing
// from outside, shows a service's event in its live tail and its counters move.
let browser: Browser;
let broker: BrokerProcess;

beforeAll(async () => {
  browser = await launchChromium();
  broker = await startBrokerProcess();
});
afterAll(async () => {
  await browser?.close();
  await broker?.stop();
});

it('shows a service event in the live tail, counts it, and publishes a test event from its form', async () => {
  const page = await browser.newPage();
  const external: string[] = [];
  page.on('request', (req) => {
    if (!req.url().startsWith(broker.http) && !req.url().startsWith('data:')) external.push(req.url());
  });
  await page.goto(`${broker.http}/`);
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'connected', undefined, { timeout: 10_000 });
  const published = async (): Promise<number> => Number(await page.textContent('#published'));
  const before = await published();
  // The tail subscribes through the page's own connection: wait until the broker holds it.
  await page.waitForFunction(async (http) => (await (await fetch(`${http}/stats`)).json()).subscriptions >= 1, broker.http, { timeout: 10_000 });

  const service = connect(broker.url);
  try {
    await service.publish('order.completed', encodeJson({ id: 91711, total: 331.2 }));
    await page.waitForFunction(
      () => [...document.querySelectorAll('#tail .row')].some((r) => (r as HTMLElement).dataset['channel'] === 'order.completed' && r.textContent?.includes('91711')),
      undefined,
      { timeout: 10_000 },
    );
    // The counters come from /stats polled by the page: they move without a reload.
    await page.waitForFunction((n) => Number(document.getElementById('published')?.textContent) > n, before, { timeout: 10_000 });
    expect(Number(await page.textContent('#connections'))).toBeGreaterThanOrEqual(2);

    // The publish form goes through the page's SDK and shows the ack.
    await page.fill('#publish-channel', 'dashboard.test');
    await page.fill('#publish-data', 'hello from the form');
    await page.click('#publish-form [type=submit]');
    await page.waitForSelector('#publish-result[data-result="ok"]', { timeout: 10_000 });
    expect(await page.getAttribute('#publish-result', 'data-offset')).toBe('1');
    // And a bad channel shows its stable code.
    await page.fill('#publish-channel', 'dashboard.*');
    await page.click('#publish-form [type=submit]');
    await page.waitForSelector('#publish-result[data-result="error"]', { timeout: 10_000 });
    expect(await page.textContent('#publish-result')).toContain('bad_channel');
  } finally {
    await service.quit();
  }
  expect(external).toEqual([]); // nothing from a CDN or any other host
});

it('with credentials configured, asks for an admin token, keeps it for the tab, and then shows and tails', async () => {
  const { createHash } = await import('node:crypto');
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const sha = (t: string): string => createHash('sha256').update(t).digest('hex');
  const dir = mkdtempSync(join(tmpdir(), 'crier-dash-'));
  const tokens = join(dir, 'tokens.json');
  writeFileSync(tokens, JSON.stringify([
    { id: 'ops', sha256: sha('ops-admin-token'), publish: ['>'], subscribe: ['>'], admin: true },
    { id: 'svc', sha256: sha('svc-token'), publish: ['svc.>'] },
  ]));
  const secured = await startBrokerProcess(['--tokens-file', tokens]);
  const page = await browser.newPage();
  try {
    await page.goto(`${secured.http}/`);
    await page.waitForSelector('#token-form:not([hidden])', { timeout: 10_000 });
    expect(await page.textContent('#token-why')).toContain('needs an admin credential');

    // A service token is not an admin's: the form says it was refused.
    await page.fill('#token-input', 'svc-token');
    await page.click('#token-form [type=submit]');
    await page.waitForFunction(() => document.getElementById('token-why')?.textContent?.includes('not an admin'), undefined, { timeout: 10_000 });

    await page.fill('#token-input', 'ops-admin-token');
    await page.click('#token-form [type=submit]');
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'connected', undefined, { timeout: 10_000 });
    await page.waitForFunction(() => document.getElementById('connections')?.textContent !== '—', undefined, { timeout: 10_000 });
    expect(await page.isHidden('#token-form')).toBe(true);
    expect(await page.evaluate(() => sessionStorage.getItem('crier.dashboard.token'))).toBe('ops-admin-token');

    const service = connect(secured.url, { token: 'svc-token' });
    try {
      await page.waitForFunction(async (http) => {
        const res = await fetch(`${http}/stats`, { headers: { Authorization: 'Bearer ops-admin-token' } });
        return (await res.json()).subscriptions >= 1;
      }, secured.http, { timeout: 10_000 });
      await service.publish('svc.deployed', encodeJson({ version: 7 }));
      await page.waitForFunction(
        () => [...document.querySelectorAll('#tail .row')].some((r) => (r as HTMLElement).dataset['channel'] === 'svc.deployed'),
        undefined,
        { timeout: 10_000 },
      );
    } finally {
      await service.quit();
    }
  } finally {
    await page.close();
    await secured.stop();
  }
});
