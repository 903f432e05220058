import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import type { StatsCommand } from './cli-args.js';
import { CliFailure, describeError, statsUrlOf } from './cli-connect.js';
import { formatStats } from './cli-format.js';
import { writeLine } from './cli-output.js';

// `crier stats`: the broker's `GET /stats`, on the host and port of its WebSocket URL.
// node:http rather than fetch: fetch refuses some ports outright ("bad port") and hides the
// system error that says why a broker cannot be reached.

/** The headers of a request to the broker: the credential, when there is one. */
export function authHeaders(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { authorization: `Bearer ${token}` };
}

function getText(url: string, timeout: number, token: string | undefined): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith('https:') ? httpsGet : httpGet;
    const req = get(url, { timeout, headers: authHeaders(token) }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new CliFailure(`no answer within ${timeout} ms`)));
    req.on('error', reject);
  });
}

export async function stats(cmd: StatsCommand): Promise<number> {
  const url = statsUrlOf(cmd.url);
  let answer: { status: number; body: string };
  try {
    answer = await getText(url, cmd.timeout, cmd.token);
  } catch (err) {
    throw new CliFailure(`cannot reach ${url}: ${describeError(err)}`);
  }
  if (answer.status !== 200) throw new CliFailure(`${url} answered ${answer.status}: ${answer.body.trim().slice(0, 200)}`);
  let doc: unknown;
  try {
    doc = JSON.parse(answer.body);
  } catch {
    throw new CliFailure(`${url} did not answer JSON (is --url a crier broker?)`);
  }
  if (cmd.json) writeLine(answer.body.trim()); // the document as the broker sent it
  else for (const line of formatStats(doc)) writeLine(line);
  return 0;
}
