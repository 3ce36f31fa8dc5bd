/**
 * Resumable relays with authentication on (a loopback JWKS): a session id is
 * worth nothing to anyone but the user who opened it, and every way of
 * naming a session that cannot be reattached gets the same answer.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { WebSocket } from 'ws';
import { ResumableRelay } from '../src/resume/client/resumable-relay.js';
import { ResumeService } from '../src/resume/resume.service.js';
import { startApp, type TestApp } from './support/app.js';
import { JwksServer, makeKey, mintToken, type TestKey } from './support/jwks.js';
import { startMiddlebox } from './support/middlebox.js';
import { RawResumeClient } from './support/resume-client.js';
import { echoTarget, type TestTarget } from './support/targets.js';
import { expectCloseRefusal, expectRefusal } from './support/ws-client.js';
import { waitFor } from './support/wait.js';

describe('resumable relays with authentication', () => {
  let jwks: JwksServer;
  let key: TestKey;
  let echo: TestTarget;
  let app: TestApp;

  before(async () => {
    key = await makeKey('resume-key');
    jwks = await JwksServer.start([key]);
    echo = await echoTarget();
    app = await startApp({
      CLERK_JWKS_URL: jwks.url,
      JWT_ISSUER: 'https://clerk.test',
      JWT_AUDIENCE: 'wsproxy',
      MAX_CONNS_PER_IP: '100',
      SHUTDOWN_TIMEOUT_MS: '0',
    });
  });
  after(async () => {
    await app?.close();
    await echo?.close();
    await jwks?.stop();
  });

  /** A fresh token (distinct `jti` each time). */
  const token = (sub: string): Promise<string> => mintToken(key, { sub, iss: 'https://clerk.test', aud: 'wsproxy', jti: randomUUID() });
  const openUrl = async (sub: string): Promise<string> => `${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}&resume=1&token=${await token(sub)}`;
  const reattachUrl = async (id: string, sub: string | null, extra = ''): Promise<string> =>
    `${app.wsUrl}/relay?resume=${id}&received=0${sub ? `&token=${await token(sub)}` : ''}${extra}`;

  it("answers 404 alike for another user's token, a made-up id and an id reused after the end", async () => {
    const { client, session } = await RawResumeClient.open(await openUrl('user_alice'));
    const id = session.id!;
    client.drop();
    await waitFor(() => app.app.get(ResumeService).liveSessions()[0]?.state === 'detached', 5000, 'the detach');

    // Without a token: authentication comes before the session lookup.
    assert.equal((await expectRefusal(await reattachUrl(id, null))).status, 401);

    const someoneElse = await expectRefusal(await reattachUrl(id, 'user_mallory'));
    const madeUp = await expectRefusal(await reattachUrl(randomBytes(16).toString('hex'), 'user_alice'));
    assert.deepEqual(someoneElse, { status: 404, body: 'unknown session' });
    assert.deepEqual(madeUp, someoneElse);
    assert.deepEqual(await expectCloseRefusal(await reattachUrl(id, 'user_mallory', '&errors=close')), { code: 4404, reason: 'unknown session' });

    // Mallory's attempts did not disturb it: Alice reattaches, then ends it.
    const again = await RawResumeClient.connect(await reattachUrl(id, 'user_alice'));
    const s2 = await again.nextControl('session');
    assert.equal(s2.id, id);
    again.send(Buffer.from('ok'));
    await again.until(() => again.bytes === 2, 'the echo');
    again.ws.close(1000);
    await again.closed();
    await waitFor(() => app.app.get(ResumeService).liveSessions().length === 0, 5000, 'the end');

    const reused = await expectRefusal(await reattachUrl(id, 'user_alice'));
    assert.deepEqual(reused, someoneElse);
    assert.deepEqual(await expectCloseRefusal(await reattachUrl(id, 'user_alice', '&errors=close')), { code: 4404, reason: 'unknown session' });
  });

  it('ResumableRelay asks its token provider for a fresh token on every attach', async () => {
    const box = await startMiddlebox(app.port);
    const issued: string[] = [];
    try {
      const relay = new ResumableRelay({
        url: `${box.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`,
        WebSocket,
        initialBackoffMs: 20,
        tokenCarrier: 'protocol',
        protocols: ['wsproxy'],
        token: async () => {
          const t = await token('user_bob');
          issued.push(t);
          return t;
        },
      });
      const received: Uint8Array[] = [];
      relay.on('data', (d) => received.push(d));
      await relay.opened;
      for (let i = 0; i < 2; i++) {
        const reattached = new Promise<void>((r) => relay.on('reattach', () => r()));
        box.cut();
        await reattached;
      }
      assert.equal(issued.length, 3);
      assert.equal(new Set(issued).size, 3, 'a new token each time');
      relay.send(new TextEncoder().encode('after two cuts'));
      await waitFor(() => Buffer.concat(received).toString() === 'after two cuts', 5000, 'the echo');
      const ended = new Promise<{ code: number }>((r) => relay.on('close', r));
      relay.close();
      assert.equal((await ended).code, 1000);
    } finally {
      await box.close();
    }
  });
});
