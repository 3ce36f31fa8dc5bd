#!/usr/bin/env node
import 'reflect-metadata';
import { ConfigError, parseConfig, type WsproxyConfig } from './config/config.schema.js';
import { startWsproxy } from './bootstrap.js';
import { unknownVariableWarnings } from './config/config-warnings.js';
import { exitOnSignals } from './lifecycle/exit-on-signals.js';
import { PINO, type Pino } from './logging/logging.module.js';

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
  const logger = app.get<Pino>(PINO);
  for (const warning of unknownVariableWarnings(process.env)) logger.warn({ event: 'config_warning' }, warning);
  logger.info({ event: 'listening', port }, `wsproxy listening on port ${port}`);
  exitOnSignals(app, config.shutdownTimeoutMs);
}

main().catch((err: unknown) => {
  process.stderr.write(`wsproxy failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
