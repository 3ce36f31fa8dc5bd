/**
 * Settles as `work` does, or rejects with `timeoutError()` once `ms` have
 * passed without it settling.
 *
 * The deadline is checked once more after the event loop has read the I/O
 * that is waiting: when the loop resumes after a stall (a major GC, a
 * throttled CPU, SIGSTOP), its timers run before its sockets are read, and a
 * reply that arrived during the stall must not count as late.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, timeoutError: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let recheck: NodeJS.Immediate | undefined;
    const timer = setTimeout(() => {
      // Immediates run after the loop's poll phase, which reads what has arrived.
      recheck = setImmediate(() => reject(timeoutError()));
    }, ms);
    const settle = (): void => {
      clearTimeout(timer);
      if (recheck) clearImmediate(recheck);
    };
    work.then(
      (value) => {
        settle();
        resolve(value);
      },
      (err: unknown) => {
        settle();
        reject(err);
      },
    );
  });
}
