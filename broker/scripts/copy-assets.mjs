#!/usr/bin/env node
// Puts the files the broker serves into broker/dist/static/, where it reads them at start:
//   crier.min.js, crier.full.min.js  the browser bundles of @crier/sdk-web (core, full), a devDependency of the broker for this
//                 file only (the broker never imports sdk-web code; it serves the bundle, and the
//                 published package carries its own copy in dist/static/). Resolved through
//                 sdk-web's exports, so build sdk-web's bundle first (`node sdk-web/scripts/bundle.mjs`;
//                 the root `npm run build` runs both in order).
//   the dashboard, hand-written in src/dashboard/.
// A file whose content is already there is not rewritten: a broker started while another build
// runs (`npm start` in a test) never reads a half-written file, and mtimes stay put.
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const dashboard = new URL('../src/dashboard/', import.meta.url);
const out = new URL('../dist/static/', import.meta.url);

const bundles = {};
for (const name of ['crier.min.js', 'crier.full.min.js']) {
  try {
    bundles[name] = await readFile(require.resolve(`@crier/sdk-web/${name}`));
  } catch (err) {
    if (err.code !== 'ENOENT' && err.code !== 'MODULE_NOT_FOUND') throw err;
    console.error(`copy-assets: @crier/sdk-web/${name} is missing: run \`node sdk-web/scripts/bundle.mjs\` first`);
    process.exit(1);
  }
}

/** Writes `content` to `name` in dist/static/ unless it is there already; atomically (rename). */
async function put(name, content) {
  const target = new URL(name, out);
  const current = await readFile(target).catch((err) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (current?.equals(content)) return;
  const temp = new URL(`.${name}.${process.pid}.tmp`, out);
  await writeFile(temp, content);
  await rename(temp, target);
}

await mkdir(out, { recursive: true });
for (const [name, bundle] of Object.entries(bundles)) await put(name, bundle);
for (const name of await readdir(dashboard)) {
  await put(name, await readFile(new URL(name, dashboard)));
}
