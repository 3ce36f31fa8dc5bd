import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LogThrottle } from './log-throttle.js';

describe('LogThrottle', () => {
  it('lets one line per interval through for each key, counting the rest', () => {
    let now = 1_000;
    const t = new LogThrottle(10_000, 8, () => now);
    assert.equal(t.take('a'), 0);
    assert.equal(t.take('a'), null);
    assert.equal(t.take('a'), null);
    assert.equal(t.take('b'), 0, 'another key has its own interval');
    now += 9_999;
    assert.equal(t.take('a'), null);
    now += 1;
    assert.equal(t.take('a'), 3, 'the next line says how many were left out');
    assert.equal(t.take('a'), null);
  });

  it('forgets every key when more than maxKeys arrive', () => {
    const now = 0;
    const t = new LogThrottle(10_000, 2, () => now);
    assert.equal(t.take('a'), 0);
    assert.equal(t.take('b'), 0);
    assert.equal(t.take('c'), 0, 'a third key clears the table');
    assert.equal(t.take('a'), 0, 'so a is let through again');
    assert.equal(t.take('c'), null);
  });
});
