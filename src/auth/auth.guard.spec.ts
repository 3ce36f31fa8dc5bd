import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Global, Logger, Module, type INestApplication, type LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ConfigModule, registerAs } from '@nestjs/config';
import { parseConfig } from '../config/config.schema.js';
import { JwksServer, makeKey, mintToken, unreachableJwksUrl, type TestKey } from '../../test/support/jwks.js';
import { ReadinessRegistry } from '../health/readiness.registry.js';
import { AuthModule } from './auth.module.js';

/** The one global AuthModule needs from the app's HealthModule (which would bring the drain and Terminus along). */
@Global()
@Module({ providers: [ReadinessRegistry], exports: [ReadinessRegistry] })
class ReadinessRegistryModule {}

const quiet: LoggerService = { log() {}, error() {}, warn() {}, debug() {}, verbose() {} };

/** AuthModule alone in a Nest HTTP app on a loopback port, with the given environment. */
async function bootAuthApp(env: Record<string, string>): Promise<{ app: INestApplication; base: string }> {
  const config = parseConfig(env);
  const moduleRef = await Test.createTestingModule({
    imports: [ConfigModule.forRoot({ ignoreEnvFile: true, isGlobal: true, load: [registerAs('wsproxy', () => config)] }), ReadinessRegistryModule, AuthModule],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.listen(0, '127.0.0.1');
  return { app, base: (await app.getUrl()).replace('[::1]', '127.0.0.1') };
}

describe('AuthGuard on GET /auth/whoami', () => {
  let server: JwksServer;
  let key: TestKey;
  let other: TestKey;
  let app: INestApplication;
  let base: string;

  before(async () => {
    Logger.overrideLogger(quiet);
    key = await makeKey('guard-key');
    other = await makeKey('guard-other');
    server = await JwksServer.start([key]);
    ({ app, base } = await bootAuthApp({ CLERK_JWKS_URL: server.url, JWT_AUDIENCE: 'wsproxy' }));
  });
  after(async () => {
    await app?.close();
    await server?.stop();
  });

  it('answers 200 with the user id for a valid token (query or Authorization header)', async () => {
    const token = await mintToken(key, { sub: 'user_whoami', aud: 'wsproxy' });
    const byQuery = await fetch(`${base}/auth/whoami?token=${token}`);
    assert.equal(byQuery.status, 200);
    assert.deepEqual(await byQuery.json(), { userId: 'user_whoami' });
    const byHeader = await fetch(`${base}/auth/whoami`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(byHeader.status, 200);
    assert.deepEqual(await byHeader.json(), { userId: 'user_whoami' });
  });

  it('answers 401 with the reason and WWW-Authenticate for refused tokens', async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases: [string | null, string][] = [
      [null, 'token missing'],
      ['garbage', 'token malformed'],
      [await mintToken(key, { aud: 'wsproxy', exp: now - 60 }), 'token expired'],
      [await mintToken(key, { aud: 'other' }), 'audience mismatch'],
      [await mintToken(key, { aud: 'wsproxy', sub: undefined }), 'subject missing'],
      [await mintToken(other, { aud: 'wsproxy' }, { kid: key.kid }), 'signature invalid'],
      [await mintToken(other, { aud: 'wsproxy' }), 'unknown key'],
    ];
    for (const [token, reason] of cases) {
      const res = await fetch(`${base}/auth/whoami`, { headers: token === null ? {} : { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 401, reason);
      assert.equal(res.headers.get('www-authenticate'), 'Bearer');
      const body = (await res.json()) as { message: string; statusCode: number };
      assert.equal(body.message, reason);
      assert.equal(body.statusCode, 401);
    }
  });

  it('answers 503 when the JWKS was never reachable', async () => {
    const down = await bootAuthApp({ CLERK_JWKS_URL: await unreachableJwksUrl() });
    try {
      const token = await mintToken(key);
      const res = await fetch(`${down.base}/auth/whoami`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 503);
      assert.equal(((await res.json()) as { message: string }).message, 'authentication unavailable');
    } finally {
      await down.app.close();
    }
  });

  it('answers anonymous while auth is off', async () => {
    const off = await bootAuthApp({});
    try {
      const res = await fetch(`${off.base}/auth/whoami`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { userId: 'anonymous' });
    } finally {
      await off.app.close();
    }
  });
});
