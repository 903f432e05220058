import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { connect, encodeText, type CrierClient } from '@crier/sdk-node';
import { launchChromium, startBrokerProcess, startPageServer, type BrokerProcess } from './harness.js';
import { waitFor } from '../helpers.js';

// Real pages in Debian's Chromium, a real broker process, a Node service publishing with sdk-node.
let browser: Browser;
let pages: Awaited<ReturnType<typeof startPageServer>>;
let context: BrowserContext | undefined;
let broker: BrokerProcess | undefined;
const services: CrierClient[] = [];

beforeAll(async () => {
  browser = await launchChromium();
  pages = await startPageServer();
});
afterAll(async () => {
  await browser?.close();
  await pages?.close();
});
afterEach(async () => {
  await Promise.allSettled(services.splice(0).map((s) => s.quit()));
  await context?.close();
  context = undefined;
  await broker?.stop('SIGKILL');
  broker = undefined;
});

async function service(b: BrokerProcess): Promise<CrierClient> {
  const c = connect(b.url);
  services.push(c);
  await c.ready();
  return c;
}

/** Opens the test app subscribed to `pattern` and waits until it is connected and subscribed. */
async function openApp(b: BrokerProcess, pattern: string, ctx?: BrowserContext): Promise<Page> {
  context ??= await browser.newContext();
  const page = await (ctx ?? context).newPage();
  await page.goto(`${pages.origin}/app.html?broker=127.0.0.1:${b.port}&pattern=${encodeURIComponent(pattern)}`);
  await page.waitForFunction(() => document.getElementById('state')?.textContent === 'connected', undefined, { timeout: 10_000 });
  return page;
}

/** Waits for `text` in the page's event list. */
async function waitForEvent(page: Page, text: string, timeout = 10_000): Promise<void> {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll('#events li')].some((li) => li.textContent === t),
    text,
    { timeout },
  );
}

const eventsOf = (page: Page): Promise<{ channel: string; text: string }[]> =>
  page.$$eval('#events li', (lis) => lis.map((li) => ({ channel: (li as HTMLElement).dataset['channel'] ?? '', text: li.textContent ?? '' })));

async function subscribedOnBroker(b: BrokerProcess, n: number): Promise<void> {
  await waitFor(`${n} subscriptions on the broker`, async () => (await b.stats())['subscriptions']! >= n, 10_000);
}

describe('a web UI in Chromium', () => {
  it('loads /crier.min.js with one script tag, subscribes to user.*, and renders what a Node service publishes', async () => {
    broker = await startBrokerProcess();
    const page = await openApp(broker, 'user.*');
    await subscribedOnBroker(broker, 1);
    const svc = await service(broker);
    await svc.publish('user.created', encodeText('Ada joined'));
    await svc.publish('user.profile.updated', encodeText('not for user.*'));
    await svc.publish('user.deleted', encodeText('Bob left'));
    await waitForEvent(page, 'Bob left');
    expect(await eventsOf(page)).toEqual([
      { channel: 'user.created', text: 'Ada joined' },
      { channel: 'user.deleted', text: 'Bob left' },
    ]);
  });

  it('navigating away or closing the tab frees the connection at once (quit, not keep-alive expiry)', async () => {
    // A ten-minute keep-alive: only the quit sent on pagehide can explain a prompt release.
    broker = await startBrokerProcess(['--keep-alive-interval', '10m']);
    const leaving = await openApp(broker, 'a.*');
    const closing = await openApp(broker, 'b.*');
    await waitFor('two connections', async () => (await broker!.stats())['connections'] === 2);

    await leaving.goto(`${pages.origin}/blank.html`);
    await waitFor('the navigated page to be freed', async () => (await broker!.stats())['connections'] === 1, 5000);
    await closing.close({ runBeforeUnload: true });
    await waitFor('the closed tab to be freed', async () => {
      const s = await broker!.stats();
      return s['connections'] === 0 && s['subscriptions'] === 0;
    }, 5000);
  });

  it('the broker is killed and restarted on the same port: the page reconnects, resubscribes and shows the next event', async () => {
    broker = await startBrokerProcess();
    const port = broker.port;
    const page = await openApp(broker, 'order.>');
    await broker.stop('SIGKILL');
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'reconnecting', undefined, { timeout: 10_000 });

    broker = await startBrokerProcess(['--port', String(port)]);
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'connected', undefined, { timeout: 15_000 });
    await subscribedOnBroker(broker, 1);
    const svc = await service(broker);
    await svc.publish('order.completed', encodeText('order 42 shipped'));
    await waitForEvent(page, 'order 42 shipped');
  });

  it('two tabs get distinct uuids and each receives its own channels only', async () => {
    broker = await startBrokerProcess();
    const a = await openApp(broker, 'tab.a');
    const b = await openApp(broker, 'tab.b');
    await subscribedOnBroker(broker, 2);
    const [uuidA, uuidB] = await Promise.all([a.textContent('#uuid'), b.textContent('#uuid')]);
    expect(uuidA).toBeTruthy();
    expect(uuidB).toBeTruthy();
    expect(uuidA).not.toBe(uuidB);

    const svc = await service(broker);
    // From one publisher, in order: when a tab has the later event, it would have had the earlier.
    await svc.publish('tab.b', encodeText('for b'));
    await svc.publish('tab.a', encodeText('for a'));
    await svc.publish('tab.b', encodeText('for b again'));
    await waitForEvent(a, 'for a');
    await waitForEvent(b, 'for b again');
    expect(await eventsOf(a)).toEqual([{ channel: 'tab.a', text: 'for a' }]);
    expect(await eventsOf(b)).toEqual([
      { channel: 'tab.b', text: 'for b' },
      { channel: 'tab.b', text: 'for b again' },
    ]);
  });

  it('bad input from page code gets typed errors with stable codes, and other pages are unaffected', async () => {
    broker = await startBrokerProcess(['--max-payload', '1024', '--max-channels', '2']);
    const bad = await openApp(broker, 'x.one');
    const good = await openApp(broker, 'news.*');
    await subscribedOnBroker(broker, 2);
    const outcome = await bad.evaluate(async () => {
      const w = window as unknown as { client: CrierClient; Crier: { CrierError: new (...a: never[]) => Error } };
      const codeOf = async (p: Promise<unknown>): Promise<string> => {
        try {
          await p;
          return 'no error';
        } catch (e) {
          return `${e instanceof w.Crier.CrierError ? 'CrierError' : 'other'}:${(e as { code?: string }).code}`;
        }
      };
      return {
        pattern: await codeOf(w.client.publish('user.*', new Uint8Array(1))),
        name: await codeOf(w.client.publish('user..created', new Uint8Array(1))),
        badPattern: await codeOf(w.client.subscribe('a.>.b').ready),
        tooLarge: await codeOf(w.client.publish('big.one', new Uint8Array(1025))),
        second: await codeOf(w.client.subscribe('x.two').ready),
        third: await codeOf(w.client.subscribe('x.three').ready),
      };
    });
    expect(outcome).toEqual({
      pattern: 'CrierError:bad_channel',
      name: 'CrierError:bad_channel',
      badPattern: 'CrierError:bad_pattern',
      tooLarge: 'CrierError:payload_too_large',
      second: 'no error',
      third: 'CrierError:max_channels',
    });
    const svc = await service(broker);
    await svc.publish('news.today', encodeText('all fine here'));
    await waitForEvent(good, 'all fine here');
  });
});

describe('waking up', () => {
  it('a half-open socket is found by the probe when the tab wakes, and replaced as soon as it is back online, long before the keep-alive would', async () => {
    // Ten-minute keep-alive: without the wake-up probe the dead socket would go unnoticed.
    broker = await startBrokerProcess(['--keep-alive-interval', '10m']);
    const page = await openApp(broker, 'wake.*');
    const states: string[] = [];
    await page.exposeFunction('recordState', (s: string) => states.push(s));
    await page.evaluate(() => (window as unknown as { client: CrierClient; recordState(s: string): void }).client.on('state', (s) => (window as unknown as { recordState(s: string): void }).recordState(s)));

    // Offline emulation leaves the WebSocket OPEN and silently drops its frames: a half-open socket.
    await context!.setOffline(true);
    await page.evaluate(() => dispatchEvent(new Event('visibilitychange')));
    await waitFor('the probe to declare the socket dead', () => states.includes('reconnecting'), 10_000);
    await context!.setOffline(false);
    await page.evaluate(() => dispatchEvent(new Event('online'))); // retry now, not after the backoff
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'connected', undefined, { timeout: 10_000 });
    // The new socket took over the uuid; the broker counts one live subscription on it.
    await waitFor('the resubscription on the new socket', async () => (await broker!.stats())['connections'] === 1 && (await broker!.stats())['subscriptions'] === 1, 10_000);
    const svc = await service(broker);
    await svc.publish('wake.up', encodeText('good morning'));
    await waitForEvent(page, 'good morning');
  });
});

describe('the back/forward cache', () => {
  it('a page restored from the bfcache reconnects, resubscribes and receives again', async () => {
    // Playwright turns the bfcache off by default; this test needs Chromium's real behaviour.
    const bfBrowser = await launchChromium({ ignoreDefaultArgs: ['--disable-back-forward-cache'] });
    try {
      broker = await startBrokerProcess(['--keep-alive-interval', '10m']);
      const ctx = await bfBrowser.newContext();
      const page = await openApp(broker, 'live.*', ctx);
      await page.goto(`${pages.origin}/blank.html`);
      // Leaving for the cache frees the connection like any departure.
      await waitFor('the cached page to let go of its connection', async () => (await broker!.stats())['connections'] === 0, 5000);
      // A restore from the cache fires no load event: wait for the commit only.
      await page.goBack({ waitUntil: 'commit' });
      await page.waitForFunction(() => (window as unknown as { pageshows: boolean[] }).pageshows.length === 2, undefined, { timeout: 10_000 });
      const restored = await page.evaluate(() => (window as unknown as { pageshows: boolean[] }).pageshows);
      expect(restored).toEqual([false, true]); // first load, then restored from the cache (not reloaded)
      await page.waitForFunction(() => document.getElementById('state')?.textContent === 'connected', undefined, { timeout: 10_000 });
      await subscribedOnBroker(broker, 1);
      const svc = await service(broker);
      await svc.publish('live.score', encodeText('2-1'));
      await waitForEvent(page, '2-1');
    } finally {
      await bfBrowser.close();
    }
  });
});
