import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseQuery } from './query-params.js';

const NAMES = ['host', 'port', 'token', 'a', '', 'b c', 'é', 'x+y', 'x%20y'];

function assertSameAsUrlSearchParams(raw: string): void {
  const ours = parseQuery(raw);
  const theirs = new URLSearchParams(raw);
  const names = new Set([...NAMES, ...theirs.keys()]);
  for (const name of names) {
    assert.equal(ours.get(name), theirs.get(name), `get(${JSON.stringify(name)}) of ${JSON.stringify(raw)}`);
    assert.equal(ours.has(name), theirs.has(name), `has(${JSON.stringify(name)}) of ${JSON.stringify(raw)}`);
  }
}

describe('parseQuery', () => {
  it('reads a relay query as URLSearchParams does', () => {
    const token = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.' + 'A_b-9'.repeat(60);
    for (const raw of [
      `host=127.0.0.1&port=22&token=${token}`,
      'host=::1&port=22',
      'host=[::1]&port=22&resume=1&control=binary',
      '',
      '?',
      '?host=a&port=1',
      '&&host=a&&',
      'a',
      'a=',
      '=b',
      'a=1&a=2',
      'a==b&c=d=e',
      'host=a%2Eb&port=22',
      'q=a+b',
      'q=%zz&r=%',
      'é=è&a=ü',
    ]) {
      assertSameAsUrlSearchParams(raw);
    }
  });

  it('agrees with URLSearchParams on random queries', () => {
    const alphabet = ['a', 'b', 'host', 'port', '=', '&', '?', '%', '2', '0', '+', ' ', 'é', '.', '-', '_'];
    let seed = 12345;
    const next = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let n = 0; n < 2000; n++) {
      let raw = '';
      const len = next() % 24;
      for (let i = 0; i < len; i++) raw += alphabet[next() % alphabet.length];
      assertSameAsUrlSearchParams(raw);
    }
  });
});
