import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CoalescedRun } from './coalesced-run.js';

describe('CoalescedRun', () => {
  it('folds the calls made during a run into one more run, started after it', async () => {
    const releases: (() => void)[] = [];
    let starts = 0;
    const runner = new CoalescedRun(() => {
      const n = ++starts;
      return new Promise<number>((resolve) => releases.push(() => resolve(n)));
    });
    const first = runner.run();
    const during = [runner.run(), runner.run(), runner.run()];
    assert.equal(starts, 1);
    releases[0]();
    assert.deepEqual(await Promise.all([first, ...during]), [1, 1, 1, 1]);
    await new Promise((r) => setImmediate(r));
    assert.equal(starts, 2, 'one run for all the calls made during the first');
    releases[1]();
    await new Promise((r) => setImmediate(r));
    assert.equal(starts, 2, 'no run asked for during the second');
  });

  it('starts again after a run that failed, and a task that throws before starting leaves nothing in flight', async () => {
    let ready = false;
    let starts = 0;
    const runner = new CoalescedRun(() => {
      if (!ready) throw new Error('not ready');
      starts++;
      return Promise.reject(new Error('failed'));
    });
    await assert.rejects(runner.run(), /not ready/);
    await assert.rejects(runner.run(), /not ready/);
    ready = true;
    await assert.rejects(runner.run(), /failed/);
    await assert.rejects(runner.run(), /failed/);
    assert.equal(starts, 2);
  });
});
