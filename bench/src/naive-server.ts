// The ceiling to compare crier against: a minimal `ws` broadcast server that forwards each
// message from a publisher with one `send` per subscriber. No protocol, no limits, no queues.
import { createServer } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';

const subscribers = new Set<WebSocket>();
const server = createServer();
const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: false });
wss.on('connection', (ws, req) => {
  ws.on('error', () => ws.terminate());
  if (req.url === '/sub') {
    subscribers.add(ws);
    ws.on('close', () => subscribers.delete(ws));
  } else {
    ws.on('message', (data: Buffer) => {
      for (const s of subscribers) s.send(data);
    });
  }
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address && typeof address === 'object') process.stdout.write(`listening on ws://127.0.0.1:${address.port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
