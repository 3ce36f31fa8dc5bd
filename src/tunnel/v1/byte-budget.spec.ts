import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ByteBudget } from './byte-budget.js';

describe('ByteBudget', () => {
  it('takes while the total fits, refuses past the limit without taking, and gets back what is given', () => {
    const b = new ByteBudget(100);
    assert.equal(b.take(60), true);
    assert.equal(b.take(41), false);
    assert.equal(b.inUse, 60);
    assert.equal(b.take(40), true);
    assert.equal(b.take(1), false);
    b.give(60);
    assert.equal(b.inUse, 40);
    assert.equal(b.take(60), true);
    b.give(1000);
    assert.equal(b.inUse, 0);
  });
});
