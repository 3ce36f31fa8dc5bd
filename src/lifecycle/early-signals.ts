/**
 * Takes SIGTERM and SIGINT from now until the app's own handlers are in place
 * (`exitOnSignals`), and returns the function to call once they are: it
 * removes these and raises again the first signal that came meanwhile, so it
 * is acted on (drained, nothing live yet; closed; exit 0). In a container node
 * is PID 1, which has no default signal action: a signal that comes before a
 * handler is installed is dropped, and a stop during startup (a rollout rolled
 * back, a scale-down, `docker stop` right after `up`) would be lost until the
 * orchestrator's SIGKILL. Imports nothing, so an entry point can call it
 * before it loads the application.
 */
export function holdEarlySignals(): () => void {
  let early: NodeJS.Signals | null = null;
  const hold = (signal: NodeJS.Signals): void => {
    early ??= signal;
  };
  process.on('SIGTERM', hold);
  process.on('SIGINT', hold);
  return () => {
    process.off('SIGTERM', hold);
    process.off('SIGINT', hold);
    if (early !== null) process.kill(process.pid, early);
  };
}
