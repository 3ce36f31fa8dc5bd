import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ByteBudget } from './byte-budget.js';

describe('ByteBudget', () => {
  it('takes while the total fits, refuses past the limit without taking, and gets back what is given', () => {
    const b = new ByteBudget(100);
    assert.equal(b.take(60, 'a'), true);
    assert.equal(b.take(41, 'b'), false);
    assert.equal(b.inUse, 60);
    assert.equal(b.take(40, 'b'), true);
    assert.equal(b.take(1, 'c'), false);
    b.give(60, 'a');
    assert.equal(b.inUse, 40);
    assert.equal(b.take(60, 'a'), true);
    b.give(1000, 'a');
    b.give(1000, 'b');
    assert.equal(b.inUse, 0);
  });

  it('holds each key to its share, and gives a key back only what it took', () => {
    const b = new ByteBudget(100, 30);
    assert.equal(b.take(30, 'a'), true);
    assert.equal(b.take(1, 'a'), false, 'a is at its share');
    assert.equal(b.take(30, 'b'), true, 'others still fit');
    b.give(50, 'c');
    assert.equal(b.inUse, 60, 'nothing given back for a key that holds nothing');
    b.give(10, 'a');
    assert.equal(b.take(10, 'a'), true);
  });
});
