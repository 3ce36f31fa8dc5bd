// Shared helpers for the repro scripts: boot dist/main.js on a free loopback port.
import { spawn } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const p = s.address().port;
  await new Promise((r) => s.close(r));
  return p;
}

export async function boot(env = {}) {
  const port = await freePort();
  const child = spawn(process.execPath, [join(root, 'dist/main.js')], {
    env: { ...process.env, PORT: String(port), BIND_HOST: '127.0.0.1', LOG_LEVEL: 'info', BLOCKED_TARGETS: '10.0.0.0/8', TUNNEL_TCP_ENABLED: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (out += c));
  const deadline = Date.now() + 15000;
  for (;;) {
    if (child.exitCode !== null) return { port, child, exited: true, output: () => out };
    try {
      const res = await fetch(`http://127.0.0.1:${port}/health`);
      if (res.ok) break;
    } catch {}
    if (Date.now() > deadline) throw new Error('boot timeout\n' + out);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, child, exited: false, output: () => out, kill: () => child.kill('SIGKILL') };
}

/** A masked client WebSocket frame. */
export function frame(opcode, payload) {
  const mask = Buffer.from([1, 2, 3, 4]);
  const len = payload.length;
  let head;
  if (len < 126) head = Buffer.from([0x80 | opcode, 0x80 | len]);
  else { head = Buffer.alloc(4); head[0] = 0x80 | opcode; head[1] = 0x80 | 126; head.writeUInt16BE(len, 2); }
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([head, mask, body]);
}
export { connect };
