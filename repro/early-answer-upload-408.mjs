// A tunnel origin that answers before the request body has arrived (an early 401/200 on an upload):
// the proxy reads and drops the rest of the body "so the connection goes on to the requester's next
// request" (tunnel-http.router.ts). Since 624bbe2 the next-request deadline starts when that early
// response finishes, while the upload is still running: keep-alive 5 s + HANDSHAKE_TIMEOUT_MS + 2 s
// later a 408 is written after the 200 and the connection is cut mid-upload.
import http from 'node:http';
import { boot, connect } from './lib.mjs';
import { TunnelClient } from '../dist/tunnel/client/tunnel-client.js';

const origin = http.createServer((req, res) => { req.resume(); res.end('early'); });
await new Promise((r) => origin.listen(0, '127.0.0.1', r));
const app = await boot({ HANDSHAKE_TIMEOUT_MS: '1000', TUNNEL_DOMAIN: 'tunnel.test', LOG_LEVEL: 'silent' });
let verdict = 'FAIL';
let client;
try {
  client = await TunnelClient.connect({ proxy: `ws://127.0.0.1:${app.port}/tunnel`, to: `127.0.0.1:${origin.address().port}`, protocol: 2 });
  const host = new URL(client.tunnelUrl).host;
  const s = connect(app.port, '127.0.0.1');
  s.on('error', () => {});
  let text = '';
  s.on('data', (c) => (text += c.toString('latin1')));
  let closed = false;
  s.on('close', () => (closed = true));
  await new Promise((r) => s.once('connect', r));
  const total = 24 * 1000;
  s.write(`POST /upload HTTP/1.1\r\nHost: ${host}\r\nContent-Length: ${total}\r\n\r\n`);
  // 1000 bytes every 500 ms: 12 s of upload, well inside every stall bound (TUNNEL_REQUESTER_STALL_MS 60 s).
  for (let sent = 0; sent < total && !closed; sent += 1000) {
    s.write('x'.repeat(1000));
    await new Promise((r) => setTimeout(r, 500));
  }
  const early = /^HTTP\/1\.1 200 /.test(text);
  if (!closed) s.write(`GET /next HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  await Promise.race([new Promise((r) => s.once('close', r)), new Promise((r) => setTimeout(r, 5000))]);
  const answers = text.match(/HTTP\/1\.1 \d+/g) ?? [];
  console.log(`early answer 200: ${early}; answers on the connection: ${JSON.stringify(answers)}`);
  verdict = early && answers.length === 2 && answers[1] === 'HTTP/1.1 200' ? 'PASS' : 'FAIL';
  s.destroy();
} finally {
  client?.close?.();
  app.kill();
  origin.close();
}
console.log(verdict);
process.exit(0);
