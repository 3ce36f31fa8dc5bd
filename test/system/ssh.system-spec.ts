/**
 * OpenSSH through the relay: a real `ssh` and `scp` using `wsproxy-connect` as
 * ProxyCommand, against Debian's sshd on loopback, through the real app.
 * Needs the build output (dist/cli/connect.js) and OpenSSH; fails, never
 * skips, when either is missing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LimitsService } from '../../src/limits/limits.service.js';
import { startApp, type TestApp } from '../support/app.js';
import { shellQuote, sshClientOptions, startSshd, type TestSshd } from '../support/sshd.js';
import { waitFor } from '../support/wait.js';
import { CONNECT_JS } from '../support/process.js';

interface Outcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program to completion (stdin closed), failing after `timeoutMs`. */
function exec(cmd: string, args: string[], timeoutMs = 120_000): Promise<Outcome> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} timed out after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('OpenSSH through wsproxy-connect and the relay', () => {
  let sshd: TestSshd;
  let app: TestApp;
  let proxyCommand: string;

  /** Everything useful when a step fails. */
  const context = (o: Outcome): string => `exit ${o.code}\nstdout: ${o.stdout}\nstderr: ${o.stderr}\nsshd log:\n${sshd.logs()}`;

  before(async () => {
    if (!existsSync(CONNECT_JS)) throw new Error(`${CONNECT_JS} is missing: run \`npm run build\` first (npm run test:system does)`);
    sshd = await startSshd();
    // An SSH-only relay: the sshd's port on loopback and nothing else.
    app = await startApp({ ALLOWED_TARGETS: `127.0.0.1/32:${sshd.port}` });
    // The recipe from the README, with this node and this checkout's build.
    proxyCommand = `${shellQuote(process.execPath)} ${shellQuote(CONNECT_JS)} "ws://127.0.0.1:${app.port}/relay?host=%h&port=%p"`;
  });

  after(async () => {
    await app?.close();
    await sshd?.stop();
  });

  const ssh = (command: string): Promise<Outcome> =>
    exec('ssh', [...sshClientOptions(sshd, proxyCommand), '-p', String(sshd.port), `${sshd.user}@127.0.0.1`, command]);
  const scp = (from: string, to: string): Promise<Outcome> =>
    exec('scp', [...sshClientOptions(sshd, proxyCommand), '-P', String(sshd.port), '-q', from, to]);
  const relaySlots = async (): Promise<number> =>
    Object.values((await app.app.get(LimitsService).snapshot()).perIp).reduce((a, b) => a + b, 0);

  it('runs a remote command', async () => {
    const o = await ssh('echo hello-through-relay; id -un');
    assert.equal(o.code, 0, context(o));
    assert.equal(o.stdout, `hello-through-relay\n${sshd.user}\n`, context(o));
    await waitFor(async () => (await relaySlots()) === 0, 5000, 'the relay slot to be released after ssh exits', 20);
  });

  it('copies a 16 MiB file up and back down with scp, sha256 intact', async () => {
    const payload = randomBytes(16 * 1024 * 1024);
    const local = join(sshd.workDir, 'payload.bin');
    const remote = join(sshd.dataDir, 'uploaded.bin');
    const back = join(sshd.workDir, 'downloaded.bin');
    await writeFile(local, payload);

    const up = await scp(local, `${sshd.user}@127.0.0.1:${remote}`);
    assert.equal(up.code, 0, context(up));
    assert.equal(sha256(await readFile(remote)), sha256(payload), 'uploaded file differs');

    const down = await scp(`${sshd.user}@127.0.0.1:${remote}`, back);
    assert.equal(down.code, 0, context(down));
    assert.equal(sha256(await readFile(back)), sha256(payload), 'downloaded file differs');
    await waitFor(async () => (await relaySlots()) === 0, 5000, 'the relay slots to be released after scp exits', 20);
  });

  it('fails like ssh does (exit 255) with the relay refusal on stderr, when the target is not allowed', async () => {
    const o = await exec('ssh', [...sshClientOptions(sshd, proxyCommand), '-p', '2222', `${sshd.user}@127.0.0.1`, 'true']);
    assert.equal(o.code, 255, context(o));
    assert.match(o.stderr, /wsproxy-connect: relay refused the connection: HTTP 403/, context(o));
  });
});
