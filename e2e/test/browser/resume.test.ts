// Resume in Chromium with the browser bundle: a tab that goes offline for a few seconds while
// events are published gets them all after, in order, once; a page that saves its session and is
// loaded again (opt-in resume across a reload) gets what it missed; and the dashboard's tail says
// so when a restarted broker could not give it what it missed.
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { connect, encodeText, type CrierClient } from '@crier/sdk-node';
import { freePort } from '../cli/run-cli.js';
import { waitFor } from '../helpers.js';
import { launchChromium, startBrokerProcess, startPageServer, type BrokerProcess } from './harness.js';

let browser: Browser;
let pages: Awaited<ReturnType<typeof startPageServer>>;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  browser = await launchChromium();
  pages = await startPageServer();
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

afterAll(async () => {
  await browser?.close();
  await pages?.close();
});

async function brokerProcess(args: string[] = []): Promise<BrokerProcess> {
  const b = await startBrokerProcess(args);
  cleanups.push(() => b.stop());
  return b;
}

async function service(b: BrokerProcess): Promise<CrierClient> {
  const c = connect(b.url);
  cleanups.push(() => c.quit());
  await c.ready();
  return c;
}

async function context(): Promise<BrowserContext> {
  const ctx = await browser.newContext();
  cleanups.push(() => ctx.close());
  return ctx;
}

const BUNDLE = readFileSync(fileURLToPath(new URL('../../../sdk-web/dist/crier.min.js', import.meta.url)), 'utf8');

/**
 * A page written as the README's reload recipe: the session saved on pagehide, given back as
 * `resume`, no quit on unload; it keeps what it shows in `window.shown` and its `resumed`
 * notices in `window.resumes`. Injected with the bundle into every load of `blank.html?recipe`
 * (a page served from loopback, as the bundle's own script tag would be).
 */
function recipe(broker: string): string {
  return `${BUNDLE}
if (location.search === '?recipe') {
  window.resumes = [];
  window.shown = [];
  window.state = 'loading';
  const saved = sessionStorage.getItem('crier-session');
  const client = Crier.connect('ws://${broker}/', {
    resume: saved ? JSON.parse(saved) : undefined,
    lifecycle: { quitOnUnload: false },
    reconnect: { initialDelay: 50, maxDelay: 500 },
  });
  window.client = client;
  addEventListener('pagehide', () => { if (client.session) sessionStorage.setItem('crier-session', JSON.stringify(client.session)); });
  client.on('state', (s) => (window.state = s));
  client.on('resumed', (r) => window.resumes.push(r));
  client.subscribe('news.*', (event) => window.shown.push(Crier.decodeText(event.data)));
}`;
}

interface RecipeWindow {
  resumes: { recovered: boolean; reason?: string; replayed: number }[];
  shown: string[];
  state: string;
}

const RECIPE_URL = (): string => `${pages.origin}/blank.html?recipe`;

async function openRecipe(ctx: BrowserContext, b: BrokerProcess): Promise<Page> {
  const page = await ctx.newPage();
  await page.addInitScript({ content: recipe(`127.0.0.1:${b.port}`) });
  await page.goto(RECIPE_URL());
  await waitState(page, 'connected');
  return page;
}

const shown = (page: Page): Promise<string[]> => page.evaluate(() => [...(window as unknown as RecipeWindow).shown]);
const resumes = (page: Page): Promise<RecipeWindow['resumes']> => page.evaluate(() => [...(window as unknown as RecipeWindow).resumes]);
const waitState = (page: Page, state: string): Promise<unknown> =>
  page.waitForFunction((s) => (window as unknown as RecipeWindow).state === s, state, { timeout: 10_000 });
const waitShown = (page: Page, n: number): Promise<unknown> =>
  page.waitForFunction((k) => (window as unknown as RecipeWindow).shown?.length === k, n, { timeout: 10_000 });
const waitResumes = (page: Page, n: number): Promise<unknown> =>
  page.waitForFunction((k) => (window as unknown as RecipeWindow).resumes?.length === k, n, { timeout: 10_000 });

async function subscribed(b: BrokerProcess, n: number): Promise<void> {
  await waitFor(`${n} subscriptions on the broker`, async () => (await b.stats())['subscriptions'] === n, { timeoutMs: 10_000 });
}

it('a tab offline for a while gets every event published meanwhile, in order, once, then live ones', async () => {
  const b = await brokerProcess();
  const ctx = await context();
  const page = await openRecipe(ctx, b);
  await subscribed(b, 1);
  const svc = await service(b);
  await svc.publish('news.a', encodeText('before'));
  await waitShown(page, 1);

  // Offline emulation leaves the socket OPEN and drops its frames; the wake probe finds it dead.
  await ctx.setOffline(true);
  await page.evaluate(() => dispatchEvent(new Event('visibilitychange')));
  await waitState(page, 'reconnecting');
  for (const text of ['o1', 'o2', 'o3', 'o4']) await svc.publish('news.b', encodeText(text));
  await ctx.setOffline(false);
  await page.evaluate(() => dispatchEvent(new Event('online')));
  await waitResumes(page, 1);
  await svc.publish('news.a', encodeText('after'));
  await waitShown(page, 6);

  expect(await shown(page)).toEqual(['before', 'o1', 'o2', 'o3', 'o4', 'after']);
  expect(await resumes(page)).toEqual([{ recovered: true, replayed: 4 }]);
});

it('a page loaded again with its saved session (opt-in resume across a reload) gets what it missed', async () => {
  const b = await brokerProcess();
  const ctx = await context();
  const page = await openRecipe(ctx, b);
  await subscribed(b, 1);
  const svc = await service(b);
  await svc.publish('news.a', encodeText('seen'));
  await waitShown(page, 1);

  // The page goes away (its session saved on pagehide, no quit): the broker parks its stream.
  await page.goto(`${pages.origin}/blank.html`);
  await waitFor('the stream to be parked', async () => ((await b.stats())['sessions'] as unknown as { parked: number }).parked === 1, { timeoutMs: 10_000 });
  for (const text of ['m1', 'm2', 'm3']) await svc.publish('news.a', encodeText(text));

  // Loaded again in the same tab: the first hello is a resume.
  await page.goto(RECIPE_URL());
  await waitShown(page, 3);
  expect(await shown(page)).toEqual(['m1', 'm2', 'm3']); // what it missed: 'seen' was shown before
  expect(await resumes(page)).toEqual([{ recovered: true, replayed: 3 }]);

  // A real reload, nothing missed meanwhile: recovered, nothing replayed, live again.
  await page.reload();
  await waitResumes(page, 1);
  expect(await resumes(page)).toEqual([{ recovered: true, replayed: 0 }]);
  await svc.publish('news.a', encodeText('live'));
  await waitShown(page, 1);
  expect(await shown(page)).toEqual(['live']);
  expect((await b.stats())['connections']).toBe(2); // the page's one stream, and the service
});

it('the dashboard\'s tail says events may be missing after a restarted broker could not replay them', async () => {
  const port = await freePort();
  let b = await brokerProcess(['--port', String(port)]);
  const ctx = await context();
  const page = await ctx.newPage();
  await page.goto(`${b.http}/`);
  await waitFor('the tail to subscribe', async () => (await b.stats())['subscriptions'] === 1, { timeoutMs: 10_000 });
  await b.stop('SIGKILL');
  b = await brokerProcess(['--port', String(port)]);
  await page.waitForFunction(() => /may be missing \(broker restarted\)/.test(document.getElementById('tail-info')?.textContent ?? ''), undefined, { timeout: 15_000 });
});
