// Every TypeScript snippet of every README is type-checked against the built packages, and the
// programs among them run against a real broker, so a README cannot drift from the code.
// How a snippet is checked: see ./snippets.ts.
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { transformSync } from 'esbuild';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '@crier/broker';
import { CliProcess } from '../cli/run-cli.js';
import { startBroker, waitFor } from '../helpers.js';
import { PRELUDE, RUNTIME_PRELUDE, checkedSource, extractSnippets, runnableSource, type Snippet } from './snippets.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const READMES = ['README.md', 'protocol/README.md', 'broker/README.md', 'sdk-web/README.md', 'sdk-node/README.md'];
// Inside e2e/, so that `@crier/*` resolve to the workspace's built packages.
const WORK = fileURLToPath(new URL('../../.readme-snippets/', import.meta.url));

const snippets: Snippet[] = READMES.flatMap((readme) => extractSnippets(`${ROOT}${readme}`, readme));

beforeAll(() => {
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
});

afterAll(() => rmSync(WORK, { recursive: true, force: true }));

it('finds the snippets of every README', () => {
  expect(snippets.length).toBeGreaterThanOrEqual(READMES.length);
  for (const readme of READMES) expect(snippets.some((s) => s.where.startsWith(`${readme}:`)), readme).toBe(true);
});

it('every snippet type-checks against the built packages', { timeout: 60_000 }, () => {
  const files = new Map<string, Snippet & { offset: number }>();
  writeFileSync(`${WORK}prelude.d.ts`, PRELUDE);
  for (const snippet of snippets) {
    const { source, offset } = checkedSource(snippet);
    const file = `${WORK}${snippet.name}.ts`;
    writeFileSync(file, source);
    files.set(file, { ...snippet, offset });
  }
  writeFileSync(
    `${WORK}tsconfig.json`,
    JSON.stringify({
      extends: '../../tsconfig.base.json',
      compilerOptions: { noEmit: true, composite: false, declaration: false, declarationMap: false, lib: ['ES2022', 'DOM'], types: ['node'] },
      include: ['*.ts'],
    }),
  );
  const config = ts.getParsedCommandLineOfConfigFile(`${WORK}tsconfig.json`, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')); } });
  if (!config) throw new Error('no tsconfig');
  const program = ts.createProgram({ rootNames: config.fileNames, options: config.options });
  const problems = ts.getPreEmitDiagnostics(program).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    const snippet = d.file ? files.get(d.file.fileName) : undefined;
    if (!snippet || d.start === undefined) return `${d.file?.fileName ?? '?'}: ${message}`;
    const line = d.file!.getLineAndCharacterOfPosition(d.start).line;
    return `${snippet.where.split(':')[0]}:${snippet.firstLine + line - snippet.offset}: TS${d.code} ${message}`;
  });
  expect(problems).toEqual([]);
});

/** The stderr lines that say something went wrong: all but an embedded broker's info logs. */
function complaints(stderr: string): string[] {
  return stderr.split('\n').filter((line) => {
    if (line === '') return false;
    try {
      const level = (JSON.parse(line) as { level?: unknown }).level;
      return !(typeof level === 'number' && level < 40);
    } catch {
      return true;
    }
  });
}

describe('the programs run against a broker', () => {
  let broker: Broker;
  beforeAll(async () => {
    broker = await startBroker();
  });
  afterAll(() => broker.close());

  /** The snippet as a module file under e2e/, transpiled (esbuild strips the types). */
  function writeProgram(snippet: Snippet): string {
    const { code } = transformSync(runnableSource(snippet.code, broker.url), { loader: 'ts', format: 'esm', target: 'es2022' });
    const file = `${WORK}${snippet.name}.mjs`;
    writeFileSync(file, RUNTIME_PRELUDE + code);
    return file;
  }

  const run = (snippet: Snippet): CliProcess =>
    new CliProcess(spawn(process.execPath, [writeProgram(snippet)], { cwd: WORK, stdio: 'pipe' }), snippet.where);

  for (const snippet of snippets.filter((s) => s.mode.kind === 'program')) {
    it(`${snippet.where} runs to its end`, { timeout: 30_000 }, async () => {
      const proc = run(snippet);
      proc.proc.stdin!.end();
      const exit = await proc.exited(25_000);
      expect({ ...exit, stderr: complaints(proc.stderr) }).toEqual({ code: 0, signal: null, stderr: [] });
    });
  }

  for (const snippet of snippets.filter((s) => s.mode.kind === 'service')) {
    it(`${snippet.where} connects, subscribes, and exits 0 on SIGTERM`, { timeout: 30_000 }, async () => {
      const proc = run(snippet);
      proc.proc.stdin!.end();
      try {
        await waitFor(`${snippet.where} to connect and subscribe`, () => {
          const { connections, subscriptions } = broker.stats();
          return connections > 0 && subscriptions > 0;
        }, 20_000);
        proc.proc.kill('SIGTERM');
        const exit = await proc.exited(10_000);
        expect({ ...exit, stderr: complaints(proc.stderr) }).toEqual({ code: 0, signal: null, stderr: [] });
      } finally {
        proc.kill();
      }
    });
  }
});
