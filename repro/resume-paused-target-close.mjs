// d1aed2a fixed, for plain relays, a target that goes away while the proxy has paused the client's
// WebSocket: the client's answer to the close frame waits behind unread data, so the relay lasted until
// ws's 30 s close timeout. A resumable session pauses its client the same way (a client past its
// window, UNACKED_UPLOAD_MAX 8 MiB unwritten) and its target's close does not resume it.
import { createServer } from 'node:net';
import WebSocket from 'ws';
import { boot } from './lib.mjs';

const conns = new Set();
const stalled = createServer((s) => { conns.add(s); s.on('error', () => {}); s.pause(); });
await new Promise((r) => stalled.listen(0, '127.0.0.1', r));
const app = await boot({ LOG_LEVEL: 'silent' });
let verdict = 'FAIL';
try {
  const ws = new WebSocket(`ws://127.0.0.1:${app.port}/relay?host=127.0.0.1&port=${stalled.address().port}&resume=1`, { perMessageDeflate: false });
  ws.on('error', () => {});
  await new Promise((r) => ws.once('open', r));
  const chunk = Buffer.alloc(64 * 1024, 7);
  for (let i = 0; i < 768; i++) ws.send(chunk);
  await new Promise((r) => setTimeout(r, 2000));
  const started = Date.now();
  const done = new Promise((r) => ws.once('close', (code) => r(code)));
  for (const s of conns) s.destroy();
  const code = await Promise.race([done, new Promise((r) => setTimeout(() => r('still open'), 10000))]);
  console.log(`target gone; client closed after ${Date.now() - started} ms: ${code}`);
  verdict = code !== 'still open' ? 'PASS' : 'FAIL';
  ws.terminate();
} finally {
  app.kill();
  stalled.close();
}
console.log(verdict);
process.exit(0);
