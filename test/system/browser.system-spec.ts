/**
 * The service as a browser uses it: Debian's Chromium, headless, runs a test
 * page (test/system/browser/page/) that opens `/relay` and `/tunnel` with the
 * browser's own WebSocket — its own Origin header, masking, binaryType, the
 * opaque failure of a refused handshake, close codes. The page is served from
 * a loopback origin listed in ALLOWED_ORIGINS and, for the refusal, from one
 * that is not. Every byte stays on 127.0.0.1.
 *
 * Needs /usr/bin/chromium (Debian package `chromium`) and OpenSSH's sshd;
 * fails, never skips, when either is missing. A screenshot of the page's final
 * state is written to test-artifacts/.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { LimitsService } from '../../src/limits/limits.service.js';
import { startApp, type TestApp } from '../support/app.js';
import { JwksServer, makeKey, mintToken, type TestKey } from '../support/jwks.js';
import { startSshd, type TestSshd } from '../support/sshd.js';
import { startTarget, type TestTarget } from '../support/targets.js';
import { TUNNEL_DOMAIN, httpTo, portIsFree, tunnelEnv, waitFor } from '../support/tunnel.js';
import { launchChromium, requireChromium, type TestBrowser } from './browser/chromium.js';
import { callPage, openTestPage } from './browser/page-api.js';
import { startPageServer, type PageServer } from './browser/page-server.js';
import { REPO_ROOT } from '../support/process.js';

const PAGE_DIR = join(REPO_ROOT, 'test/system/browser/page');
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts');
const SCREENSHOT = join(ARTIFACTS, 'browser-final.png');
const OTHER_ORIGIN_SCREENSHOT = join(ARTIFACTS, 'browser-other-origin.png');

const MiB = 1024 * 1024;
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** What an echo target received on one connection, hashed on the target's side. */
interface Received {
  readonly bytes: number;
  readonly sha256: string;
}

/** Echoes every byte back and records a hash of what each connection sent it. */
async function hashingEchoTarget(): Promise<TestTarget & { readonly received: Received[]; dials: number }> {
  const received: Received[] = [];
  const state = { dials: 0 };
  const target = await startTarget((s) => {
    state.dials++;
    const hash = createHash('sha256');
    let bytes = 0;
    s.on('data', (c: Buffer) => {
      hash.update(c);
      bytes += c.length;
    });
    s.on('end', () => received.push({ bytes, sha256: hash.digest('hex') }));
    s.pipe(s);
  });
  return Object.assign(target, {
    received,
    get dials() {
      return state.dials;
    },
  });
}

/** Reads exactly `n` bytes from `sock`. */
function readExactly(sock: Socket, n: number, timeoutMs = 30_000): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => finish(new Error(`read ${got} of ${n} bytes within ${timeoutMs} ms`)), timeoutMs);
    const onData = (c: Buffer): void => {
      chunks.push(c);
      got += c.length;
      if (got >= n) finish();
    };
    const onClose = (): void => finish(new Error(`socket closed after ${got} of ${n} bytes`));
    const finish = (err?: Error): void => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('close', onClose);
      if (err) reject(err);
      else if (got > n) reject(new Error(`read ${got} bytes, expected ${n}`));
      else resolvePromise(Buffer.concat(chunks));
    };
    sock.on('data', onData);
    sock.once('close', onClose);
  });
}

function tcpConnect(port: number): Promise<Socket> {
  return new Promise((resolvePromise, reject) => {
    const sock = connect({ host: '127.0.0.1', port }, () => {
      sock.off('error', reject);
      resolvePromise(sock);
    });
    sock.once('error', reject);
  });
}

function socketClosed(sock: Socket, timeoutMs = 10_000): Promise<void> {
  if (sock.destroyed) return Promise.resolve();
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error('TCP connection was not closed')), timeoutMs);
    sock.once('close', () => {
      clearTimeout(timer);
      resolvePromise();
    });
    sock.resume();
  });
}

async function slotsInUse(app: TestApp): Promise<number> {
  const snap = await app.app.get(LimitsService).snapshot();
  return Object.values(snap.perIp).reduce((a, b) => a + b, 0);
}

// Reported as its own failure (not only as cancelled tests) when Chromium is missing.
it('has Debian Chromium at /usr/bin/chromium', () => requireChromium());

describe('browser: headless Chromium against the real service', () => {
  let browser: TestBrowser | undefined;
  let page: Page | undefined;
  let pageServer: PageServer;
  let otherServer: PageServer;
  let sshd: TestSshd;
  let echo: Awaited<ReturnType<typeof hashingEchoTarget>>;
  let app: TestApp;
  let portMin: number;
  let portMax: number;

  before(async () => {
    requireChromium();
    await mkdir(ARTIFACTS, { recursive: true });
    pageServer = await startPageServer(PAGE_DIR);
    otherServer = await startPageServer(PAGE_DIR);
    sshd = await startSshd();
    echo = await hashingEchoTarget();
    const env = await tunnelEnv(
      {
        ALLOWED_ORIGINS: pageServer.origin,
        // 127.0.0.2 only: the echo target and sshd on 127.0.0.1 stay reachable.
        BLOCKED_TARGETS: '127.0.0.2/32',
      },
      4,
    );
    portMin = Number(env.TUNNEL_PORT_MIN);
    portMax = Number(env.TUNNEL_PORT_MAX);
    app = await startApp(env);
    browser = await launchChromium();
    page = browser.context.pages()[0] ?? (await browser.newPage());
    await openTestPage(page, pageServer.origin);
  });

  after(async () => {
    await browser?.close();
    await app?.close();
    await echo?.close();
    await sshd?.stop();
    await pageServer?.close();
    await otherServer?.close();
  });

  const relayUrl = (host: string, port: number): string => `${app.wsUrl}/relay?host=${host}&port=${port}`;

  describe('relay', () => {
    it('reads the SSH-2.0-OpenSSH banner of a loopback sshd through /relay (binaryType arraybuffer)', async () => {
      const r = await callPage(page!, 'readBanner', relayUrl('127.0.0.1', sshd.port));
      assert.match(r.banner, /^SSH-2\.0-OpenSSH_\S+/);
      assert.deepEqual(r.messageTypes, ['[object ArrayBuffer]']);
      assert.equal(r.close.code, 1000);
    });

    it('sends and receives 1 MiB through an echo target byte-exactly', async () => {
      const before = echo.received.length;
      const r = await callPage(page!, 'echo', relayUrl('127.0.0.1', echo.port), MiB, 64 * 1024);
      assert.equal(r.received, MiB);
      assert.equal(r.nonArrayBuffer, 0);
      assert.match(r.sentSha256, /^[0-9a-f]{64}$/);
      assert.equal(r.receivedSha256, r.sentSha256, 'what came back differs from what the page sent');
      assert.equal(r.close.code, 1000);
      // The target saw exactly the page's bytes too (not just a consistent round trip).
      await waitFor(() => echo.received.length > before, 5000, 'the echo target to see the end of the stream');
      assert.deepEqual(echo.received[before], { bytes: MiB, sha256: r.sentSha256 });
    });
  });

  describe('admission refusals the page can see', () => {
    it('refuses a page from an origin outside ALLOWED_ORIGINS; with errors=close it sees 4403 and the reason', async () => {
      const other = await browser!.newPage();
      try {
        await openTestPage(other, otherServer.origin);
        const dials = echo.dials;
        const url = relayUrl('127.0.0.1', echo.port);
        // A refused handshake is opaque to a browser: an error event and 1006, nothing else.
        const plain = await callPage(other, 'expectClose', 'origin not listed', url);
        assert.deepEqual(plain, { opened: false, error: true, code: 1006, reason: '', wasClean: false });
        const withClose = await callPage(other, 'expectClose', 'origin not listed, errors=close', `${url}&errors=close`);
        assert.equal(withClose.opened, true);
        assert.equal(withClose.code, 4403);
        assert.equal(withClose.reason, 'origin not allowed');
        assert.equal(echo.dials, dials, 'a refused origin must not dial the target');
        // /tunnel goes through the same origin check.
        const tunnel = await callPage(other, 'expectClose', 'tunnel, origin not listed, errors=close', `${app.wsUrl}/tunnel?errors=close`);
        assert.deepEqual([tunnel.opened, tunnel.code, tunnel.reason], [true, 4403, 'origin not allowed']);
        await other.screenshot({ path: OTHER_ORIGIN_SCREENSHOT, fullPage: true }).catch(() => undefined);
      } finally {
        await other.close();
      }
      // The same request from the listed origin goes through.
      const id = await callPage(page!, 'hold', relayUrl('127.0.0.1', echo.port));
      assert.equal((await callPage(page!, 'release', id)).code, 1000);
    });

    it('refuses a blocked target with 4403 (errors=close) and an opaque failure without it', async () => {
      const url = relayUrl('127.0.0.2', echo.port);
      const plain = await callPage(page!, 'expectClose', 'blocked target', url);
      assert.equal(plain.opened, false);
      assert.equal(plain.code, 1006);
      const r = await callPage(page!, 'expectClose', 'blocked target, errors=close', `${url}&errors=close`);
      assert.equal(r.opened, true);
      assert.equal(r.code, 4403);
      assert.equal(r.reason, 'target blocked');
    });

    describe('with authentication on (loopback JWKS)', () => {
      let jwks: JwksServer;
      let key: TestKey;
      let authApp: TestApp;

      before(async () => {
        key = await makeKey();
        jwks = await JwksServer.start([key]);
        authApp = await startApp({ CLERK_JWKS_URL: jwks.url, ALLOWED_ORIGINS: pageServer.origin });
      });
      after(async () => {
        await authApp?.close();
        await jwks?.stop();
      });

      it('refuses an expired token with 4401 and the reason; a valid one relays', async () => {
        const url = (token: string): string => `${authApp.wsUrl}/relay?host=127.0.0.1&port=${echo.port}&token=${encodeURIComponent(token)}`;
        const now = Math.floor(Date.now() / 1000);
        const expired = await mintToken(key, {}, { now: now - 3600, expiresIn: 60 });
        const plain = await callPage(page!, 'expectClose', 'expired token', url(expired));
        assert.equal(plain.opened, false);
        assert.equal(plain.code, 1006);
        const r = await callPage(page!, 'expectClose', 'expired token, errors=close', `${url(expired)}&errors=close`);
        assert.equal(r.opened, true);
        assert.equal(r.code, 4401);
        assert.equal(r.reason, 'token expired');

        const valid = await mintToken(key);
        const e = await callPage(page!, 'echo', url(valid), 64 * 1024, 16 * 1024);
        assert.equal(e.receivedSha256, e.sentSha256);
      });
    });

    describe('with MAX_CONNS_PER_IP=1', () => {
      let limitApp: TestApp;

      before(async () => {
        limitApp = await startApp({ MAX_CONNS_PER_IP: '1', ALLOWED_ORIGINS: pageServer.origin });
      });
      after(async () => {
        await limitApp?.close();
      });

      it('refuses a second relay from the same IP with 4429 while one is open, and admits it once that one ends', async () => {
        const url = `${limitApp.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`;
        const held = await callPage(page!, 'hold', url);
        const r = await callPage(page!, 'expectClose', 'per-IP limit, errors=close', `${url}&errors=close`);
        assert.equal(r.opened, true);
        assert.equal(r.code, 4429);
        assert.equal(r.reason, 'too many connections from this IP');
        await callPage(page!, 'release', held);
        await waitFor(async () => (await slotsInUse(limitApp)) === 0, 5000, 'the held relay to release its slot');
        const again = await callPage(page!, 'hold', url);
        await callPage(page!, 'release', again);
      });
    });
  });

  describe('tunnel: a JavaScript tunnel client in the page', () => {
    for (const control of ['text', 'binary'] as const) {
      it(`registers on /tunnel, answers HTTP on its subdomain and echoes raw TCP (${control} control frames)`, async () => {
        const url = `${app.wsUrl}/tunnel${control === 'binary' ? '?control=binary' : ''}`;
        const { id, ready } = await callPage(page!, 'startTunnel', url, control);
        assert.equal(ready.type, 'tunnel_ready');
        assert.match(ready.tunnelUrl, new RegExp(`^http://[0-9a-f]{16}\\.${TUNNEL_DOMAIN.replace('.', '\\.')}$`));
        assert.ok(ready.rawPort >= portMin && ready.rawPort <= portMax, `rawPort ${ready.rawPort} in ${portMin}-${portMax}`);
        const host = new URL(ready.tunnelUrl).hostname;

        // HTTP to the subdomain, sent by the test with the Host header, answered by the page.
        const get = await httpTo(app.port, host, { path: '/plain?q=1', headers: { cookie: 'secret=1', 'x-test': 'browser' } });
        assert.equal(get.status, 200);
        assert.equal(get.headers['x-served-by'], 'wsproxy-browser-page');
        assert.equal(get.headers['set-cookie'], undefined, 'Set-Cookie from the tunnel client must be dropped');
        const seenGet = JSON.parse(get.body.toString('utf8'));
        assert.equal(seenGet.servedBy, 'chromium-page');
        assert.equal(seenGet.control, control);
        assert.match(seenGet.id, /^[0-9a-f]{12}$/);
        assert.equal(seenGet.method, 'GET');
        assert.equal(seenGet.path, '/plain?q=1');
        assert.equal(seenGet.headers['x-test'], 'browser');
        assert.equal(seenGet.headers['x-forwarded-host'], host);
        assert.equal(seenGet.headers.cookie, undefined, 'Cookie must not reach the tunnel client');
        assert.equal(seenGet.bodyBytes, 0);

        const upload = randomBytes(256 * 1024);
        const post = await httpTo(app.port, host, { method: 'POST', path: '/upload', body: upload, headers: { 'content-type': 'application/octet-stream' } });
        assert.equal(post.status, 200);
        const seenPost = JSON.parse(post.body.toString('utf8'));
        assert.equal(seenPost.method, 'POST');
        assert.equal(seenPost.bodyEncoding, 'base64');
        assert.equal(seenPost.bodyBytes, upload.length);
        assert.equal(seenPost.bodySha256, sha256(upload), 'the page hashed a different body');

        // Raw TCP on the tunnel's port, echoed by the page; the page ends it.
        const payload = randomBytes(MiB);
        const sock = await tcpConnect(ready.rawPort);
        const echoed = readExactly(sock, payload.length);
        sock.write(payload);
        assert.equal(sha256(await echoed), sha256(payload), 'raw TCP echo through the page differs');
        const closedByPage = socketClosed(sock);
        await callPage(page!, 'closeTunnelConnections', id);
        await closedByPage;

        // A second connection, ended by the test: the page sees tcp_close.
        const sock2 = await tcpConnect(ready.rawPort);
        const hello = readExactly(sock2, 5);
        sock2.write('hello');
        assert.equal((await hello).toString(), 'hello');
        sock2.end();
        await waitFor(
          async () => {
            const s = await callPage(page!, 'tunnelStats', id);
            return s.tcpClosedByProxy === 1 && s.openConns === 0;
          },
          5000,
          'the page to see tcp_close',
        );

        const { close, stats } = await callPage(page!, 'stopTunnel', id);
        assert.equal(close.code, 1000);
        const { tcp_close: tcpCloses = 0, ...others } = stats.controlTypes;
        assert.deepEqual(others, { tunnel_ready: 1, http_request: 2, tcp_open: 2 });
        assert.ok(tcpCloses >= 1, 'a tcp_close for the connection the test ended');
        assert.equal(stats.tcpBytesEchoed, payload.length + 5);
        assert.equal(stats.nonArrayBufferBinary, 0);
        assert.ok(stats.dataFrames >= 2);
        const controlFrames = Object.values(stats.controlTypes).reduce((a, b) => a + b, 0);
        if (control === 'binary') {
          assert.equal(stats.textFrames, 0, 'control=binary: the proxy must send no text frames');
          assert.equal(stats.binaryControlFrames, controlFrames);
        } else {
          assert.equal(stats.textFrames, controlFrames);
          assert.equal(stats.binaryControlFrames, 0, 'default: control messages come as text frames');
        }
        await waitFor(() => portIsFree(ready.rawPort), 5000, `port ${ready.rawPort} to be released`);
      });
    }
  });

  it('writes a screenshot of the final page state to test-artifacts/', async () => {
    assert.deepEqual(browser!.pageErrors, [], 'uncaught errors in the test page');
    await callPage(page!, 'note', 'all browser checks done', 'ok', `origin ${pageServer.origin}, Chromium ${browser!.context.browser()?.version() ?? ''}`);
    await mkdir(ARTIFACTS, { recursive: true });
    await page!.screenshot({ path: SCREENSHOT, fullPage: true });
    const png = await readFile(SCREENSHOT);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  });
});
