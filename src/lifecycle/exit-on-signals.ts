import type { INestApplication } from '@nestjs/common';
import { PINO, type Pino } from '../logging/logging.module.js';
import { signalExitCode } from '../common/signal-exit-code.js';

/** Time after `SHUTDOWN_TIMEOUT_MS` for the close frames to flush and the servers to close. */
export const SHUTDOWN_GRACE_MS = 5_000;

/**
 * A repeat of the first signal this soon after it is the same stop delivered twice, not an operator's second
 * one: a terminal's Ctrl-C signals the whole foreground process group, and a wrapper in it that forwards what it
 * gets to its child (npm's run-script whenever `sh -c` execs node, as bash, macOS's and Fedora's sh, does;
 * systemd's control-group kill of a unit run through one) delivers the SIGINT or SIGTERM again a few ms later.
 * A person's second Ctrl-C comes later than this.
 */
export const REPEATED_SIGNAL_WINDOW_MS = 250;

/**
 * The process's shutdown, for every entry point (wsproxy's `main.ts`, a team's
 * own): on SIGTERM or SIGINT, drain and close the app, then exit 0 (1 if the
 * close fails). Exits by `shutdownTimeoutMs + SHUTDOWN_GRACE_MS` in any case,
 * since a peer that never answers its close frame would otherwise hold the
 * server's close for ws's own 30 s, past any orchestrator's grace period.
 * A second SIGTERM or SIGINT while it drains (Ctrl-C twice, an operator's
 * second `docker stop`/`kill`) exits at once with 128 + the signal's number,
 * live connections cut: the operator asked not to wait for the drain. The
 * same signal again within `REPEATED_SIGNAL_WINDOW_MS` is the first one
 * delivered twice (npm forwarding a terminal's Ctrl-C), not a second stop.
 */
export function exitOnSignals(app: INestApplication, shutdownTimeoutMs: number): void {
  const logger = app.get<Pino>(PINO);
  let stopping = false;
  let first: { signal: NodeJS.Signals; at: number } | null = null;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      // The first stop delivered again (see REPEATED_SIGNAL_WINDOW_MS): the drain it started goes on.
      if (first !== null && signal === first.signal && performance.now() - first.at < REPEATED_SIGNAL_WINDOW_MS) {
        logger.info({ event: 'shutdown_signal_repeated', signal }, `${signal} again right after the first: one stop delivered twice, still draining`);
        return;
      }
      const code = signalExitCode(signal);
      logger.warn({ event: 'shutdown_forced', signal, code }, `second ${signal} while draining: exiting now with connections still open`);
      process.exit(code);
    }
    stopping = true;
    first = { signal, at: performance.now() };
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
