#!/usr/bin/env node
import type { WsproxyConfig } from './config/config.schema.js';
import type { Pino } from './logging/logging.module.js';

// SIGTERM and SIGINT are taken from the first moment, before the application modules are even loaded. In the
// image node is PID 1, and a PID 1 has no default signal action: a signal that came before a handler was
// installed would be dropped, and a stop during startup (a rollout rolled back, a scale-down, `docker stop`
// right after `up`) would be lost until the orchestrator's SIGKILL. Held here, it is acted on once the app is
// up: drained (nothing is live yet) and closed, exit 0.
let earlySignal: NodeJS.Signals | null = null;
const holdSignal = (signal: NodeJS.Signals): void => {
  earlySignal ??= signal;
};
process.on('SIGTERM', holdSignal);
process.on('SIGINT', holdSignal);

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
  process.off('SIGTERM', holdSignal);
  process.off('SIGINT', holdSignal);
  // A signal that came during startup: the real handlers are in place now.
  if (earlySignal !== null) process.kill(process.pid, earlySignal);
}

main().catch((err: unknown) => {
  process.stderr.write(`wsproxy failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
