// A WebSocket relay opened on a connection that first carried a keep-alive HTTP request
// (a reverse proxy or agent reusing an upstream connection) must keep running. Since 624bbe2 the
// "next request head" deadline armed after the first response is never cleared by the upgrade, so
// ~keepAlive(5s)+HANDSHAKE_TIMEOUT_MS+2s later a "HTTP/1.1 408" is written INTO the WebSocket stream
// and the socket is ended.
import { createServer } from 'node:net';
import { boot, connect, frame } from './lib.mjs';

const echo = createServer((s) => { s.on('error', () => s.destroy()); s.pipe(s); });
await new Promise((r) => echo.listen(0, '127.0.0.1', r));
const app = await boot({ HANDSHAKE_TIMEOUT_MS: '1000' });
let verdict = 'FAIL';
try {
  const s = connect(app.port, '127.0.0.1');
  s.on('error', () => {});
  let buf = Buffer.alloc(0);
  s.on('data', (c) => (buf = Buffer.concat([buf, c])));
  await new Promise((r) => s.once('connect', r));
  s.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
  while (!/\r\n\r\n[^]*\}/.test(buf.toString('latin1'))) await new Promise((r) => setTimeout(r, 20));
  buf = Buffer.alloc(0);
  s.write(`GET /relay?host=127.0.0.1&port=${echo.address().port} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
  while (!buf.includes('\r\n\r\n')) await new Promise((r) => setTimeout(r, 20));
  const head = buf.toString('latin1').split('\r\n')[0];
  console.log('upgrade answer:', head);
  buf = Buffer.alloc(0);
  let closed = false;
  s.on('close', () => (closed = true));
  const started = Date.now();
  while (Date.now() - started < 12000 && !closed) {
    s.write(frame(2, [...Buffer.from('ping')]));
    await new Promise((r) => setTimeout(r, 1000));
  }
  const text = buf.toString('latin1');
  const got408 = text.includes('HTTP/1.1 408');
  console.log(`after ${Date.now() - started} ms: closed=${closed} 408-in-stream=${got408}`);
  if (got408) console.log('bytes:', JSON.stringify(text.slice(text.indexOf('HTTP/1.1'))));
  verdict = head.includes('101') && !closed && !got408 ? 'PASS' : 'FAIL';
  s.destroy();
} finally {
  app.kill();
  echo.close();
}
console.log(verdict);
process.exit(0);
