import type { CrierClientFull as CrierClient, EventHandler, SubscribeFilter, Subscription } from '@crier/sdk-web/full';
import type { ListenCommand } from './cli-args.js';
import { formatEventJson, formatEventLine } from './cli-format.js';
import { writeLine } from './cli-output.js';
import { runSession } from './cli-session.js';

// `crier listen`: a long-running tail (see cli-session.ts). Events on stdout, everything else on
// stderr.

/** `client.subscribe(pattern, filter, handler)` when a filter was asked for (labels, keys). */
function subscribe(client: CrierClient, pattern: string, filter: SubscribeFilter | undefined, handler: EventHandler, group: string | undefined): Subscription {
  const options = { group };
  return filter === undefined ? client.subscribe(pattern, handler, options) : client.subscribe(pattern, filter, handler, options);
}

/** Runs until a signal or a closed stdout (resolves with 0), or a fatal error (resolves with 1). */
export function listen(cmd: ListenCommand): Promise<number> {
  const format = cmd.json ? formatEventJson : formatEventLine;
  return runSession({
    url: cmd.url,
    token: cmd.token,
    chatty: !cmd.json || cmd.verbose,
    wait: cmd.wait,
    doing: `listening to ${cmd.patterns.join(', ')}${cmd.group ? ` in group ${cmd.group}` : ''}`,
    start: (client, finishing) => {
      const handler: EventHandler = (event) => {
        if (!finishing()) writeLine(format(event));
      };
      return cmd.patterns.map((pattern) => subscribe(client, pattern, cmd.filter, handler, cmd.group));
    },
  });
}
