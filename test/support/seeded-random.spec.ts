import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_TEST_SEED, mulberry32, testSeed } from './seeded-random.js';

describe('testSeed', () => {
  it('is the fixed default without TEST_SEED, and TEST_SEED when it is a 32-bit whole number', () => {
    assert.equal(testSeed({}), DEFAULT_TEST_SEED);
    assert.equal(testSeed({ TEST_SEED: '' }), DEFAULT_TEST_SEED);
    assert.equal(testSeed({ TEST_SEED: ' 42 ' }), 42);
    assert.equal(testSeed({ TEST_SEED: '4294967295' }), 0xffffffff);
  });

  it('refuses a TEST_SEED that is no 32-bit whole number, naming it', () => {
    for (const bad of ['-1', '1.5', 'abc', '4294967296']) assert.throws(() => testSeed({ TEST_SEED: bad }), new RegExp(`TEST_SEED .*"${bad}"`));
  });
});

describe('mulberry32', () => {
  it('draws the same sequence from the same seed and another from another, each number in [0, 1)', () => {
    const draw = (seed: number): number[] => {
      const random = mulberry32(seed);
      return Array.from({ length: 1000 }, () => random());
    };
    const a = draw(7);
    assert.deepEqual(draw(7), a);
    assert.notDeepEqual(draw(8), a);
    assert.ok(a.every((x) => x >= 0 && x < 1));
    // Spread over the interval as the jitter's thresholds need: every tenth of it drawn.
    assert.equal(new Set(a.map((x) => Math.floor(x * 10))).size, 10);
  });
});
