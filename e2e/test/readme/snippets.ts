// The TypeScript snippets of the project's READMEs, as the test command checks them: every ```ts
// block is type-checked against the built packages, and the self-contained ones are run against a
// real broker. A README says how a block is checked with an HTML comment on the line before it:
//
//   (none)                                   a block with imports is a program: type-checked and
//                                            run to its end; a block without imports is a fragment
//                                            (it uses `client` and the like): type-checked only
//   <!-- snippet: service -->                a program that runs until SIGTERM: run, and once it
//                                            is connected and subscribed, signalled; must exit 0
//   <!-- snippet: check-only: <why> -->      type-checked only, for the reason given
//   <!-- snippet: api from=<pkg> types=A,B values=f,g uses=C -->
//                                            declarations describing a package's API: each named
//                                            type and value of the package must fit the README's
//                                            (`uses`: the package's types it names, not declares)
import { readFileSync } from 'node:fs';

export type SnippetMode =
  | { kind: 'program' }
  | { kind: 'fragment' }
  | { kind: 'service' }
  | { kind: 'check-only'; why: string }
  | { kind: 'api'; from: string; types: string[]; values: string[]; uses: string[] };

export interface Snippet {
  /** `README.md:80`: the README (relative to the repository) and the line of the opening fence. */
  where: string;
  /** A file name for it: `README.md-80`. */
  name: string;
  code: string;
  mode: SnippetMode;
  /** The README line of the snippet's first line of code. */
  firstLine: number;
}

const MARKER = /^<!--\s*snippet:\s*(.*?)\s*-->$/;

function modeOf(marker: string | undefined, code: string, where: string): SnippetMode {
  if (marker === undefined) return /^import\s/m.test(code) ? { kind: 'program' } : { kind: 'fragment' };
  if (marker === 'service') return { kind: 'service' };
  const checkOnly = /^check-only:\s*(\S.*)$/.exec(marker);
  if (checkOnly) return { kind: 'check-only', why: checkOnly[1]! };
  if (marker.startsWith('api ')) {
    const fields = new Map(marker.slice(4).trim().split(/\s+/).map((f) => f.split('=') as [string, string]));
    const from = fields.get('from');
    if (!from) throw new Error(`${where}: an api snippet needs from=<package>`);
    const list = (key: string): string[] => (fields.get(key) ?? '').split(',').filter((s) => s !== '');
    return { kind: 'api', from, types: list('types'), values: list('values'), uses: list('uses') };
  }
  throw new Error(`${where}: unknown snippet marker "${marker}" (service, check-only: <why>, api from=…)`);
}

/** Every ```ts block of the README at `path` (named `relative` in messages). */
export function extractSnippets(path: string, relative: string): Snippet[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const snippets: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== '```ts') continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i]!.trim() !== '```'; i++) body.push(lines[i]!);
    const where = `${relative}:${start + 1}`;
    const marker = MARKER.exec(lines[start - 1]?.trim() ?? '')?.[1];
    const code = body.join('\n');
    snippets.push({ where, name: `${relative.replace(/\//g, '-')}-${start + 1}`, code, mode: modeOf(marker, code, where), firstLine: start + 2 });
  }
  return snippets;
}

/**
 * The source file checked for a snippet. An `api` block is wrapped in a namespace, and each name
 * it lists is checked against the package's own: the package's type must be assignable to the
 * README's, and its value to the README's declaration. `offset` is the number of lines put before
 * the snippet's first line.
 */
export function checkedSource(snippet: Snippet): { source: string; offset: number } {
  if (snippet.mode.kind !== 'api') return { source: `${snippet.code}\nexport {};\n`, offset: 0 };
  const { from, types, values, uses } = snippet.mode;
  const source = [
    `import type * as Real from '${from}';`,
    `import * as RealValue from '${from}';`,
    `import type { ${uses.join(', ')} } from '${from}';`,
    'declare namespace Readme {',
    snippet.code,
    '}',
    ...types.map((t) => `export const type_${t} = (real: Real.${t}): Readme.${t} => real;`),
    ...values.map((v) => `export const value_${v}: typeof Readme.${v} = RealValue.${v};`),
  ].join('\n');
  return { source, offset: 4 };
}

/** Placeholders the snippets use without defining (what the reader's own code would be). */
export const PRELUDE = `
declare const client: import('@crier/sdk-node').CrierClient;
declare const bytes: Uint8Array;
declare function render(...args: unknown[]): void;
declare function log(...args: unknown[]): void;
declare function showBanner(...args: unknown[]): void;
declare function onOrder(event: import('@crier/sdk-node').CrierEvent): void;
declare function onTenantUser(event: import('@crier/sdk-node').CrierEvent): void;
declare function sendWelcomeMail(user: { email: string }): Promise<void>;
declare function findInvoice(query: { id: number }): Promise<{ id: number; total: number }>;
declare function makeThumbnail(data: Uint8Array): void;
declare function lookUp(data: Uint8Array): Uint8Array;
`;

/** The same placeholders at run time, for the programs that use some. */
export const RUNTIME_PRELUDE = `
globalThis.render = () => {};
globalThis.log = () => {};
globalThis.showBanner = () => {};
globalThis.sendWelcomeMail = async () => {};
globalThis.findInvoice = async ({ id }) => ({ id, total: 42 });
`;

/** The snippet as run against the test's broker at `url`: the README's 10102 is the test's port. */
export function runnableSource(code: string, url: string): string {
  return code.replaceAll('ws://127.0.0.1:10102', url.replace(/\/$/, '')).replace(/port: 10102\b/g, 'port: 0');
}
