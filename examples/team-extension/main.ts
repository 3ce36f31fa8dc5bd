#!/usr/bin/env node
/**
 * A team's entry point: wsproxy's own startup with one more module. Build it
 * alongside the service and run it instead of dist/main.js.
 */
import { holdEarlySignals } from '../../src/lifecycle/early-signals.js';
import 'reflect-metadata';
import { ConfigError, parseConfig } from '../../src/config/config.schema.js';
import { startWsproxy } from '../../src/bootstrap.js';
import { exitOnSignals } from '../../src/lifecycle/exit-on-signals.js';
import { TeamExtensionModule } from './team-extension.module.js';

// A stop that comes while the app starts is acted on once it is up (a PID 1 would drop it).
const releaseEarlySignals = holdEarlySignals();
try {
  const config = parseConfig(process.env);
  const { app, port } = await startWsproxy({
    config,
    imports: [TeamExtensionModule.forRoot({ deniedUsers: (process.env.DENIED_USERS ?? '').split(',').filter(Boolean) })],
  });
  process.stdout.write(JSON.stringify({ event: 'listening', port }) + '\n');
  // wsproxy's own shutdown: drain on SIGTERM/SIGINT, exit 0, and exit by the drain's deadline in any case.
  exitOnSignals(app, config.shutdownTimeoutMs);
  releaseEarlySignals();
} catch (err) {
  process.stderr.write((err instanceof ConfigError ? err.message : `failed to start: ${String(err)}`) + '\n');
  process.exit(1);
}
