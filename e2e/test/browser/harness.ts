// What the browser tests stand on: a real broker process, a small server for the test pages,
// and Debian's Chromium driven by playwright-core. Everything on 127.0.0.1.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type LaunchOptions } from 'playwright-core';
import { Signal, waitFor } from '../wait-for.js';

const CLI = fileURLToPath(new URL('../../../broker/dist/cli.js', import.meta.url));

/** The flags this machine's Chromium needs (see DEVELOPERS.md): no sandbox as root, no network chatter. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function launchChromium(options: LaunchOptions = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    ...options,
  });
}

export interface BrokerProcess {
  /** ws://127.0.0.1:port/ */
  url: string;
  port: number;
  /** http://127.0.0.1:port */
  http: string;
  process: ChildProcess;
  stats(): Promise<Record<string, number>>;
  /** Stops it: SIGTERM (clean) by default, or SIGKILL (a crash). */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `crier-broker` as a child process and waits for the line that says where it listens. */
export async function startBrokerProcess(args: string[] = []): Promise<BrokerProcess> {
  // No drain window by default: a test that stops the broker with clients connected need not wait
  // for it (later args win: a test of the drain passes its own).
  const proc = spawn(process.execPath, [CLI, '--host', '127.0.0.1', '--port', '0', '--log-level', 'warn', '--drain-window', '0', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let printed: string | undefined;
  let exitCode: number | null | undefined;
  const changed = new Signal();
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    printed ??= /ws:\/\/\S+/.exec(line)?.[0];
    changed.notify();
  });
  proc.once('exit', (code) => {
    exitCode = code;
    changed.notify();
  });
  const url = await waitFor('crier-broker to print its address', () => {
    if (printed === undefined && exitCode !== undefined) throw new Error(`crier-broker exited with ${exitCode} before listening`);
    return printed;
  }, { timeoutMs: 10_000, wake: changed });
  const port = Number(new URL(url).port);
  const http = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    http,
    process: proc,
    stats: async () => (await (await fetch(`${http}/stats`)).json()) as Record<string, number>,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill(signal);
      }),
  };
}

/**
 * The test pages, on their own origin. `GET /app.html?broker=<host:port>&pattern=<p>` is a page
 * that loads `/crier.min.js` from the broker with one script tag, subscribes to `pattern`, and
 * renders each event as `<li data-channel>text</li>` in `#events`; `GET /blank.html` is a page to
 * navigate to. Page state for tests: `#state`, `#uuid`, `#errors`, and `window.pageshows`.
 */
export async function startPageServer(): Promise<{ origin: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    // No `Cache-Control: no-store`: Chrome keeps such pages out of the back/forward cache.
    if (url.pathname === '/blank.html') {
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      res.end('<!doctype html><title>elsewhere</title><p>elsewhere</p>');
    } else if (url.pathname === '/app.html') {
      const broker = url.searchParams.get('broker') ?? '';
      const pattern = url.searchParams.get('pattern') ?? '>';
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      res.end(appPage(broker, pattern));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function appPage(broker: string, pattern: string): string {
  // The page is what a web UI would write: one script tag, connect, subscribe, render.
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>crier test app</title>
<script src="http://${broker}/crier.min.js"></script></head>
<body>
<p>state: <span id="state">loading</span>, uuid: <span id="uuid"></span></p>
<ul id="events"></ul>
<ul id="errors"></ul>
<script>
  window.pageshows = [];
  addEventListener('pageshow', (e) => window.pageshows.push(e.persisted));
  const client = Crier.connect('ws://${broker}/', { reconnect: { initialDelay: 50, maxDelay: 500 } });
  window.client = client;
  client.on('state', (s) => {
    document.getElementById('state').textContent = s;
    document.getElementById('uuid').textContent = client.uuid || '';
  });
  client.on('error', (e) => {
    const li = document.createElement('li');
    li.textContent = e.code;
    document.getElementById('errors').append(li);
  });
  client.subscribe(${JSON.stringify(pattern)}, (event) => {
    const li = document.createElement('li');
    li.dataset.channel = event.channel;
    li.textContent = Crier.decodeText(event.data);
    document.getElementById('events').append(li);
  });
</script>
</body></html>`;
}
