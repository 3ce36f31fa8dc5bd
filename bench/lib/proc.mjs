/**
 * Child processes of the bench: each service and load generator runs in its
 * own process (so none shares another's CPU accounting), started through a
 * shell that raises the open-file limit first, and measured through /proc.
 */
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { request } from 'node:http';

/** Open-file limit the bench asks for; capped by the hard limit when it may not be raised. */
export const WANT_NOFILE = 65536;

const RAISE = `ulimit -n ${WANT_NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"`;

/** The open-file limit a child started by `spawnRaised` gets on this machine. */
export function effectiveNofile() {
  const out = execFileSync('bash', ['-c', RAISE.replace('exec "$@"', 'ulimit -n')], { encoding: 'utf8' }).trim();
  return out === 'unlimited' ? Infinity : Number(out);
}

/**
 * Spawns `cmd args` with the raised open-file limit. `exec` keeps the pid, so
 * the returned child's pid is the program's own (RSS and CPU read from /proc
 * are the program's). `ipc: true` adds a Node IPC channel.
 */
export function spawnRaised(cmd, args, { env = process.env, ipc = false, stdout = 'pipe', stderr = 'pipe', cwd } = {}) {
  const stdio = ['ignore', stdout, stderr];
  if (ipc) stdio.push('ipc');
  return spawn('bash', ['-c', RAISE, 'bash', cmd, ...args], { env, stdio, cwd });
}

/** Resident set size of `pid` in bytes (Linux /proc; `ps` elsewhere). */
export function rssOf(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux, or gone
  }
  try {
    return Number(execFileSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' }).trim()) * 1024;
  } catch {
    return NaN;
  }
}

const TICK_MS = (() => {
  try {
    return 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  } catch {
    return 10;
  }
})();

/** Minor page faults of `pid` so far; NaN when unknown. */
export function minorFaultsOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]);
  } catch {
    return NaN;
  }
}

/** System (kernel) CPU time of `pid`, ms; NaN when unknown. */
export function sysMsOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[12]) + Number(f[14])) * TICK_MS;
  } catch {
    return NaN;
  }
}

/** CPU time of `pid` (user + system, own and reaped children), ms; NaN when unknown. */
export function cpuMsOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields 14..17 of stat(5) are utime, stime, cutime, cstime; f[0] is field 3.
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * TICK_MS;
  } catch {
    return NaN;
  }
}

/** A free TCP port on 127.0.0.1 (released again; good enough for a bench). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves once GET http://127.0.0.1:port/path answers 200; rejects after `timeoutMs` or when `child` exits. */
export async function waitHttpOk(port, path, timeoutMs, child) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`exited with code ${child.exitCode} before it was ready`);
    const status = await new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 1000 }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', () => resolve(0));
      req.on('timeout', () => req.destroy());
      req.end();
    });
    if (status === 200) return;
    await sleep(100);
  }
  throw new Error(`not ready on port ${port} after ${timeoutMs} ms`);
}

/** Resolves once a TCP connect to 127.0.0.1:port succeeds. */
export async function waitTcp(port, timeoutMs, child) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`exited with code ${child.exitCode} before it was ready`);
    const ok = await new Promise((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`port ${port} not accepting after ${timeoutMs} ms`);
}

/** Resolves with the first stdout line of `child` that parses as JSON. */
export function firstJsonLine(child, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => fail(new Error(`${what}: no ready line after ${timeoutMs} ms`)), timeoutMs);
    const onData = (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const v = JSON.parse(line);
          done();
          resolve(v);
          return;
        } catch {
          // not the ready line
        }
      }
    };
    const onExit = (code) => fail(new Error(`${what} exited (${code}) before it was ready`));
    const done = () => {
      clearTimeout(timer);
      child.stdout.off('data', onData);
      child.off('exit', onExit);
    };
    const fail = (err) => {
      done();
      reject(err);
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', onData);
    child.once('exit', onExit);
  });
}

/** Keeps the last `max` characters of a stream, for error messages. */
export function tail(stream, max = 4000) {
  const t = { text: '' };
  if (!stream) return t;
  stream.setEncoding('utf8');
  stream.on('data', (d) => {
    t.text = (t.text + d).slice(-max);
  });
  return t;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the child has exited. */
export function stopChild(child, graceMs = 3000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Request/response over a child's IPC channel: `call(job)` sends `{ id, job }`
 * and resolves with the child's `{ id, result }` (rejects on `{ id, error }`).
 */
export function ipcClient(child, what) {
  let next = 1;
  const pending = new Map();
  child.on('message', (m) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.error) p.reject(new Error(`${what}: ${m.error}`));
    else p.resolve(m.result);
  });
  child.once('exit', (code, signal) => {
    for (const p of pending.values()) p.reject(new Error(`${what} exited (${code ?? signal})`));
    pending.clear();
  });
  return {
    call(job, timeoutMs = 300_000) {
      const id = next++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${what}: ${job.type} timed out after ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, {
          resolve: (v) => (clearTimeout(timer), resolve(v)),
          reject: (e) => (clearTimeout(timer), reject(e)),
        });
        child.send({ id, job });
      });
    },
  };
}

/** Serves IPC jobs in a child: `handlers[job.type](job)` → result. */
export function serveIpc(handlers) {
  process.on('message', async ({ id, job }) => {
    try {
      const h = handlers[job.type];
      if (!h) throw new Error(`unknown job ${job.type}`);
      process.send({ id, result: await h(job) });
    } catch (err) {
      process.send({ id, error: err instanceof Error ? err.message : String(err) });
    }
  });
  process.on('disconnect', () => process.exit(0));
}

/** `count` consecutive ports free on 127.0.0.1 right now (for the tunnel raw-port pool). */
export async function freePortRange(count) {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20000 + Math.floor(Math.random() * (12000 - count));
    let ok = true;
    for (let p = base; p < base + count && ok; p++) ok = await portIsFree(p);
    if (ok) return base;
  }
  throw new Error('no free port range found');
}

function portIsFree(port) {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
}
