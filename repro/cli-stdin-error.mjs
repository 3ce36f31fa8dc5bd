// stdin fails with a read error (ECONNRESET on a socket stdin). Plain mode: "reading stdin failed", exit 255.
// --resume: the same message, and the exit status?
import { startService, target, result, sleep, ROOT, GUARD } from './lib.mjs';
import net from 'node:net';
import { spawn } from 'node:child_process';
import path from 'node:path';
const svc = await startService({});
const echo = await target((s) => { s.on('error', () => {}); s.pipe(s); });
for (const m of [[], ['--resume']]) {
  let peer;
  const srv = net.createServer((s) => (peer = s));
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const sock = net.connect(srv.address().port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  await sleep(50);
  const child = spawn(process.execPath, [path.join(ROOT, 'dist/cli/connect.js'), ...m, `${svc.ws}/relay?host=127.0.0.1&port=${echo.port}`], { env: { PATH: process.env.PATH, NODE_OPTIONS: GUARD }, stdio: [sock, 'pipe', 'pipe'] });
  let err = ''; child.stderr.on('data', (d) => (err += d));
  sock.destroy();
  await sleep(1000);
  peer.write('abc');
  await sleep(300);
  peer.resetAndDestroy();
  const code = await new Promise((r) => { child.on('exit', r); setTimeout(() => { child.kill('SIGKILL'); r('timeout'); }, 10000); });
  result(code === 255 && /reading stdin failed/.test(err), `${m[0] ?? 'plain'}: stdin ECONNRESET -> exit ${code} stderr=${JSON.stringify(err)}`);
  srv.close();
}
echo.close(); await svc.stop();
