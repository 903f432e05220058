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
