import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { V2_MAX_HEADER_FIELDS } from '../protocol/v2.js';
import { MAX_REQUEST_HEADER_FIELDS } from '../../upgrade/request-target.js';
import { isForwardableStatus, requestHeadersForClient, responseHeadersForRequester } from './header-hygiene.js';

describe('request header hygiene', () => {
  it('keeps order and repeats, drops credentials, hop-by-hop, spoofable forwarding headers and x-wsproxy-*, adds X-Forwarded-*', () => {
    const out = requestHeadersForClient(
      [
        'Host', 'a.t', 'Accept', 'x', 'accept', 'y', 'Cookie', 'c=1', 'Authorization', 'Bearer t', 'Proxy-Authorization', 'p',
        'Connection', 'keep-alive, X-Custom', 'X-Custom', 'hop', 'Keep-Alive', '5', 'TE', 'trailers', 'Transfer-Encoding', 'chunked',
        'Upgrade', 'h2c', 'Expect', '100-continue', 'X-Forwarded-For', '6.6.6.6', 'X-Forwarded-Port', '1', 'Forwarded', 'for=x', 'X-Real-IP', '6.6.6.6',
        'X-Wsproxy-Client-IP', '6.6.6.6', 'x-wsproxy-tunnel-host', 'evil.example',
      ],
      { clientIp: '203.0.113.9', proto: 'https', host: 'a.t' },
    );
    assert.deepEqual(out, [
      ['host', 'a.t'],
      ['accept', 'x'],
      ['accept', 'y'],
      ['x-forwarded-for', '203.0.113.9'],
      ['x-forwarded-proto', 'https'],
      ['x-forwarded-host', 'a.t'],
    ]);
  });

  it('a Connection header cannot remove Host or Content-Length (end-to-end fields), only hop-by-hop ones', () => {
    const out = requestHeadersForClient(
      ['Host', 'a.t', 'Content-Length', '12', 'X-Hop', '1', 'Connection', 'close, host, content-length, x-hop'],
      { clientIp: '203.0.113.9', proto: 'https', host: 'a.t' },
    );
    assert.deepEqual(out, [
      ['host', 'a.t'],
      ['content-length', '12'],
      ['x-forwarded-for', '203.0.113.9'],
      ['x-forwarded-proto', 'https'],
      ['x-forwarded-host', 'a.t'],
    ]);
  });

  it('the listener’s field bound leaves room for the forwarding headers in a v2 head', () => {
    assert.ok(MAX_REQUEST_HEADER_FIELDS + 3 <= V2_MAX_HEADER_FIELDS);
  });
});

describe('response header hygiene', () => {
  it('drops forbidden, invalid, oversized and excess headers', () => {
    const input: [string, string][] = [
      ['Content-Type', 'text/html'],
      ['X-CRLF', 'a\r\nSet-Cookie: x=1'],
      ['X-Ctl', 'a\u0001b'],
      ['X-Wide', 'ā'],
      ['bad name', 'x'],
      ['', 'x'],
      ['Set-Cookie', 'a=1'],
      ['Access-Control-Allow-Origin', '*'],
      ['Strict-Transport-Security', 'max-age=1'],
      ['Content-Security-Policy', 'x'],
      ['Content-Security-Policy-Report-Only', 'x'],
      ['X-Frame-Options', 'DENY'],
      ['Content-Length', '5'],
      ['Connection', 'x-mine'],
      ['X-Mine', '1'],
      ['Transfer-Encoding', 'chunked'],
      ['X-Big', 'v'.repeat(8200)],
      ['X-Tab', 'a\tb'],
      ['X-Latin1', 'caf\u00e9'],
    ];
    assert.deepEqual(responseHeadersForRequester(input), [
      ['content-type', 'text/html'],
      ['x-tab', 'a\tb'],
      ['x-latin1', 'caf\u00e9'],
    ]);
    const many = Array.from({ length: 150 }, (_, i) => [`x-h${i}`, String(i)] as [string, string]);
    assert.equal(responseHeadersForRequester(many).length, 100);
  });

  it('forwards final statuses 200–599 only', () => {
    for (const s of [200, 204, 301, 404, 599]) assert.equal(isForwardableStatus(s), true, String(s));
    for (const s of [0, 99, 100, 101, 199, 600, 700, 200.5, NaN]) assert.equal(isForwardableStatus(s), false, String(s));
  });
});
