/**
 * OpenSSH through `wsproxy-connect --resume`: the SSH session survives a
 * dropped WebSocket. A loopback middlebox between wsproxy-connect and the
 * service is cut (its sockets destroyed) in the middle of an interactive
 * session and of an scp; the session and the file come through intact.
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
import { ResumeService } from '../../src/resume/resume.service.js';
import { startApp, type TestApp } from '../support/app.js';
import { startMiddlebox, type Middlebox } from '../support/middlebox.js';
import { shellQuote, sshClientOptions, startSshd, type TestSshd } from '../support/sshd.js';
import { waitFor } from '../support/wait.js';
import { CONNECT_JS } from '../support/process.js';

const MiB = 1024 * 1024;

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

interface Proc {
  readonly stdin: NodeJS.WritableStream;
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<number | null>;
  kill(): void;
}

function run(cmd: string, args: string[], timeoutMs = 120_000): Proc {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  child.stdin.on('error', () => undefined);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exited = new Promise<number | null>((r) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      r(code);
    }),
  );
  return { stdin: child.stdin, stdout: () => stdout, stderr: () => stderr, exited, kill: () => child.kill('SIGKILL') };
}

describe('OpenSSH through wsproxy-connect --resume, across dropped connections', () => {
  let sshd: TestSshd;
  let app: TestApp;
  let box: Middlebox;
  let proxyCommand: string;

  const context = (p: Proc): string => `stdout: ${p.stdout()}\nstderr: ${p.stderr()}\nsshd log:\n${sshd.logs()}`;

  before(async () => {
    if (!existsSync(CONNECT_JS)) throw new Error(`${CONNECT_JS} is missing: run \`npm run build\` first (npm run test:system does)`);
    sshd = await startSshd();
    app = await startApp({ ALLOWED_TARGETS: `127.0.0.1/32:${sshd.port}`, SHUTDOWN_TIMEOUT_MS: '0' });
    box = await startMiddlebox(app.port);
    proxyCommand = `${shellQuote(process.execPath)} ${shellQuote(CONNECT_JS)} --resume "ws://127.0.0.1:${box.port}/relay?host=%h&port=%p"`;
  });

  after(async () => {
    await box?.close();
    await app?.close();
    await sshd?.stop();
  });

  const sessionsEnded = (): Promise<void> => waitFor(() => app.app.get(ResumeService).liveSessions().length === 0, 30_000, 'the resumable sessions to end');

  it('keeps an interactive session: a command before the cut, one after', async () => {
    const ssh = run('ssh', [...sshClientOptions(sshd, proxyCommand), '-p', String(sshd.port), `${sshd.user}@127.0.0.1`, 'sh']);
    try {
      ssh.stdin.write('echo before-the-cut; id -un\n');
      await waitFor(() => ssh.stdout().includes(`before-the-cut\n${sshd.user}\n`), 30_000, `the first command's output\n${context(ssh)}`);
      assert.equal(box.cut(), 1, 'one connection was cut');
      ssh.stdin.write('echo after-the-cut\n');
      await waitFor(() => ssh.stdout().includes('after-the-cut\n'), 30_000, `the second command's output\n${context(ssh)}`);
      ssh.stdin.write('exit 0\n');
      assert.equal(await ssh.exited, 0, context(ssh));
      assert.equal(ssh.stdout(), `before-the-cut\n${sshd.user}\nafter-the-cut\n`, context(ssh));
      assert.match(ssh.stderr(), /wsproxy-connect: reattached/, context(ssh));
      await sessionsEnded();
    } finally {
      ssh.kill();
    }
  });

  it('copies 4 MiB with scp up and down, each across a cut, sha256 intact', async () => {
    const payload = randomBytes(4 * MiB);
    const local = join(sshd.workDir, 'resume-payload.bin');
    const remote = join(sshd.dataDir, 'resume-uploaded.bin');
    const back = join(sshd.workDir, 'resume-downloaded.bin');
    await writeFile(local, payload);
    const scp = (from: string, to: string): Proc => run('scp', [...sshClientOptions(sshd, proxyCommand), '-P', String(sshd.port), '-q', from, to]);

    // Up: cut once 2 MiB more went client → service.
    let base = box.bytesUp;
    const up = scp(local, `${sshd.user}@127.0.0.1:${remote}`);
    await waitFor(() => box.bytesUp - base >= 2 * MiB, 30_000, `the upload to be halfway\n${context(up)}`);
    assert.equal(box.cut(), 1);
    assert.equal(await up.exited, 0, context(up));
    assert.match(up.stderr(), /reattached/, context(up));
    assert.equal(sha256(await readFile(remote)), sha256(payload), 'uploaded file differs');
    await sessionsEnded();

    // Down: cut once 2 MiB more went service → client.
    base = box.bytesDown;
    const down = scp(`${sshd.user}@127.0.0.1:${remote}`, back);
    await waitFor(() => box.bytesDown - base >= 2 * MiB, 30_000, `the download to be halfway\n${context(down)}`);
    assert.equal(box.cut(), 1);
    assert.equal(await down.exited, 0, context(down));
    assert.match(down.stderr(), /reattached/, context(down));
    assert.equal(sha256(await readFile(back)), sha256(payload), 'downloaded file differs');
    await sessionsEnded();
  });
});
