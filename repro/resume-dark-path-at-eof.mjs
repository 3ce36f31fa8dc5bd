// README: with --resume a connection that hears nothing for 30 s is dropped and reattached. The path goes
// silent (no RST, no FIN) mid-transfer; the CLI must notice, reattach, and deliver every byte.
import { startService, target, runCli, sha, result, sleep } from './lib.mjs';
import { middlebox } from './middlebox.mjs';
import { randomBytes } from 'node:crypto';
const svc = await startService({ RESUME_WINDOW_S: '120' });
const mb = await middlebox(svc.port);
const echo = await target((s) => { s.on('error', () => {}); s.pipe(s); });
const data = randomBytes(2 * 1024 * 1024);
let t0;
const r = await runCli(['--resume', `ws://127.0.0.1:${mb.port}/relay?host=127.0.0.1&port=${echo.port}`], {
  input: (p) => { (async () => { p.stdin.write(data.subarray(0, 1024 * 1024)); await sleep(1000); mb.blackhole(); t0 = Date.now(); p.stdin.write(data.subarray(1024 * 1024)); await sleep(2000); p.stdin.end(); })(); }, timeoutMs: 90000 });
result(r.code === 0 && sha(r.stdout) === sha(data) && /reattached/.test(r.stderr), `blackholed path: code=${r.code} out=${r.stdout.length} recovered after ${Date.now() - t0} ms err=${JSON.stringify(r.stderr)}`);
mb.close(); echo.close(); await svc.stop();
