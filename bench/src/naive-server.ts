// The reference every bench workload compares crier against, in the same run: a minimal `ws`
// broadcast server written the obvious way. Subscribers connect to `/sub?c=<pattern>,<pattern>`;
// publishers to `/pub` (or `/pub?ack=1` to get a one-byte ack per message) and send binary
// messages `<channel>\n<payload>`. Each message is forwarded with one `send` per matching
// subscriber; patterns (`*`, `>`) are matched by a linear scan, as a naive broker would.
// `GET /mem` answers the process's memory use. No limits, no queues, no protocol.
import { createServer } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';

interface Sub {
  ws: WebSocket;
  patterns: string[];
}

const exact = new Map<string, Set<WebSocket>>();
const wild: Sub[] = [];

function matches(pattern: string, channel: string): boolean {
  const p = pattern.split('.');
  const c = channel.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return c.length > i;
    if (i >= c.length || (p[i] !== '*' && p[i] !== c[i])) return false;
  }
  return p.length === c.length;
}

const server = createServer((req, res) => {
  if (req.url === '/mem') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(process.memoryUsage()));
  } else {
    res.statusCode = 404;
    res.end();
  }
});
const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: false });
wss.on('connection', (ws, req) => {
  ws.on('error', () => ws.terminate());
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname === '/sub') {
    const patterns = (url.searchParams.get('c') ?? '').split(',').filter(Boolean);
    const sub: Sub = { ws, patterns: patterns.filter((p) => p.includes('*') || p.includes('>')) };
    for (const p of patterns) {
      if (sub.patterns.includes(p)) continue;
      let set = exact.get(p);
      if (!set) exact.set(p, (set = new Set()));
      set.add(ws);
    }
    if (sub.patterns.length > 0) wild.push(sub);
    ws.on('close', () => {
      for (const p of patterns) exact.get(p)?.delete(ws);
      const i = wild.indexOf(sub);
      if (i >= 0) wild.splice(i, 1);
    });
  } else {
    const ack = url.searchParams.get('ack') === '1';
    const one = new Uint8Array([1]);
    ws.on('message', (data: Buffer) => {
      const nl = data.indexOf(10);
      const channel = data.toString('latin1', 0, nl);
      const subs = exact.get(channel);
      if (subs) for (const s of subs) s.send(data);
      for (const s of wild) if (s.patterns.some((p) => matches(p, channel))) s.ws.send(data);
      if (ack) ws.send(one);
    });
  }
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address && typeof address === 'object') process.stdout.write(`listening on ws://127.0.0.1:${address.port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
