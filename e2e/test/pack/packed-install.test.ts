// crier as a user meets it: the four publishable packages packed from the current dist/ (with
// `pnpm pack`, which rewrites `workspace:*` to versions, as the root `npm run pack` does; that
// script also rebuilds, which a test must not do while others read dist/), installed with a real
// `npm install` of the tarballs into a fresh project under the system's temp directory, outside
// the workspace, their dependencies from the registry. Then, in that project: `npx crier-broker`,
// a script importing @crier/sdk-node that publishes and subscribes, `npx crier listen`,
// `tsc --noEmit` over a file importing @crier/sdk-web and @crier/broker by name, and a browser
// bundle of @crier/sdk-node. Every process runs in its own process group (npx starts the command
// under a shell), stopped by group in afterAll; every wait has a deadline.
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliProcess } from '../cli/run-cli.js';

const WORKSPACE = fileURLToPath(new URL('../../../', import.meta.url));
const USER_FILES = fileURLToPath(new URL('./user-project/', import.meta.url));
const PACKAGES = ['protocol', 'sdk-web', 'sdk-node', 'broker'] as const;
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');

/** Packing and `npm install` from the registry (a cold npm cache downloads about 30 packages). */
const INSTALL_TIMEOUT_MS = 180_000;
/** Deadline for one command in the installed project (npx, node, tsc start cold). */
const COMMAND_TIMEOUT_MS = 60_000;

let root = ''; // the temp directory: tarballs/ and project/
let project = '';
const started: CliProcess[] = [];
let typecheck: Promise<{ code: number | null; output: string }> | undefined;

/**
 * The environment of a user's shell: without the npm/pnpm variables of the test run (which would
 * point npm at the workspace) and without the workspace's node_modules/.bin on PATH, so `npx`
 * finds only what the project installed. `npm_config_yes=false`: npx never fetches a missing
 * command from the registry, it fails.
 */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(npm|pnpm)_/i.test(key) && key !== 'CRIER_URL') env[key] = value;
  }
  env['PATH'] = (process.env['PATH'] ?? '')
    .split(delimiter)
    .filter((dir) => !resolve(dir).startsWith(WORKSPACE))
    .join(delimiter);
  env['npm_config_yes'] = 'false';
  env['npm_config_update_notifier'] = 'false';
  return env;
}

/** Starts `command args` in `cwd`, in its own process group; stopped in afterAll. */
function start(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = userEnv()): CliProcess {
  const proc = new CliProcess(spawn(command, args, { cwd, env, stdio: 'pipe', detached: true }), `${command} ${args.join(' ')}`);
  proc.proc.stdin!.end();
  started.push(proc);
  return proc;
}

/** Runs `command args` to its end; fails with its output unless it exits with 0. */
async function run(command: string, args: string[], cwd: string, timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<CliProcess> {
  const proc = start(command, args, cwd, env);
  const { code, signal } = await proc.exited(timeoutMs);
  if (code !== 0) throw new Error(`${proc.name} exited with ${code ?? signal}\nstdout: ${proc.stdout}\nstderr: ${proc.stderr}`);
  return proc;
}

/** Sends `signal` to the process group `proc` leads (npx, its shell and the command). */
function signalGroup(proc: CliProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-proc.proc.pid!, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
}

/** Every file under `dir`, as paths relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name)));
}

/** The file paths a manifest names: main, types, bin and every `exports` target. */
function namedTargets(manifest: Record<string, unknown>): string[] {
  const targets: string[] = [];
  const walk = (value: unknown): void => {
    if (typeof value === 'string') targets.push(value);
    else if (value && typeof value === 'object') Object.values(value).forEach(walk);
  };
  walk([manifest['main'], manifest['types'], manifest['bin'], manifest['exports']]);
  return targets;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'crier-packed-'));
  const tarballs = join(root, 'tarballs');
  project = join(root, 'project');
  await mkdir(project);

  const filters = PACKAGES.flatMap((p) => ['--filter', `./${p}`]);
  await run('npx', ['-y', 'pnpm@10', '-r', ...filters, 'pack', '--pack-destination', tarballs], WORKSPACE, INSTALL_TIMEOUT_MS, {
    ...process.env,
    npm_config_yes: 'true',
  });
  const packed = (await readdir(tarballs)).filter((f) => f.endsWith('.tgz')).sort();
  expect(packed).toEqual(['crier-broker-0.1.0.tgz', 'crier-protocol-0.1.0.tgz', 'crier-sdk-node-0.1.0.tgz', 'crier-sdk-web-0.1.0.tgz']);

  await writeFile(join(project, 'package.json'), `${JSON.stringify({ name: 'crier-user', private: true, type: 'module' }, null, 2)}\n`);
  await cp(USER_FILES, project, { recursive: true });
  await cp(join(USER_FILES, 'types.ts'), join(project, 'check.ts'));
  await run(
    'npm',
    ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...packed.map((f) => join(tarballs, f)), '@types/node@^20.19.0'],
    project,
    INSTALL_TIMEOUT_MS,
  );
  // The type check is the slowest step (skipLibCheck off reads every declaration): it runs
  // while the tests below drive the broker, and its own test waits for it.
  const tsc = start(process.execPath, [TSC, '-p', '.'], project);
  typecheck = tsc.exited(COMMAND_TIMEOUT_MS * 2).then(({ code }) => ({ code, output: tsc.stdout + tsc.stderr }));
  typecheck.catch(() => {}); // awaited by its test; a failure there, not an unhandled rejection here
}, INSTALL_TIMEOUT_MS * 2);

afterAll(async () => {
  for (const proc of started) signalGroup(proc, 'SIGKILL');
  if (root) await rm(root, { recursive: true, force: true });
});

describe('the packed packages, installed outside the workspace', () => {
  it('come from the tarballs, with every file their manifests name, the sources of their maps, and no workspace ranges', async () => {
    const lock = await readJson(join(project, 'package-lock.json'));
    const locked = lock['packages'] as Record<string, { resolved?: string; version?: string }>;
    for (const name of PACKAGES) {
      const dir = join(project, 'node_modules', '@crier', name);
      // One copy of each, from its tarball (not from the registry, not nested).
      expect(locked[`node_modules/@crier/${name}`]?.resolved, `@crier/${name} in package-lock.json`).toMatch(new RegExp(`^file:.*crier-${name}-0\\.1\\.0\\.tgz$`));
      expect(Object.keys(locked).filter((k) => k.endsWith(`/@crier/${name}`))).toEqual([`node_modules/@crier/${name}`]);

      const manifest = await readJson(join(dir, 'package.json'));
      expect(manifest['publishConfig'], `@crier/${name} publishConfig`).toEqual({ access: 'public' });
      for (const field of ['description', 'license', 'files', 'engines'] as const) {
        expect(manifest[field], `@crier/${name} ${field}`).toBeTruthy();
      }
      const deps = { ...(manifest['dependencies'] as object), ...(manifest['devDependencies'] as object) };
      expect(Object.values(deps).filter((range) => String(range).startsWith('workspace:')), `@crier/${name} workspace ranges`).toEqual([]);
      expect((manifest['exports'] as Record<string, unknown>)['./package.json']).toBe('./package.json');

      const missing = namedTargets(manifest).filter((target) => !existsSync(join(dir, target)));
      expect(missing, `files @crier/${name}'s manifest names`).toEqual([]);

      const files = await filesUnder(dir);
      expect(files.filter((f) => /\.test\.[cm]?[jt]s$/.test(f)), `tests shipped in @crier/${name}`).toEqual([]);
      for (const map of files.filter((f) => f.endsWith('.map'))) {
        const { sources } = JSON.parse(await readFile(join(dir, map), 'utf8')) as { sources: string[] };
        const absent = sources.map((s) => resolve(dirname(join(dir, map)), s)).filter((s) => !existsSync(s));
        expect(absent.map((s) => relative(dir, s)), `sources named by @crier/${name}/${map}`).toEqual([]);
        expect(sources.every((s) => resolve(dirname(join(dir, map)), s).startsWith(dir + sep)), `${map} points outside the package`).toBe(true);
      }
    }
  });

  it('expose sdk-node as named exports, the same under the browser condition, and ./package.json', async () => {
    const surface = JSON.parse((await run(process.execPath, ['surface.mjs'], project, COMMAND_TIMEOUT_MS)).stdout) as {
      node: string[];
      browser: string[];
      web: string[];
      manifests: Record<string, string>;
    };
    expect(surface.node).toContain('connect');
    expect(surface.node).toEqual(surface.web);
    expect(surface.browser).toEqual(surface.web);
    for (const name of PACKAGES) {
      expect(surface.manifests[`@crier/${name}`]).toBe(join(project, 'node_modules', '@crier', name, 'package.json'));
    }
  });

  it('run: npx crier-broker, a script on @crier/sdk-node publishes and subscribes, npx crier listen receives', async () => {
    const broker = start('npx', ['crier-broker', '--host', '127.0.0.1', '--port', '0', '--log-level', 'warn'], project);
    const url = /ws:\/\/\S+/.exec(await broker.waitForLine('stdout', /crier broker listening on .*ws:\/\//, 'the address it listens on', COMMAND_TIMEOUT_MS))![0];
    const http = url.replace(/^ws/, 'http').replace(/\/$/, '');

    // The broker serves the browser bundle it was packed with: sdk-web's own crier.min.js.
    const served = await fetch(`${http}/crier.min.js`);
    expect(served.status).toBe(200);
    expect(await served.text()).toBe(await readFile(join(project, 'node_modules/@crier/sdk-web/dist/crier.min.js'), 'utf8'));

    const listen = start('npx', ['crier', 'listen', 'packed.>', '--url', url], project);
    await listen.waitForLine('stderr', /listening/, 'its subscription acknowledged', COMMAND_TIMEOUT_MS);

    const script = await run(process.execPath, ['pubsub.mjs', url], project, COMMAND_TIMEOUT_MS);
    const result = JSON.parse(script.stdout) as { ack: { offset: number }; event: { channel: string; offset: number; data: unknown } };
    expect(result.event).toEqual({ channel: 'packed.hello', offset: result.ack.offset, data: { from: 'sdk-node' } });

    const line = await listen.waitForLine('stdout', /packed\.hello/, 'the event', COMMAND_TIMEOUT_MS);
    expect(line).toContain('{"from":"sdk-node"}');

    // Ctrl+C in a terminal signals the whole foreground group: npx, its shell and the command.
    signalGroup(listen, 'SIGINT');
    await listen.exited(COMMAND_TIMEOUT_MS);
    signalGroup(broker, 'SIGTERM');
    await broker.exited(COMMAND_TIMEOUT_MS);
  }, COMMAND_TIMEOUT_MS * 3);

  it('type-check: tsc --noEmit over a file importing @crier/sdk-web, @crier/sdk-node and @crier/broker', async () => {
    const { code, output } = await typecheck!;
    expect(output).toBe('');
    expect(code).toBe(0);
  }, COMMAND_TIMEOUT_MS * 2);

  it('bundle @crier/sdk-node for a browser without ws, through its browser condition', async () => {
    const bundle = async (platform: 'browser' | 'node'): Promise<string[]> => {
      const result = await build({
        stdin: { contents: "import { connect } from '@crier/sdk-node'; globalThis.connect = connect;", resolveDir: project },
        bundle: true,
        platform,
        format: 'esm',
        write: false,
        metafile: true,
        logLevel: 'silent',
        absWorkingDir: project,
      });
      return Object.keys(result.metafile.inputs);
    };
    const browser = await bundle('browser');
    expect(browser).toContain('node_modules/@crier/sdk-node/dist/browser.js');
    expect(browser.filter((input) => input.startsWith('node_modules/ws/'))).toEqual([]);
    const node = await bundle('node');
    expect(node).toContain('node_modules/@crier/sdk-node/dist/index.js');
    expect(node.some((input) => input.startsWith('node_modules/ws/'))).toBe(true);
  });
});
