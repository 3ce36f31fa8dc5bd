/**
 * Debian's Chromium, headless, driven by playwright-core. Never a downloaded
 * browser: the tests fail (they do not skip) when /usr/bin/chromium is missing.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** Debian's `chromium` package. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Flags for Chromium as root inside a sandboxed CI container. The profile is a
 * fresh directory per launch (Playwright passes it as `--user-data-dir`).
 * The last two keep every request on loopback: no proxy, and no name resolves
 * (the tests use IP literals only).
 */
export const CHROMIUM_FLAGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-proxy-server',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
];

/** Throws one clear line when Chromium is not installed (CI installs it). */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is required for the browser system tests and ${CHROMIUM} is missing. ` +
        '.ci/run installs it: apt-get install -y chromium (Debian package; never a downloaded browser)',
    );
  }
}

/** A running headless Chromium with its own throwaway profile. */
export interface TestBrowser {
  readonly context: BrowserContext;
  /** The fresh profile directory. */
  readonly userDataDir: string;
  /** Uncaught exceptions thrown by any page, for the test to assert on. */
  readonly pageErrors: string[];
  newPage(): Promise<Page>;
  /** Closes the browser and removes its profile. */
  close(): Promise<void>;
}

/** Launches Debian's Chromium headless with `CHROMIUM_FLAGS` and a fresh profile. */
export async function launchChromium(): Promise<TestBrowser> {
  requireChromium();
  const userDataDir = await mkdtemp(join(tmpdir(), 'wsproxy-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_FLAGS],
      viewport: { width: 1280, height: 900 },
      timeout: 60_000,
    });
  } catch (err) {
    await rm(userDataDir, { recursive: true, force: true });
    throw err;
  }
  const pageErrors: string[] = [];
  const watch = (page: Page): void => {
    page.on('pageerror', (err) => pageErrors.push(`${page.url()}: ${err.message}`));
  };
  context.pages().forEach(watch);
  context.on('page', watch);
  return {
    context,
    userDataDir,
    pageErrors,
    newPage: () => context.newPage(),
    close: async () => {
      await context.close().catch(() => undefined);
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}
