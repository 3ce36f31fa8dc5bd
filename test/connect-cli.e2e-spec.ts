/**
 * `wsproxy-connect` as a process (the built dist/cli/connect.js), against the
 * real app and loopback targets: bytes both ways, exit statuses, messages, and
 * the token kept out of every message.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect as tcpConnect, createServer, type AddressInfo, type Socket } from 'node:net';
import { closeSync, existsSync, openSync } from 'node:fs';
import { startApp, type TestApp } from './support/app.js';
import { JwksServer, makeKey, mintToken, type TestKey } from './support/jwks.js';
import { randomPayload, sha256, sinkTarget, sourceTarget, startTarget, type TestTarget } from './support/targets.js';
import { once } from 'node:events';
import { WebSocketServer } from 'ws';
import { startConnect } from './support/connect-process.js';
import { CONNECT_JS } from './support/process.js';
import { startMiddlebox } from './support/middlebox.js';
import { waitFor } from './support/wait.js';

interface Run {
  readonly code: number | null;
  readonly stdout: Buffer;
  readonly stderr: string;
}

interface RunOptions {
  readonly env?: Record<string, string>;
  /** Written to stdin; stdin ends after it unless `keepStdinOpen`. */
  readonly stdin?: Buffer;
  /** Leave stdin open: the process must exit because the relay closed. */
  readonly keepStdinOpen?: boolean;
}

/** Runs wsproxy-connect to completion. */
function connect(args: string[], opts: RunOptions = {}): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
    if (!opts.env?.WSPROXY_TOKEN) delete env.WSPROXY_TOKEN;
    const child = spawn(process.execPath, [CONNECT_JS, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.stdin.on('error', () => undefined);
    if (opts.stdin) child.stdin.write(opts.stdin);
    if (!opts.keepStdinOpen) child.stdin.end();
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`wsproxy-connect did not exit; stderr: ${stderr}`));
    }, 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      child.stdin.destroy();
      resolvePromise({ code, stdout: Buffer.concat(out), stderr });
    });
  });
}

describe('wsproxy-connect', () => {
  let app: TestApp;
  const relay = (port: number, extra = ''): string => `${app.wsUrl}/relay?host=127.0.0.1&port=${port}${extra}`;

  before(async () => {
    if (!existsSync(CONNECT_JS)) throw new Error(`${CONNECT_JS} is missing: run \`npm run build\` first (npm test does)`);
    app = await startApp({ ALLOWED_ORIGINS: 'https://app.example.com' });
  });
  after(() => app?.close());

  it('relays stdin to the target and the answer to stdout, exiting 0 when the target closes', async () => {
    const payload = randomPayload(1024 * 1024);
    // Reads the whole payload, answers with its hash, closes.
    const target = await startTarget((s) => {
      const chunks: Buffer[] = [];
      let n = 0;
      s.on('data', (c: Buffer) => {
        chunks.push(c);
        n += c.length;
        if (n >= payload.length) s.end(sha256(Buffer.concat(chunks)));
      });
    });
    try {
      const r = await connect([relay(target.port)], { stdin: payload, keepStdinOpen: true });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), sha256(payload));
      assert.equal(r.stderr, '');
    } finally {
      await target.close();
    }
  });

  it('writes every byte of 8 MiB the target sends before closing', async () => {
    const payload = randomPayload(8 * 1024 * 1024);
    const target = await sourceTarget(payload);
    try {
      const r = await connect([relay(target.port)], { keepStdinOpen: true });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.length, payload.length);
      assert.equal(sha256(r.stdout), sha256(payload));
    } finally {
      await target.close();
    }
  });

  it('on stdin EOF delivers every byte to the target, then closes cleanly', async () => {
    const payload = randomPayload(8 * 1024 * 1024);
    const target = await sinkTarget();
    try {
      const r = await connect([relay(target.port)], { stdin: payload });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256(await target.received), sha256(payload));
    } finally {
      await target.close();
    }
  });

  // process.stdout is never destroyed by a write error (Node "undestroys" its stdio), so waiting for
  // its end() to call back hung, and the process ended 0 by an emptied event loop, every byte lost.
  for (const mode of [[], ['--resume']]) {
    it(`exits 255 with the error when writing stdout fails (a full disk)${mode.length ? ', with --resume too' : ''}`, { skip: !existsSync('/dev/full') }, async () => {
      const target = await sourceTarget(randomPayload(4 * 1024 * 1024));
      const full = openSync('/dev/full', 'w');
      try {
        const r = await new Promise<{ code: number | null; stderr: string }>((resolvePromise, reject) => {
          const env: NodeJS.ProcessEnv = { ...process.env };
          delete env.WSPROXY_TOKEN;
          const child = spawn(process.execPath, [CONNECT_JS, ...mode, relay(target.port)], { env, stdio: ['pipe', full, 'pipe'] });
          let stderr = '';
          child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
          child.stdin!.on('error', () => undefined);
          const timer = setTimeout(() => {
            child.kill('SIGKILL');
            reject(new Error(`wsproxy-connect did not exit; stderr: ${stderr}`));
          }, 30_000);
          child.once('error', reject);
          child.once('close', (code) => {
            clearTimeout(timer);
            child.stdin!.destroy();
            resolvePromise({ code, stderr });
          });
        });
        assert.equal(r.code, 255, r.stderr);
        assert.match(r.stderr, /^wsproxy-connect: writing stdout failed: ENOSPC/);
      } finally {
        closeSync(full);
        await target.close();
      }
    });
  }

  // Plain mode always did; --resume closed the relay with 1000 and exited 0 although stdin had failed.
  for (const mode of [[], ['--resume']]) {
    it(`exits 255 with the error when reading stdin fails${mode.length ? ', with --resume too' : ''}`, async () => {
      let targetGot = 0;
      const target = await startTarget((s) => s.on('data', (c: Buffer) => (targetGot += c.length)));
      // stdin is a TCP socket whose peer resets it: the read fails with ECONNRESET (once stdin is being
      // read: a reset that comes before is taken as EOF when the handle is opened).
      let peer: Socket | undefined;
      const server = createServer((s) => (peer = s));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const sock = tcpConnect((server.address() as AddressInfo).port, '127.0.0.1');
      try {
        await new Promise((r) => sock.once('connect', r));
        const env: NodeJS.ProcessEnv = { ...process.env };
        delete env.WSPROXY_TOKEN;
        const child = spawn(process.execPath, [CONNECT_JS, ...mode, relay(target.port)], { env, stdio: [sock, 'pipe', 'pipe'] });
        let stderr = '';
        child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
        child.stdout!.resume();
        const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
        sock.destroy();
        while (!peer) await new Promise((r) => setTimeout(r, 10));
        peer.write('abc');
        while (targetGot < 3) await new Promise((r) => setTimeout(r, 10));
        peer.resetAndDestroy();
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        const code = await exited;
        clearTimeout(timer);
        assert.equal(code, 255, stderr);
        assert.match(stderr, /^wsproxy-connect: reading stdin failed: .*ECONNRESET/);
      } finally {
        sock.destroy();
        server.close();
        await target.close();
      }
    });
  }

  it('exits 255 with the status and reason when the handshake is refused', async () => {
    const r = await connect([`${app.wsUrl}/relay?host=127.0.0.1`]);
    assert.equal(r.code, 255);
    assert.equal(r.stderr, 'wsproxy-connect: relay refused the connection: HTTP 400 Bad Request: missing port\n');
  });

  it('sends --origin, and is refused (403) with an origin the relay does not allow', async () => {
    const target = await sourceTarget(Buffer.from('ok'));
    try {
      const good = await connect(['--origin', 'https://app.example.com', relay(target.port)], { keepStdinOpen: true });
      assert.equal(good.code, 0, good.stderr);
      assert.equal(good.stdout.toString(), 'ok');
      const bad = await connect(['--origin', 'https://evil.example.net', relay(target.port)]);
      assert.equal(bad.code, 255);
      assert.match(bad.stderr, /relay refused the connection: HTTP 403/);
    } finally {
      await target.close();
    }
  });

  it('exits 255 with the close code when the relay ends with an error', async () => {
    const target = await startTarget((s) => setTimeout(() => s.resetAndDestroy(), 100));
    try {
      const r = await connect([relay(target.port)], { keepStdinOpen: true });
      assert.equal(r.code, 255);
      assert.match(r.stderr, /^wsproxy-connect: relay closed the connection: 1011 target error: ECONNRESET\n$/);
    } finally {
      await target.close();
    }
  });

  // Only --resume watched the connection: a path that went dark without a reset left ssh hanging forever.
  it('exits 255 saying so when the path goes dark (no traffic, no reset)', async () => {
    const target = await startTarget((s) => s.write('hello'));
    const box = await startMiddlebox(app.port);
    try {
      const run = startConnect([`${box.wsUrl}/relay?host=127.0.0.1&port=${target.port}`], { WSPROXY_PING_EVERY_MS: '100', WSPROXY_DEAD_AFTER_MS: '1000' });
      try {
        await waitFor(() => run.stdout().toString() === 'hello', 30_000, `the greeting; stderr: ${run.stderr()}`);
        assert.equal(box.silence(), 1);
        const guard = setTimeout(() => run.child.kill('SIGKILL'), 30_000);
        const code = await run.exited;
        clearTimeout(guard);
        assert.equal(code, 255, run.stderr());
        assert.equal(run.stderr(), 'wsproxy-connect: relay connection lost: no traffic for 1 s\n');
      } finally {
        run.child.kill('SIGKILL');
      }
    } finally {
      await box.close();
      await target.close();
    }
  });

  it('reports errors=close refusals by their close code', async () => {
    const r = await connect([`${app.wsUrl}/relay?host=127.0.0.1&errors=close`], { keepStdinOpen: true });
    assert.equal(r.code, 255);
    assert.equal(r.stderr, 'wsproxy-connect: relay closed the connection: 4400 missing port\n');
  });

  it('exits 255 naming the URL when nothing listens', async () => {
    const closedApp = await startApp();
    const url = `${closedApp.wsUrl}/relay?host=127.0.0.1&port=22`;
    await closedApp.close();
    const r = await connect([url]);
    assert.equal(r.code, 255);
    assert.match(r.stderr, /^wsproxy-connect: cannot connect to ws:\/\/127\.0\.0\.1:\d+\/relay\?host=127\.0\.0\.1&port=22: .*ECONNREFUSED/);
  });

  it('with --resume too: nothing listening is not a refusal', async () => {
    const closedApp = await startApp();
    const url = `${closedApp.wsUrl}/relay?host=127.0.0.1&port=22`;
    await closedApp.close();
    const r = await connect(['--resume', url]);
    assert.equal(r.code, 255);
    assert.match(r.stderr, /^wsproxy-connect: cannot connect to ws:\/\/127\.0\.0\.1:\d+\/relay\?host=127\.0\.0\.1&port=22.*: .*ECONNREFUSED/m);
    assert.ok(!r.stderr.includes('refused the connection'), r.stderr);
  });

  it('exits 2 with the usage on a bad command line, and 0 with --help', async () => {
    const bad = await connect([]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^wsproxy-connect: missing URL\nusage: wsproxy-connect/);
    const help = await connect(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout.toString(), /^usage: wsproxy-connect/);
  });

  describe('with authentication on', () => {
    let jwks: JwksServer;
    let key: TestKey;
    let authApp: TestApp;
    let target: TestTarget;
    let token: string;
    const authRelay = (extra = ''): string => `${authApp.wsUrl}/relay?host=127.0.0.1&port=${target.port}${extra}`;

    before(async () => {
      key = await makeKey();
      jwks = await JwksServer.start([key]);
      authApp = await startApp({ CLERK_JWKS_URL: jwks.url, JWT_ISSUER: 'https://clerk.test', JWT_AUDIENCE: 'wsproxy' });
      target = await startTarget((s) => s.end('welcome'));
      token = await mintToken(key, { sub: 'user_cli', iss: 'https://clerk.test', aud: 'wsproxy' }, { expiresIn: 600 });
    });
    after(async () => {
      await authApp?.close();
      await target?.close();
      await jwks?.stop();
    });

    it('takes the token from WSPROXY_TOKEN (query carrier)', async () => {
      const r = await connect([authRelay()], { env: { WSPROXY_TOKEN: token }, keepStdinOpen: true });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), 'welcome');
    });

    it('takes the token from --token and sends it as Authorization: Bearer with --token-carrier header', async () => {
      const r = await connect(['--token', token, '--token-carrier', 'header', authRelay()], { keepStdinOpen: true });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), 'welcome');
    });

    it('is refused (401) without a token', async () => {
      const r = await connect([authRelay()]);
      assert.equal(r.code, 255);
      assert.match(r.stderr, /relay refused the connection: HTTP 401/);
    });

    it('never prints the token, whatever fails', async () => {
      const bad = `${token.slice(0, -4)}AAAA`;
      const runs = [
        // Rejected token, from the environment and from the command line.
        await connect([authRelay()], { env: { WSPROXY_TOKEN: bad } }),
        await connect(['--token', bad, authRelay()]),
        // A token already in the URL, and an unreachable relay.
        await connect([`ws://127.0.0.1:1/relay?host=h&port=22&token=${bad}`]),
        await connect(['--token', bad, 'ws://127.0.0.1:1/relay?host=h&port=22']),
        // A bad command line.
        await connect(['--token', bad, '--nope', authRelay()]),
      ];
      for (const r of runs) {
        assert.notEqual(r.code, 0);
        assert.ok(r.stderr.length > 0);
        assert.ok(!r.stderr.includes(bad), `token printed: ${r.stderr}`);
        assert.ok(!r.stderr.includes(bad.split('.')[1]), `token payload printed: ${r.stderr}`);
      }
    });
  });
});

describe('wsproxy-connect and a proxy that sends an oversized message', () => {
  const MiB = 1024 * 1024;
  /** A fake /relay on loopback: (for --resume) the session frame, then one message of `size` bytes. */
  async function fakeRelay(resume: boolean, size: number, thenClose = false): Promise<{ url: string; peerCode: Promise<number>; close: () => void }> {
    const fake = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 64 * MiB });
    await once(fake, 'listening');
    const peerCode = new Promise<number>((resolvePeer) =>
      fake.on('connection', (ws) => {
        ws.on('close', (code) => resolvePeer(code));
        if (resume) ws.send(JSON.stringify({ type: 'session', id: '0123456789abcdef0123456789abcdef', windowS: 60, maxMessageBytes: 4 * MiB }));
        setTimeout(() => {
          ws.send(Buffer.alloc(size, 0x41));
          if (thenClose) ws.close(1000, 'done');
        }, 50);
      }),
    );
    return {
      url: `ws://127.0.0.1:${(fake.address() as AddressInfo).port}/relay?host=127.0.0.1&port=22`,
      peerCode,
      close: () => {
        for (const c of fake.clients) c.terminate();
        fake.close();
      },
    };
  }

  for (const resume of [false, true]) {
    const mode = resume ? ['--resume'] : [];
    it(`refuses a message over 4 MiB (the default) with 1009 and exits 255 saying so${resume ? ', with --resume too (no reattach)' : ''}`, async () => {
      const relay = await fakeRelay(resume, 4 * MiB + 1);
      try {
        const r = await connect([...mode, relay.url], { keepStdinOpen: true });
        assert.equal(r.code, 255, r.stderr);
        assert.match(r.stderr, /relay closed the connection: 1009 Max payload size exceeded/);
        assert.equal(r.stdout.length, 0, 'nothing of the oversized message reached stdout');
        if (!resume) assert.equal(await relay.peerCode, 1009, 'the proxy is told 1009');
      } finally {
        relay.close();
      }
    });

    it(`takes a larger message with --max-message-bytes${resume ? ', with --resume too' : ''}`, async () => {
      const relay = await fakeRelay(resume, 5 * MiB, true);
      try {
        const r = await connect([...mode, '--max-message-bytes', String(6 * MiB), relay.url], { keepStdinOpen: true });
        assert.equal(r.stdout.length, 5 * MiB, r.stderr);
        assert.equal(r.code, 0, r.stderr);
      } finally {
        relay.close();
      }
    });
  }
});
