// Shared helpers for repro scripts: a JWKS server + tokens, the real service as a child process, loopback targets.
import { createServer } from 'node:http';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const jose = await import(require.resolve('jose', { paths: [ROOT] }));
const wsmod = await import(require.resolve('ws', { paths: [ROOT] }));
export const WebSocket = wsmod.WebSocket ?? wsmod.default;
export const GUARD = '--require /tmp/loopback-guard.cjs';

export async function jwks() {
  const kid = randomUUID();
  const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const server = createServer((req, res) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ keys: [jwk] })); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}/.well-known/jwks.json`;
  const mint = (sub = 'user_1', expiresIn = 60, claims = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return new jose.SignJWT({ sub, iat: now, exp: now + expiresIn, ...claims }).setProtectedHeader({ alg: 'RS256', kid }).sign(privateKey);
  };
  return { url, mint, close: () => server.close() };
}

export function freePort() {
  return new Promise((resolve) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); }); });
}

/** Starts dist/main.js; resolves with {port, logs, proc, stop}. */
export async function startService(env = {}) {
  const port = await freePort();
  const proc = spawn(process.execPath, [path.join(ROOT, 'dist/main.js')], {
    env: { PATH: process.env.PATH, NODE_OPTIONS: GUARD, PORT: String(port), BIND_HOST: '127.0.0.1', LOG_LEVEL: 'info', BLOCKED_TARGETS: '10.0.0.0/8', TUNNEL_TCP_ENABLED: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs = [];
  let buf = '';
  proc.stdout.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\n')) >= 0) { const line = buf.slice(0, i); buf = buf.slice(i + 1); try { logs.push(JSON.parse(line)); } catch { logs.push({ raw: line }); } } });
  let stderr = ''; proc.stderr.on('data', (d) => (stderr += d));
  const deadline = Date.now() + 15000;
  while (!logs.some((l) => l.event === 'listening')) {
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error('service did not start: ' + stderr + JSON.stringify(logs));
    await sleep(50);
  }
  return { port, logs, proc, stderr: () => stderr, base: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}`,
    stop: () => new Promise((r) => { if (proc.exitCode !== null) return r(); proc.once('exit', r); proc.kill('SIGKILL'); }) };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const sha = (b) => createHash('sha256').update(b).digest('hex');

/** A TCP target: echo, or a sink that records, or custom handler. */
export async function target(handler) {
  const conns = [];
  const server = net.createServer((s) => { conns.push(s); handler(s); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { port: server.address().port, conns, close: () => { for (const c of conns) c.destroy(); server.close(); } };
}

export function result(ok, msg) { console.log(`${ok ? 'PASS' : 'FAIL'}: ${msg}`); }

export function runCli(args, { env = {}, input, timeoutMs = 20000, shell } = {}) {
  return new Promise((resolve) => {
    const p = shell
      ? spawn('bash', ['-c', shell], { env: { PATH: process.env.PATH, NODE_OPTIONS: GUARD, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
      : spawn(process.execPath, [path.join(ROOT, 'dist/cli/connect.js'), ...args], { env: { PATH: process.env.PATH, NODE_OPTIONS: GUARD, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out = []; let err = '';
    p.stdout.on('data', (d) => out.push(d)); p.stderr.on('data', (d) => (err += d));
    p.stdin.on('error', () => {});
    const t = setTimeout(() => { p.kill('SIGKILL'); }, timeoutMs);
    const started = Date.now();
    p.on('exit', (code, signal) => { clearTimeout(t); resolve({ code, signal, stdout: Buffer.concat(out), stderr: err, ms: Date.now() - started, timedOut: Date.now() - started >= timeoutMs }); });
    if (input !== undefined) { if (typeof input === 'function') input(p); else p.stdin.end(input); }
    resolve.proc = p;
  });
}
