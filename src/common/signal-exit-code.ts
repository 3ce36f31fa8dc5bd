import { constants } from 'node:os';

/** The shell's code for a process ended by `signal` (128 + its number: 130 for SIGINT, 143 for SIGTERM). */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}
