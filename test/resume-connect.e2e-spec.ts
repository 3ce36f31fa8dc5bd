/**
 * `wsproxy-connect --resume` as a process (the built dist/cli/connect.js):
 * stdin/stdout through a resumable relay while a loopback middlebox drops the
 * connection.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { parseConnectArgs } from '../src/cli/connect-args.js';
import { INPUT_END_LINGER_MS } from '../src/cli/stdio-bridge.js';
import { ResumeService } from '../src/resume/resume.service.js';
import { startApp, type TestApp } from './support/app.js';
import { duplexTarget } from './support/duplex-target.js';
import { startTarget } from './support/targets.js';
import { startMiddlebox } from './support/middlebox.js';
import { waitFor } from './support/wait.js';
import { startConnect } from './support/connect-process.js';
import { CONNECT_JS } from './support/process.js';

const MiB = 1024 * 1024;

describe('wsproxy-connect --resume', () => {
  let app: TestApp;

  before(async () => {
    if (!existsSync(CONNECT_JS)) throw new Error(`${CONNECT_JS} is missing: run \`npm run build\` first`);
    app = await startApp({ MAX_CONNS_PER_IP: '100', SHUTDOWN_TIMEOUT_MS: '0' });
  });
  after(async () => {
    await app?.close();
  });

  it('parses --resume', () => {
    const parsed = parseConnectArgs(['--resume', 'ws://127.0.0.1:1/relay?host=h&port=22'], {});
    assert.equal(parsed.kind === 'run' && parsed.options.mode, 'resume');
    const plain = parseConnectArgs(['ws://127.0.0.1:1/relay?host=h&port=22'], {});
    assert.equal(plain.kind === 'run' && plain.options.mode, 'plain');
  });

  it('carries 4 MiB each way across two cuts and exits 0 when stdin ends', async () => {
    const down = randomBytes(4 * MiB);
    const up = randomBytes(4 * MiB);
    const target = await duplexTarget({ down });
    const box = await startMiddlebox(app.port);
    try {
      const run = startConnect(['--resume', `${box.wsUrl}/relay?host=127.0.0.1&port=${target.port}`]);
      // Upload in pieces, honouring the pipe's backpressure.
      const writeAll = async (): Promise<void> => {
        for (let off = 0; off < up.length; off += 64 * 1024) {
          if (!run.child.stdin.write(up.subarray(off, off + 64 * 1024))) await new Promise((r) => run.child.stdin.once('drain', r));
        }
      };
      const writing = writeAll();
      await waitFor(() => run.stdoutBytes() >= MiB, 30_000, 'the first MiB down');
      assert.equal(box.cut(), 1);
      await waitFor(() => run.stderr().includes('reattached'), 30_000, `a reattach; stderr: ${run.stderr()}`);
      await waitFor(() => run.stdoutBytes() >= 3 * MiB && target.receivedBytes() >= MiB, 30_000, 'more data');
      assert.equal(box.cut(), 1);
      await writing;
      await waitFor(() => run.stdoutBytes() === down.length && target.receivedBytes() === up.length, 30_000, `everything; stderr: ${run.stderr()}`);
      run.child.stdin.end();
      assert.equal(await run.exited, 0, run.stderr());
      assert.ok(run.stdout().equals(down), 'stdout is the target bytes, once, in order');
      assert.ok(target.received().equals(up), 'the target got stdin, once, in order');
      assert.equal(await target.ended, 'end');
      assert.match(run.stderr(), /connection lost \(1006\); reattaching/);
      await waitFor(() => app.app.get(ResumeService).liveSessions().length === 0, 30_000, 'the session to end');
    } finally {
      await box.close();
      await target.close();
    }
  });

  // The quiet after stdin's end was the dead path, not the far end: closing then was final, so after
  // the liveness check (30 s) and the reattach, the relay replayed the last input and closed at once,
  // and its echo never came back (exit 0, half the bytes).
  it('when the path goes dark as stdin ends, reattaches and still delivers the answer to the last input', async () => {
    const data = randomBytes(128 * 1024);
    const target = await startTarget((s) => s.pipe(s));
    const box = await startMiddlebox(app.port);
    try {
      // A faster liveness check (3 s, not 30), still well past the quiet close's linger (1 s): the linger must
      // come first, on a path already dark, or the test would not see the close that cut the answer off.
      const run = startConnect(['--resume', `${box.wsUrl}/relay?host=127.0.0.1&port=${target.port}`], { WSPROXY_PING_EVERY_MS: '100', WSPROXY_DEAD_AFTER_MS: String(3 * INPUT_END_LINGER_MS) });
      run.child.stdin.write(data.subarray(0, 64 * 1024));
      await waitFor(() => run.stdoutBytes() === 64 * 1024, 30_000, 'the first echo');
      assert.equal(box.silence(), 1);
      run.child.stdin.end(data.subarray(64 * 1024));
      assert.equal(await run.exited, 0, run.stderr());
      assert.match(run.stderr(), /connection lost \(1006\); reattaching\n.*reattached/s);
      assert.equal(run.stdoutBytes(), data.length, run.stderr());
      assert.ok(run.stdout().equals(data), 'the whole echo, once, in order');
    } finally {
      await box.close();
      await target.close();
    }
  });

  // Its 'connection lost; reattaching' message hit the closed stderr: an unhandled EPIPE ended the process, and the
  // session it was about to resume with it.
  it('survives a cut with nobody reading its stderr: reattaches and exits 0', async () => {
    const target = await startTarget((s) => s.pipe(s));
    const box = await startMiddlebox(app.port);
    try {
      const run = startConnect(['--resume', `${box.wsUrl}/relay?host=127.0.0.1&port=${target.port}`]);
      run.child.stderr.destroy();
      run.child.stdin.write('before');
      await waitFor(() => run.stdout().toString() === 'before', 30_000, 'the first echo');
      assert.equal(box.cut(), 1);
      run.child.stdin.end(' after');
      assert.equal(await run.exited, 0);
      assert.equal(box.accepted, 2, 'reattached once');
      assert.equal(run.stdout().toString(), 'before after');
    } finally {
      await box.close();
      await target.close();
    }
  });

  it('names the attach timeout when the upgrade succeeds but no session frame follows', async () => {
    // Accepts the upgrade, then says nothing: the message said "connection failed" although it connected.
    const server = createServer((s) => {
      s.on('error', () => undefined);
      s.once('data', (d: Buffer) => {
        const key = /sec-websocket-key: *(.*)\r\n/i.exec(d.toString())![1]!;
        const acceptKey = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
        s.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey}\r\n\r\n`);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const run = startConnect(['--resume', `ws://127.0.0.1:${(server.address() as AddressInfo).port}/relay?host=h&port=22`]);
      assert.equal(await run.exited, 255);
      assert.match(run.stderr(), /^wsproxy-connect: cannot connect to ws:\/\/127\.0\.0\.1:\d+\/relay\?host=h&port=22: attach timed out\n$/);
    } finally {
      server.close();
    }
  });

  it('exits 255 with the refusal when the first attach is refused', async () => {
    const run = startConnect(['--resume', `${app.wsUrl}/relay?host=127.0.0.1&port=notaport`]);
    run.child.stdin.end();
    assert.equal(await run.exited, 255);
    assert.match(run.stderr(), /wsproxy-connect: relay refused the connection: 4400 invalid port/);
  });
});
