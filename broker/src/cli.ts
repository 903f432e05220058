#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { createBroker } from './broker.js';
import { ConfigError, parseCommand, usage, type Command } from './config/config.js';
import { defaultLogger } from './observe/logger.js';
import { DEFAULTS } from './config/options.js';
import { statsUrlOf } from './config/paths.js';

// The `crier-broker` command. Logs are JSON lines on stderr; stdout carries one human line
// with the address, which scripts (and tests) can parse.

const EXIT_CONFIG = 2;

function fail(message: string, code: number): never {
  process.stderr.write(`crier-broker: ${message}\n`);
  process.exit(code);
}

function version(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  const v = typeof pkg === 'object' && pkg !== null ? (pkg as { version?: unknown }).version : undefined;
  return typeof v === 'string' ? v : 'unknown';
}

/** Where the broker listens, as an operator reads it: a wildcard host says it is every interface. */
function listenAddress(host: string, port: number): string {
  const wildcard = host === '0.0.0.0' || host === '::';
  return wildcard ? `port ${port} of every interface (${host})` : `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

async function main(): Promise<void> {
  let command: Command;
  try {
    command = parseCommand(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof ConfigError) fail(`invalid config: ${err.message}`, EXIT_CONFIG);
    throw err;
  }
  if (command.action === 'help') {
    process.stdout.write(usage());
    return;
  }
  if (command.action === 'version') {
    process.stdout.write(`${version()}\n`);
    return;
  }
  const { options, logLevel, logFormat } = command.config;
  const logger = defaultLogger(logLevel, logFormat);
  let broker;
  try {
    broker = await createBroker({ ...options, logger });
  } catch (err) {
    fail(`cannot start: ${err instanceof Error ? err.message : String(err)}`, 1);
  }
  process.stdout.write(`crier broker listening on ${listenAddress(options.host ?? DEFAULTS.host, broker.port)}: ${broker.url} (stats: ${statsUrlOf(broker.url)})\n`);

  // SIGTERM (a deploy, a restart) drains: /readyz says so at once and the connections are closed
  // over drainWindow, each told when to come back; then the broker closes. SIGINT (Ctrl-C), or a
  // second signal during the drain, closes at once (1001 to whoever is left).
  let draining = false;
  let closing = false;
  const exitWhen = (done: Promise<void>): void => {
    done.then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  const closeNow = (signal: NodeJS.Signals): void => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, draining ? 'shutting down at once: the drain is cut short' : 'shutting down');
    exitWhen(broker.close());
  };
  process.on('SIGTERM', (signal: NodeJS.Signals) => {
    if (draining || closing) return closeNow(signal);
    draining = true; // the broker logs the drain's start (connections, window) and its end
    exitWhen(broker.drain().then(() => broker.close()));
  });
  process.on('SIGINT', closeNow);
  if (options.tlsCert !== undefined) {
    // SIGHUP re-reads the certificate (after a renewal) without dropping a connection; a pair
    // that fails to load is logged and the one in service stays. Without TLS, SIGHUP keeps its
    // default meaning (the process ends).
    process.on('SIGHUP', () => {
      if (draining || closing) return;
      logger.info({ signal: 'SIGHUP' }, 'reloading the TLS certificate');
      broker.reloadTls().catch((err: unknown) => logger.error({ err }, 'TLS reload failed: the previous certificate stays in service'));
    });
  }
}

main().catch((err: unknown) => fail(err instanceof Error ? (err.stack ?? err.message) : String(err), 1));
