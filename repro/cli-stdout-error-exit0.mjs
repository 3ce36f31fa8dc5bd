// wsproxy-connect with stdout on /dev/full (ENOSPC: a full disk): every byte is lost, so the documented
// answer is exit 255 and "writing stdout failed". Before the fix it exits 0, silently (its promise never
// settles; the process ends only because the event loop empties). Also checks EPIPE (| head -c 10) stays 0
// and is reached through process.exit, not an emptied loop.
import { startService, target, runCli, result } from './lib.mjs';
const svc = await startService({});
const sender = await target((s) => { s.on('error', () => {}); s.end(Buffer.alloc(4 * 1024 * 1024, 7)); });
const C = `node ${process.cwd()}/../dist/cli/connect.js`;
const rel = `'${svc.ws}/relay?host=127.0.0.1&port=${sender.port}'`;
let ok = true;
for (const m of ['', '--resume']) {
  let r = await runCli([], { shell: `${C} ${m} ${rel} >/dev/full </dev/null; echo rc=$? >&2`, input: '', timeoutMs: 15000 });
  const good = /rc=255/.test(r.stderr) && /writing stdout failed: .*ENOSPC/.test(r.stderr);
  ok &&= good;
  result(good, `${m || 'plain'} stdout=/dev/full: stderr=${JSON.stringify(r.stderr.replace(/.*cargo.*\n/, ''))}`);
  r = await runCli([], { shell: `${C} ${m} ${rel} </dev/null | head -c 10 >/dev/null; echo rc=\${PIPESTATUS[0]} >&2`, input: '', timeoutMs: 15000 });
  result(/rc=0/.test(r.stderr), `${m || 'plain'} | head -c 10 (EPIPE): stderr=${JSON.stringify(r.stderr.replace(/.*cargo.*\n/, ''))}`);
}
sender.close(); await svc.stop();
