#!/usr/bin/env node
import type { WsproxyConfig } from './config/config.schema.js';
import type { Pino } from './logging/logging.module.js';
import { holdEarlySignals } from './lifecycle/early-signals.js';

// SIGTERM and SIGINT are taken from the first moment, before the application modules are even loaded (a PID 1
// drops a signal it has no handler for), and acted on once the app is up.
const releaseEarlySignals = holdEarlySignals();

async function main(): Promise<void> {
  // Loaded after the handlers above are in place (static imports would all load first).
  await import('reflect-metadata');
  const { ConfigError, parseConfig } = await import('./config/config.schema.js');
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
  const [{ startWsproxy }, { unknownVariableWarnings }, { exitOnSignals }, { PINO }] = await Promise.all([
    import('./bootstrap.js'),
    import('./config/config-warnings.js'),
    import('./lifecycle/exit-on-signals.js'),
    import('./logging/logging.module.js'),
  ]);
  const { app, port } = await startWsproxy({ config });
  const logger = app.get<Pino>(PINO);
  for (const warning of unknownVariableWarnings(process.env)) logger.warn({ event: 'config_warning' }, warning);
  logger.info({ event: 'listening', port }, `wsproxy listening on port ${port}`);
  exitOnSignals(app, config.shutdownTimeoutMs);
  releaseEarlySignals();
}

main().catch((err: unknown) => {
  process.stderr.write(`wsproxy failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
