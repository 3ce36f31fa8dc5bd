#!/usr/bin/env node
import 'reflect-metadata';
import { ConfigError, parseConfig, type WsproxyConfig } from './config/config.schema.js';
import { startWsproxy } from './bootstrap.js';

/** Time after `SHUTDOWN_TIMEOUT_MS` for the close frames to flush and the servers to close. */
const SHUTDOWN_GRACE_MS = 5_000;

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
    // A peer that never answers its close frame holds the server's close for
    // ws's own 30 s close timeout: past the drain's deadline and the close
    // frames' flush, the process ends anyway.
    const deadline = setTimeout(() => {
      logger.warn({ event: 'shutdown_deadline' }, 'shutdown deadline passed: exiting with connections still open');
      process.exit(0);
    }, config.shutdownTimeoutMs + SHUTDOWN_GRACE_MS);
    deadline.unref();
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
