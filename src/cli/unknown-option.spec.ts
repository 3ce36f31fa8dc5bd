import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { unknownOptionText } from './unknown-option.js';

describe('unknownOptionText', () => {
  const known = ['--token', '--token-carrier', '--proxy', '-h'];

  it('names a mistyped option as typed', () => {
    assert.equal(unknownOptionText('--tokne', known), '--tokne');
    assert.equal(unknownOptionText('-x', known), '-x');
  });

  it('never shows a value glued to a known name, or an option that may hold one', () => {
    assert.equal(unknownOptionText('--tokeneyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln', known), '--token… (its value goes after a space or =)');
    assert.equal(unknownOptionText('--token-carrierquery', known), '--token-carrier… (its value goes after a space or =)');
    for (const arg of ['--tkoeneyJhbGciOiJSUzI1NiJ9', '--a.b.c', `--${'x'.repeat(25)}`]) {
      assert.equal(unknownOptionText(arg, known), '(not shown: it may hold a value)', arg);
    }
  });
});
