/**
 * The container's build and runtime stages, reproduced without a container
 * engine. Build: `npm run build` in a directory holding only what
 * .dockerignore lets into the build context (dev dependencies linked in).
 * Runtime: production dependencies only, installed into an empty directory
 * with the Dockerfile's own `npm ci` command, plus dist/, started with plain
 * `node`; then /health, /metrics and a relay. A runtime import of a dev
 * dependency, or a build that needs a file outside the context, fails here as
 * it would in the image. Needs the npm registry (or a warm npm cache).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, readdirSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { echoTarget, randomPayload, type TestTarget } from './support/targets.js';
import { closed, openWs, receiveBytes } from './support/ws-client.js';

const ROOT = process.cwd();
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** The deps stage's install command, read from the Dockerfile so the two cannot drift. */
function dockerfileInstallArgs(): string[] {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const m = /^RUN (npm ci --omit=dev[^&\n]*)/m.exec(text);
  assert.ok(m, 'Dockerfile installs production dependencies with npm ci --omit=dev');
  return m[1].trim().split(/\s+/).slice(1);
}

/** The build context: .dockerignore's `!` entries, minus its exclusion patterns (spec files). */
function copyBuildContext(to: string): void {
  const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  assert.equal(lines[0], '*', '.dockerignore is an allowlist');
  const excluded = lines.filter((l) => !l.startsWith('!') && l !== '*');
  assert.deepEqual(excluded, ['src/**/*.spec.ts'], 'update this reproduction with .dockerignore');
  for (const entry of lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''))) {
    cpSync(join(ROOT, entry), join(to, entry), { recursive: true, filter: (src) => !src.endsWith('.spec.ts') });
  }
}

function run(cmd: string, args: string[], cwd: string): void {
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    timeout: 600_000,
    env: { ...cleanEnv(), npm_config_update_notifier: 'false' },
  });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
}

/** The child must not inherit the test runner's environment (NODE_TEST_CONTEXT, NODE_OPTIONS, …). */
function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ['PATH', 'HOME', 'TMPDIR', 'npm_config_cache', 'npm_config_registry', 'HTTPS_PROXY', 'HTTP_PROXY', 'NO_PROXY']) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  return env;
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = statSync(p, { throwIfNoEntry: false });
    if (!s) continue;
    total += s.isDirectory() ? dirBytes(p) : s.size;
  }
  return total;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('runtime stage: production dependencies + dist, started with plain node', { timeout: 900_000 }, () => {
  let tmp: string;
  let dir: string;
  let child: ChildProcess | null = null;
  let port: number;
  let stdout = '';
  let stderr = '';
  let target: TestTarget;

  before(async () => {
    // Outside the repository, so no parent node_modules can satisfy a missing import.
    tmp = mkdtempSync(join(tmpdir(), 'wsproxy-image-'));
    const build = join(tmp, 'build');
    dir = join(tmp, 'runtime');
    mkdirSync(build);
    mkdirSync(dir);
    // Build stage: the build context + the repository's dev dependencies.
    copyBuildContext(build);
    symlinkSync(join(ROOT, 'node_modules'), join(build, 'node_modules'), 'dir');
    run(NPM, ['run', 'build'], build);
    // Runtime stage.
    cpSync(join(build, 'dist'), join(dir, 'dist'), { recursive: true });
    copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
    copyFileSync(join(ROOT, 'package-lock.json'), join(dir, 'package-lock.json'));
    run(NPM, dockerfileInstallArgs(), dir);
    // The image has no lockfile at run time; neither does this directory.
    rmSync(join(dir, 'package-lock.json'));
    target = await echoTarget();
  });

  after(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await target?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('no development dependency is installed; bufferutil loads its native binding', (t) => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    for (const name of Object.keys(pkg.devDependencies)) {
      assert.ok(!existsSync(join(dir, 'node_modules', name)), `${name} (dev) must not be installed`);
    }
    const probe = spawnSync(
      process.execPath,
      [
        '-e',
        // node-gyp-build(dir) loads the prebuilt binding or throws; bufferutil itself would fall back to JS silently.
        "const { createRequire } = require('node:module'); const { dirname } = require('node:path');" +
          "const pkg = require.resolve('bufferutil/package.json');" +
          "createRequire(pkg)('node-gyp-build')(dirname(pkg)); console.log('native');",
      ],
      { cwd: dir, encoding: 'utf8', env: cleanEnv() },
    );
    assert.equal(probe.stdout.trim(), 'native', `bufferutil native binding: ${probe.stderr}`);
    const mb = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;
    t.diagnostic(`production node_modules ${mb(dirBytes(join(dir, 'node_modules')))}, dist ${mb(dirBytes(join(dir, 'dist')))}`);
  });

  test('starts, answers /health, /metrics and relays bytes; SIGTERM exits 0', async () => {
    port = await freePort();
    child = spawn(process.execPath, ['dist/main.js'], {
      cwd: dir,
      env: {
        ...cleanEnv(),
        NODE_ENV: 'production',
        PORT: String(port),
        BIND_HOST: '127.0.0.1',
        BLOCKED_TARGETS: '10.0.0.0/8',
        TUNNEL_TCP_ENABLED: 'false',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const proc = child;
    proc.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    proc.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));

    // Ready when the structured "listening" event appears.
    const deadline = Date.now() + 30_000;
    while (!/"event":"listening"/.test(stdout)) {
      if (proc.exitCode !== null) assert.fail(`exited ${proc.exitCode}:\n${stdout}\n${stderr}`);
      if (Date.now() > deadline) assert.fail(`not listening after 30 s:\n${stdout}\n${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }

    const base = `http://127.0.0.1:${port}`;
    for (const path of ['/health', '/health/ready', '/metrics']) {
      const res = await fetch(base + path);
      assert.equal(res.status, 200, path);
      const body = await res.text();
      if (path === '/metrics') assert.match(body, /^wsproxy_relays_active 0$/m);
    }

    const ws = await openWs(`ws://127.0.0.1:${port}/relay?host=127.0.0.1&port=${target.port}`);
    const payload = randomPayload(256 * 1024);
    const echoed = receiveBytes(ws, payload.length);
    ws.send(payload);
    assert.ok((await echoed).equals(payload), 'relayed bytes come back unchanged');
    const wsClosed = closed(ws);
    ws.close(1000);
    await wsClosed;

    proc.kill('SIGTERM');
    assert.equal(await exited, 0, `exit code after SIGTERM:\n${stderr}`);
    assert.doesNotMatch(stderr, /ERR_MODULE_NOT_FOUND|Cannot find (module|package)/);
  });
});
