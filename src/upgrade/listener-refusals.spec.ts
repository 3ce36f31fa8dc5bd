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

  test('a version the parser refuses is 505 when well formed, 400 when not, in the request where the parser stopped', () => {
    const at = (raw: string, line: string): [Buffer, number] => [Buffer.from(raw, 'latin1'), raw.indexOf(line) + line.length];
    for (const v of ['HTTP/3.0', 'HTTP/1.2', 'HTTP/9.9']) {
      assert.equal(refusalForClientError('HPE_INVALID_VERSION', ...at(`GET / ${v}\r\nHost: x\r\n\r\n`, `GET / ${v}`)), 'unsupported_version', v);
    }
    for (const v of ['HTTP/1.10', 'HTTP/01.1', 'HTTP/1.1x', 'HTTP/1.', 'http/1.2']) {
      assert.equal(refusalForClientError('HPE_INVALID_VERSION', ...at(`GET / ${v}\r\nHost: x\r\n\r\n`, `GET / ${v}`)), 'malformed_request', v);
    }
    // Pipelined: the line the parser stopped in decides, not the first of the packet.
    const second = 'GET /b HTTP/1.10';
    assert.equal(refusalForClientError('HPE_INVALID_VERSION', ...at(`GET / HTTP/1.1\r\nHost: x\r\n\r\n${second}\r\n\r\n`, second)), 'malformed_request');
    const third = 'GET /c HTTP/3.0';
    assert.equal(refusalForClientError('HPE_INVALID_VERSION', ...at(`GET / HTTP/1.10\r\n\r\n${third}\r\n`, third)), 'unsupported_version');
    // A stop position at 0 or past the end, or no packet at all.
    assert.equal(refusalForClientError('HPE_INVALID_VERSION', Buffer.from('GET / HTTP/3.0'), 0), 'unsupported_version');
    assert.equal(refusalForClientError('HPE_INVALID_VERSION', Buffer.from('GET / HTTP/3.0\r\n'), 99), 'malformed_request');
    assert.equal(refusalForClientError('HPE_INVALID_VERSION'), 'malformed_request');
  });

  test('a head that overflows in its request target is 414 (RFC 9112 §3), anywhere else 431', () => {
    const at = (raw: string, stop: number, first = false): [Buffer, number, boolean] => [Buffer.from(raw, 'latin1'), stop, first];
    const long = '/' + 'a'.repeat(20000);
    // Node stops at the end of the target (or of the packet, when the target goes on).
    assert.equal(refusalForClientError('HPE_HEADER_OVERFLOW', ...at(`GET ${long} HTTP/1.1\r\nHost: x\r\n\r\n`, 4 + long.length)), 'target_too_long');
    // A target going on past the packet: a request line when the packet is the connection's first…
    assert.equal(refusalForClientError('HPE_HEADER_OVERFLOW', ...at(`GET ${long.slice(0, 1400)}`, 1400, true)), 'target_too_long');
    // …else maybe a header value sent in pieces that reads like one: 431.
    assert.equal(refusalForClientError('HPE_HEADER_OVERFLOW', ...at(`GET ${long.slice(0, 1400)}`, 1400)), 'head_too_large');
    const value = `GET ${long}\r\n\r\n`;
    assert.equal(refusalForClientError('HPE_HEADER_OVERFLOW', ...at(value, value.indexOf('\r'))), 'head_too_large');
    assert.equal(refusalForClientError('HPE_HEADER_OVERFLOW', ...at(`GET http://x.test${long} HTTP/1.1\r\n`, 4 + 13 + long.length)), 'target_too_long');
    // Pipelined behind a request: the line the parser stopped in decides.
    const first = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
    assert.equal(refusalForClientError('HPE_HEADER_OVERFLOW', ...at(`${first}POST ${long} HTTP/1.1\r\n`, first.length + 5 + long.length)), 'target_too_long');
    // A header that overflows, its line here or begun in an earlier packet, or a short target with large headers.
    const header = `GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20000)}\r\n\r\n`;
    assert.equal(refusalForClientError('HPE_HEADER_OVERFLOW', ...at(header, header.indexOf('\r\n\r\n'))), 'head_too_large');
    assert.equal(refusalForClientError('HPE_HEADER_OVERFLOW', ...at('b'.repeat(1400), 1400)), 'head_too_large');
    assert.equal(refusalForClientError('HPE_HEADER_OVERFLOW', ...at('GET /ok HTTP/1.1\r\nX: GET /b', 29)), 'head_too_large');
    assert.equal(refusalForClientError('HPE_HEADER_OVERFLOW'), 'head_too_large');
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
