import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, startBrokerProcess, startPageServer, type BrokerProcess } from '../browser/harness.js';
import { startFaultProxy, type FaultProxy } from '../fault-proxy.js';
import { FULL_CASES, cases } from './cases.js';

// The client contract against the browser bundles, in Chromium: the same cases as
// contract.node.test.ts, bundled with esbuild and run in a page that loaded /crier.min.js (the
// core), or /crier.full.min.js for the cases that need more (FULL_CASES); and every case again in
// a page whose WebSockets are blocked (its route handler refuses each one, as a proxy that does
// not pass WebSocket would), where the full bundle falls back to the broker's HTTP session.
let broker: BrokerProcess;
let browser: Browser;
let pages: Awaited<ReturnType<typeof startPageServer>>;
/** By bundle: the core's page and the full one's. */
const pageOf = new Map<string, Page>();
/** The page whose WebSockets its route handler refuses: the full bundle on the HTTP session. */
const BLOCKED = 'crier.full.min.js, WebSocket blocked';
let proxy: FaultProxy;

beforeAll(async () => {
  // The pages come from another origin: the HTTP session's stream and POSTs need CORS.
  broker = await startBrokerProcess(['--max-channels', '3', '--max-payload', '1024', '--http-sessions', '--cors-origins', '*']);
  proxy = await startFaultProxy({ port: broker.port });
  pages = await startPageServer();
  browser = await launchChromium();
  const bundled = await build({
    entryPoints: [fileURLToPath(new URL('./cases.ts', import.meta.url))],
    bundle: true,
    format: 'iife',
    globalName: 'CrierContract',
    target: 'es2020',
    write: false,
  });
  for (const bundle of ['crier.min.js', 'crier.full.min.js', BLOCKED]) {
    const page = await browser.newPage();
    if (bundle === BLOCKED) await page.routeWebSocket(/.*/, (ws) => ws.close({ code: 1008, reason: 'WebSocket blocked' }));
    // The cases drive the fault proxy from the page: each call comes out here.
    await page.exposeFunction('crierFault', (action: 'reset' | 'refuse' | 'latency', arg?: boolean | number) => {
      if (action === 'reset') proxy.reset();
      else if (action === 'refuse') proxy.refuse(arg === true);
      else proxy.latency(Number(arg));
    });
    await page.goto(`${pages.origin}/blank.html`);
    await page.addScriptTag({ url: `${broker.http}/${bundle === BLOCKED ? 'crier.full.min.js' : bundle}` });
    await page.addScriptTag({ content: bundled.outputFiles[0]!.text });
    pageOf.set(bundle, page);
  }
});

afterAll(async () => {
  await browser?.close();
  await proxy?.close();
  await pages?.close();
  await broker?.stop();
});

describe('client contract: the browser bundles in Chromium', () => {
  const runs = Object.keys(cases).flatMap((name): [string, string][] => [
    [name, FULL_CASES.has(name) ? 'crier.full.min.js' : 'crier.min.js'],
    [name, BLOCKED],
  ]);
  for (const [name, bundle] of runs) {
    it(`${name} (${bundle})`, async () => {
      const outcome = await pageOf.get(bundle)!.evaluate(
        async ({ name, url, proxyUrl }) => {
          const w = window as unknown as {
            Crier: never;
            CrierContract: { cases: Record<string, (env: { sdk: never; url: string; faults: unknown }) => Promise<void>> };
            crierFault(action: string, arg?: boolean | number): Promise<void>;
          };
          const faults = {
            url: proxyUrl,
            reset: () => w.crierFault('reset'),
            refuse: (on: boolean) => w.crierFault('refuse', on),
            latency: (ms: number) => w.crierFault('latency', ms),
          };
          try {
            // The core bundle has no JSON helpers (they are @crier/sdk-web/text's): the page's own.
            const json = {
              encodeJson: (v: unknown) => new TextEncoder().encode(JSON.stringify(v)),
              decodeJson: (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b)) as unknown,
            };
            await w.CrierContract.cases[name]!({ sdk: { ...json, ...(w.Crier as object) } as never, url, faults });
            return 'passed';
          } catch (err) {
            return String((err as Error)?.stack ?? err);
          }
        },
        { name, url: broker.url, proxyUrl: proxy.url },
      );
      expect(outcome).toBe('passed');
    });
  }
});
