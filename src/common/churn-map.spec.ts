import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChurnMap, ChurnSet } from './churn-map.js';

describe('ChurnMap', () => {
  it('sets, gets, replaces and deletes, counting each key once', () => {
    const m = new ChurnMap<string, { n: number }>();
    assert.equal(m.size, 0);
    m.set('a', { n: 1 }).set('b', { n: 2 });
    m.set('a', { n: 3 });
    assert.equal(m.size, 2);
    assert.deepEqual(m.get('a'), { n: 3 });
    assert.equal(m.has('b'), true);
    assert.equal(m.delete('b'), true);
    assert.equal(m.delete('b'), false);
    assert.equal(m.has('b'), false);
    assert.equal(m.get('b'), undefined);
    assert.equal(m.size, 1);
  });

  it('counts a stored 0 or null as present', () => {
    const m = new ChurnMap<string, number | null>();
    m.set('zero', 0).set('nothing', null);
    assert.equal(m.size, 2);
    assert.equal(m.has('zero'), true);
    assert.equal(m.get('zero'), 0);
    assert.equal(m.has('nothing'), true);
    assert.equal(m.delete('zero'), true);
    assert.equal(m.size, 1);
  });

  it('takes keys that are Object.prototype names without touching any prototype', () => {
    const m = new ChurnMap<string, number>();
    for (const k of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      assert.equal(m.has(k), false, k);
      m.set(k, 1);
    }
    assert.equal(m.size, 4);
    assert.deepEqual(m.values(), [1, 1, 1, 1]);
    assert.equal(Object.getPrototypeOf({}), Object.prototype);
  });

  it('keeps its count right through heavy churn of integer keys and lists what is left', () => {
    const m = new ChurnMap<number, number>();
    for (let id = 1; id <= 100_000; id++) {
      m.set(id, id);
      if (id > 50) m.delete(id - 50);
    }
    assert.equal(m.size, 50);
    assert.deepEqual(m.values(), Array.from({ length: 50 }, (_, i) => 99_951 + i));
  });

  it('values() is a snapshot: deleting while iterating it is safe', () => {
    const m = new ChurnMap<number, number>();
    for (let i = 1; i <= 5; i++) m.set(i, i);
    for (const v of m.values()) m.delete(v);
    assert.equal(m.size, 0);
    assert.deepEqual(m.values(), []);
  });

  it('keys() lists the keys as strings, in the order of values(), as a snapshot', () => {
    const m = new ChurnMap<string, number>();
    m.set('b', 2);
    m.set('a', 1);
    m.set('c', 3);
    m.delete('c');
    assert.deepEqual(m.keys(), ['b', 'a']);
    for (const k of m.keys()) m.delete(k);
    assert.deepEqual(m.keys(), []);
  });

  it('clear() empties it', () => {
    const m = new ChurnMap<string, number>();
    m.set('x', 1);
    m.clear();
    assert.equal(m.size, 0);
    assert.equal(m.get('x'), undefined);
  });
});

describe('ChurnSet', () => {
  it('adds members under distinct handles, oldest first, and removes each by its handle once', () => {
    const s = new ChurnSet<string>();
    const a = s.add('a');
    const b = s.add('b');
    const a2 = s.add('a');
    assert.notEqual(a, a2);
    assert.equal(s.size, 3);
    assert.deepEqual(s.values(), ['a', 'b', 'a']);
    assert.equal(s.delete(a), true);
    assert.equal(s.delete(a), false);
    assert.deepEqual(s.values(), ['b', 'a']);
    s.delete(b);
    s.delete(a2);
    assert.equal(s.size, 0);
  });

  it('starts handles again at 1 past its limit, skipping those still in use', () => {
    const s = new ChurnSet<string>(4);
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((m) => s.add(m));
    assert.deepEqual([a, b, c, d], [1, 2, 3, 4]);
    s.delete(b);
    s.delete(d);
    const e = s.add('e');
    const f = s.add('f');
    assert.deepEqual([e, f], [2, 4]);
    assert.deepEqual(s.values().sort(), ['a', 'c', 'e', 'f']);
    s.delete(a);
    assert.equal(s.add('g'), 1);
    assert.equal(s.size, 4);
  });
});
