import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LISTENER_REFUSALS, refusalForClientError } from './listener-refusals.js';

describe('refusalForClientError', () => {
  test('maps the parser errors that have their own answer', () => {
    assert.equal(refusalForClientError('HPE_HEADER_OVERFLOW'), 'head_too_large');
    assert.equal(refusalForClientError('ERR_HTTP_REQUEST_TIMEOUT'), 'head_timeout');
    assert.equal(refusalForClientError('HPE_CHUNK_EXTENSIONS_OVERFLOW'), 'chunk_extensions_too_large');
  });

  test('any other parser error is a malformed request', () => {
    for (const code of ['HPE_INVALID_METHOD', 'HPE_INVALID_URL', 'HPE_UNEXPECTED_CONTENT_LENGTH']) {
      assert.equal(refusalForClientError(code), 'malformed_request', code);
    }
  });

  test('a connection that failed, or ended in the middle of a request, is no refusal', () => {
    for (const code of ['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'HPE_INVALID_EOF_STATE', undefined, '', 'toString', '__proto__']) {
      assert.equal(refusalForClientError(code), null, String(code));
    }
  });

  test('every refusal answers 4xx (or 505 for another HTTP version) with a reason', () => {
    for (const [label, [status, reason]] of Object.entries(LISTENER_REFUSALS)) {
      assert.ok((status >= 400 && status < 500) || (label === 'unsupported_version' && status === 505), label);
      assert.ok(reason.length > 0, label);
    }
  });
});
