import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32, testSeed } from '../../../test/support/seeded-random.js';
import {
  base64ToBytes,
  bytesToBase64,
  decodeFrame,
  encodeData,
  encodeHttpRequest,
  encodeHttpResponse,
  encodeTcpClose,
  encodeTcpOpen,
  encodeTunnelReady,
} from './v1.js';

describe('tunnel protocol v1 encoding', () => {
  it('writes control messages with the documented field order', () => {
    assert.equal(encodeTunnelReady('https://3f9c2a7b1d0e4c55.tunnel.example.com', 10042), '{"type":"tunnel_ready","tunnelUrl":"https://3f9c2a7b1d0e4c55.tunnel.example.com","rawPort":10042}');
    assert.equal(encodeTunnelReady('', 0), '{"type":"tunnel_ready","tunnelUrl":"","rawPort":0}');
    assert.equal(
      encodeHttpRequest('a1b2c3d4e5f6', 'GET', '/api?q=1', { host: 'x', accept: 'a, b' }, null),
      '{"type":"http_request","id":"a1b2c3d4e5f6","method":"GET","path":"/api?q=1","headers":{"host":"x","accept":"a, b"}}',
    );
    assert.equal(
      encodeHttpRequest('a1b2c3d4e5f6', 'POST', '/', {}, new Uint8Array([104, 105])),
      '{"type":"http_request","id":"a1b2c3d4e5f6","method":"POST","path":"/","headers":{},"body":"aGk=","bodyEncoding":"base64"}',
    );
    assert.equal(
      encodeHttpRequest('a1b2c3d4e5f6', 'POST', '/', {}, new Uint8Array(0)),
      '{"type":"http_request","id":"a1b2c3d4e5f6","method":"POST","path":"/","headers":{}}',
    );
    assert.equal(
      encodeHttpResponse('a1b2c3d4e5f6', 200, { 'content-type': 'text/plain' }, new Uint8Array([111, 107])),
      '{"type":"http_response","id":"a1b2c3d4e5f6","status":200,"headers":{"content-type":"text/plain"},"body":"b2s=","bodyEncoding":"base64"}',
    );
    assert.equal(encodeTcpOpen('0123456789ab'), '{"type":"tcp_open","connId":"0123456789ab"}');
    assert.equal(encodeTcpClose('0123456789ab'), '{"type":"tcp_close","connId":"0123456789ab"}');
  });

  it('writes data frames as length, connId, payload', () => {
    const frame = encodeData('0123456789ab', new Uint8Array([1, 2, 3]));
    assert.deepEqual([...frame], [0, 0, 0, 12, ...Buffer.from('0123456789ab'), 1, 2, 3]);
  });
});

describe('tunnel protocol v1 decoding', () => {
  it('reads text and binary JSON as control, other binary as data', () => {
    const text = decodeFrame('{"type":"tcp_close","connId":"x"}', false);
    assert.deepEqual(text, { kind: 'control', message: { type: 'tcp_close', connId: 'x' } });
    const bin = decodeFrame(Buffer.from(' {"type":"http_response","id":"1"}'), true);
    assert.equal(bin?.kind, 'control');
    const data = decodeFrame(encodeData('abc', new Uint8Array([9, 8])), true);
    assert.equal(data?.kind, 'data');
    if (data?.kind === 'data') {
      assert.equal(data.connId, 'abc');
      assert.deepEqual([...data.payload], [9, 8]);
    }
    const empty = decodeFrame(encodeData('abc', new Uint8Array(0)), true);
    assert.equal(empty?.kind, 'data');
  });

  it('returns null for anything malformed, never throws', () => {
    for (const [input, binary] of [
      ['not json', false],
      ['[1]', false],
      ['{"no":"type"}', false],
      ['{"type":5}', false],
      ['null', false],
      [Buffer.alloc(0), true],
      [Buffer.from([0, 0, 0]), true],
      [Buffer.from([0, 0, 0, 0, 1]), true],
      [Buffer.from([0, 0, 0, 9, 1, 2]), true],
      [Buffer.from([0, 0, 1, 0, ...Buffer.alloc(300)]), true],
      [Buffer.from([0xff, 0xff, 0xff, 0xff, 1]), true],
      [Buffer.from('{"type":'), true],
    ] as [Buffer | string, boolean][]) {
      assert.equal(decodeFrame(input, binary), null, JSON.stringify(input));
    }
  });

  it('never throws on random input', () => {
    const seed = testSeed();
    const random = mulberry32(seed);
    for (let i = 0; i < 2000; i++) {
      const len = Math.floor(random() * 64);
      const buf = Buffer.alloc(len);
      for (let j = 0; j < len; j++) buf[j] = Math.floor(random() * 256);
      if (i % 3 === 0 && len > 0) buf[0] = 0;
      assert.doesNotThrow(() => decodeFrame(buf, i % 2 === 0), `input ${buf.toString('hex')} (TEST_SEED=${seed})`);
    }
  });

  it('round-trips base64 and rejects non-base64', () => {
    const bytes = new Uint8Array([0, 1, 2, 250, 251, 252, 253, 254, 255]);
    assert.deepEqual([...base64ToBytes(bytesToBase64(bytes))!], [...bytes]);
    assert.equal(base64ToBytes('not base64!'), null);
    assert.deepEqual([...base64ToBytes('')!], []);
  });
});
