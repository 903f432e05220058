// The browser bundles, as built by `node sdk-web/scripts/bundle.mjs` (the root test command runs
// it before vitest): the <script> bundle stays within its size budget and exposes every export
// of the package on the `Crier` global; the ESM bundle exports the same names.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runInNewContext, runInThisContext } from 'node:vm';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { FrameType } from '@crier/protocol';
import * as sdk from '../src/index.js';
import { startFakeBroker } from './fake-broker.js';
import { FakePage } from './fake-page.js';
import { record } from './record.js';
import { waitFor } from './wait-for.js';

/** The `<script>` bundle's budget, minified and gzipped (level 9). */
const BUDGET_GZIP = 10 * 1024;

function built(file: string): Buffer {
  const path = fileURLToPath(new URL(`../dist/${file}`, import.meta.url));
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: run \`npx tsc -b protocol sdk-web && node sdk-web/scripts/bundle.mjs\` first`);
  }
  return readFileSync(path);
}

describe('browser bundles', () => {
  it(`crier.min.js is at most ${BUDGET_GZIP / 1024} KB minified and gzipped`, () => {
    const bytes = built('crier.min.js');
    const gzip = gzipSync(bytes, { level: 9 }).length;
    console.log(`crier.min.js: ${(bytes.length / 1024).toFixed(1)} KB min, ${(gzip / 1024).toFixed(1)} KB gzip (budget ${BUDGET_GZIP / 1024} KB)`);
    expect(gzip, `crier.min.js is ${gzip} bytes gzipped, over the ${BUDGET_GZIP}-byte budget`).toBeLessThanOrEqual(BUDGET_GZIP);
  });

  it('crier.min.js defines the Crier global with every export of the package, and nothing else', () => {
    // A bare context, plus the two globals the codec takes at load time, as a browser has them.
    const context: { Crier?: Record<string, unknown> } = { TextEncoder, TextDecoder } as never;
    runInNewContext(built('crier.min.js').toString(), context);
    const Crier = context.Crier!;
    expect(Object.keys(Crier).sort()).toEqual(Object.keys(sdk).sort());
    expect(Object.keys(context)).toEqual(['TextEncoder', 'TextDecoder', 'Crier']);
    expect(typeof Crier['connect']).toBe('function');
    expect(typeof Crier['CrierError']).toBe('function');
    expect(Crier['ErrorCode']).toEqual(sdk.ErrorCode);
    expect(Crier['CloseCode']).toEqual(sdk.CloseCode);
  });

  it('crier.min.js works end to end: subscribe, publish, receive, quit on pagehide', async () => {
    runInThisContext(built('crier.min.js').toString());
    const Crier = (globalThis as { Crier?: typeof sdk }).Crier!;
    delete (globalThis as { Crier?: unknown }).Crier;
    const b = await startFakeBroker();
    try {
      const page = new FakePage();
      const client = Crier.connect(b.url, { WebSocket, lifecycleTarget: page });
      const rec = record(client);
      await waitFor('subscribed', client.subscribe('user.*').ready);
      const ack = await waitFor('the ack', client.publish('user.created', Crier.encodeJson({ id: 42 })));
      expect(ack.offset).toBe(1);
      await waitFor('the event', () => rec.events.length === 1);
      expect(Crier.decodeJson(rec.events[0]!.data)).toEqual({ id: 42 });
      const error = await client.publish('user.*', new Uint8Array(1)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Crier.CrierError);
      expect(error).toMatchObject({ code: Crier.ErrorCode.badChannel });
      page.pagehide(false);
      await waitFor('the broker to see the close', () => b.connections[0]!.closed);
      expect(b.connections[0]!.frames.at(-1)).toEqual({ t: FrameType.quit });
      expect(client.state).toBe('closed');
    } finally {
      await b.close();
    }
  });

  it('crier.esm.js exports the same names', async () => {
    const source = built('crier.esm.js').toString();
    const mod = (await import(`data:text/javascript;base64,${Buffer.from(source).toString('base64')}`)) as Record<string, unknown>;
    expect(Object.keys(mod).sort()).toEqual(Object.keys(sdk).sort());
  });
});
