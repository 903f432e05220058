// Chromium's own EventSource across a dropped connection: the broker's SSE ids are stream
// positions, the browser sends the last one back as Last-Event-ID when it reconnects by itself,
// and the new stream starts with every event the old one missed, once, in order, then a
// `resumed` event, then live ones. The connection is cut by the fault proxy between page and broker.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { startFaultProxy, type FaultProxy } from '../fault-proxy.js';
import { waitFor } from '../helpers.js';
import { launchChromium, startBrokerProcess, startPageServer, type BrokerProcess } from './harness.js';

let browser: Browser;
let pages: Awaited<ReturnType<typeof startPageServer>>;
let broker: BrokerProcess;
let proxy: FaultProxy;

beforeAll(async () => {
  browser = await launchChromium();
  pages = await startPageServer();
  // The page is on its own origin: the stream is a cross-origin read, allowed by CORS.
  broker = await startBrokerProcess(['--cors-origins', pages.origin]);
  proxy = await startFaultProxy({ port: broker.port });
});

afterAll(async () => {
  await browser?.close();
  await pages?.close();
  await proxy?.close();
  await broker?.stop();
});

async function publish(channel: string, body: string): Promise<void> {
  const res = await fetch(`${broker.http}/publish/${channel}`, { method: 'POST', body });
  expect(res.status).toBe(202);
}

/** What the page's EventSource got: `<event>|<data>|<lastEventId>` per message, and its opens. */
async function seen(page: Page): Promise<{ got: string[]; opens: number }> {
  return page.evaluate(() => {
    const w = window as unknown as { got: string[]; opens: number };
    return { got: [...w.got], opens: w.opens };
  });
}

it('a dropped EventSource reconnects with Last-Event-ID and gets every missed event once, in order, then live ones', async () => {
  const page = await browser.newPage();
  await page.goto(`${pages.origin}/blank.html`);
  await page.evaluate((base) => {
    const w = window as unknown as { got: string[]; opens: number };
    w.got = [];
    w.opens = 0;
    const es = new EventSource(`${base}/events?channels=news.>`);
    es.onopen = () => w.opens++;
    for (const type of ['news.a', 'news.b', 'resumed']) {
      es.addEventListener(type, (e) => w.got.push(`${type}|${(e as MessageEvent<string>).data}|${(e as MessageEvent<string>).lastEventId}`));
    }
  }, `http://127.0.0.1:${proxy.port}`);
  await waitFor('the stream to open', async () => (await seen(page)).opens === 1, { timeoutMs: 10_000 });
  await waitFor('the subscription', async () => (await broker.stats())['subscriptions'] === 1);
  await publish('news.a', 'one');
  await waitFor('the first event', async () => (await seen(page)).got.length === 1);

  // Cut the connection; publish while the browser waits its retry (2 s), then let it back in.
  proxy.refuse(true);
  proxy.reset();
  await waitFor('the broker to drop the stream', async () => (await broker.stats())['sseStreams'] === 0, { timeoutMs: 10_000 });
  await publish('news.a', 'two');
  await publish('news.b', 'three');
  await publish('other.x', 'not subscribed');
  proxy.refuse(false);
  await waitFor('the browser to reconnect by itself and resume', async () => (await seen(page)).got.some((g) => g.startsWith('resumed|')), { timeoutMs: 15_000 });
  await publish('news.b', 'four');
  await waitFor('the live event after the resume', async () => (await seen(page)).got.length === 5, { timeoutMs: 10_000 });

  const { got, opens } = await seen(page);
  expect(opens).toBeGreaterThanOrEqual(2);
  const rows = got.map((g) => g.split('|'));
  expect(rows.map(([type, data]) => `${type}|${type === 'resumed' ? JSON.parse(data!).recovered : data}`)).toEqual([
    'news.a|one', 'news.a|two', 'news.b|three', 'resumed|true', 'news.b|four',
  ]);
  expect(JSON.parse(rows[3]![1]!)).toEqual({ recovered: true, replayed: 2 });
  // Every id is a stream position <epoch>:<seq>, increasing.
  const seqs = rows.filter(([type]) => type !== 'resumed').map(([, , id]) => Number(id!.slice(id!.lastIndexOf(':') + 1)));
  expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
  await page.close();
});
