import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Fifo } from './fifo.js';

describe('Fifo', () => {
  it('keeps order through pushes and shifts interleaved, across compactions', () => {
    const q = new Fifo<number>();
    const model: number[] = [];
    let next = 0;
    for (let round = 0; round < 50_000; round++) {
      const pushes = (round * 7919) % 5;
      for (let i = 0; i < pushes; i++) {
        q.push(next);
        model.push(next++);
      }
      const shifts = (round * 104729) % 4;
      for (let i = 0; i < shifts; i++) assert.equal(q.shift(), model.shift());
      assert.equal(q.length, model.length);
      assert.equal(q.peek(), model[0]);
    }
    assert.deepEqual([...q], model);
    while (model.length > 0) assert.equal(q.shift(), model.shift());
    assert.equal(q.shift(), undefined);
    assert.equal(q.peek(), undefined);
    assert.equal(q.length, 0);
  });

  it('drains a million items, each once and in order', () => {
    const q = new Fifo<{ n: number }>();
    for (let i = 0; i < 1_000_000; i++) q.push({ n: i });
    let expected = 0;
    for (let item = q.shift(); item !== undefined; item = q.shift()) assert.equal(item.n, expected++);
    assert.equal(expected, 1_000_000);
  });
});
