import type { INestApplication } from '@nestjs/common';
import { PINO, type Pino } from '../logging/logging.module.js';
import { signalExitCode } from '../common/signal-exit-code.js';
import { StopSignalJudge } from '../common/stop-signal-judge.js';

/** Time after `SHUTDOWN_TIMEOUT_MS` for the close frames to flush and the servers to close. */
export const SHUTDOWN_GRACE_MS = 5_000;

/**
 * The process's shutdown, for every entry point (wsproxy's `main.ts`, a team's
 * own): on SIGTERM or SIGINT, drain and close the app, then exit 0 (1 if the
 * close fails). Exits by `shutdownTimeoutMs + SHUTDOWN_GRACE_MS` in any case,
 * since a peer that never answers its close frame would otherwise hold the
 * server's close for ws's own 30 s, past any orchestrator's grace period.
 * A second SIGTERM or SIGINT while it drains (Ctrl-C twice, an operator's
 * second `docker stop`/`kill`) exits at once with 128 + the signal's number,
 * live connections cut: the operator asked not to wait for the drain. The
 * same signal again within `REPEATED_SIGNAL_WINDOW_MS` (`StopSignalJudge`) is the
 * first one delivered twice (npm forwarding a terminal's Ctrl-C), not a second stop.
 */
export function exitOnSignals(app: INestApplication, shutdownTimeoutMs: number): void {
  const logger = app.get<Pino>(PINO);
  const judge = new StopSignalJudge();
  const stop = (signal: NodeJS.Signals): void => {
    const kind = judge.judge(signal);
    if (kind === 'repeat') {
      logger.info({ event: 'shutdown_signal_repeated', signal }, `${signal} again right after the first: one stop delivered twice, still draining`);
      return;
    }
    if (kind === 'second') {
      const code = signalExitCode(signal);
      logger.warn({ event: 'shutdown_forced', signal, code }, `second ${signal} while draining: exiting now with connections still open`);
      process.exit(code);
    }
    logger.info({ event: 'shutdown', signal }, 'shutting down');
    const deadline = setTimeout(() => {
      logger.warn({ event: 'shutdown_deadline' }, 'shutdown deadline passed: exiting with connections still open');
      process.exit(0);
    }, shutdownTimeoutMs + SHUTDOWN_GRACE_MS);
    deadline.unref();
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ event: 'shutdown_failed', err: err instanceof Error ? err.message : String(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
