import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseQuery } from '../upgrade/query-params.js';
import { redactUrl } from './redact.js';

const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln';

describe('redactUrl', () => {
  it('redacts token and access_token, keeping the other parameters', () => {
    assert.equal(redactUrl(`/relay?host=h&port=22&token=${JWT}`), '/relay?host=h&port=22&token=[REDACTED]');
    assert.equal(redactUrl(`/relay?token=${JWT}&host=h`), '/relay?token=[REDACTED]&host=h');
    assert.equal(redactUrl(`/x?access_token=${JWT}#frag`), '/x?access_token=[REDACTED]#[REDACTED]');
    assert.equal(redactUrl(`/x?TOKEN=${JWT}`), '/x?TOKEN=[REDACTED]');
    assert.equal(redactUrl('/relay?host=h&mytoken=keep&token_x=keep'), '/relay?host=h&mytoken=keep&token_x=keep');
    assert.equal(redactUrl(undefined), '');
  });

  it('redacts every spelling the query parser reads as token', () => {
    for (const name of ['%74oken', 'to%6Ben', '%74%6F%6B%65%6E', 't%6fken']) {
      const url = `/relay?host=h&${name}=${JWT}`;
      assert.equal(parseQuery(url.slice(url.indexOf('?') + 1)).get('token'), JWT, `admission reads ${name} as token`);
      assert.equal(redactUrl(url), `/relay?host=h&${name}=[REDACTED]`);
    }
    assert.equal(redactUrl(`/x?access%5Ftoken=${JWT}`), '/x?access%5Ftoken=[REDACTED]');
  });

  it('redacts a token after a doubled question mark, which the query parser still reads', () => {
    const url = `/relay??token=${JWT}&host=h`;
    assert.equal(parseQuery(url.slice(url.indexOf('?') + 1)).get('token'), JWT, 'admission reads ??token= as token');
    assert.equal(redactUrl(url), '/relay??token=[REDACTED]&host=h');
    assert.equal(redactUrl('/relay??resume=0123456789abcdef0123456789abcdef'), '/relay??resume=01234567…');
  });

  it('shortens a resume session id to its first 8 characters, and keeps resume=1', () => {
    const id = '0123456789abcdef0123456789abcdef';
    assert.equal(redactUrl(`/relay?resume=${id}&received=10&token=${JWT}`), '/relay?resume=01234567…&received=10&token=[REDACTED]');
    assert.equal(redactUrl(`/relay?host=h&port=22&resume=1`), '/relay?host=h&port=22&resume=1');
  });

  it('hides a fragment and the user info of an absolute-form target, where a raw client may put a token', () => {
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl';
    assert.equal(redactUrl(`/relay?host=h&port=22#token=${jwt}`), '/relay?host=h&port=22#[REDACTED]');
    const [header, payload, sig] = jwt.split('.') as [string, string, string];
    assert.equal(redactUrl(`/relay?host=h&port=1&token=${header}#${payload}.${sig}`), '/relay?host=h&port=1&token=[REDACTED]#[REDACTED]');
    assert.equal(redactUrl(`http://user:${jwt}@x/relay?host=h&port=22`), 'http://[REDACTED]@x/relay?host=h&port=22');
    assert.equal(redactUrl('http://x/relay?host=h&port=22'), 'http://x/relay?host=h&port=22');
    assert.equal(redactUrl('/relay?host=user@example.com&port=22'), '/relay?host=user@example.com&port=22');
  });

  it('redacts every occurrence, and survives malformed escapes', () => {
    assert.equal(redactUrl(`/r?token=a&token=b`), '/r?token=[REDACTED]&token=[REDACTED]');
    assert.equal(redactUrl(`/r?%E0%A4%A=x&%74oken=${JWT}`), '/r?%E0%A4%A=x&%74oken=[REDACTED]');
  });
});
