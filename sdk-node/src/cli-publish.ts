import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { encodeText, type CrierClient, type PublishAck } from '@crier/sdk-web/full';
import type { PublishCommand } from './cli-args.js';
import { CliFailure, connectOnce } from './cli-connect.js';
import { say, writeLine } from './cli-output.js';

// `crier publish`: one event from the argument, stdin or a file, or one per line with --lines.

/** Acked publishes in flight with --lines: enough to hide the round trip, bounded in memory. */
const MAX_IN_FLIGHT = 100;

async function readAll(stream: Readable): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function readSource(source: PublishCommand['source']): Promise<Uint8Array> {
  if ('text' in source) return encodeText(source.text);
  if ('stdin' in source) return readAll(process.stdin);
  try {
    return await readFile(source.file);
  } catch (err) {
    throw new CliFailure(`cannot read ${source.file}: ${(err as Error).message}`);
  }
}

function openLines(source: PublishCommand['source']): AsyncIterable<string> {
  const input = 'file' in source ? createReadStream(source.file) : process.stdin;
  input.on('error', () => {}); // reported by the iteration below
  return createInterface({ input, crlfDelay: Infinity });
}

export function describe(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  return typeof e.code === 'string' ? `${e.code}: ${String(e.message)}` : String(err);
}

/** Publishes; resolves with the exit code (0, or 1 when any publish failed). */
export async function publish(cmd: PublishCommand): Promise<number> {
  // Read a single payload before connecting: a missing file fails without touching the broker.
  const single = cmd.lines ? undefined : await readSource(cmd.source);
  const client = await connectOnce(cmd.url, cmd.timeout, cmd.token);
  let failed = 0;
  const options = { labels: cmd.labels, key: cmd.key, priority: cmd.priority };
  const report = (ack: PublishAck): void => {
    if (cmd.json) writeLine(JSON.stringify({ id: ack.id, offset: ack.offset, epoch: ack.epoch, channel: cmd.channel }));
    else writeLine(`${ack.id} ${ack.offset}`);
  };
  const send = async (data: Uint8Array): Promise<void> => {
    try {
      if (cmd.ack) report(await client.publish(cmd.channel, data, options));
      else await client.publish(cmd.channel, data, { ...options, ack: false });
    } catch (err) {
      failed++;
      say(describe(err));
    }
  };

  try {
    if (single !== undefined) await send(single);
    else await publishLines(client, cmd, send);
    if (client.state === 'closed') {
      failed++;
      say(`lost the connection to ${cmd.url}`);
    }
  } finally {
    await client.quit();
  }
  return failed > 0 ? 1 : 0;
}

async function publishLines(client: CrierClient, cmd: PublishCommand, send: (data: Uint8Array) => Promise<void>): Promise<void> {
  // Sent in line order on one connection, so the broker acks (and `send` prints) in that order.
  const inFlight: Promise<void>[] = [];
  try {
    for await (const line of openLines(cmd.source)) {
      if (line === '') continue;
      if (client.state === 'closed') break; // the connection went: every later publish would fail
      inFlight.push(send(encodeText(line)));
      if (inFlight.length >= MAX_IN_FLIGHT) await inFlight.shift();
    }
  } catch (err) {
    await Promise.all(inFlight);
    throw new CliFailure(`cannot read ${'file' in cmd.source ? cmd.source.file : 'stdin'}: ${(err as Error).message}`);
  }
  await Promise.all(inFlight);
}
