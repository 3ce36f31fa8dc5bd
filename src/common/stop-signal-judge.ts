/**
 * A repeat of the first stop signal this soon after it is the same stop delivered twice, not a person's second
 * one: a terminal's Ctrl-C signals the whole foreground process group, and a wrapper in it that forwards what it
 * gets to its child (npm's run-script and `npx` whenever `sh -c` execs node, as bash, macOS's and Fedora's sh,
 * does; systemd's control-group kill of a unit run through one) delivers the SIGINT or SIGTERM again a few ms
 * later. A person's second Ctrl-C comes later than this.
 */
export const REPEATED_SIGNAL_WINDOW_MS = 250;

/** What a stop signal is: the first, the first delivered again (ignore it), or a second stop (do not wait). */
export type StopSignalKind = 'first' | 'repeat' | 'second';

/** Tells a process's first stop signal, that signal delivered twice, and a second stop apart; one per process. */
export class StopSignalJudge {
  private first: { readonly signal: NodeJS.Signals; readonly at: number } | null = null;

  constructor(private readonly now: () => number = () => performance.now()) {}

  judge(signal: NodeJS.Signals): StopSignalKind {
    const first = this.first;
    if (first === null) {
      this.first = { signal, at: this.now() };
      return 'first';
    }
    return signal === first.signal && this.now() - first.at < REPEATED_SIGNAL_WINDOW_MS ? 'repeat' : 'second';
  }
}
