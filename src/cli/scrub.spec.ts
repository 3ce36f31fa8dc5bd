import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { scrub } from './scrub.js';

const JWT = 'eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ1c2VyXzEyMyIsImV4cCI6MTcwMDAwMDAwMH0.c2lnbmF0dXJlLXNlZ21lbnQtdGhhdC1pcy1zZWNyZXQ';
const [, payload, signature] = JWT.split('.') as [string, string, string];

describe('scrub', () => {
  it('hides the secret wherever it appears, and any token= query value', () => {
    assert.equal(scrub('bad a.b.c here', ['a.b.c']), 'bad [REDACTED] here');
    assert.equal(scrub('ws://h/relay?host=x&token=zzz&port=1', []), 'ws://h/relay?host=x&token=[REDACTED]&port=1');
    assert.equal(scrub('nothing', [null, undefined, '']), 'nothing');
    // The known token is replaced first; the separator after the URL stays.
    assert.equal(scrub(`cannot connect to ws://h/relay?host=x&token=${JWT}: connect ECONNREFUSED`, [JWT]), 'cannot connect to ws://h/relay?host=x&token=[REDACTED]: connect ECONNREFUSED');
  });

  it('hides a segment of the token, or a piece cut short, that a proxy echoed on its own', () => {
    assert.equal(scrub(`bad token sig=${signature}`, [JWT]), 'bad token sig=[REDACTED]');
    assert.equal(scrub(`claims ${payload} refused`, [JWT]), 'claims [REDACTED] refused');
    // A close reason holds at most 123 bytes: the token's first 100 characters, then nothing.
    assert.equal(scrub(`x ${JWT.slice(0, 100)}`, [JWT]), 'x [REDACTED]');
    assert.equal(scrub(`tail …${JWT.slice(-40)}`, [JWT]), 'tail …[REDACTED]');
  });

  it('hides the user info of a URL, which ws sends as Basic credentials', () => {
    assert.equal(
      scrub(`cannot connect to ws://user:pa55word@127.0.0.1:1/relay?host=h&port=22&token=${JWT}: connect ECONNREFUSED`, [JWT]),
      'cannot connect to ws://[REDACTED]@127.0.0.1:1/relay?host=h&port=22&token=[REDACTED]: connect ECONNREFUSED',
    );
    assert.equal(scrub('wss://:secret@proxy.example.com/tunnel', []), 'wss://[REDACTED]@proxy.example.com/tunnel');
    assert.equal(scrub('ws://127.0.0.1:1/relay?host=user@example.com&port=22', []), 'ws://127.0.0.1:1/relay?host=user@example.com&port=22');
  });

  it('leaves words and short runs alone, even when they occur in the token', () => {
    assert.equal(scrub('relay refused the connection: HTTP 401 Unauthorized: token expired', [JWT]), 'relay refused the connection: HTTP 401 Unauthorized: token expired');
    assert.equal(scrub(`${signature.slice(0, 11)} is short`, [JWT]), `${signature.slice(0, 11)} is short`);
  });
});
