import { pino, type Logger } from 'pino';

/** The broker's logger: the one given, a disabled one for `false`, or JSON on stderr at info. */
export function createLogger(option: Logger | false | undefined): Logger {
  if (option === false) return pino({ enabled: false });
  if (option) return option;
  return defaultLogger('info');
}

/** pino writing JSON lines to stderr, synchronously (stdout stays free for the CLI's own line). */
export function defaultLogger(level: string): Logger {
  return pino({ name: 'crier-broker', level }, pino.destination({ dest: 2, sync: true }));
}
