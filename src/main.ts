#!/usr/bin/env node
import 'reflect-metadata';
import { ConfigError, parseConfig, type WsproxyConfig } from './config/config.schema.js';
import { startWsproxy } from './bootstrap.js';

async function main(): Promise<void> {
  let config: WsproxyConfig;
  try {
    config = parseConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(err.message + '\n');
      process.exit(1);
    }
    throw err;
  }
  const { app, port } = await startWsproxy({ config });
  const logger = app.get((await import('./logging/logging.module.js')).PINO);
  logger.info({ event: 'listening', port }, `wsproxy listening on port ${port}`);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ event: 'shutdown', signal }, 'shutting down');
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ event: 'shutdown_failed', err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`wsproxy failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
