import type { CrierClient, EventHandler, SubscribeFilter, Subscription } from '@crier/sdk-web';
import type { ListenCommand } from './cli-args.js';
import { connectCli } from './cli-connect.js';
import { formatDropped, formatEventJson, formatEventLine } from './cli-format.js';
import { onStdoutClosed, say, writeLine } from './cli-output.js';

// `crier listen`: a long-running tail. Events on stdout, everything else on stderr. A broker that
// cannot be reached at start is a failure (exit 1), as for every command, unless `--wait`; once
// connected it reconnects by itself (the SDK does) and says so; SIGINT, SIGTERM and a closed
// stdout quit cleanly.

/** `client.subscribe(pattern, filter, handler)` when a filter was asked for (labels, keys). */
function subscribe(client: CrierClient, pattern: string, filter: SubscribeFilter | undefined, handler: EventHandler): Subscription {
  return filter === undefined ? client.subscribe(pattern, handler) : client.subscribe(pattern, filter, handler);
}

/** Runs until a signal or a closed stdout (resolves with 0), or a fatal error (resolves with 1). */
export function listen(cmd: ListenCommand): Promise<number> {
  const human = !cmd.json;
  const chatty = human || cmd.verbose; // state changes on stderr
  // A tail should notice a broker that came back within seconds, not the SDK's default 30 s.
  const { client, lastProblem } = connectCli(cmd.url, { reconnect: { maxDelay: 5000 }, token: cmd.token });

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

    const format = cmd.json ? formatEventJson : formatEventLine;
    const handler: EventHandler = (event) => {
      if (!finishing) writeLine(format(event));
    };

    let waiting = false; // told the user we are waiting for the broker, since the last welcome
    let everConnected = false;
    client.on('state', (state, info) => {
      if (finishing) return;
      if (state === 'connected') {
        if (everConnected && (chatty || waiting)) say(`reconnected to ${cmd.url}`);
        else if (waiting) say(`connected to ${cmd.url}`);
        everConnected = true;
        waiting = false;
      } else if (state === 'reconnecting') {
        if (!everConnected && !cmd.wait) {
          const why = lastProblem();
          say(`cannot reach ${cmd.url}${why ? `: ${why}` : ''} (--wait to wait for it)`);
          finish(1);
          return;
        }
        if (everConnected && chatty && !waiting) {
          say(`connection lost${info.code !== undefined ? ` (code ${info.code}${info.reason ? `: ${info.reason}` : ''})` : ''}`);
        }
        if (!waiting) say(`waiting for the broker at ${cmd.url}${everConnected && chatty ? '' : problem()}, retrying…`);
        waiting = true;
      } else if (state === 'closed') {
        say(`the broker closed the connection for good${info.code !== undefined ? ` (code ${info.code}${info.reason ? `: ${info.reason}` : ''})` : ''}`);
        finish(1);
      }
    });
    const problem = (): string => {
      const p = lastProblem();
      return p ? ` (${p})` : '';
    };
    client.on('dropped', (notice) => say(formatDropped(notice)));
    client.on('error', (error) => say(`${error.code}: ${error.message}`));

    const subscriptions = cmd.patterns.map((pattern) => subscribe(client, pattern, cmd.filter, handler));
    Promise.all(subscriptions.map((s) => s.ready)).then(
      () => {
        if (chatty) say(`listening to ${cmd.patterns.join(', ')} on ${cmd.url} (press Ctrl+C to stop)`);
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
