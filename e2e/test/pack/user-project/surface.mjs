// What each package exposes once installed: the names of @crier/sdk-node's exports (for Node,
// and under the `browser` condition) and of @crier/sdk-web's full entry point (sdk-node's base),
// and where each package's
// `./package.json` export resolves. Prints one JSON line.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const names = (module) => Object.keys(module).sort();
const packages = ['@crier/protocol', '@crier/sdk-web', '@crier/sdk-node', '@crier/broker'];
console.log(
  JSON.stringify({
    node: names(await import('@crier/sdk-node')),
    browser: names(await import('./node_modules/@crier/sdk-node/dist/browser.js')),
    web: names(await import('@crier/sdk-web/full')),
    manifests: Object.fromEntries(packages.map((name) => [name, require.resolve(`${name}/package.json`)])),
  }),
);
