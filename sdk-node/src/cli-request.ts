import type { RequestCommand } from './cli-args.js';
import { CliFailure, connectOnce } from './cli-connect.js';
import { formatEventJson } from './cli-format.js';
import { writeLine } from './cli-output.js';
import { describe, readSource } from './cli-publish.js';

// `crier request`: one request from the argument, stdin or a file; the reply's data on stdout.

/** Sends the request; resolves with 0 when a reply came (printed), else throws a CliFailure. */
export async function request(cmd: RequestCommand): Promise<number> {
  // Read the data before connecting: a missing file fails without touching the broker.
  const data = await readSource(cmd.source);
  const client = await connectOnce(cmd.url, cmd.timeout, cmd.token);
  try {
    const reply = await client.request(cmd.channel, data, { timeout: cmd.timeout, labels: cmd.labels, key: cmd.key });
    if (cmd.json) writeLine(formatEventJson(reply));
    else {
      process.stdout.write(reply.data);
      // The bytes as they are for a pipe; a terminal gets its line ended.
      if (process.stdout.isTTY && reply.data.at(-1) !== 0x0a) process.stdout.write('\n');
    }
    return 0;
  } catch (err) {
    throw new CliFailure(`request to ${cmd.channel}: ${describe(err)}`);
  } finally {
    await client.quit();
  }
}
