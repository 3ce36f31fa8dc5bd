import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Refusal } from '../common/refusal.js';
import { parseResumeRequest } from './resume-params.js';

const q = (s: string): URLSearchParams => new URLSearchParams(s);
const id = '0123456789abcdef0123456789abcdef';

describe('parseResumeRequest', () => {
  it('reads plain, open and reattach requests', () => {
    assert.deepEqual(parseResumeRequest(q('host=h&port=22')), { kind: 'plain' });
    assert.deepEqual(parseResumeRequest(q('host=h&port=22&resume=1')), { kind: 'open', control: 'text' });
    assert.deepEqual(parseResumeRequest(q('host=h&port=22&resume=1&control=binary')), { kind: 'open', control: 'binary' });
    assert.deepEqual(parseResumeRequest(q(`resume=${id}&received=123`)), { kind: 'reattach', id, received: 123 });
  });

  it('refuses malformed requests with 400', () => {
    for (const bad of [
      'resume=',
      'resume=0',
      'resume=true',
      `resume=${id.toUpperCase()}&received=0`,
      `resume=${id}0&received=0`,
      `resume=${id}`,
      `resume=${id}&received=`,
      `resume=${id}&received=1e3`,
      `resume=${id}&received=99999999999999999`,
      `resume=${id}&received=0&host=h`,
      `resume=${id}&received=0&port=22`,
      'host=h&port=22&resume=1&control=json',
    ]) {
      assert.throws(
        () => parseResumeRequest(q(bad)),
        (err: unknown) => err instanceof Refusal && err.status === 400,
        bad,
      );
    }
  });
});
