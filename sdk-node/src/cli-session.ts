import type { CrierClientFull as CrierClient, Subscription } from '@crier/sdk-web/full';
import { connectCli } from './cli-connect.js';
import { formatDropped } from './cli-format.js';
import { onStdoutClosed, say } from './cli-output.js';

// The long-running commands (`crier listen`, `crier reply`): a broker that cannot be reached at
// start is a failure (exit 1), as for every command, unless `--wait`; once connected the client
// reconnects by itself (the SDK does) and says so; SIGINT, SIGTERM and a closed stdout quit
// cleanly.

export interface SessionOptions {
  url: string;
  token: string | undefined;
  /** State changes on stderr. */
  chatty: boolean;
  /** Wait for a broker that cannot be reached at start. */
  wait: boolean;
  /** What the command does, once its subscriptions are ready: `listening to user.*`. */
  doing: string;
  /** Makes the command's subscriptions; `finishing()` tells whether it is ending. */
  start(client: CrierClient, finishing: () => boolean): Subscription[];
}

/** Runs until a signal or a closed stdout (resolves with 0), or a fatal error (resolves with 1). */
export function runSession(options: SessionOptions): Promise<number> {
  const { url, chatty } = options;
  // A long-running command should notice a broker that came back within seconds, not the SDK's default 30 s.
  const { client, lastProblem } = connectCli(url, { reconnect: { maxDelay: 5000 }, token: options.token });

  return new Promise<number>((resolve) => {
    let finishing = false;
    const finish = (code: number): void => {
      if (finishing) return;
      finishing = true;
      // quit() sends the quit frame, so the broker frees the stream at once; bounded by the SDK's
      // requestTimeout when the broker does not answer the close.
      void client.quit().then(() => resolve(code));
    };
    const onSignal = (): void => {
      if (finishing) process.exit(130); // a second Ctrl+C: do not wait any longer
      finish(0);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    onStdoutClosed(() => finish(0));

    let waiting = false; // told the user we are waiting for the broker, since the last welcome
    let everConnected = false;
    const problem = (): string => {
      const p = lastProblem();
      return p ? ` (${p})` : '';
    };
    const closeInfo = (info: { code?: number; reason?: string }): string =>
      info.code !== undefined ? ` (code ${info.code}${info.reason ? `: ${info.reason}` : ''})` : '';
    client.on('state', (state, info) => {
      if (finishing) return;
      if (state === 'connected') {
        if (everConnected && (chatty || waiting)) say(`reconnected to ${url}`);
        else if (waiting) say(`connected to ${url}`);
        everConnected = true;
        waiting = false;
      } else if (state === 'reconnecting') {
        if (!everConnected && !options.wait) {
          const why = lastProblem();
          say(`cannot reach ${url}${why ? `: ${why}` : ''} (--wait to wait for it)`);
          finish(1);
          return;
        }
        if (everConnected && chatty && !waiting) say(`connection lost${closeInfo(info)}`);
        if (!waiting) say(`waiting for the broker at ${url}${everConnected && chatty ? '' : problem()}, retrying…`);
        waiting = true;
      } else if (state === 'closed') {
        say(`the broker closed the connection for good${closeInfo(info)}`);
        finish(1);
      }
    });
    client.on('dropped', (notice) => say(formatDropped(notice)));
    client.on('error', (error) => say(`${error.code}: ${error.message}`));

    const subscriptions = options.start(client, () => finishing);
    Promise.all(subscriptions.map((s) => s.ready)).then(
      () => {
        if (chatty) say(`${options.doing} on ${url} (press Ctrl+C to stop)`);
      },
      (err: unknown) => {
        if (finishing) return;
        const e = err as { code?: string; message?: string };
        say(e.code ? `${e.code}: ${e.message}` : String(err));
        finish(1);
      },
    );
  });
}
