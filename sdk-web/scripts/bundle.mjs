// Builds the browser bundles of @crier/sdk-web, with @crier/protocol inlined:
//   dist/crier.esm.js       the core (src/index.ts): ESM, minified, for <script type="module">
//   dist/crier.min.js       the core as a classic <script> (IIFE) that sets the global `Crier`
//                           to every export
//   dist/crier.full.esm.js  everything (src/full.ts: the core, and the optional entry points
//   dist/crier.full.min.js  built into the client as methods), ESM and <script>
// and prints each one's size minified and minified + gzipped (zlib level 9), and what each
// optional entry point adds to the core in a bundler's output (ENTRIES).
//
// Both are built from the TypeScript sources (sdk-web's and protocol's), not from dist/, so that
// class fields can be compiled as plain assignments (`useDefineForClassFields: false`): lowered
// to es2020 with define semantics, each field costs a helper call (about 0.25 KB gzipped in all).
// Nothing in crier depends on define semantics (no field shadows an accessor of a base class).
//
// A bundle whose content is already on disk is not rewritten: a broker started while another
// build runs (`npm start` in a test) never sees a half-written file, and mtimes stay put.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { minify } from 'terser';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const source = (name) => join(root, 'src', `${name}.ts`);
mkdirSync(dist, { recursive: true });

// Private members of the SDK's classes (and its internal hook objects) keep their readable names
// in dist/*.js but not in the bundles: esbuild renames exactly these properties, consistently
// across the bundle (about 0.3 KB gzipped). Only names that never cross the bundle's edge belong
// here: nothing read from a WebSocket, an event, a user's options or handlers, a frame, or a
// built-in (so not `timers`, `entries`, `round`, `next`, `filter`...). A private name missing
// from the list costs bytes, never correctness; the end-to-end test of crier.min.js runs them.
const INTERNAL_NAMES = [
  // Connection
  'welcomed', 'attempt', 'retryTimer', 'handshakeTimer', 'keepAlive', 'decodeLimits', 'quitting', 'socketClosed',
  'suspended', 'credential', 'retryNow', 'abandon', 'lost', 'stopTimers', 'setState', 'closeSocket', 'handleFrame',
  'isOpen', 'hooks', 'options', 'socket', 'clock', 'ahead', 'changed',
  // ResolvedOptions fields named apart from the user options they come from
  'requestMs', 'queueMax', 'iteratorMax', 'fetchToken', 'backoff', 'page',
  // Client
  'connection', 'pending', 'publisher', 'subscriptions', 'eventHandlers', 'stateListeners', 'droppedListeners',
  'errorListeners', 'resumedListeners', 'readyWaiters', 'closedWith', 'unwatch', 'fail',
  // KeepAlive
  'framesAtCheck', 'silentChecks', 'framesAtProbe', 'probeGrace', 'dueAt', 'sendProbe', 'received', 'interval', 'frames',
  // Publisher, Subscriptions, EventStream, PendingRequests
  'bufferFull', 'transmit', 'tooLarge', 'prefix', 'published', 'entryFor', 'registry', 'streams', 'handles', 'acked', 'host', 'deliver', 'taps', 'compile', 'index', 'forget', 'items', 'sweep', 'timerAt', 'due', 'arm', 'batch', 'batchBytes', 'batchSocket', 'makeEvent', 'disarm', 'made',
  // HttpSocket and withFallback's socket (fallback.ts)
  'outbox', 'posting', 'post', 'fire', 'inner', 'attach', 'http', 'stream',
  'dispatch', 'resubscribe', 'removePattern', 'eventsOf', 'rewound', 'rewinding', 'rewind', 'dropping', 'release', 'onOverflow', 'onReturn', 'capacity', 'waiters',
  'nextId', 'timeoutMs', 'settle', 'rejectAll', 'timer', 'waiting', 'byKey', 'buffered', 'end', 'remove',
  // Credential
  'expiry', 'failures', 'forHello', 'expired', 'expires', 'refresh', 'schedule', 'fetch', 'heldToken', 'refresher',
  // Shared by several classes, or hook objects
  'url', 'queue', 'handler', 'failure', 'ended', 'head', 'stopped', 'drop', 'failed', 'check', 'open',
  'finish', 'write', 'receive', 'welcome', 'down', 'frame', 'ask', 'flush', 'probe', 'wake', 'suspend', 'pageBack',
  'unload', 'dead', 'overflow', 'answer', 'stop', 'promise', 'target', 'resumed',
  // protocol's frame kinds (FrameType is not exported from the bundle) and the SDK's hooks named
  // after them; not 'subscribe', 'unsubscribe', 'publish', 'quit' (the client's methods) nor 'ack'
  // (a publish option)
  'hello', 'ping', 'pong', 'error', 'event', 'dropped', 'auth',
  // protocol's compiled filter and its frame shape table, used inside the bundle only
  'wire', 'passes', 'req', 'opt',
  // protocol's msgpack reader and its decode limits (the SDK's own, never a user's), inside the bundle only
  'bytes', 'view', 'pos', 'read', 'readKey', 'readMap', 'depth', 'need', 'take', 'safe', 'uint', 'str', 'utf8', 'bin', 'enter', 'array',
  'maxFrameBytes', 'maxStrLength', 'maxBinLength', 'maxArrayLength', 'maxMapLength', 'maxDepth', 'maxValues',
];

// The protocol's constant tables, from the same sources as the bundles: the bundles spell
// `FrameType.event` as 11, `CloseCode.draining` as 4009 and `ErrorCode.badChannel` as
// "bad_channel". FrameType is not exported from the bundle, so its object goes altogether;
// CloseCode and ErrorCode stay (they are exported) but their uses shrink (about 140 bytes gzipped
// in all). A name missing from its table fails the build.
const protocolSource = join(root, '..', 'protocol', 'src', 'index.ts');
const tables = await build({ entryPoints: [protocolSource], bundle: true, format: 'esm', write: false, logLevel: 'warning' })
  .then((r) => import(`data:text/javascript;base64,${Buffer.from(r.outputFiles[0].contents).toString('base64')}`))
  .then(({ FrameType, CloseCode, ErrorCode }) => ({ FrameType, CloseCode, ErrorCode }));
const constantUse = new RegExp(`(?<!typeof )\\b(${Object.keys(tables).join('|')})\\.(\\w+)\\b`, 'g');
const inlineConstants = {
  name: 'inline-protocol-constants',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (args) => {
      const contents = readFileSync(args.path, 'utf8').replace(constantUse, (_, table, name) => {
        if (!Object.hasOwn(tables[table], name)) throw new Error(`${args.path}: ${table}.${name} is not in ${table}`);
        return JSON.stringify(tables[table][name]);
      });
      return { contents, loader: 'ts' };
    });
  },
};

const common = {
  bundle: true,
  minify: true,
  target: 'es2020',
  platform: 'browser',
  legalComments: 'none',
  logLevel: 'warning',
  alias: { '@crier/protocol': join(root, '..', 'protocol', 'src', 'index.ts') },
  tsconfigRaw: { compilerOptions: { useDefineForClassFields: false } },
  mangleProps: new RegExp(`^(${INTERNAL_NAMES.join('|')})$`),
  write: false,
  plugins: [inlineConstants],
};

// esbuild's output goes through terser's compressor once more: its passes (inlining, merging
// statements and declarations, dropping what becomes unused) take off another ~0.25 KB gzipped
// of the core bundle that esbuild's minifier leaves. Locals only: names that cross the bundle's
// edge (exports, the `Crier` global, properties) are esbuild's business above, never terser's.
// `hoist_funs` (function declarations moved to the top of their scope, as JavaScript runs them
// anyway) lets more of them merge: 37 bytes gzipped off the core.
async function squeeze(code, module) {
  const result = await minify(code, { module, ecma: 2020, compress: { passes: 3, hoist_funs: true }, mangle: true, format: { comments: false } });
  return result.code;
}

/** Writes a build's one output file unless the same bytes are there already; atomically (rename). */
async function save(result, module) {
  const [built] = result.outputFiles;
  const file = { path: built.path, contents: Buffer.from(await squeeze(built.text, module)) };
  let current;
  try {
    current = readFileSync(file.path);
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  if (current?.equals(file.contents)) return;
  const temp = join(dirname(file.path), `.${process.pid}.tmp`);
  writeFileSync(temp, file.contents);
  renameSync(temp, file.path);
}

function report(file) {
  const bytes = readFileSync(join(dist, file));
  const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
  console.log(`${file}: ${kb(bytes.length)} min, ${kb(gzipSync(bytes, { level: 9 }).length)} gzip`);
}

/** Builds `entry` as `<name>.esm.js` and `<name>.min.js` (the IIFE setting `Crier`). */
async function bundle(name, entry) {
  const esm = await build({ ...common, entryPoints: [entry], format: 'esm', outfile: join(dist, `${name}.esm.js`), metafile: true });
  await save(esm, true);
  report(`${name}.esm.js`);
  // The IIFE assigns the exports to the global as a plain object: esbuild's `globalName` would
  // wrap them in a namespace object of getters, with its helpers (about 0.2 KB gzipped).
  const list = Object.values(esm.metafile.outputs)[0].exports.join(',');
  const iife = await build({
    ...common,
    stdin: { contents: `import {${list}} from './${relative(root, entry)}';globalThis.Crier={${list}};`, resolveDir: root, loader: 'ts' },
    format: 'iife',
    banner: { js: '"use strict";' }, // the sources are modules, written for strict mode
    outfile: join(dist, `${name}.min.js`),
  });
  await save(iife, false);
  report(`${name}.min.js`);
}

await bundle('crier', source('index'));
await bundle('crier.full', source('full'));

// What each optional entry point adds to a page's bundle that imports it beside the core's
// `connect` (gzipped, each alone: the core's share of a bundle is the same with or without it).
// Measured, not written: bundle-size.test.ts holds each to its budget.
const ENTRIES = ['fallback', 'filter', 'history', 'presence', 'refresh', 'request', 'rewind', 'stream', 'text'];
const gzipOf = async (contents) => {
  const r = await build({ ...common, stdin: { contents, resolveDir: root, loader: 'ts' }, format: 'esm', outfile: 'x.js' });
  return gzipSync(await squeeze(r.outputFiles[0].text, true), { level: 9 }).length;
};
const core = await gzipOf(`export {connect} from './src/index.ts';`);
const added = {};
for (const name of ENTRIES) {
  added[name] = (await gzipOf(`export {connect} from './src/index.ts';export * from './src/${name}.ts';`)) - core;
  console.log(`  + ${name}: ${added[name]} bytes gzip`);
}
const sizes = JSON.stringify({ core, added }, null, 2) + '\n';
let current;
try {
  current = readFileSync(join(dist, 'entry-sizes.json'), 'utf8');
} catch {}
if (current !== sizes) writeFileSync(join(dist, 'entry-sizes.json'), sizes);
