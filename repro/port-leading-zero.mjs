// README admission step 1: `port` 1-65535 in digits (no leading zero), else 400 `invalid port` (4400 with errors=close).
// Before the fix port=022 passes step 1 and is dialled as port 22 (a 502 here, nothing listens).
import { startService, result } from './lib.mjs';
import net from 'node:net';
const svc = await startService({});
const raw = (q) => new Promise((resolve) => { const s = net.connect(svc.port, '127.0.0.1', () => s.write(`GET /relay?${q} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`)); let o = ''; s.on('data', (d) => (o += d)); s.on('close', () => resolve(o)); s.on('error', () => {}); setTimeout(() => s.destroy(), 3000); });
for (const q of ['host=127.0.0.1&port=022', 'host=127.0.0.1&port=00001']) {
  const t = await raw(q);
  result(/^HTTP\/1.1 400/.test(t) && /invalid port$/.test(t.trim()), `${q}: ${JSON.stringify(t.split('\r\n')[0] + ' / ' + t.slice(t.indexOf('\r\n\r\n') + 4).trim())}`);
}
await svc.stop();
