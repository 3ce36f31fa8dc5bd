#!/usr/bin/env node
/**
 * `node bench/instructions.mjs [--competitors wsproxy,plain,pipe-only] [--warm N] [--count N] [--against DIR]`
 *
 * Instructions per connection setup, counted by valgrind's callgrind on each
 * competitor's main thread: a deterministic figure where timing on a shared
 * 2-core machine spreads ±10 % from one run to the next (docs/performance.md,
 * "Setup rate"). Each competitor runs under callgrind with instrumentation off
 * for `--warm` setups (the JIT settles), then on for `--count` setups, 20 in
 * flight, against a one-byte banner target on loopback; wsproxy gets a
 * distinct RS256 token per setup, as in the bench. Exploration only: needs
 * `valgrind` (Debian package), takes a minute or two per competitor, and
 * counts instructions, not the cache misses that make the same instructions
 * slower in one build than in another.
 */
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setup } from './client/scenarios.mjs';
import { startAuth } from './lib/auth.mjs';
import { firstJsonLine, freePort, freePortRange, stopChild, waitHttpOk } from './lib/proc.mjs';
import { dockerfileEnv, wsproxyEnv } from './proxies/registry.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opts } = parseArgs({
  options: {
    competitors: { type: 'string', default: 'wsproxy,plain,pipe-only' },
    warm: { type: 'string', default: '5000' },
    count: { type: 'string', default: '1000' },
    against: { type: 'string' },
  },
});
const warm = Number(opts.warm);
const count = Number(opts.count);
const INFLIGHT = 20;

try {
  execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
} catch {
  console.error('instructions: valgrind is not on PATH (apt-get install -y valgrind)');
  process.exit(2);
}

/** Where callgrind's cost of a function goes in the table; `entry` is callgrind_annotate's `file:function [object]`. */
function category(entry) {
  const fn = entry.slice(entry.indexOf(':') + 1);
  if (fn.endsWith('[???]')) return 'JIT code';
  if (/^(bn_|BN_|rsa|RSA|EVP_|evp_|ossl_|OSSL_|OPENSSL_|sha1_|sha256|SHA1|SHA256|CRYPTO_|ERR_|OBJ_|ASN1_|lh_|md_|int_ctx_new|EVP)/.test(fn)) return 'openssl';
  if (fn.startsWith('Builtins_')) return 'v8 builtins';
  if (fn.startsWith('v8::internal::compiler')) return 'v8 compiler';
  if (/^(void |int |bool |unsigned |v8::internal::[\w:<>, ]+ )?v8::|^cppgc::/.test(fn)) return 'v8 runtime';
  if (fn.startsWith('llhttp')) return 'llhttp';
  if (/^uv_|^uv__/.test(fn)) return 'libuv';
  if (/^(void |int |bool )?node::/.test(fn)) return 'node C++';
  if (fn.includes('libc.so')) return 'libc';
  return 'other';
}
const COLUMNS = ['total', 'openssl', 'v8 runtime', 'v8 builtins', 'JIT code', 'libc', 'node C++', 'llhttp', 'libuv', 'v8 compiler', 'other'];

function countsOf(file) {
  const out = execFileSync('callgrind_annotate', ['--inclusive=no', '--threshold=100', file], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const rows = { total: 0 };
  let inTable = false;
  for (const line of out.split('\n')) {
    if (line.includes('file:function')) {
      inTable = true;
      continue;
    }
    const m = inTable && /^\s*([\d,]+)\s+\([^)]*\)\s+(.*)$/.exec(line);
    if (!m) continue;
    const n = Number(m[1].replaceAll(',', ''));
    const c = category(m[2]);
    rows[c] = (rows[c] ?? 0) + n;
    rows.total += n;
  }
  return rows;
}

const banner = createServer((s) => {
  s.on('error', () => s.destroy());
  s.write('S');
  s.on('end', () => s.end());
  s.resume();
});
await new Promise((r) => banner.listen(0, '127.0.0.1', r));
const bannerPort = banner.address().port;
const auth = await startAuth();
let minted = 0;
const tmp = mkdtempSync(join(tmpdir(), 'wsproxy-instructions-'));

function underCallgrind(id, args, { env, cwd }) {
  const out = join(tmp, `${id}.out`);
  const child = spawn(
    'valgrind',
    ['--tool=callgrind', '--smc-check=all-non-file', '--instr-atstart=no', '--separate-threads=yes', `--callgrind-out-file=${out}`, 'node', ...args],
    { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stderr.resume();
  return { child, out };
}

async function startCompetitor(id) {
  if (id === 'wsproxy' || id === 'wsproxy-against') {
    if (id === 'wsproxy-against' && !opts.against) throw new Error('wsproxy-against needs --against DIR (a checkout with dist/ built)');
    const dir = id === 'wsproxy' ? root : resolve(opts.against);
    const port = await freePort();
    const tunnelMin = await freePortRange(8);
    const env = wsproxyEnv({ root, auth }, port, { TUNNEL_PORT_MIN: String(tunnelMin), TUNNEL_PORT_MAX: String(tunnelMin + 7), HANDSHAKE_TIMEOUT_MS: '60000' });
    const run = underCallgrind(id, [join(dir, 'dist/main.js')], { env, cwd: dir });
    await waitHttpOk(port, '/health/ready', 180_000, run.child);
    return { ...run, endpoint: { kind: 'ws', url: `ws://127.0.0.1:${port}/relay?host=127.0.0.1&port={port}&token={token}` }, tokens: true };
  }
  const script = { plain: 'bench/proxies/plain-relay.mjs', 'pipe-only': 'bench/proxies/pipe-relay.mjs' }[id];
  if (!script) throw new Error(`unknown competitor ${id} (wsproxy, wsproxy-against, plain, pipe-only)`);
  const run = underCallgrind(id, [join(root, script)], { env: { ...process.env, ...dockerfileEnv(root), PORT: '0' }, cwd: root });
  const { port } = await firstJsonLine(run.child, 180_000, id);
  return { ...run, endpoint: { kind: 'ws', url: `ws://127.0.0.1:${port}/relay?host=127.0.0.1&port={port}` }, tokens: false };
}

/** `n` setups through `c`, as the bench's setup figure makes them (`setup` of the load generator); none may fail. */
async function setups(c, n) {
  const tokens = [];
  if (c.tokens) for (let i = 0; i < n; i++) tokens.push(await auth.mint('bench-user', `i${++minted}`));
  const done = await setup({ endpoint: c.endpoint, ports: [bannerPort], count: n, inflight: INFLIGHT, tokens: c.tokens ? tokens : undefined });
  if (done.failures > 0) throw new Error(`${done.failures} of ${n} setups failed: ${JSON.stringify(done.errors)}`);
}

const results = {};
try {
  for (const id of opts.competitors.split(',')) {
    const c = await startCompetitor(id);
    try {
      await setups(c, warm);
      execFileSync('callgrind_control', ['--instr=on', String(c.child.pid)], { stdio: 'ignore' });
      await setups(c, count);
      execFileSync('callgrind_control', ['--dump', String(c.child.pid)], { stdio: 'ignore' });
    } finally {
      await stopChild(c.child, 10_000);
    }
    // The dump of thread 1, the main thread: `<out>.1-01` (callgrind numbers dumps and threads).
    const main = readdirSync(tmp).find((f) => f.startsWith(`${id}.out.`) && f.endsWith('-01'));
    if (!main) throw new Error(`${id}: no dump of the main thread in ${tmp}`);
    const rows = countsOf(join(tmp, main));
    results[id] = Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, Math.round(v / count / 1000)]));
    console.error(`${id}: ${results[id].total}K instructions per setup on the main thread`);
  }
} finally {
  banner.close();
  await auth.close();
  rmSync(tmp, { recursive: true, force: true });
}

console.log(`thousands of instructions per setup, main thread (${count} setups after ${warm} of warm-up, ${INFLIGHT} in flight)`);
console.log(['competitor'.padEnd(16), ...COLUMNS.map((c) => c.padStart(12))].join(''));
for (const [id, r] of Object.entries(results)) console.log([id.padEnd(16), ...COLUMNS.map((c) => String(r[c] ?? 0).padStart(12))].join(''));
