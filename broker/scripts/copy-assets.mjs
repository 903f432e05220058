#!/usr/bin/env node
// Copies the files the broker serves into broker/dist/static/, where it reads them at start:
// the browser bundle built by sdk-web (the broker never imports sdk-web code; it only serves the
// file) and the hand-written dashboard. Run after `node sdk-web/scripts/bundle.mjs`.
import { copyFile, mkdir, readdir } from 'node:fs/promises';

const bundle = new URL('../../sdk-web/dist/crier.min.js', import.meta.url);
const dashboard = new URL('../src/dashboard/', import.meta.url);
const out = new URL('../dist/static/', import.meta.url);

await mkdir(out, { recursive: true });
try {
  await copyFile(bundle, new URL('crier.min.js', out));
} catch (err) {
  if (err.code !== 'ENOENT') throw err;
  console.error('copy-assets: sdk-web/dist/crier.min.js is missing: run `node sdk-web/scripts/bundle.mjs` first');
  process.exit(1);
}
for (const name of await readdir(dashboard)) {
  await copyFile(new URL(name, dashboard), new URL(name, out));
}
