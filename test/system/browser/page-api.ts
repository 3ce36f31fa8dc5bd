/**
 * Typed calls into the test page (page/wsproxy-page.js) through Playwright:
 * each call runs the page's own WebSocket code and returns what the page saw.
 */
import type { Page } from 'playwright-core';

export interface CloseInfo {
  readonly code: number;
  readonly reason: string;
  readonly wasClean?: boolean;
}

export interface BannerResult {
  readonly banner: string;
  /** `Object.prototype.toString` of every message's data, e.g. `[object ArrayBuffer]`. */
  readonly messageTypes: string[];
  readonly close: CloseInfo;
}

export interface EchoResult {
  readonly sent: number;
  readonly received: number;
  readonly frames: number;
  readonly nonArrayBuffer: number;
  readonly sentSha256: string;
  readonly receivedSha256: string;
  readonly close: CloseInfo;
}

export interface RefusalSeen {
  readonly opened: boolean;
  readonly error: boolean;
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
}

export interface TunnelReady {
  readonly type: 'tunnel_ready';
  readonly tunnelUrl: string;
  readonly rawPort: number;
}

export interface TunnelStats {
  readonly textFrames: number;
  readonly binaryControlFrames: number;
  readonly dataFrames: number;
  readonly nonArrayBufferBinary: number;
  readonly controlTypes: Record<string, number>;
  readonly httpRequests: number;
  readonly tcpOpened: number;
  readonly tcpClosedByProxy: number;
  readonly tcpClosedByPage: number;
  readonly tcpBytesEchoed: number;
  readonly openConns: number;
  readonly closed: CloseInfo | null;
}

/** What `page/wsproxy-page.js` puts on `window.wsproxyPage`. */
export interface PageApi {
  readBanner(url: string): Promise<BannerResult>;
  echo(url: string, total: number, chunk?: number): Promise<EchoResult>;
  expectClose(label: string, url: string): Promise<RefusalSeen>;
  hold(url: string): Promise<number>;
  release(id: number): Promise<CloseInfo>;
  startTunnel(url: string, control: 'text' | 'binary'): Promise<{ id: number; ready: TunnelReady }>;
  tunnelStats(id: number): TunnelStats;
  closeTunnelConnections(id: number): TunnelStats;
  stopTunnel(id: number): Promise<{ close: CloseInfo; stats: TunnelStats }>;
  note(step: string, status: 'ok' | 'refused' | 'fail', detail: string): void;
}

type Fn = (...args: never[]) => unknown;

/** Calls `window.wsproxyPage[name](...args)` in the page and returns its (awaited) result. */
export function callPage<K extends keyof PageApi>(
  page: Page,
  name: K,
  ...args: PageApi[K] extends Fn ? Parameters<PageApi[K]> : never
): Promise<Awaited<ReturnType<PageApi[K]>>> {
  return page.evaluate(
    ([fn, fnArgs]) => {
      const api = (window as unknown as { wsproxyPage: Record<string, (...a: unknown[]) => unknown> }).wsproxyPage;
      return api[fn](...fnArgs);
    },
    [name, args as unknown[]] as const,
  ) as Promise<Awaited<ReturnType<PageApi[K]>>>;
}

/** Opens the test page at `origin` and waits until its script has loaded. */
export async function openTestPage(page: Page, origin: string): Promise<void> {
  await page.goto(`${origin}/`, { waitUntil: 'load', timeout: 30_000 });
  await page.waitForFunction(() => (window as unknown as { wsproxyPageReady?: boolean }).wsproxyPageReady === true, undefined, {
    timeout: 30_000,
  });
}
