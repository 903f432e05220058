#!/usr/bin/env node
// Takes the dashboard screenshot in broker/docs/dashboard.png: a real broker on 127.0.0.1, a few
// sdk-node services publishing and subscribing a steady trickle of domain events, and Debian's
// Chromium (driven by playwright-core) showing the dashboard once its chart and tail have data.
//
//   node e2e/scripts/screenshot.mjs [--out path.png] [--seconds 20] [--light]
//
// Needs the build (broker/dist/static/ with the dashboard and crier.min.js).
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createBroker } from '@crier/broker';
import { connect, encodeJson } from '@crier/sdk-node';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';

const { values: args } = parseArgs({
  options: {
    out: { type: 'string', default: fileURLToPath(new URL('../../broker/docs/dashboard.png', import.meta.url)) },
    seconds: { type: 'string', default: '20' },
    light: { type: 'boolean', default: false },
  },
});
const seconds = Number(args.seconds);

// Small queues, so the frozen reader below turns slow within a few megabytes.
const broker = await createBroker({ host: '127.0.0.1', port: 0, logger: false, bufferSize: 500, maxBufferBytes: 1024 * 1024 });
const httpUrl = broker.url.replace(/^ws/, 'http');
const clients = [];
const timers = [];

function service(subscriptions) {
  const client = connect(broker.url);
  clients.push(client);
  for (const pattern of subscriptions) client.subscribe(pattern, () => {});
  return client;
}

// Who listens: an email service, analytics, a fulfilment worker, and a few browser tabs.
service(['user.created', 'user.verified']);
service(['user.>', 'order.>', 'payment.>']);
service(['order.completed', 'inventory.*']);
service(['order.*']);
for (let i = 0; i < 6; i++) service([`order.completed`, `user.${i % 2 ? 'created' : 'updated'}`]);
service(['payment.*', 'payment.refund.>']);
const publisher = service([]);

// A reporting job that stopped reading its socket: it shows up under slow consumers.
class FrozenWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    this.once('open', () => setTimeout(() => this._socket?.pause(), 500));
  }
}
const frozen = connect(broker.url, { WebSocket: FrozenWebSocket, reconnect: false });
clients.push(frozen);
frozen.subscribe('reports.>', () => {});
frozen.subscribe('order.>', () => {});

const names = ['ada', 'grace', 'linus', 'margaret', 'ken', 'barbara', 'dennis', 'frances', 'alan', 'radia'];
const skus = ['SKU-1042', 'SKU-2211', 'SKU-3107', 'SKU-4420', 'SKU-5003'];
let userId = 4100;
let orderId = 91_200;
const pick = (list) => list[Math.floor(Math.random() * list.length)];
const kinds = [
  () => ['user.created', { id: ++userId, name: pick(names), email: `${pick(names)}@example.com`, plan: pick(['free', 'team', 'pro']) }],
  () => ['user.updated', { id: userId - Math.floor(Math.random() * 20), fields: ['avatar'] }],
  () => ['order.created', { id: ++orderId, user: userId, items: 1 + Math.floor(Math.random() * 4), sku: pick(skus) }],
  () => ['order.completed', { id: orderId - Math.floor(Math.random() * 5), total: Math.round(Math.random() * 40000) / 100, currency: 'EUR' }],
  () => ['payment.captured', { order: orderId, amount: Math.round(Math.random() * 40000) / 100, method: pick(['card', 'sepa', 'paypal']) }],
  () => ['inventory.reserved', { sku: pick(skus), qty: 1 + Math.floor(Math.random() * 3), warehouse: pick(['ams-1', 'fra-2']) }],
];

// A trickle that swells and ebbs, so the chart has a shape: ~40–160 events/s.
const started = Date.now();
function tick() {
  const phase = (Date.now() - started) / 1000;
  const burst = Math.round(6 + 2.5 * Math.sin(phase / 2.5) + 1.5 * Math.sin(phase / 0.8) + Math.random() * 1.5);
  for (let i = 0; i < burst; i++) {
    const [channel, body] = pick(kinds)();
    void publisher.publish(channel, encodeJson(body)).catch(() => {});
  }
}
timers.push(setInterval(tick, 50));

/** Large exports the frozen reader cannot take: its kernel buffers, then its queue, fill up. */
async function fillFrozenReader() {
  await frozen.ready();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const chunk = new Uint8Array(256 * 1024).map((_, i) => (i * 31) & 0xff);
  for (let i = 0; i < 400 && broker.stats().slowConsumers === 0; i++) {
    broker.publish('reports.export.csv', chunk);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({
    viewport: { width: 1280, height: 900 },
    deviceScaleFactor: 1,
    colorScheme: args.light ? 'light' : 'dark',
  });
  const problems = [];
  page.on('console', (msg) => { if (msg.type() === 'error') problems.push(msg.text()); });
  page.on('pageerror', (err) => problems.push(err.message));
  await page.goto(`${httpUrl}`);
  await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'connected', null, { timeout: 10_000 });

  // A test event through the page's own form, so the screenshot shows an ack.
  await page.fill('#publish-channel', 'dashboard.test');
  await page.fill('#publish-data', '{"hello":"from the dashboard"}');
  await page.click('#publish-form button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#publish-result')?.dataset.result === 'ok');

  await fillFrozenReader();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  await page.waitForFunction(() => Number(document.querySelector('#chart')?.dataset.points) >= 5
    && document.querySelectorAll('#tail .row').length >= 20, null, { timeout: 10_000 });
  await mkdir(dirname(args.out), { recursive: true });
  await page.screenshot({ path: args.out, fullPage: true });
  if (problems.length > 0) console.warn('page problems:', problems);
  console.log(`wrote ${args.out}`);
} finally {
  for (const t of timers) clearInterval(t);
  await browser.close();
  await Promise.all(clients.map((c) => c.quit().catch(() => {})));
  await broker.close();
}
