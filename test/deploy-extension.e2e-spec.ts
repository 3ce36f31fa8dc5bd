/**
 * The module boundary (docs/extending.md): the example team module under
 * examples/ adds an admission rule and an audit sink to the real app through
 * `startWsproxy({ config, imports })`, without touching the relay.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { startWsproxy } from '../src/bootstrap.js';
import { parseConfig } from '../src/config/config.schema.js';
import { TeamExtensionModule } from '../examples/team-extension/team-extension.module.js';
import type { AuditRecord } from '../examples/team-extension/team-extension.options.js';
// Compiled with the tests (a type-only import puts it in the program); run below as a process.
import type {} from '../examples/team-extension/main.js';
import { TEST_ENV } from './support/app.js';
import { echoTarget, randomPayload, type TestTarget } from './support/targets.js';
import { closed, expectCloseRefusal, expectRefusal, openWs, receiveBytes } from './support/ws-client.js';
import { waitFor } from './support/wait.js';

describe('a team module added with startWsproxy({ config, imports })', () => {
  let target: TestTarget;
  let app: NestExpressApplication;
  let base: string;
  const records: AuditRecord[] = [];

  before(async () => {
    target = await echoTarget();
    const config = parseConfig({ ...TEST_ENV, MAX_CONNS_PER_USER: '1' });
    const running = await startWsproxy({
      config,
      // Auth is off in tests, so every client is user "anonymous"; "mallory" is suspended.
      imports: [TeamExtensionModule.forRoot({ deniedUsers: ['mallory'], write: (r) => records.push(r) })],
    });
    app = running.app;
    base = `127.0.0.1:${running.port}`;
  });
  after(async () => {
    await app?.close();
    await target?.close();
  });

  test('the audit sink records a relay from start to end, with its bytes', async () => {
    const ws = await openWs(`ws://${base}/relay?host=127.0.0.1&port=${target.port}`);
    const payload = randomPayload(10_000);
    const echoed = receiveBytes(ws, payload.length);
    ws.send(payload);
    await echoed;
    const wsClosed = closed(ws);
    ws.close();
    await wsClosed;
    await waitFor(() => records.some((r) => r.event === 'relay.closed'), 5000, 'relay.closed record');
    const opened = records.find((r) => r.event === 'relay.opened');
    const ended = records.find((r) => r.event === 'relay.closed');
    assert.equal(opened?.user, 'anonymous');
    assert.equal(opened?.target, `127.0.0.1:${target.port}`);
    assert.equal(ended?.bytesUp, 10_000);
    assert.equal(ended?.bytesDown, 10_000);
    assert.ok(!JSON.stringify(records).includes('token'));
  });

  test('the audit sink sees refusals, and its own metric is on the app registry', async () => {
    const before = records.length;
    const refusal = await expectRefusal(`ws://${base}/relay?port=22`);
    assert.equal(refusal.status, 400);
    await waitFor(() => records.length > before, 5000, 'refusal record');
    assert.deepEqual(
      { event: records[before].event, kind: records[before].kind, status: records[before].status },
      { event: 'admission.refused', kind: 'bad_request', status: 400 },
    );
    const metrics = await (await fetch(`http://${base}/metrics`)).text();
    assert.match(metrics, /^team_audit_records_total\{event="admission\.refused"\} [1-9]/m);
    assert.match(metrics, /^team_audit_records_total\{event="relay\.closed"\} 1$/m);
  });
});

describe('the admission rule, in the example entry point run as a process', () => {
  let target: TestTarget;

  before(async () => {
    target = await echoTarget();
  });
  after(async () => {
    await target?.close();
  });

  test('a denied user is refused with 403 (and 4403 with errors=close); SIGTERM exits 0', async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const { port } = srv.address() as { port: number };
    await new Promise<void>((r) => srv.close(() => r()));

    const child = spawn(process.execPath, [join(process.cwd(), '.build/examples/team-extension/main.js')], {
      env: { PATH: process.env.PATH ?? '', ...TEST_ENV, PORT: String(port), DENIED_USERS: 'anonymous' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await waitFor(() => out.includes('"event":"listening"') || child.exitCode !== null, 60_000, 'the example to listen');
      assert.equal(child.exitCode, null, err);
      const url = `ws://127.0.0.1:${port}/relay?host=127.0.0.1&port=${target.port}`;
      assert.deepEqual(await expectRefusal(url), { status: 403, body: 'user is suspended' });
      assert.deepEqual(await expectCloseRefusal(`${url}&errors=close`), { code: 4403, reason: 'user is suspended' });
      assert.equal(target.connections.size, 0, 'the target was never dialled');
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, err);
  });
});
