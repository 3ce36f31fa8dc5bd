/**
 * `ResumableRelay` in a real browser: Debian's Chromium loads the shipped ES
 * module (dist/resume/client/resumable-relay.js and the wire.js it imports)
 * as is, and moves data through the real service while a loopback middlebox
 * between the browser and the service is cut. Needs the build output and
 * /usr/bin/chromium; fails, never skips, when either is missing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { ResumeService } from '../../src/resume/resume.service.js';
import { startApp, type TestApp } from '../support/app.js';
import { startMiddlebox, type Middlebox } from '../support/middlebox.js';
import { echoTarget, type TestTarget } from '../support/targets.js';
import { launchChromium, type TestBrowser } from './browser/chromium.js';
import { startPageServer, type PageServer } from './browser/page-server.js';
import { REPO_ROOT } from '../support/process.js';

const MODULE = join(REPO_ROOT, 'dist/resume/client/resumable-relay.js');
const WIRE = join(REPO_ROOT, 'dist/resume/wire.js');
const CLOSE_CODES = join(REPO_ROOT, 'dist/common/ws-error-codes.js');

/** The page: imports the module by URL and drives one relay, exposing its progress. */
const INDEX_HTML = `<!doctype html>
<meta charset="utf-8">
<title>ResumableRelay</title>
<pre id="log"></pre>
<script type="module">
  import { ResumableRelay } from '/resumable-relay.js';
  const log = (line) => (document.getElementById('log').textContent += line + '\\n');
  window.resumeTest = {
    state: { received: 0, sent: 0, tokenCalls: 0, detaches: 0, reattaches: 0, close: null, opened: null, released: false },
    async run(url, size) {
      const st = this.state;
      const sent = new Uint8Array(size);
      crypto.getRandomValues(sent.subarray(0, 65536));
      for (let off = 65536; off < size; off += 65536) sent.set(sent.subarray(0, Math.min(65536, size - off)), off);
      const received = new Uint8Array(size);
      const relay = new ResumableRelay({ url, initialBackoffMs: 50, token: async () => { st.tokenCalls++; return null; } });
      this.relay = relay;
      relay.on('data', (d) => { received.set(d, st.received); st.received += d.length; });
      relay.on('detach', (e) => { st.detaches++; log('detach ' + e.code); });
      relay.on('reattach', () => { st.reattaches++; log('reattach'); });
      relay.on('close', (e) => { st.close = { code: e.code, reason: e.reason }; log('close ' + e.code); });
      st.opened = await relay.opened;
      log('open ' + st.opened.id);
      for (let off = 0; off < size; off += 16384) {
        // The last quarter waits for the test's second cut: the relay cannot finish before it.
        if (off === size * 3 / 4) while (!st.released) await new Promise((r) => setTimeout(r, 20));
        if (!relay.send(sent.slice(off, off + 16384))) await new Promise((r) => { const f = () => { relay.off('drain', f); r(); }; relay.on('drain', f); });
        st.sent = off + 16384;
        // Paced (20 ms per 64 KiB) so the test can cut twice while data still flows.
        if (off % 65536 === 0) await new Promise((r) => setTimeout(r, 20));
      }
      while (st.received < size && !st.close) await new Promise((r) => setTimeout(r, 20));
      const hex = async (b) => [...new Uint8Array(await crypto.subtle.digest('SHA-256', b))].map((x) => x.toString(16).padStart(2, '0')).join('');
      st.sentSha = await hex(sent);
      st.receivedSha = await hex(received.subarray(0, st.received));
      relay.close();
      while (!st.close) await new Promise((r) => setTimeout(r, 20));
      return st;
    },
  };
  window.resumeReady = true;
</script>`;

describe('ResumableRelay in Chromium, across dropped connections', () => {
  let browser: TestBrowser;
  let app: TestApp;
  let echo: TestTarget;
  let box: Middlebox;
  let site: PageServer;
  let siteDir: string;
  let page: Page;

  before(async () => {
    for (const f of [MODULE, WIRE, CLOSE_CODES]) if (!existsSync(f)) throw new Error(`${f} is missing: run \`npm run build\` first (npm run test:system does)`);
    siteDir = await mkdtemp(join(tmpdir(), 'wsproxy-resume-page-'));
    // Flat: the module's "../wire.js" resolves to /wire.js next to it, and "../../common/ws-error-codes.js" to /common/.
    await copyFile(MODULE, join(siteDir, 'resumable-relay.js'));
    await copyFile(WIRE, join(siteDir, 'wire.js'));
    await mkdir(join(siteDir, 'common'));
    await copyFile(CLOSE_CODES, join(siteDir, 'common', 'ws-error-codes.js'));
    await writeFile(join(siteDir, 'index.html'), INDEX_HTML);
    site = await startPageServer(siteDir);
    echo = await echoTarget();
    app = await startApp({ ALLOWED_ORIGINS: site.origin, SHUTDOWN_TIMEOUT_MS: '0' });
    box = await startMiddlebox(app.port);
    browser = await launchChromium();
    page = await browser.newPage();
    await page.goto(`${site.origin}/`);
    await page.waitForFunction(() => (window as unknown as { resumeReady?: boolean }).resumeReady === true);
  });

  after(async () => {
    await browser?.close();
    await box?.close();
    await app?.close();
    await echo?.close();
    await site?.close();
    if (siteDir) await rm(siteDir, { recursive: true, force: true });
  });

  it('loads the shipped module and echoes 4 MiB across two cuts, every byte once, in order', async () => {
    const SIZE = 4 * 1024 * 1024;
    const url = `ws://127.0.0.1:${box.port}/relay?host=127.0.0.1&port=${echo.port}`;
    type St = { received: number; sent: number; tokenCalls: number; detaches: number; reattaches: number; close: { code: number; reason: string } | null; opened: { id: string | null; windowS: number } | null; sentSha?: string; receivedSha?: string };
    const result = page.evaluate(([u, n]) => (window as unknown as { resumeTest: { run(u: string, n: number): Promise<St> } }).resumeTest.run(u, n), [url, SIZE] as const);
    const state = (): Promise<St> => page.evaluate(() => (window as unknown as { resumeTest: { state: St } }).resumeTest.state);
    const waitState = async (cond: (s: St) => boolean, what: string): Promise<void> => {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const s = await state();
        if (cond(s)) return;
        if (s.close || Date.now() > deadline) throw new Error(`${what}: ${JSON.stringify(s)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };

    await waitState((s) => s.received >= SIZE / 4, 'a quarter echoed');
    assert.equal(box.cut(), 1);
    await waitState((s) => s.reattaches === 1 && s.received >= SIZE / 2, 'a reattach and half echoed');
    assert.equal(box.cut(), 1);
    await page.evaluate(() => void ((window as unknown as { resumeTest: { state: { released: boolean } } }).resumeTest.state.released = true));
    const end = await result;

    assert.deepEqual(end.close, { code: 1000, reason: 'client closed' });
    assert.equal(end.received, SIZE);
    assert.equal(end.receivedSha, end.sentSha, 'the echo is the bytes sent, once, in order');
    assert.equal(end.reattaches, 2);
    assert.equal(end.tokenCalls, 3, 'a token asked for on every attach');
    assert.match(String(end.opened?.id), /^[0-9a-f]{32}$/);
    assert.deepEqual(browser.pageErrors, []);
    const deadline = Date.now() + 5000;
    while (app.app.get(ResumeService).liveSessions().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(app.app.get(ResumeService).liveSessions().length, 0);
  });
});
