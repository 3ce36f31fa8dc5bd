import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StallBudget } from './stall-budget.js';

describe('StallBudget', () => {
  it('gives one stall the whole capacity', () => {
    let now = 0;
    const b = new StallBudget(2000, () => now);
    b.paused();
    assert.equal(b.remainingMs(), 2000);
    now = 1500;
    assert.equal(b.remainingMs(), 500);
    now = 2500;
    assert.equal(b.remainingMs(), 0);
  });

  it('lets stalls that follow one another share what is left, and refills while the socket is read', () => {
    let now = 0;
    const b = new StallBudget(2000, () => now);
    b.paused();
    now = 2000; // the first stall used it all
    b.resumed();
    now = 2010;
    b.paused();
    assert.equal(b.remainingMs(), 10, 'the next stall gets only what 10 ms of reading earned');
    now = 2020;
    b.resumed();
    now = 3020; // a second of reading
    assert.equal(b.remainingMs(), 1000);
    now = 10_000;
    assert.equal(b.remainingMs(), 2000, 'never more than the capacity');
  });

  it('ignores a repeated pause or resume', () => {
    let now = 0;
    const b = new StallBudget(1000, () => now);
    b.paused();
    now = 300;
    b.paused();
    assert.equal(b.remainingMs(), 700);
    b.resumed();
    b.resumed();
    assert.equal(b.remainingMs(), 700);
  });
});
