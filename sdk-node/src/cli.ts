#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { COMMAND_USAGE, TOP_USAGE, UsageError, parseCommandLine, type ParsedCommandLine } from './cli-args.js';
import { CliFailure } from './cli-connect.js';
import { listen } from './cli-listen.js';
import { say, watchStdout } from './cli-output.js';
import { publish } from './cli-publish.js';
import { reply } from './cli-reply.js';
import { request } from './cli-request.js';
import { presence } from './cli-presence.js';
import { stats } from './cli-stats.js';

// The `crier` command: listen, publish, request, reply, stats, presence. Exit codes: 0 done, 1 failure, 2 usage error.

const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

function version(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  const v = typeof pkg === 'object' && pkg !== null ? (pkg as { version?: unknown }).version : undefined;
  return typeof v === 'string' ? v : 'unknown';
}

/** The short usage under a usage error: the command's first line, or the top-level one. */
function shortUsage(error: UsageError): string {
  const usage = error.command ? COMMAND_USAGE[error.command] : TOP_USAGE;
  const more = error.command ? `crier ${error.command} --help` : 'crier --help';
  return `${usage.split('\n')[0]}\n(${more} for more)\n`;
}

async function run(parsed: ParsedCommandLine): Promise<number> {
  switch (parsed.command) {
    case 'help':
      process.stdout.write(parsed.topic ? COMMAND_USAGE[parsed.topic] : TOP_USAGE);
      return 0;
    case 'version':
      process.stdout.write(`${version()}\n`);
      return 0;
    case 'listen':
      return listen(parsed);
    case 'publish':
      return publish(parsed);
    case 'request':
      return request(parsed);
    case 'reply':
      return reply(parsed);
    case 'stats':
      return stats(parsed);
    case 'presence':
      return presence(parsed);
  }
}

async function main(): Promise<void> {
  watchStdout();
  let parsed: ParsedCommandLine;
  try {
    parsed = parseCommandLine(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`crier: ${err.message}\n${shortUsage(err)}`);
    process.exit(EXIT_USAGE);
  }
  let code: number;
  try {
    code = await run(parsed);
  } catch (err) {
    if (!(err instanceof CliFailure)) throw err;
    say(err.message);
    code = EXIT_FAILURE;
  }
  // Exit now: stdout and stderr are written synchronously to files and pipes, and nothing else
  // is worth waiting for (a socket the broker has not closed yet, say).
  process.exit(code);
}

await main();
