// d1aed2a's defect in the tunnel's requester WebSockets: the proxy pauses a requester's WebSocket when the
// tunnel stream has no credit (the local app is not reading). When the stream then ends (here: the tunnel
// client goes away, so the stream closes the requester with 1001), the proxy sends its close frame, but the
// requester's answer waits behind the unread upload: the requester's connection (and its per-IP slot)
// lasts until ws's 30 s close timeout.
import WebSocket, { WebSocketServer } from 'ws';
import { boot } from './lib.mjs';
import { TunnelClient } from '../dist/tunnel/client/tunnel-client.js';

const origin = new WebSocketServer({ port: 0, host: '127.0.0.1' });
await new Promise((r) => origin.once('listening', r));
origin.on('connection', (ws) => {
  ws.on('error', () => {});
  ws._socket.pause(); // the app reads nothing
});
const app = await boot({ TUNNEL_DOMAIN: 'tunnel.test', LOG_LEVEL: 'silent' });
let verdict = 'FAIL';
let client;
try {
  client = await TunnelClient.connect({ proxy: `ws://127.0.0.1:${app.port}/tunnel`, to: `127.0.0.1:${origin.address().port}`, protocol: 2 });
  const host = new URL(client.tunnelUrl).host;
  const ws = new WebSocket(`ws://127.0.0.1:${app.port}/`, { headers: { Host: host }, perMessageDeflate: false });
  ws.on('error', () => {});
  await new Promise((r, j) => { ws.once('open', r); ws.once('unexpected-response', (_q, res) => j(new Error('HTTP ' + res.statusCode))); });
  const chunk = Buffer.alloc(64 * 1024, 1);
  for (let i = 0; i < 512; i++) ws.send(chunk); // 32 MiB: far past the stream's window and every buffer
  await new Promise((r) => setTimeout(r, 2000));
  const started = Date.now();
  const done = new Promise((r) => ws.once('close', (code) => r(code)));
  void client.close();
  const code = await Promise.race([done, new Promise((r) => setTimeout(() => r('still open'), 10000))]);
  console.log(`tunnel ended; requester closed after ${Date.now() - started} ms: ${code}`);
  verdict = code !== 'still open' ? 'PASS' : 'FAIL';
  ws.terminate();
} finally {
  await client?.close?.();
  app.kill();
  origin.close();
}
console.log(verdict);
process.exit(0);
