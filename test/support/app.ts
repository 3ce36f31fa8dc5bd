import type { NestExpressApplication } from '@nestjs/platform-express';
import type { AppModuleOptions } from '../../src/app.module.js';
import { parseConfig } from '../../src/config/config.schema.js';
import { startWsproxy } from '../../src/bootstrap.js';
import { untilClusterWarmedUp } from './cluster-warmup.js';

/** A wsproxy booted in this process on a free loopback port. */
export interface TestApp {
  readonly app: NestExpressApplication;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly baseUrl: string;
  /** `ws://127.0.0.1:<port>` */
  readonly wsUrl: string;
  close(): Promise<void>;
}

/**
 * Defaults for tests: quiet logs, loopback targets allowed (the default
 * blocklist refuses 127/8; tests that check the blocklist pass their own env).
 */
export const TEST_ENV: Record<string, string> = {
  PORT: '0',
  BIND_HOST: '127.0.0.1',
  LOG_LEVEL: 'silent',
  BLOCKED_TARGETS: '10.0.0.0/8',
  TUNNEL_TCP_ENABLED: 'false',
};

/**
 * Boots the real application (same bootstrap as production) with `TEST_ENV`
 * overridden by `env`; a cluster replica once the cluster state has warmed up.
 * `imports`: modules added to the app, as a deployment adds its own (e.g. `clockModule`).
 */
export async function startApp(env: Record<string, string> = {}, imports?: AppModuleOptions['imports']): Promise<TestApp> {
  const config = parseConfig({ ...TEST_ENV, ...env });
  const { app, port } = await startWsproxy({ config, imports });
  if (config.redisUrl !== '') await untilClusterWarmedUp(`http://127.0.0.1:${port}`);
  let closed = false;
  return {
    app,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    close: async () => {
      if (closed) return;
      closed = true;
      await app.close();
    },
  };
}
