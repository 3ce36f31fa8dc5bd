import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Refusal } from '../common/refusal.js';
import { LookupGate } from './lookup-gate.js';

/** Lookups that settle when the test says so. */
function heldLookups(): { lookup: (name: string) => Promise<string[]>; calls: string[]; settle(name: string, ok?: boolean): Promise<void> } {
  const waiting = new Map<string, [() => void, () => void]>();
  const calls: string[] = [];
  return {
    calls,
    lookup: (name) => {
      calls.push(name);
      return new Promise((resolve, reject) => waiting.set(name, [() => resolve(['192.0.2.1']), () => reject(new Error('ENOTFOUND'))]));
    },
    settle: async (name, ok = true) => {
      waiting.get(name)![ok ? 0 : 1]();
      // The gate's own handlers run after the lookup's.
      await new Promise((r) => setImmediate(r));
    },
  };
}

function refusalOf(run: () => unknown): Refusal {
  try {
    run();
  } catch (err) {
    assert.ok(err instanceof Refusal);
    return err;
  }
  assert.fail('expected a refusal');
}

describe('LookupGate', () => {
  it('counts a lookup per client and in all until it settles, resolved or rejected', async () => {
    const h = heldLookups();
    const gate = new LookupGate({ perClient: 2, total: 4 });
    gate.run('a.example', 'x', h.lookup);
    gate.run('b.example', 'x', h.lookup).catch(() => undefined);
    gate.run('c.example', 'y', h.lookup);
    assert.deepEqual([gate.count('x'), gate.count('y'), gate.count()], [2, 1, 3]);
    await h.settle('a.example');
    await h.settle('b.example', false);
    assert.deepEqual([gate.count('x'), gate.count('y'), gate.count()], [0, 1, 1]);
  });

  it('refuses a client at its bound with 429 and starts nothing', () => {
    const h = heldLookups();
    const gate = new LookupGate({ perClient: 1, total: 4 });
    gate.run('a.example', 'x', h.lookup);
    const r = refusalOf(() => gate.run('b.example', 'x', h.lookup));
    assert.deepEqual([r.status, r.reason, r.kind], [429, 'too many name lookups from this IP', 'limit']);
    assert.deepEqual(h.calls, ['a.example']);
    gate.run('b.example', 'y', h.lookup);
    assert.deepEqual(h.calls, ['a.example', 'b.example'], 'another client is not held by x');
  });

  it('refuses anyone beyond the total with 503 and starts nothing', () => {
    const h = heldLookups();
    const gate = new LookupGate({ perClient: 4, total: 2 });
    gate.run('a.example', 'x', h.lookup);
    gate.run('b.example', 'y', h.lookup);
    const r = refusalOf(() => gate.run('c.example', 'z', h.lookup));
    assert.deepEqual([r.status, r.reason, r.kind], [503, 'too many name lookups in progress', 'capacity']);
    assert.deepEqual(h.calls, ['a.example', 'b.example']);
  });

  it('shares the lookup in flight for a name, also with a client at its bound or beyond the total', async () => {
    const h = heldLookups();
    const gate = new LookupGate({ perClient: 1, total: 1 });
    const first = gate.run('a.example', 'x', h.lookup);
    const again = gate.run('a.example', 'x', h.lookup);
    const other = gate.run('a.example', 'y', h.lookup);
    assert.deepEqual(h.calls, ['a.example']);
    assert.deepEqual([gate.count('x'), gate.count('y'), gate.count()], [1, 0, 1]);
    await h.settle('a.example');
    assert.deepEqual(await Promise.all([first, again, other]), [['192.0.2.1'], ['192.0.2.1'], ['192.0.2.1']]);
    gate.run('a.example', 'y', h.lookup);
    assert.deepEqual(h.calls, ['a.example', 'a.example'], 'a settled lookup is not reused: nothing is cached');
  });

  it('frees the place of a lookup that throws before it returns a promise', async () => {
    const gate = new LookupGate({ perClient: 1, total: 1 });
    await assert.rejects(
      gate.run('a.example', 'x', () => {
        throw new Error('bad name');
      }),
      /bad name/,
    );
    await new Promise((r) => setImmediate(r));
    assert.equal(gate.count(), 0);
  });
});
