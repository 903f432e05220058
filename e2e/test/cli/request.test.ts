// `crier request` and `crier reply` against a real broker process, with each other and with an
// sdk-node client on the other side.
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { connect, decodeText, encodeText, type CrierClient } from '@crier/sdk-node';
import { startBrokerProcess, type BrokerProcess } from '../browser/harness.js';
import { CliProcess, runCli } from './run-cli.js';

let broker: BrokerProcess;
let client: CrierClient;
const running: CliProcess[] = [];

beforeAll(async () => {
  broker = await startBrokerProcess();
  client = connect(broker.url);
  await client.ready();
});

afterEach(() => {
  for (const cli of running.splice(0)) cli.kill();
});

afterAll(async () => {
  await client.quit();
  await broker.stop();
});

/** `crier reply <args>`, once it says it answers. */
async function replier(args: string[]): Promise<CliProcess> {
  const cli = CliProcess.start(['reply', '--url', broker.url, ...args]);
  running.push(cli);
  await cli.waitForLine('stderr', /answering requests on/, 'the replier to be ready');
  return cli;
}

it('request prints the reply of an sdk-node responder as is; --json prints it as an event', async () => {
  const served = client.respond('ra.*', (req) => ({ data: encodeText(`hello ${decodeText(req.data)}`), labels: ['ok'] }));
  await served.ready;
  const r = await runCli(['request', '--url', broker.url, 'ra.greet', 'ann']);
  expect(r).toMatchObject({ code: 0, stdout: 'hello ann', stderr: '' });
  const j = await runCli(['request', '--url', broker.url, 'ra.greet', '-', '--json'], { input: 'bob' });
  expect(j).toMatchObject({ code: 0, stderr: '' });
  expect(JSON.parse(j.stdout)).toMatchObject({ channel: 'ra.greet', labels: ['ok'], data: 'hello bob' });
  await served.unsubscribe();
});

it('request exits 1 at once with no_responders when nobody listens, and with timeout when nobody answers', async () => {
  const nobody = await runCli(['request', '--url', broker.url, '--timeout', '20s', 'rb.nobody', 'x']);
  expect(nobody.code).toBe(1);
  expect(nobody.stderr).toMatch(/^crier: request to rb\.nobody: no_responders: /);
  const silent = client.respond('rb.silent', () => undefined);
  await silent.ready;
  const late = await runCli(['request', '--url', broker.url, '--timeout', '300ms', 'rb.silent', 'x']);
  expect(late.code).toBe(1);
  expect(late.stderr).toMatch(/^crier: request to rb\.silent: timeout: /);
  await silent.unsubscribe();
});

it('reply --exec answers each request with the command\'s output, given the data on stdin and the request in its environment', async () => {
  await replier(['rc.>', '--exec', 'printf "%s|%s|" "$CRIER_CHANNEL" "$CRIER_LABELS"; tr a-z A-Z']);
  const answer = await client.request('rc.upper', encodeText('shout'), { labels: ['a', 'b'] });
  expect(decodeText(answer.data)).toBe('rc.upper|a,b|SHOUT');
  // crier request talks to crier reply just the same.
  const r = await runCli(['request', '--url', broker.url, 'rc.x.y', 'both']);
  expect(r).toMatchObject({ code: 0, stdout: 'rc.x.y||BOTH' });
});

it('reply --exec sends no reply for a failing command and says so; --echo and fixed data answer at once', async () => {
  const failing = await replier(['rd.fail', '--exec', 'exit 3']);
  await expect(client.request('rd.fail', encodeText('x'), { timeout: 500 })).rejects.toMatchObject({ code: 'timeout' });
  await failing.waitForLine('stderr', /rd\.fail .*: exit 3: exit code 3; no reply sent/, 'the failure on stderr');
  await replier(['rd.echo', '--echo']);
  expect(decodeText((await client.request('rd.echo', encodeText('same'))).data)).toBe('same');
  await replier(['rd.fixed', 'pong']);
  expect(decodeText((await client.request('rd.fixed', encodeText('ping'))).data)).toBe('pong');
});

it('bad command lines are usage errors (exit 2)', async () => {
  for (const args of [['reply', 'a.b'], ['reply', 'a.b', 'x', '--echo'], ['reply', 'a.b', '--echo', '--concurrency', '0'], ['request'], ['request', 'a.b']]) {
    const r = await runCli(['--url', broker.url, ...args]);
    expect(r.code, args.join(' ')).toBe(2);
    expect(r.stderr).toMatch(/^crier: /);
  }
});

it('reply --group: repliers of one group share the requests, round-robin; listen --group likewise shares events', async () => {
  await replier(['re.work', '--group', 'pool', 'from-a']);
  await replier(['re.work', '--group', 'pool', 'from-b']);
  const answers: string[] = [];
  for (let n = 0; n < 10; n++) answers.push(decodeText((await client.request('re.work', encodeText(String(n)))).data));
  expect(answers.filter((a) => a === 'from-a')).toHaveLength(5);
  expect(answers.filter((a) => a === 'from-b')).toHaveLength(5);

  const listeners = await Promise.all(['x', 'y'].map(async () => {
    const cli = CliProcess.start(['listen', '--url', broker.url, 're.events', '--group', 'tail']);
    running.push(cli);
    await cli.waitForLine('stderr', /listening to re\.events in group tail/, 'the listener to be subscribed');
    return cli;
  }));
  for (let n = 0; n < 10; n++) await client.publish('re.events', encodeText(String(n)));
  await Promise.all(listeners.map((cli) => cli.waitForLines('stdout', 5, 'its share of the events')));
  const seen = listeners.flatMap((cli) => cli.stdoutLines.map((line) => line.replace(/^.*: /, '')));
  expect(seen.sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 10 }, (_, n) => String(n)));
});
