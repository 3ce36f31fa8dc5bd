import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { Logger, type LoggerService } from '@nestjs/common';
import { Refusal } from '../common/refusal.js';
import { parseConfig } from '../config/config.schema.js';
import { ManualClock } from '../../test/support/clock.js';
import { JwksServer, makeKey, mintToken, unreachableJwksUrl, type TestKey } from '../../test/support/jwks.js';
import { AuthService } from './auth.service.js';
import { parseJwks, readCappedText } from './jwks-document.js';
import { extractToken } from './token-carriers.js';
import { JwksService } from './jwks.service.js';

const quiet: LoggerService = { log() {}, error() {}, warn() {}, debug() {}, verbose() {} };
const noHeaders = { headers: {} } as unknown as IncomingMessage;

const S = 1000;

interface Rig {
  readonly clock: ManualClock;
  readonly jwks: JwksService;
  readonly auth: AuthService;
  /** Authenticates `token` at the rig's clock; resolves to the user id or the refusal. */
  check(token: string): Promise<string | Refusal>;
  /** Mints a token valid at the rig's clock. */
  mint(key: TestKey, kid?: string): Promise<string>;
}

function rig(url: string, env: Record<string, string> = {}): Rig {
  const clock = new ManualClock();
  const config = parseConfig({ CLERK_JWKS_URL: url, ...env });
  const jwks = new JwksService(config, clock);
  const auth = new AuthService(config, jwks, clock);
  return {
    clock,
    jwks,
    auth,
    check: (token) =>
      auth.authenticate(noHeaders, new URLSearchParams({ token })).then(
        (id) => id.userId,
        (err: unknown) => {
          if (err instanceof Refusal) return err;
          throw err;
        },
      ),
    mint: (key, kid) => mintToken(key, { sub: `sub-of-${key.kid}` }, { now: clock.seconds(), expiresIn: 3600, kid }),
  };
}

function isRefusal(r: string | Refusal, status: number, reason: string): boolean {
  return r instanceof Refusal && r.status === status && r.reason === reason;
}

describe('JwksService', () => {
  let keyA: TestKey;
  let keyB: TestKey;
  let stranger: TestKey;

  before(async () => {
    Logger.overrideLogger(quiet);
    [keyA, keyB, stranger] = await Promise.all([makeKey('kid-a'), makeKey('kid-b'), makeKey('kid-stranger')]);
  });

  describe('canVerify (the readiness check)', () => {
    let server: JwksServer;
    before(async () => {
      server = await JwksServer.start([keyA]);
    });
    after(() => server.stop());

    it('refreshes an idle replica\'s keys once they pass their TTL, while still usable, so readiness does not drop at the stale limit', async () => {
      server.publish([keyA]);
      const r = rig(server.url, { JWKS_CACHE_TTL_S: '60', JWKS_MAX_STALE_S: '60', JWKS_REFETCH_COOLDOWN_S: '30' });
      await r.jwks.warmUp();
      assert.equal(r.jwks.status().fetchCount, 1);
      assert.equal(r.jwks.canVerify(), true);
      assert.equal(r.jwks.status().fetchCount, 1, 'fresh keys: no fetch');
      r.clock.advance(61 * S);
      assert.equal(r.jwks.canVerify(), true, 'past the TTL, still usable');
      assert.equal(r.jwks.status().fetchCount, 2, 'the probe started a refresh');
      const deadline = Date.now() + 5000;
      while (r.jwks.status().fetchedAt !== r.clock.now()) {
        assert.ok(Date.now() < deadline, 'the refresh never landed');
        await new Promise((res) => setTimeout(res, 5));
      }
      r.clock.advance(61 * S);
      assert.equal(r.jwks.canVerify(), true, 'past the first key set\'s stale limit: the refresh keeps it ready');
      await r.jwks.warmUp(); // the refresh that last probe started
    });

    it('fetches at most once per cooldown while the JWKS holds no usable key, however often it is probed', async () => {
      server.publish([]);
      server.resetCount();
      const r = rig(server.url, { JWKS_REFETCH_COOLDOWN_S: '30' });
      await r.jwks.warmUp();
      for (let i = 0; i < 20; i++) {
        assert.equal(r.jwks.canVerify(), false);
        await r.jwks.warmUp();
      }
      assert.equal(server.requests, 1);
      r.clock.advance(31 * S);
      assert.equal(r.jwks.canVerify(), false);
      await r.jwks.warmUp();
      assert.equal(server.requests, 2);
      server.publish([keyA]);
    });
  });

  describe('unknown kid flood', () => {
    let server: JwksServer;
    before(async () => {
      server = await JwksServer.start([keyA]);
    });
    after(() => server.stop());

    it('200 tokens with random unknown kids cause at most 2 JWKS fetches (cold cache)', async () => {
      server.resetCount();
      const r = rig(server.url);
      const tokens = await Promise.all(Array.from({ length: 200 }, () => r.mint(stranger, randomUUID())));
      const results = await Promise.all(tokens.map((t) => r.check(t)));
      assert.ok(results.every((x) => isRefusal(x, 401, 'unknown key')));
      assert.ok(server.requests <= 2, `${server.requests} fetches`);
      // The known key still works, without another fetch.
      assert.equal(await r.check(await r.mint(keyA)), 'sub-of-kid-a');
      assert.ok(server.requests <= 2, `${server.requests} fetches`);
    });

    it('200 sequential unknown kids after warm-up cause at most 2 fetches; the next cooldown allows one more', async () => {
      server.resetCount();
      const r = rig(server.url, { JWKS_REFETCH_COOLDOWN_S: '30' });
      await r.jwks.warmUp();
      assert.equal(server.requests, 1);
      for (let i = 0; i < 200; i++) {
        if (i % 20 === 0) r.clock.advance(100); // 200 tokens spread over 1 s
        assert.ok(isRefusal(await r.check(await r.mint(stranger, randomUUID())), 401, 'unknown key'));
      }
      assert.ok(server.requests <= 2, `${server.requests} fetches`);
      const before = server.requests;
      r.clock.advance(30 * S);
      assert.ok(isRefusal(await r.check(await r.mint(stranger, randomUUID())), 401, 'unknown key'));
      assert.ok(isRefusal(await r.check(await r.mint(stranger, randomUUID())), 401, 'unknown key'));
      assert.equal(server.requests, before + 1);
    });

    it('concurrent lookups on a cold cache share one fetch', async () => {
      server.resetCount();
      const r = rig(server.url);
      const tokens = await Promise.all(Array.from({ length: 50 }, () => r.mint(keyA)));
      const results = await Promise.all(tokens.map((t) => r.check(t)));
      assert.ok(results.every((x) => x === 'sub-of-kid-a'));
      assert.equal(server.requests, 1);
    });
  });

  describe('key rotation', () => {
    let server: JwksServer;
    before(async () => {
      server = await JwksServer.start([keyA]);
    });
    after(() => server.stop());

    it('accepts a newly published kid after the refetch and refuses a removed kid after the TTL', async () => {
      server.publish([keyA]);
      server.resetCount();
      const r = rig(server.url, { JWKS_CACHE_TTL_S: '600', JWKS_REFETCH_COOLDOWN_S: '30' });
      assert.equal(await r.check(await r.mint(keyA)), 'sub-of-kid-a');
      assert.equal(server.requests, 1);

      // Rotation starts: B is published next to A.
      server.publish([keyA, keyB]);
      // Within the cooldown of the last fetch, the unknown kid cannot force a refetch.
      r.clock.advance(10 * S);
      assert.ok(isRefusal(await r.check(await r.mint(keyB)), 401, 'unknown key'));
      assert.equal(server.requests, 1);
      // After it, the unknown kid triggers one refetch and B is accepted.
      r.clock.advance(21 * S);
      assert.equal(await r.check(await r.mint(keyB)), 'sub-of-kid-b');
      assert.equal(server.requests, 2);

      // Rotation ends: A is removed. It keeps working from the cache until the TTL runs out.
      server.publish([keyB]);
      r.clock.advance(599 * S);
      assert.equal(await r.check(await r.mint(keyA)), 'sub-of-kid-a');
      assert.equal(server.requests, 2);
      r.clock.advance(1 * S);
      assert.ok(isRefusal(await r.check(await r.mint(keyA)), 401, 'unknown key'));
      assert.equal(server.requests, 3);
      assert.equal(await r.check(await r.mint(keyB)), 'sub-of-kid-b');
      assert.equal(r.jwks.status().keyCount, 1);
    });

    it('refuses a removed kid after the TTL even when a refetch failed shortly before it ran out', async () => {
      server.publish([keyA, keyB]);
      server.resetCount();
      const r = rig(server.url, { JWKS_CACHE_TTL_S: '600', JWKS_REFETCH_COOLDOWN_S: '30' });
      assert.equal(await r.check(await r.mint(keyA)), 'sub-of-kid-a');
      // Ten seconds before the TTL runs out an unknown kid asks for a refetch, and the endpoint fails it once.
      server.answerRaw(503, 'blip');
      r.clock.advance(590 * S);
      assert.ok(isRefusal(await r.check(await r.mint(stranger)), 401, 'unknown key'));
      assert.equal(r.jwks.status().lastFetchOk, false);
      // The endpoint is back and the issuer has removed A. Past the TTL the keys are not stale (nothing
      // failed since it ran out): the first lookup waits for a refetch, inside the cooldown or not.
      server.publish([keyB]);
      r.clock.advance(10 * S);
      assert.ok(isRefusal(await r.check(await r.mint(keyA)), 401, 'unknown key'));
      assert.equal(server.requests, 3);
      assert.equal(await r.check(await r.mint(keyB)), 'sub-of-kid-b');
    });

    it('refetches when the TTL runs out even inside the unknown-kid cooldown (short real TTL)', async () => {
      server.publish([keyA]);
      server.resetCount();
      const clock = { now: () => Date.now() };
      const config = parseConfig({ CLERK_JWKS_URL: server.url, JWKS_CACHE_TTL_S: '1', JWKS_REFETCH_COOLDOWN_S: '3600' });
      const jwks = new JwksService(config, clock);
      const auth = new AuthService(config, jwks, clock);
      const tokenA = await mintToken(keyA, {}, { expiresIn: 600 });
      assert.equal((await auth.authenticate(noHeaders, new URLSearchParams({ token: tokenA }))).userId, 'user_1');
      server.publish([keyB]);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await assert.rejects(auth.authenticate(noHeaders, new URLSearchParams({ token: tokenA })), { reason: 'unknown key' });
      assert.equal(server.requests, 2);
    });
  });

  describe('endpoint failures', () => {
    it('keeps accepting with stale keys after the JWKS server stops, up to JWKS_MAX_STALE_S', async () => {
      const server = await JwksServer.start([keyA]);
      const r = rig(server.url, { JWKS_CACHE_TTL_S: '60', JWKS_MAX_STALE_S: '3600', JWKS_REFETCH_COOLDOWN_S: '30' });
      await r.jwks.warmUp();
      assert.equal(r.jwks.status().keyCount, 1);
      await server.stop();

      r.clock.advance(61 * S); // past the TTL: a refetch is attempted and fails
      assert.equal(await r.check(await r.mint(keyA)), 'sub-of-kid-a');
      assert.equal(r.jwks.status().lastFetchOk, false);
      r.clock.advance(1800 * S);
      assert.equal(await r.check(await r.mint(keyA)), 'sub-of-kid-a');
      // TTL + max stale since the last good fetch: nothing usable any more.
      r.clock.advance(1800 * S);
      assert.ok(isRefusal(await r.check(await r.mint(keyA)), 503, 'authentication unavailable'));
    });

    it('answers from stale keys at once while a retry hangs in the background', async () => {
      const server = await JwksServer.start([keyA]);
      try {
        const r = rig(server.url, { JWKS_CACHE_TTL_S: '60', JWKS_MAX_STALE_S: '3600', JWKS_REFETCH_COOLDOWN_S: '30', JWKS_FETCH_TIMEOUT_MS: '20000' });
        await r.jwks.warmUp();
        // Past the TTL the first lookup waits for the refetch; it fails, and the stale keys serve.
        server.answerRaw(500, 'down');
        r.clock.advance(61 * S);
        assert.equal(await r.check(await r.mint(keyA)), 'sub-of-kid-a');
        assert.equal(r.jwks.status().lastFetchOk, false);
        // After the cooldown the retry hangs (up to its 20 s timeout): the lookup must not wait for it.
        server.hang();
        r.clock.advance(31 * S);
        const answer = await Promise.race([r.check(await r.mint(keyA)), new Promise((res) => setTimeout(() => res('waited'), 2000).unref())]);
        assert.equal(answer, 'sub-of-kid-a');
      } finally {
        await server.stop();
      }
    });

    it('follows no redirect: a 302 to a good JWKS is a failed fetch', async () => {
      const server = await JwksServer.start([keyA]);
      const redirector = createServer((_req, res) => res.writeHead(302, { location: server.url }).end());
      await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r));
      try {
        const r = rig(`http://127.0.0.1:${(redirector.address() as AddressInfo).port}/jwks.json`, { JWKS_REFETCH_COOLDOWN_S: '30' });
        assert.ok(isRefusal(await r.check(await r.mint(keyA)), 503, 'authentication unavailable'));
        assert.equal(server.requests, 0, 'the redirect was not followed');
      } finally {
        redirector.closeAllConnections();
        await new Promise<void>((r) => redirector.close(() => r()));
        await server.stop();
      }
    });

    it('takes only a 200 as a key set: another 2xx with a JWKS body is a failed fetch', async () => {
      const server = await JwksServer.start([keyA]);
      try {
        server.answerRaw(203, JSON.stringify({ keys: [keyA.jwk] }));
        const r = rig(server.url, { JWKS_REFETCH_COOLDOWN_S: '30' });
        assert.ok(isRefusal(await r.check(await r.mint(keyA)), 503, 'authentication unavailable'));
        assert.equal(r.jwks.status().lastFetchOk, false);
      } finally {
        await server.stop();
      }
    });

    it('answers 503 when the JWKS was never reachable (connection refused)', async () => {
      const r = rig(await unreachableJwksUrl(), { JWKS_REFETCH_COOLDOWN_S: '30' });
      assert.ok(isRefusal(await r.check(await r.mint(keyA)), 503, 'authentication unavailable'));
      assert.equal(r.jwks.status().fetchCount, 1);
      // Within the cooldown no new attempt is made; still 503.
      assert.ok(isRefusal(await r.check(await r.mint(keyA)), 503, 'authentication unavailable'));
      assert.equal(r.jwks.status().fetchCount, 1);
      // A missing token is still a 401: the client's fault comes first.
      await assert.rejects(r.auth.authenticate(noHeaders, new URLSearchParams()), { status: 401, reason: 'token missing' });
    });

    it('answers 503 when the JWKS endpoint hangs past JWKS_FETCH_TIMEOUT_MS, then recovers after the cooldown', async () => {
      const server = await JwksServer.start([keyA]);
      try {
        server.hang();
        const r = rig(server.url, { JWKS_FETCH_TIMEOUT_MS: '200', JWKS_REFETCH_COOLDOWN_S: '30' });
        const t0 = Date.now();
        assert.ok(isRefusal(await r.check(await r.mint(keyA)), 503, 'authentication unavailable'));
        // Ended by the 200 ms fetch timeout: not at once, and well before anything else would give up.
        const elapsed = Date.now() - t0;
        assert.ok(elapsed >= 190 && elapsed < 2000, `refused after ${elapsed} ms`);
        server.publish([keyA]);
        assert.ok(isRefusal(await r.check(await r.mint(keyA)), 503, 'authentication unavailable'));
        r.clock.advance(30 * S);
        assert.equal(await r.check(await r.mint(keyA)), 'sub-of-kid-a');
        assert.equal(server.requests, 2);
      } finally {
        await server.stop();
      }
    });

    it('keeps the cached keys when the JWKS answers garbage', async () => {
      const server = await JwksServer.start([keyA]);
      try {
        const r = rig(server.url, { JWKS_CACHE_TTL_S: '60', JWKS_REFETCH_COOLDOWN_S: '10' });
        await r.jwks.warmUp();
        const bodies: [number, string][] = [
          [200, 'this is not json'],
          [200, '{"keys":"nope"}'],
          [200, '<html>maintenance</html>'],
          [500, JSON.stringify({ keys: [keyB.jwk] })],
          [302, ''],
        ];
        for (const [status, body] of bodies) {
          // A good fetch first, so the TTL refetch below is awaited (not a background retry).
          server.publish([keyA]);
          r.clock.advance(10 * S);
          await r.jwks.warmUp();
          assert.equal(r.jwks.status().lastFetchOk, true);
          const fetches = server.requests;
          server.answerRaw(status, body);
          r.clock.advance(61 * S); // past the TTL: one refetch, which gets garbage
          assert.equal(await r.check(await r.mint(keyA)), 'sub-of-kid-a', `after ${status} ${body}`);
          assert.equal(server.requests, fetches + 1);
          assert.equal(r.jwks.status().lastFetchOk, false);
        }
        // Unknown-kid refetch that gets garbage while the keys are fresh keeps them too.
        server.publish([keyA]);
        r.clock.advance(10 * S);
        await r.jwks.warmUp();
        const fetches = server.requests;
        server.answerRaw(200, 'garbage');
        r.clock.advance(11 * S);
        assert.ok(isRefusal(await r.check(await r.mint(keyB)), 401, 'unknown key'));
        assert.equal(server.requests, fetches + 1);
        assert.equal(await r.check(await r.mint(keyA)), 'sub-of-kid-a');
      } finally {
        await server.stop();
      }
    });

    it('a JWKS that answers with no usable key withdraws the cached ones: 503 from that refetch on', async () => {
      for (const body of ['{"keys":[]}', JSON.stringify({ keys: [{ ...keyA.jwk, use: 'enc' }, { kty: 'oct', kid: 'k', k: 'c2VjcmV0' }] })]) {
        const server = await JwksServer.start([keyA]);
        try {
          const r = rig(server.url, { JWKS_CACHE_TTL_S: '60', JWKS_REFETCH_COOLDOWN_S: '10' });
          await r.jwks.warmUp();
          assert.equal(await r.check(await r.mint(keyA)), 'sub-of-kid-a');
          server.answerRaw(200, body);
          r.clock.advance(61 * S); // past the TTL: the refetch gets the empty answer
          assert.ok(isRefusal(await r.check(await r.mint(keyA)), 503, 'authentication unavailable'), body);
          assert.equal(r.jwks.status().lastFetchOk, true);
          // Published again: accepted after the next refetch.
          server.publish([keyA]);
          r.clock.advance(61 * S);
          assert.equal(await r.check(await r.mint(keyA)), 'sub-of-kid-a');
        } finally {
          await server.stop();
        }
      }
    });

    it('counts a key that verifies none of JWT_ALGORITHMS as no key: 503 and readiness down, not 401 for every token', async () => {
      const ec = await makeKey('kid-ec', 'ES256');
      const short = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
      const unfit = [
        { ...keyA.jwk, alg: 'RS512' }, // named for an algorithm JWT_ALGORITHMS (RS256) does not allow
        { ...ec.jwk, kid: 'kid-a', alg: 'RS256' }, // an EC key named RS256
        { ...short, kid: 'kid-a', use: 'sig' }, // an RSA key under 2048 bits
      ];
      for (const key of unfit) {
        const server = await JwksServer.start([]);
        try {
          server.answerRaw(200, JSON.stringify({ keys: [key] }));
          const r = rig(server.url);
          await r.jwks.warmUp();
          assert.equal(r.jwks.status().keyCount, 0, JSON.stringify(key));
          assert.equal(r.jwks.canVerify(), false);
          assert.ok(isRefusal(await r.check(await r.mint(keyA)), 503, 'authentication unavailable'));
        } finally {
          await server.stop();
        }
      }
    });

    it('lets no unfit entry shadow a fit one with the same kid', async () => {
      const server = await JwksServer.start([]);
      try {
        server.answerRaw(200, JSON.stringify({ keys: [{ ...keyA.jwk, alg: 'RS512' }, keyA.jwk, { ...keyB.jwk, alg: 'RS512' }] }));
        const r = rig(server.url, { JWKS_REFETCH_COOLDOWN_S: '0' });
        await r.jwks.warmUp();
        assert.equal(r.jwks.status().keyCount, 1);
        assert.equal(await r.check(await r.mint(keyA)), 'sub-of-kid-a');
        // A kid the JWKS holds only unfit is known, not unknown: its reason, and no refetch for it.
        assert.ok(isRefusal(await r.check(await r.mint(keyB)), 401, 'algorithm not allowed'));
        assert.equal(r.jwks.status().fetchCount, 1);
      } finally {
        await server.stop();
      }
    });

    it('writes one bounded line per fetch however many entries it skips, and each refetch a client provokes writes no more', async () => {
      const junk = Array.from({ length: 20_000 }, () => ({}));
      const server = await JwksServer.start([]);
      const lines: string[] = [];
      const keep = (m: unknown): void => void lines.push(String(m));
      Logger.overrideLogger({ log: keep, warn: keep, error: keep, debug() {}, verbose() {} });
      try {
        server.answerRaw(200, JSON.stringify({ keys: [...junk, keyA.jwk] }));
        const r = rig(server.url, { JWKS_REFETCH_COOLDOWN_S: '10' });
        await r.jwks.warmUp();
        assert.equal(await r.check(await r.mint(keyA)), 'sub-of-kid-a');
        // A client naming an unknown kid, once a cooldown, makes the proxy fetch the same JWKS again.
        r.clock.advance(11 * S);
        assert.ok(isRefusal(await r.check(await r.mint(keyB)), 401, 'unknown key'));
        assert.equal(server.requests, 2);
        const skipped = lines.filter((l) => l.includes('skipped'));
        assert.equal(skipped.length, 2, `${lines.length} lines logged`);
        for (const l of skipped) {
          assert.match(l, /^JWKS: 20000 key\(s\) skipped: #0: no usable kid; .*; and 19990 more$/);
          assert.ok(l.length < 1000, `${l.length} characters`);
        }
      } finally {
        Logger.overrideLogger(quiet);
        await server.stop();
      }
    });

    it('answers 503 when the first JWKS response is garbage', async () => {
      const server = await JwksServer.start([]);
      try {
        server.answerRaw(200, '{"keys":[]}');
        const r = rig(server.url);
        assert.ok(isRefusal(await r.check(await r.mint(keyA)), 503, 'authentication unavailable'));
      } finally {
        await server.stop();
      }
    });
  });

  describe('readCappedText', () => {
    const streamOf = (bytes: number): ReadableStream<Uint8Array> =>
      new ReadableStream({
        start(c) {
          for (let left = bytes; left > 0; left -= 65536) c.enqueue(new Uint8Array(Math.min(65536, left)).fill(0x20));
          c.close();
        },
      });

    it('reads up to the bound, and refuses a body over it whether its length is declared or not', async () => {
      assert.equal((await readCappedText(new Response(streamOf(1000)), 1000)).length, 1000);
      await assert.rejects(readCappedText(new Response(streamOf(1001)), 1000), /larger than 1000 bytes/);
      // Declared too large: refused before reading (the body here is small, so only the header can tell).
      await assert.rejects(readCappedText(new Response('{}', { headers: { 'content-length': '1001' } }), 1000), /larger than 1000 bytes/);
    });
  });

  describe('token carriers', () => {
    it('takes an Authorization header only when it is exactly "Bearer <token>"', () => {
      const req = (authorization: string): IncomingMessage => ({ headers: { authorization } }) as unknown as IncomingMessage;
      const none = new URLSearchParams();
      assert.equal(extractToken(req('Bearer abc'), none)?.token, 'abc');
      assert.equal(extractToken(req('bearer\tabc '), none)?.token, 'abc');
      for (const value of ['Bearer abc def', 'XBearer abc', 'Basic Bearer abc', 'Bearer', 'Bearerabc']) {
        assert.equal(extractToken(req(value), none), null, value);
      }
    });
  });

  describe('parseJwks', () => {
    it('keeps public signing keys and skips the rest', () => {
      const good = keyA.jwk;
      const { keys, skipped } = parseJwks(
        JSON.stringify({
          keys: [
            good,
            { ...keyB.jwk, d: 'private' },
            { kty: 'oct', kid: 'hmac', k: 'c2VjcmV0' },
            { ...keyB.jwk, kid: 'enc', use: 'enc' },
            { ...keyB.jwk, kid: undefined },
            { ...good },
            'junk',
          ],
        }),
      );
      assert.deepEqual(
        keys.map((k) => k.kid),
        ['kid-a'],
      );
      assert.equal(skipped.length, 6);
      assert.ok(skipped.every((s) => !s.includes('private"') && !s.includes(String(keyB.jwk.n))));
    });

    it('skips a key whose key_ops lacks verify, and a kid longer than 256 characters', () => {
      const { keys, skipped } = parseJwks(
        JSON.stringify({
          keys: [
            { ...keyA.jwk, kid: 'ops-enc', key_ops: ['encrypt'] },
            { ...keyA.jwk, kid: 'ops-verify', key_ops: ['verify'] },
            { ...keyA.jwk, kid: 'k'.repeat(257) },
            { ...keyA.jwk, kid: 'k'.repeat(256) },
          ],
        }),
      );
      assert.deepEqual(
        keys.map((k) => k.kid),
        ['ops-verify', 'k'.repeat(256)],
      );
      assert.equal(skipped.length, 2);
    });

    it('throws on documents that are not a JWKS', () => {
      for (const body of ['', 'null', '[]', '{}', '{"keys":{}}']) {
        assert.throws(() => parseJwks(body), Error, body);
      }
    });

    it('returns no keys, without throwing, for a JWKS with none usable', () => {
      assert.deepEqual(parseJwks('{"keys":[]}'), { keys: [], skipped: [] });
      assert.equal(parseJwks(JSON.stringify({ keys: [{ kty: 'oct', kid: 'k', k: 'c2VjcmV0' }] })).keys.length, 0);
    });
  });
});
