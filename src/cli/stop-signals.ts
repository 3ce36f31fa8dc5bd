import { signalExitCode } from '../common/signal-exit-code.js';
import { StopSignalJudge } from '../common/stop-signal-judge.js';

/**
 * The signals that ask a CLI to stop: SIGHUP (ssh sends it to its
 * ProxyCommand when it exits; a closed terminal), SIGINT (Ctrl-C), SIGTERM.
 */
export const STOP_SIGNALS = ['SIGHUP', 'SIGINT', 'SIGTERM'] as const;

/** After the first stop signal, how long the clean close may take before the process exits anyway (status 0). */
export const STOP_GRACE_MS = 2_000;

/**
 * A CLI's answer to stop signals: the first of them calls `stop(signal)`
 * (a clean close) and exits with 0 if the process still runs `graceMs`
 * later; a second one, the same or another, exits at once with 128 + its
 * number (130 for SIGINT): the user asked not to wait. The same signal again
 * within `REPEATED_SIGNAL_WINDOW_MS` is the first one delivered twice (`npx`
 * forwarding a terminal's Ctrl-C), as for the server, not a second stop. The
 * handlers stay in place until the returned function removes them: a
 * `process.once` handler is gone after the first signal, so a second one
 * coming in the same turn of the event loop was dropped, and a later one got
 * the default action.
 */
export function onStopSignals(stop: (signal: NodeJS.Signals) => void, graceMs = STOP_GRACE_MS): () => void {
  const judge = new StopSignalJudge();
  const handle = (signal: NodeJS.Signals): void => {
    const kind = judge.judge(signal);
    if (kind === 'repeat') return;
    if (kind === 'second') process.exit(signalExitCode(signal));
    setTimeout(() => process.exit(0), graceMs).unref();
    stop(signal);
  };
  for (const s of STOP_SIGNALS) process.on(s, handle);
  return () => {
    for (const s of STOP_SIGNALS) process.off(s, handle);
  };
}
