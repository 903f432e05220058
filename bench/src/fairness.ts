// Fairness under a flood (issue 9, finding 6): another client's ping round trip, p50 and p99,
// while one connection publishes as fast as it can (one frame per message, as the SDKs send).
//   node bench/dist/fairness.js [--seconds 3] [--cli path/to/broker/dist/cli.js]
// The flooder runs in its own process (so it never delays the probe's timers); the broker is
// pinned to cpu 0, the probe to cpu 1, the flooder to cpu 1 too when taskset exists.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { FrameType, encodeFrame } from '@crier/protocol';
import { hasTaskset, pinSelf, startServer } from './processes.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    cli: { type: 'string' },
    // Publish frames per message of the flooder (the protocol allows several; the SDKs send one).
    frames: { type: 'string', default: '1' },
    flood: { type: 'string' },
  },
});

function hello(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('error', reject);
    ws.once('open', () => {
      ws.once('message', () => resolve(ws));
      ws.send(encodeFrame({ t: FrameType.hello, v: 1 }));
    });
  });
}

if (values.flood !== undefined) {
  // Flooder mode: fire-and-forget publishes, as fast as the socket takes them.
  const ws = await hello(values.flood);
  ws.on('message', () => {});
  const one = encodeFrame({ t: FrameType.publish, c: 'flood.x', d: new Uint8Array(100) });
  const frame = Buffer.concat(Array.from({ length: Number(values.frames) }, () => one));
  const loop = (): void => {
    if (ws.readyState !== WebSocket.OPEN) return;
    for (let i = 0; i < Math.ceil(500 / Number(values.frames)) && ws.bufferedAmount < 4 * 1024 * 1024; i++) ws.send(frame);
    setImmediate(loop);
  };
  loop();
} else {
  pinSelf(1);
  const seconds = Number(values.seconds);
  const cli = values.cli ?? fileURLToPath(new URL('../../broker/dist/cli.js', import.meta.url));
  const server = await startServer(cli, ['--port', '0', '--host', '127.0.0.1', '--log-level', 'warn', '--publish-rate', '1000000000'], 0);
  const base = server.url.replace(/^ws/, 'http').replace(/\/$/, '');
  const published = async (): Promise<number> => ((await (await fetch(`${base}/stats`)).json()) as { published: number }).published;
  const probe = await hello(server.url);
  const ping = encodeFrame({ t: FrameType.ping });

  /** Sequential pings for `ms`: round trips in ms. */
  const measure = (ms: number): Promise<number[]> => new Promise((resolve) => {
    const rtts: number[] = [];
    const end = performance.now() + ms;
    let sent = 0;
    const onMessage = (): void => {
      const now = performance.now();
      rtts.push(now - sent);
      if (now >= end) {
        probe.off('message', onMessage);
        resolve(rtts);
        return;
      }
      sent = performance.now();
      probe.send(ping);
    };
    probe.on('message', onMessage);
    sent = performance.now();
    probe.send(ping);
  });
  const q = (xs: number[], p: number): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
  };

  const quiet = await measure(seconds * 1000);
  const script = fileURLToPath(import.meta.url);
  const argv = [process.execPath, script, '--flood', server.url, '--frames', values.frames];
  const flooder = hasTaskset ? spawn('taskset', ['-c', '1', ...argv], { stdio: 'inherit' }) : spawn(argv[0]!, argv.slice(1), { stdio: 'inherit' });
  await new Promise((r) => setTimeout(r, 1000)); // the flood gets going
  const before = await published();
  const t0 = performance.now();
  const flooded = await measure(seconds * 1000);
  const rate = Math.round(((await published()) - before) / ((performance.now() - t0) / 1000));
  flooder.kill('SIGTERM');
  probe.terminate();
  await server.stop();
  const r2 = (x: number): string => x.toFixed(2);
  console.log(`fairness (${cli}, ${values.frames} frame(s) per flood message): quiet p50 ${r2(q(quiet, 0.5))} ms p99 ${r2(q(quiet, 0.99))} ms (${quiet.length} pings); ` +
    `flooded p50 ${r2(q(flooded, 0.5))} ms p99 ${r2(q(flooded, 0.99))} ms (${flooded.length} pings), flooder published ${rate.toLocaleString('en-US')}/s`);
}
