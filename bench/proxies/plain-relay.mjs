// The baseline: the relay anyone could write in twenty lines with `ws` and
// `net` — no auth, no policy, no limits, no logging. The target comes from the
// query, like wsproxy's /relay. Prints {"port":N} once listening.
import { createConnection } from 'node:net';
import { WebSocketServer, createWebSocketStream } from 'ws';

const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0), perMessageDeflate: false, backlog: 4096 });
wss.on('connection', (ws, req) => {
  const q = new URL(req.url, 'http://relay').searchParams;
  const tcp = createConnection({ host: q.get('host'), port: Number(q.get('port')), noDelay: true });
  const stream = createWebSocketStream(ws);
  const kill = () => (tcp.destroy(), stream.destroy());
  tcp.on('error', kill);
  stream.on('error', kill);
  stream.pipe(tcp).pipe(stream);
});
process.on('SIGTERM', () => process.exit(0));
wss.on('listening', () => console.log(JSON.stringify({ port: wss.address().port })));
