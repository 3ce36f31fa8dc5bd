// 97bf501 made a relay whose client stopped answering pings end as the server's ('keepalive timeout: …'),
// "operators need to tell a dead peer the proxy gave up on from a client that left". A tunnel whose
// client stops answering pings still ends as a bare 1006 with an empty reason in tunnel_ended /
// tunnel.closed, the same line as a tunnel client that left.
import WebSocket from 'ws';
import { boot } from './lib.mjs';

const app = await boot({ PING_INTERVAL_MS: '1000', TUNNEL_DOMAIN: 'tunnel.test' });
let verdict = 'FAIL';
try {
  const ws = new WebSocket(`ws://127.0.0.1:${app.port}/tunnel?v=2`, { autoPong: false });
  ws.on('error', () => {});
  await new Promise((r) => ws.once('open', r));
  await new Promise((r) => ws.once('close', r));
  await new Promise((r) => setTimeout(r, 300));
  const line = app.output().split('\n').find((l) => l.includes('"event":"tunnel_ended"'));
  const ended = JSON.parse(line);
  console.log(`tunnel_ended: closeCode=${ended.closeCode} closeReason=${JSON.stringify(ended.closeReason)}`);
  verdict = /keepalive timeout/.test(ended.closeReason) ? 'PASS' : 'FAIL';
} finally {
  app.kill();
}
console.log(verdict);
process.exit(0);
