import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  FLAG_BINARY,
  FLAG_BODY,
  FLAG_END,
  FLAG_FIN,
  NO_STATUS,
  R,
  T,
  V2_HEADER_BYTES,
  V2_MAX_FRAME_BYTES,
  V2_MAX_PAYLOAD,
  decodeFrame,
  encodeClose,
  encodeData,
  encodeFrame,
  encodeMessage,
  encodeOpen,
  encodeReady,
  encodeReset,
  encodeResponse,
  encodeWindowUpdate,
  isSendableCloseCode,
  parseHeaders,
  type V2Decoded,
} from './v2.js';

/** A small deterministic PRNG, so a failure can be replayed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

function frame(d: V2Decoded) {
  assert.ok(d.ok, d.ok ? '' : d.reason);
  return d.frame;
}

const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

describe('tunnel protocol v2 frames', () => {
  it('lays out the 6-byte header: type, flags, big-endian stream id, then the payload', () => {
    const f = encodeData(0x01020304, Buffer.from('hi'), true);
    assert.deepEqual([...f], [T.DATA, FLAG_END, 1, 2, 3, 4, 0x68, 0x69]);
    assert.equal(V2_HEADER_BYTES, 6);
  });

  it('READY carries the tunnel_ready JSON with "version":2 on stream 0', () => {
    const f = encodeReady('https://3f9c2a7b1d0e4c55.tunnel.example.com', 10042);
    assert.deepEqual([...f.subarray(0, 6)], [T.READY, 0, 0, 0, 0, 0]);
    assert.equal(
      text(f.subarray(6)),
      '{"type":"tunnel_ready","tunnelUrl":"https://3f9c2a7b1d0e4c55.tunnel.example.com","rawPort":10042,"version":2,"window":262144,"maxPayload":1048576,"inlineBody":true,"creditByHalf":true}',
    );
    const r = frame(decodeFrame(f));
    assert.equal(r.type, 'ready');
    if (r.type === 'ready')
      assert.deepEqual(r.ready, { tunnelUrl: 'https://3f9c2a7b1d0e4c55.tunnel.example.com', rawPort: 10042, version: 2, window: 262144, maxPayload: 1048576, inlineBody: true, creditByHalf: true });
    const older = frame(decodeFrame(encodeFrame(T.READY, 0, 0, Buffer.from('{"type":"tunnel_ready","tunnelUrl":"x","rawPort":1,"version":2}'))));
    assert.equal(older.type === 'ready' && older.ready.inlineBody, false, 'a READY without inlineBody means no inline bodies');
    assert.equal(older.type === 'ready' && older.ready.creditByHalf, false, 'a READY without creditByHalf promises nothing about credit');
  });

  it('RESPONSE with FLAG_BODY: the JSON head, one 0x00 byte, then the body (which may hold 0x00 bytes itself)', () => {
    const body = Buffer.from([0, 1, 2, 0, 0x7b]);
    const f = encodeResponse(3, { status: 200, headers: [['content-type', 'x/y']], length: 5 }, true, body);
    assert.equal(f[1], FLAG_END | FLAG_BODY);
    const json = '{"status":200,"headers":[["content-type","x/y"]],"length":5}';
    assert.equal(text(f.subarray(6, 6 + json.length)), json);
    assert.equal(f[6 + json.length], 0);
    assert.deepEqual([...f.subarray(7 + json.length)], [...body]);
    const d = frame(decodeFrame(f));
    assert.equal(d.type, 'response');
    if (d.type !== 'response') return;
    assert.deepEqual(d.head, { status: 200, headers: [['content-type', 'x/y']], length: 5 });
    assert.equal(d.end, true);
    assert.deepEqual([...d.body!], [...body]);
    const empty = frame(decodeFrame(encodeResponse(3, { status: 200, headers: [] }, false, Buffer.alloc(0))));
    assert.equal(empty.type === 'response' && empty.body?.length, 0);
    const noFlag = frame(decodeFrame(encodeResponse(3, { status: 200, headers: [] })));
    assert.equal(noFlag.type === 'response' && noFlag.body, null);
  });

  it('lowercases header names in the pair form, keeps values as sent, and skips pairs that are not two strings', () => {
    const raw = [['Content-Type', 'Text/HTML'], ['x-ok', 'a'], ['X-Ok', 'b'], ['bad', 1], ['short'], 'flat', ['a', 'b', 'c']];
    assert.deepEqual(parseHeaders(raw), [
      ['content-type', 'Text/HTML'],
      ['x-ok', 'a'],
      ['x-ok', 'b'],
    ]);
    const lower = [['x-a', '1']];
    assert.equal(parseHeaders(lower)[0], lower[0], 'an already-lowercase pair is taken as it is');
  });

  it('round-trips every frame type', () => {
    const headers: [string, string][] = [
      ['host', 'a.tunnel.test'],
      ['accept', 'text/html'],
      ['accept', 'application/json'],
    ];
    assert.deepEqual(frame(decodeFrame(encodeOpen(7, { kind: 'http', method: 'POST', path: '/a?b=1', headers }))), {
      type: 'open',
      stream: 7,
      head: { kind: 'http', method: 'POST', path: '/a?b=1', headers },
      end: false,
    });
    assert.deepEqual(frame(decodeFrame(encodeOpen(8, { kind: 'tcp' }, true))), { type: 'open', stream: 8, head: { kind: 'tcp' }, end: true });
    assert.deepEqual(frame(decodeFrame(encodeResponse(7, { status: 200, headers, length: 5 }))), {
      type: 'response',
      stream: 7,
      head: { status: 200, headers, length: 5 },
      end: false,
      body: null,
    });
    assert.deepEqual(frame(decodeFrame(encodeResponse(7, { status: 204, headers: [] }, true))), {
      type: 'response',
      stream: 7,
      head: { status: 204, headers: [] },
      end: true,
      body: null,
    });
    const msg = frame(decodeFrame(encodeMessage(9, Buffer.from([1, 2, 3]), true, false)));
    assert.equal(msg.type, 'message');
    if (msg.type === 'message') {
      assert.deepEqual([...msg.payload], [1, 2, 3]);
      assert.equal(msg.binary, true);
      assert.equal(msg.fin, false);
    }
    assert.equal(encodeMessage(9, Buffer.alloc(0), false, true)[1], FLAG_FIN);
    assert.equal(encodeMessage(9, Buffer.alloc(0), true, true)[1], FLAG_FIN | FLAG_BINARY);
    assert.deepEqual(frame(decodeFrame(encodeClose(9, 4321, 'bye'))), { type: 'close', stream: 9, code: 4321, reason: 'bye' });
    assert.deepEqual(frame(decodeFrame(encodeClose(9, NO_STATUS, 'ignored'))), { type: 'close', stream: 9, code: NO_STATUS, reason: '' });
    assert.deepEqual(frame(decodeFrame(encodeWindowUpdate(9, 65536))), { type: 'window', stream: 9, increment: 65536 });
    assert.deepEqual(frame(decodeFrame(encodeReset(9, R.REFUSED, 'no service'))), { type: 'reset', stream: 9, code: R.REFUSED, reason: 'no service' });
    assert.deepEqual(frame(decodeFrame(encodeFrame(0x7f, 0, 3))), { type: 'unknown', stream: 3, frameType: 0x7f });
  });

  it('accepts v1-style header objects in a RESPONSE, leniently', () => {
    const body = Buffer.from(JSON.stringify({ status: 200, headers: { 'X-A': 'x', 'x-b': ['1', '2'], 'x-n': 5 } }));
    const f = frame(decodeFrame(encodeFrame(T.RESPONSE, 0, 1, body)));
    assert.equal(f.type, 'response');
    if (f.type === 'response')
      assert.deepEqual(f.head.headers, [
        ['x-a', 'x'],
        ['x-b', '1'],
        ['x-b', '2'],
      ]);
  });

  it('rejects unusable frames with the stream they name, when the header was readable', () => {
    const cases: [Uint8Array, number | null][] = [
      [Buffer.from([1, 0, 0]), null],
      [encodeFrame(T.RESPONSE, 0, 4, Buffer.from('{"status":"200"}')), 4],
      [encodeFrame(T.RESPONSE, 0, 4, Buffer.from('{"status":200,"length":-1}')), 4],
      [encodeFrame(T.RESPONSE, 0, 4, Buffer.from('[1]')), 4],
      [encodeFrame(T.RESPONSE, FLAG_BODY, 4, Buffer.from('{"status":200}')), 4],
      [encodeFrame(T.RESPONSE, FLAG_BODY, 4, Buffer.from('{"status":200\u0000x"}\u0000body')), 4],
      [encodeFrame(T.OPEN, 0, 5, Buffer.from('{"kind":"ftp"}')), 5],
      [encodeFrame(T.WINDOW_UPDATE, 0, 6, Buffer.from([0, 0, 0, 0])), 6],
      [encodeFrame(T.WINDOW_UPDATE, 0, 6, Buffer.from([0x80, 0, 0, 0])), 6],
      [encodeFrame(T.WINDOW_UPDATE, 0, 6, Buffer.from([0, 1])), 6],
      [encodeFrame(T.CLOSE, 0, 6, Buffer.from([3])), 6],
      [encodeFrame(T.DATA, 0, 0, Buffer.from('x')), null],
      [encodeFrame(T.READY, 0, 3, Buffer.from('{}')), 3],
    ];
    for (const [bytes, stream] of cases) {
      const d = decodeFrame(bytes);
      assert.equal(d.ok, false, Buffer.from(bytes).toString('hex'));
      if (!d.ok) assert.equal(d.stream, stream, d.reason);
    }
  });

  it('calls sendable exactly the close codes a WebSocket close frame may carry (RFC 6455 7.4): ws throws on the others', () => {
    for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999]) assert.equal(isSendableCloseCode(code), true, String(code));
    // 1004 is reserved, 1005 and 1006 are never sent, 1015 is TLS-only.
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]) assert.equal(isSendableCloseCode(code), false, String(code));
  });

  it('refuses a message over the frame limit before looking at it', () => {
    const big = Buffer.alloc(V2_MAX_FRAME_BYTES + 1);
    big[0] = T.DATA;
    big[5] = 1;
    assert.deepEqual(decodeFrame(big), { ok: false, stream: null, reason: 'frame too large' });
    const max = Buffer.alloc(V2_MAX_FRAME_BYTES);
    max[0] = T.DATA;
    max[5] = 1;
    const f = frame(decodeFrame(max));
    assert.equal(f.type === 'data' && f.payload.length, V2_MAX_PAYLOAD);
  });

  describe('fuzz', () => {
    const valid = (): Uint8Array[] => [
      encodeReady('https://x.tunnel.test', 1),
      encodeOpen(1, { kind: 'http', method: 'GET', path: '/', headers: [['host', 'x']] }),
      encodeOpen(2, { kind: 'websocket', method: 'GET', path: '/ws', headers: [] }),
      encodeOpen(3, { kind: 'tcp' }),
      encodeResponse(1, { status: 200, headers: [['content-type', 'text/plain']], length: 10 }),
      encodeData(1, Buffer.from('hello world'), true),
      encodeMessage(2, Buffer.from('msg'), false, true),
      encodeClose(2, 1000, 'done'),
      encodeWindowUpdate(3, 1234),
      encodeReset(3, R.CANCEL, 'gone'),
    ];

    /** Checks a decode result's invariants: payloads are views into the input, never copies, never over the limit. */
    function check(input: Uint8Array, d: V2Decoded): void {
      if (!d.ok) return;
      const f = d.frame;
      assert.ok(f.stream >= 0 && f.stream <= 0xffffffff);
      if (f.type === 'data' || f.type === 'message') {
        assert.equal(f.payload.buffer, input.buffer, 'payload is a view, not a copy');
        assert.ok(f.payload.byteOffset >= input.byteOffset && f.payload.byteOffset + f.payload.length <= input.byteOffset + input.length);
        assert.ok(f.payload.length <= V2_MAX_PAYLOAD);
      }
      if (f.type === 'close' || f.type === 'reset') assert.ok(f.reason.length <= input.length);
      if (f.type === 'window') assert.ok(f.increment >= 1 && f.increment <= 0x7fffffff);
    }

    it('never throws on random input, and decoded payloads stay inside it', () => {
      const rnd = prng(0xc0ffee);
      for (let i = 0; i < 20_000; i++) {
        const len = Math.floor(rnd() * (rnd() < 0.1 ? 4096 : 64));
        const input = new Uint8Array(len);
        for (let j = 0; j < len; j++) input[j] = Math.floor(rnd() * 256);
        // Bias towards known types and small stream ids so the payload parsers are reached.
        if (len > 0 && rnd() < 0.7) input[0] = 1 + Math.floor(rnd() * 9);
        if (len > 5 && rnd() < 0.5) input.set([0, 0, 0, Math.floor(rnd() * 4)], 2);
        if (len > 6 && rnd() < 0.3) input.set(Buffer.from('{"status":200,"kind":"http","method":"GET","path":"/"'.slice(0, len - 6)), 6);
        let d: V2Decoded | undefined;
        assert.doesNotThrow(() => (d = decodeFrame(input)));
        check(input, d!);
      }
    });

    it('never throws on truncated or bit-flipped valid frames', () => {
      const rnd = prng(42);
      for (const f of valid()) {
        for (let cut = 0; cut <= f.length; cut++) {
          const input = f.subarray(0, cut);
          let d: V2Decoded | undefined;
          assert.doesNotThrow(() => (d = decodeFrame(input)));
          check(input, d!);
          if (cut < V2_HEADER_BYTES) assert.equal(d!.ok, false);
        }
        for (let i = 0; i < 500; i++) {
          const input = Uint8Array.from(f);
          input[Math.floor(rnd() * input.length)] ^= 1 << Math.floor(rnd() * 8);
          let d: V2Decoded | undefined;
          assert.doesNotThrow(() => (d = decodeFrame(input)));
          check(input, d!);
        }
      }
    });

    it('never throws on inputs that are not bytes', () => {
      for (const junk of [null, undefined, 'text', 42, {}, [1, 2, 3], new ArrayBuffer(8)]) {
        assert.doesNotThrow(() => decodeFrame(junk as unknown as Uint8Array));
        assert.equal(decodeFrame(junk as unknown as Uint8Array).ok, false);
      }
    });
  });
});
