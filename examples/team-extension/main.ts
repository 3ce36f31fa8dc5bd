#!/usr/bin/env node
/**
 * A team's entry point: wsproxy's own startup with one more module. Build it
 * alongside the service and run it instead of dist/main.js.
 */
import 'reflect-metadata';
import { ConfigError, parseConfig } from '../../src/config/config.schema.js';
import { startWsproxy } from '../../src/bootstrap.js';
import { TeamExtensionModule } from './team-extension.module.js';

try {
  const config = parseConfig(process.env);
  const { app, port } = await startWsproxy({
    config,
    imports: [TeamExtensionModule.forRoot({ deniedUsers: (process.env.DENIED_USERS ?? '').split(',').filter(Boolean) })],
  });
  process.stdout.write(JSON.stringify({ event: 'listening', port }) + '\n');
  // Same shutdown as wsproxy's main: drain on SIGTERM/SIGINT, then exit 0.
  const stop = (): void => void app.close().then(() => process.exit(0), () => process.exit(1));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} catch (err) {
  process.stderr.write((err instanceof ConfigError ? err.message : `failed to start: ${String(err)}`) + '\n');
  process.exit(1);
}
