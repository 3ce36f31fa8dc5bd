import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { REPO_ROOT, startServiceProcess, type ServiceProcess } from './support/process.js';

/** The Dockerfile's HEALTHCHECK script (the argument after `node -e`), read so the two cannot drift. */
function healthcheckScript(): string {
  const text = readFileSync(`${REPO_ROOT}Dockerfile`, 'utf8');
  const m = /^HEALTHCHECK [^\n]*\\\n\s*CMD (\[.*\])$/m.exec(text);
  assert.ok(m, 'Dockerfile has an exec-form HEALTHCHECK');
  const cmd = JSON.parse(m[1]) as string[];
  assert.equal(cmd[1], '-e');
  return cmd[2]!;
}

/** Runs the health check as the container would: only the container's PORT and BIND_HOST in its environment. */
function check(env: Record<string, string>): number | null {
  return spawnSync(process.execPath, ['-e', healthcheckScript()], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 10_000 }).status;
}

async function hasIpv6Loopback(): Promise<boolean> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(0, '::1', () => s.close(() => resolve(true)));
  });
}

async function stop(svc: ServiceProcess): Promise<void> {
  svc.child.kill('SIGTERM');
  await svc.exited;
}

describe('the Dockerfile HEALTHCHECK', () => {
  it('reaches a service on a wildcard or loopback BIND_HOST, with the spaces around PORT the service accepts', async () => {
    const svc = await startServiceProcess({ SHUTDOWN_TIMEOUT_MS: '0' });
    try {
      assert.equal(check({ PORT: String(svc.port), BIND_HOST: '127.0.0.1' }), 0);
      assert.equal(check({ PORT: ` ${svc.port} `, BIND_HOST: '' }), 0);
      assert.equal(check({ PORT: String(svc.port) }), 0);
      assert.equal(check({ PORT: String(svc.port), BIND_HOST: '::' }), 0, 'a wildcard asks 127.0.0.1');
    } finally {
      await stop(svc);
    }
    assert.equal(check({ PORT: String(svc.port) }), 1, 'nothing listens there any more');
  });

  it('asks an IPv6 BIND_HOST at its own address', async (t) => {
    if (!(await hasIpv6Loopback())) return t.skip('no ::1 on this host');
    const svc = await startServiceProcess({ BIND_HOST: '::1', SHUTDOWN_TIMEOUT_MS: '0' });
    try {
      assert.equal(check({ PORT: String(svc.port), BIND_HOST: '::1' }), 0);
      assert.equal(check({ PORT: String(svc.port), BIND_HOST: '[::1]' }), 0);
    } finally {
      await stop(svc);
    }
  });
});
