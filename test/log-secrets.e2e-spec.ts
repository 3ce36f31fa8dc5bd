/**
 * Request targets that slip past the usual parsers never put a token in the
 * service's output: the built service runs as a process at debug level and
 * every line it prints (stdout and stderr) is searched for the secrets sent.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServiceProcess, type ServiceProcess } from './support/process.js';
import { rawRequest } from './support/raw-http.js';

describe('secrets in odd request targets stay out of the logs', () => {
  let svc: ServiceProcess;

  before(async () => {
    svc = await startServiceProcess({ LOG_LEVEL: 'debug', METRICS_PORT: '0' });
  });
  after(async () => {
    svc?.child.kill('SIGTERM');
    await svc?.exited;
  });

  /** Waits for output to settle, then checks that no line holds `secret`. */
  async function assertNotLogged(secret: string): Promise<void> {
    await new Promise((r) => setTimeout(r, 200));
    const leaked = svc.lines.filter((l) => l.includes(secret));
    assert.deepEqual(leaked, [], `${secret} was logged`);
  }

  test('a token after a doubled question mark is redacted from the refusal line', async () => {
    // The query parser reads `??token=` as the token; the refusal (blocked target) is logged at debug.
    const res = await rawRequest(
      svc.port,
      'GET /relay??token=SECRET-DOUBLE-Q&host=10.1.2.3&port=22 HTTP/1.1',
      { headers: 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' },
    );
    assert.equal(res.status, 403);
    const deadline = Date.now() + 5000;
    while (!svc.lines.some((l) => l.includes('refused /relay??token=[REDACTED]'))) {
      assert.ok(Date.now() < deadline, 'the refusal is logged, redacted');
      await new Promise((r) => setTimeout(r, 20));
    }
    await assertNotLogged('SECRET-DOUBLE-Q');
  });

  test('an absolute-form target that does not parse is answered 400 before any route, and not printed', async () => {
    for (const [line, secret] of [
      ['GET http://x:99999/auth/whoami?token=SECRET-BAD-PORT HTTP/1.1', 'SECRET-BAD-PORT'],
      ['GET http://[::1/health?token=SECRET-BAD-HOST HTTP/1.1', 'SECRET-BAD-HOST'],
      ['GET http://1.2.3.256/auth/whoami?token=SECRET-BAD-IP HTTP/1.1', 'SECRET-BAD-IP'],
    ] as const) {
      const res = await rawRequest(svc.port, line);
      assert.equal(res.status, 400, line);
      assert.match(res.text, /malformed request target/);
      await assertNotLogged(secret);
    }
  });

  test('a well-formed absolute-form target is still served', async () => {
    const res = await rawRequest(svc.port, `GET http://127.0.0.1:${svc.port}/health HTTP/1.1`);
    assert.equal(res.status, 200);
    const who = await rawRequest(svc.port, `GET http://127.0.0.1:${svc.port}/auth/whoami?token=SECRET-OK HTTP/1.1`);
    assert.equal(who.status, 200, 'auth is off: anonymous');
    assert.match(who.text, /"userId":"anonymous"/);
    await assertNotLogged('SECRET-OK');
  });
});
