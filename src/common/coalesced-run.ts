/**
 * Runs an asynchronous task one at a time. A call while a run is in flight
 * gets that run's promise and asks for one more run right after it; any
 * number of such calls fold into that one, so a run never starts from state
 * older than the last call. A task that throws before it returns a promise
 * (it will not start) rejects that call alone and leaves nothing in flight.
 */
export class CoalescedRun<T> {
  private running: Promise<T> | null = null;
  private again = false;

  constructor(private readonly start: () => Promise<T>) {}

  run(): Promise<T> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    let run: Promise<T>;
    try {
      run = this.start();
    } catch (err) {
      return Promise.reject(err);
    }
    this.running = run;
    const done = (): void => {
      this.running = null;
      if (this.again) {
        this.again = false;
        this.run().catch(() => undefined);
      }
    };
    run.then(done, done);
    return run;
  }
}
