import type { PresenceCommand } from './cli-args.js';
import { CliFailure, connectOnce } from './cli-connect.js';
import { writeLine } from './cli-output.js';
import { describe } from './cli-publish.js';

// `crier presence`: how many subscribe to a channel or a pattern (and who, with --members).

/** Asks once; prints the count (then each member a line), or the answer as JSON. */
export async function presence(cmd: PresenceCommand): Promise<number> {
  const client = await connectOnce(cmd.url, cmd.timeout, cmd.token);
  try {
    const info = await client.presence(cmd.pattern, { members: cmd.members });
    if (cmd.json) writeLine(JSON.stringify(info));
    else {
      writeLine(String(info.subscribers));
      for (const id of info.members ?? []) writeLine(id);
      // Asked, and not given: say why on stderr, so that a script reading stdout is not misled.
      if (cmd.members && info.members === undefined) process.stderr.write('crier: members not shown: no presence grant covers it\n');
    }
    return 0;
  } catch (err) {
    throw new CliFailure(`presence of ${cmd.pattern}: ${describe(err)}`);
  } finally {
    await client.quit();
  }
}
