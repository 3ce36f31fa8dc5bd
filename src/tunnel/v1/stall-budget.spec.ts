import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StallBudget } from './stall-budget.js';

describe('StallBudget', () => {
  it('gives a stall the whole capacity while nothing was charged', () => {
    let now = 0;
    const b = new StallBudget(2000, () => now);
    assert.equal(b.remainingMs(), 2000);
    now = 60_000;
    assert.equal(b.remainingMs(), 2000, 'never more than the capacity');
  });

  it('makes stalls that follow a reset share what has refilled since', () => {
    let now = 0;
    const b = new StallBudget(2000, () => now);
    assert.equal(b.remainingMs(), 2000);
    now = 2000;
    b.charge(2000); // the first stuck connection used it all
    now = 2010;
    assert.equal(b.remainingMs(), 10, 'the next one gets only what 10 ms refilled');
    b.charge(10);
    now = 3010;
    assert.equal(b.remainingMs(), 1000, 'a second later, a second');
  });

  it('costs nothing for pauses that end in a drain (only charged stalls count)', () => {
    let now = 0;
    const b = new StallBudget(2000, () => now);
    for (let i = 0; i < 100; i++) {
      assert.equal(b.remainingMs(), 2000);
      now += 1500; // a slow reader, paused most of the time, never reset
    }
  });
});
