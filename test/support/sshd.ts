/**
 * A throwaway OpenSSH server for system tests: Debian's sshd on a free
 * loopback port, a temporary host key, one temporary authorized key, public
 * key login only, no root login, no PAM. When the tests run as root, logins go
 * to a dedicated unprivileged account (`wsproxytest`, created if missing).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { waitForOutput } from './process.js';

export const SSHD = '/usr/sbin/sshd';
/** The account logins go to when the tests run as root. */
export const TEST_USER = 'wsproxytest';

/** Client programs the tests run. */
const CLIENT_TOOLS = ['ssh', 'scp', 'ssh-keygen'];

/** Fails with one clear line when sshd or the OpenSSH client tools are missing (CI installs them). */
export function requireOpenSsh(): void {
  const missing: string[] = [];
  if (!existsSync(SSHD)) missing.push(`${SSHD} (Debian package openssh-server)`);
  for (const tool of CLIENT_TOOLS) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) missing.push(`${tool} (Debian package openssh-client)`);
  }
  if (missing.length) {
    throw new Error(`OpenSSH is required for this system test and is missing: ${missing.join(', ')}. .ci/run installs it: apt-get install -y openssh-server openssh-client`);
  }
}

/** A running sshd and what a client needs to log in. */
export interface TestSshd {
  readonly port: number;
  /** The login name. */
  readonly user: string;
  /** Private key file accepted for `user`. */
  readonly identityFile: string;
  /** A directory `user` can write to (for uploads), readable by the test. */
  readonly dataDir: string;
  /** A directory for the test's own files (keys, downloads). */
  readonly workDir: string;
  /** sshd's log so far (stderr with -e). */
  logs(): string;
  stop(): Promise<void>;
}

/** Returns a port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr || r.error?.message}`);
  return r.stdout;
}

interface LoginAccount {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

/** The account to log in as: ourselves, or the unprivileged test account when we are root. */
function loginAccount(): LoginAccount {
  if (process.getuid?.() !== 0) {
    const me = userInfo();
    return { name: me.username, uid: me.uid, gid: me.gid, home: me.homedir };
  }
  if (spawnSync('id', ['-u', TEST_USER]).status !== 0) run('useradd', ['--create-home', '--shell', '/bin/sh', TEST_USER]);
  // useradd leaves the password field "!" (locked); without PAM, sshd refuses
  // locked accounts even for key logins. "*" = no password, not locked.
  const shadow = run('getent', ['shadow', TEST_USER]).split(':');
  if (shadow[1]?.startsWith('!')) run('usermod', ['--password', '*', TEST_USER]);
  const [name, , uid, gid, , home] = run('getent', ['passwd', TEST_USER]).trim().split(':');
  if (!existsSync(home)) throw new Error(`home directory ${home} of ${TEST_USER} is missing`);
  return { name, uid: Number(uid), gid: Number(gid), home };
}

/** Starts sshd on 127.0.0.1 with fresh keys; `stop()` kills it and removes every file it made. */
export async function startSshd(): Promise<TestSshd> {
  requireOpenSsh();
  const account = loginAccount();
  const asRoot = process.getuid?.() === 0;

  const workDir = await mkdtemp(join(tmpdir(), 'wsproxy-sshd-'));
  // StrictModes checks every directory from the authorized_keys file up to the
  // account's home: a world-writable /tmp on that path fails it, so the key
  // lives under the home directory.
  const authDir = await mkdtemp(join(account.home, '.wsproxy-sshd-test-'));
  const dataDir = await mkdtemp(join(tmpdir(), 'wsproxy-sshd-data-'));
  let child: ChildProcess | undefined;
  const cleanup = async (): Promise<void> => {
    for (const d of [workDir, authDir, dataDir]) await rm(d, { recursive: true, force: true });
  };

  try {
    const hostKey = join(workDir, 'ssh_host_ed25519_key');
    const identityFile = join(workDir, 'id_ed25519');
    run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'wsproxy-test-host', '-f', hostKey]);
    run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'wsproxy-test-client', '-f', identityFile]);

    const authorizedKeys = join(authDir, 'authorized_keys');
    await writeFile(authorizedKeys, await readFile(`${identityFile}.pub`), { mode: 0o644 });
    await chmod(authDir, 0o755);
    if (asRoot) {
      await chown(dataDir, account.uid, account.gid);
      // The privilege-separation directory the Debian package normally creates at boot.
      await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    }

    const port = await freePort();
    const config = join(workDir, 'sshd_config');
    await writeFile(
      config,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${hostKey}`,
        'PidFile none',
        `AuthorizedKeysFile ${authorizedKeys}`,
        'StrictModes yes',
        'PermitRootLogin no',
        `AllowUsers ${account.name}`,
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'HostbasedAuthentication no',
        'PermitEmptyPasswords no',
        'UsePAM no',
        'AllowTcpForwarding no',
        'X11Forwarding no',
        'PrintMotd no',
        'Subsystem sftp internal-sftp',
        'LogLevel VERBOSE',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );

    let log = '';
    child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (c: string) => (log += c));
    const logs = (): string => log;
    await waitForOutput(child, [child.stderr!], logs, /Server listening on/, 'sshd');

    const sshd = child;
    return {
      port,
      user: account.name,
      identityFile,
      dataDir,
      workDir,
      logs,
      stop: async () => {
        if (sshd.exitCode === null && sshd.signalCode === null) {
          const exited = new Promise((r) => sshd.once('exit', r));
          sshd.kill('SIGTERM');
          await exited;
        }
        await cleanup();
      },
    };
  } catch (err) {
    child?.kill('SIGKILL');
    await cleanup();
    throw err;
  }
}

/** Quotes `s` for /bin/sh (ssh runs ProxyCommand through the shell). */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * `ssh`/`scp` options for a hermetic client: no user or system config, no
 * known_hosts, no prompts, only the given key, through `proxyCommand`.
 */
export function sshClientOptions(sshd: TestSshd, proxyCommand: string): string[] {
  return [
    '-F', '/dev/null',
    '-o', `ProxyCommand=${proxyCommand}`,
    '-o', 'StrictHostKeyChecking=no',
    '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'BatchMode=yes',
    '-o', 'IdentitiesOnly=yes',
    '-o', `IdentityFile=${sshd.identityFile}`,
    '-o', 'LogLevel=ERROR',
  ];
}
