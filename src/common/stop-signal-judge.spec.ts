import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { REPEATED_SIGNAL_WINDOW_MS, StopSignalJudge } from './stop-signal-judge.js';

describe('StopSignalJudge', () => {
  const judgeAt = (): { judge: StopSignalJudge; clock: { t: number } } => {
    const clock = { t: 1_000 };
    return { judge: new StopSignalJudge(() => clock.t), clock };
  };

  it('the same signal within the window is the first delivered twice; later it is a second stop', () => {
    const { judge, clock } = judgeAt();
    assert.equal(judge.judge('SIGINT'), 'first');
    clock.t += REPEATED_SIGNAL_WINDOW_MS - 1;
    assert.equal(judge.judge('SIGINT'), 'repeat');
    clock.t += 1;
    assert.equal(judge.judge('SIGINT'), 'second');
  });

  it('another signal is a second stop at once, and the window is measured from the first signal', () => {
    const { judge, clock } = judgeAt();
    assert.equal(judge.judge('SIGTERM'), 'first');
    assert.equal(judge.judge('SIGINT'), 'second');
    clock.t += 10;
    assert.equal(judge.judge('SIGTERM'), 'repeat');
    clock.t += REPEATED_SIGNAL_WINDOW_MS;
    assert.equal(judge.judge('SIGTERM'), 'second');
  });
});
