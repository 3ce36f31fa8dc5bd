// A server that accepts TCP and never answers, and one that completes the upgrade but never sends a frame:
// the CLI gives up after its 30 s handshake/attach timeout with 255 and a message; with --resume, an upgrade
// without a session frame must be reported as 'attach timed out' (it said 'connection failed').
import { runCli, result } from './lib.mjs';
import net from 'node:net';
import { createHash } from 'node:crypto';
const accept = (key) => createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
const silent = net.createServer((s) => s.on('error', () => {}));
const upgraded = net.createServer((s) => { s.on('error', () => {}); s.once('data', (d) => { const key = /sec-websocket-key: (.*)\r\n/i.exec(d.toString())[1]; s.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(key)}\r\n\r\n`); }); });
await new Promise((r) => silent.listen(0, '127.0.0.1', r));
await new Promise((r) => upgraded.listen(0, '127.0.0.1', r));
const runs = [];
for (const m of [[], ['--resume']]) {
  runs.push(runCli([...m, `ws://127.0.0.1:${silent.address().port}/relay?host=h&port=22`], { input: (p) => {}, timeoutMs: 45000 }).then((r) => result(r.code === 255 && r.ms < 40000, `${m[0] ?? 'plain'} silent server: code=${r.code} ms=${r.ms} err=${JSON.stringify(r.stderr)}`)));
}
runs.push(runCli(['--resume', `ws://127.0.0.1:${upgraded.address().port}/relay?host=h&port=22`], { input: (p) => {}, timeoutMs: 45000 }).then((r) => result(r.code === 255 && r.ms < 40000 && /: attach timed out\n$/.test(r.stderr), `--resume upgrade without session frame: code=${r.code} ms=${r.ms} err=${JSON.stringify(r.stderr)}`)));
runs.push(runCli([`ws://127.0.0.1:${upgraded.address().port}/relay?host=h&port=22`], { input: (p) => { setTimeout(() => p.stdin.end(), 1000); }, timeoutMs: 45000 }).then((r) => result(r.code !== null && r.ms < 40000, `plain upgrade then silence, stdin EOF: code=${r.code} ms=${r.ms} err=${JSON.stringify(r.stderr)}`)));
await Promise.all(runs);
silent.close(); upgraded.close();
