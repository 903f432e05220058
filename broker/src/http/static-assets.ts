import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/** A file the broker serves from memory. */
export interface StaticAsset {
  body: Buffer;
  type: string;
  /** A strong validator of `body`, quoted as the `ETag` header wants it. */
  etag: string;
}

/** Files served beside the WebSocket path, by name: `<base>crier.min.js`, `<base>dashboard.js`… */
export const ASSET_TYPES: Readonly<Record<string, string>> = {
  'crier.min.js': 'text/javascript; charset=utf-8',
  'crier.full.min.js': 'text/javascript; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
  'index.html': 'text/html; charset=utf-8',
};

/**
 * Where the build puts them (`broker/scripts/copy-assets.mjs`): `dist/static/`. Resolved from
 * the package root, so the same URL works from `dist/http/` (what users run) and from `src/http/` (what
 * the tests run): both sit two levels below it.
 */
export const STATIC_DIR = new URL('../../dist/static/', import.meta.url);

/**
 * Reads every known asset once (at `createBroker`), so a request never touches the disk. A file
 * that is not there is left out: the broker then answers 404 for it and says to run the build.
 */
export async function loadStaticAssets(dir: URL = STATIC_DIR): Promise<Map<string, StaticAsset>> {
  const assets = new Map<string, StaticAsset>();
  await Promise.all(
    Object.entries(ASSET_TYPES).map(async ([name, type]) => {
      let body: Buffer;
      try {
        body = await readFile(new URL(name, dir));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      assets.set(name, { body, type, etag: etagOf(body) });
    }),
  );
  return assets;
}

export function etagOf(body: Buffer): string {
  return `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
}
