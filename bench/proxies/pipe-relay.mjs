// Diagnostic competitor (--diagnose): wsproxy's own pipeRelay (dist/relay/relay-pipe.js) behind a bare
// ws server, without Nest, auth, policy or limits. Dials first, then completes the handshake, like
// wsproxy. Comparing it with wsproxy and the plain relay separates the byte pipe from everything around it.
import { createServer } from 'node:http';
import { createConnection } from 'node:net';
import { WebSocketServer } from 'ws';
import { pipeRelay } from '../../dist/relay/relay-pipe.js';
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false, maxPayload: 4 * 1024 * 1024 });
const server = createServer();
server.on('upgrade', (req, socket, head) => {
  const q = new URL(req.url, 'http://relay').searchParams;
  const tcp = createConnection({ host: q.get('host'), port: Number(q.get('port')), noDelay: true });
  tcp.on('error', () => (tcp.destroy(), socket.destroy()));
  tcp.once('connect', () => wss.handleUpgrade(req, socket, head, (ws) => pipeRelay(ws, tcp, () => {})));
});
process.on('SIGTERM', () => process.exit(0));
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
