import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, startBrokerProcess, startPageServer, type BrokerProcess } from '../browser/harness.js';
import { cases } from './cases.js';

// The client contract against the browser bundle, in Chromium: the same cases as
// contract.node.test.ts, bundled with esbuild and run in a page that loaded /crier.min.js.
let broker: BrokerProcess;
let browser: Browser;
let pages: Awaited<ReturnType<typeof startPageServer>>;
let page: Page;

beforeAll(async () => {
  broker = await startBrokerProcess(['--max-channels', '3', '--max-payload', '1024']);
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
  page = await browser.newPage();
  await page.goto(`${pages.origin}/blank.html`);
  await page.addScriptTag({ url: `${broker.http}/crier.min.js` });
  await page.addScriptTag({ content: bundled.outputFiles[0]!.text });
});

afterAll(async () => {
  await browser?.close();
  await pages?.close();
  await broker?.stop();
});

describe('client contract: the browser bundle in Chromium', () => {
  for (const name of Object.keys(cases)) {
    it(name, async () => {
      const outcome = await page.evaluate(
        async ({ name, url }) => {
          const w = window as unknown as {
            Crier: never;
            CrierContract: { cases: Record<string, (env: { sdk: never; url: string }) => Promise<void>> };
          };
          try {
            await w.CrierContract.cases[name]!({ sdk: w.Crier, url });
            return 'passed';
          } catch (err) {
            return String((err as Error)?.stack ?? err);
          }
        },
        { name, url: broker.url },
      );
      expect(outcome).toBe('passed');
    });
  }
});
