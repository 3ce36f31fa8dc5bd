import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseRequestTarget } from './request-target.js';

const parsed = (t: string | undefined): [string, [string, string][]] | null => {
  const r = parseRequestTarget(t);
  return r ? [r.path, [...r.query]] : null;
};

describe('parseRequestTarget', () => {
  it('splits a plain origin-form target into path and decoded query', () => {
    assert.deepEqual(parsed('/relay?host=127.0.0.1&port=22&token=a.b.c&x=%41+b'), [
      '/relay',
      [
        ['host', '127.0.0.1'],
        ['port', '22'],
        ['token', 'a.b.c'],
        ['x', 'A b'],
      ],
    ]);
    assert.deepEqual(parsed('/tunnel'), ['/tunnel', []]);
    assert.deepEqual(parsed(undefined), ['/', []]);
  });

  it('gives anything else to the URL parser, as the router always did', () => {
    assert.deepEqual(parsed('/a/../relay?v=2'), ['/relay', [['v', '2']]]);
    assert.deepEqual(parsed('/%72elay?v=2'), ['/%72elay', [['v', '2']]], 'percent-encoding is not decoded into a route');
    assert.deepEqual(parsed('http://example.com/relay?v=1'), ['/relay', [['v', '1']]]);
    assert.deepEqual(parsed('/relay?v=1#frag=2'), ['/relay', [['v', '1']]], 'a fragment is not part of the query');
    assert.equal(parsed('http://[::1/relay'), null);
  });
});
