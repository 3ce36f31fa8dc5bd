import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type ServerOptions } from 'ws';
import { openRawWebSocket } from './raw-websocket.js';
import { Opcode, ZERO_MASK_KEY, clientFrame, frameHeader } from './ws-frames.js';

type Decoded = [event: string, ...what: unknown[]];

/**
 * What a real `ws` server makes of `frames`, written after a handshake on a
 * bare socket and followed by a FIN (so that a frame misread as longer than
 * it is ends in a close 1006, not a wait): its events in order, up to its
 * first error or its close.
 */
async function decodedByWs(frames: Buffer[], options: ServerOptions = {}): Promise<Decoded[]> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, ...options });
  await once(server, 'listening');
  const events: Decoded[] = [];
  const finished = new Promise<Decoded[]>((resolve) => {
    server.once('connection', (ws) => {
      ws.on('message', (data: Buffer, binary) => events.push(binary ? ['binary', data] : ['text', data.toString()]));
      ws.on('ping', (data) => events.push(['ping', data.toString()]));
      ws.on('error', (err: NodeJS.ErrnoException) => resolve([...events, ['error', err.code, err.message]]));
      ws.on('close', (code, reason) => resolve([...events, ['close', code, reason.toString()]]));
    });
  });
  const socket = await openRawWebSocket((server.address() as AddressInfo).port, '/');
  try {
    socket.end(Buffer.concat(frames));
    return await finished;
  } finally {
    socket.destroy();
    server.close();
  }
}

/** The payload of a close frame (RFC 6455 §5.5.1): the code, then the reason. */
function closePayload(code: number, reason: string): Buffer {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code);
  payload.write(reason, 2);
  return payload;
}

const bytes = (...b: number[]): Buffer => Buffer.from(b);

describe('clientFrame and frameHeader', () => {
  it("build RFC 6455 §5.7's examples byte for byte, all three length encodings among them", () => {
    // The default key is the examples' 37 fa 21 3d.
    assert.deepEqual(clientFrame(Opcode.TEXT, 'Hello'), bytes(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58));
    assert.deepEqual(clientFrame(Opcode.PONG, 'Hello'), bytes(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58));
    assert.deepEqual(clientFrame(Opcode.TEXT, 'Hello', { maskKey: null }), bytes(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f));
    assert.deepEqual(clientFrame(Opcode.TEXT, 'Hel', { fin: false, maskKey: null }), bytes(0x01, 0x03, 0x48, 0x65, 0x6c));
    assert.deepEqual(clientFrame(Opcode.CONTINUATION, 'lo', { maskKey: null }), bytes(0x80, 0x02, 0x6c, 0x6f));
    assert.deepEqual(frameHeader({ opcode: Opcode.BINARY, length: 256, maskKey: null }), bytes(0x82, 0x7e, 0x01, 0x00));
    assert.deepEqual(frameHeader({ opcode: Opcode.BINARY, length: 65536, maskKey: null }), bytes(0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0, 0));
  });

  it('a ws server reads each length encoding, the shortest and a forced longer one, and each key, as the payload sent', async () => {
    const p300 = randomBytes(300);
    const p70000 = randomBytes(70_000);
    const decoded = await decodedByWs([
      clientFrame(Opcode.TEXT, 'seven bits'),
      clientFrame(Opcode.BINARY, p300),
      clientFrame(Opcode.BINARY, p70000),
      clientFrame(Opcode.TEXT, 'sixteen, not minimal', { lengthBits: 16 }),
      clientFrame(Opcode.TEXT, 'sixty-four, not minimal', { lengthBits: 64 }),
      clientFrame(Opcode.BINARY, p300, { lengthBits: 64 }),
      clientFrame(Opcode.TEXT, 'zero key', { maskKey: ZERO_MASK_KEY }),
      clientFrame(Opcode.TEXT, 'random key', { maskKey: randomBytes(4) }),
      clientFrame(Opcode.CLOSE, closePayload(4000, 'done')),
    ]);
    assert.deepEqual(decoded, [
      ['text', 'seven bits'],
      ['binary', p300],
      ['binary', p70000],
      ['text', 'sixteen, not minimal'],
      ['text', 'sixty-four, not minimal'],
      ['binary', p300],
      ['text', 'zero key'],
      ['text', 'random key'],
      ['close', 4000, 'done'],
    ]);
  });

  it('a ws server reads a fragmented message, a ping between its fragments, as one message', async () => {
    const decoded = await decodedByWs([
      clientFrame(Opcode.TEXT, 'Hel', { fin: false }),
      clientFrame(Opcode.PING, 'between'),
      clientFrame(Opcode.CONTINUATION, 'l', { fin: false }),
      clientFrame(Opcode.CONTINUATION, 'o'),
      clientFrame(Opcode.BINARY, randomBytes(200), { fin: false }),
      clientFrame(Opcode.CONTINUATION, Buffer.alloc(0)),
      clientFrame(Opcode.CLOSE, closePayload(1000, '')),
    ]);
    assert.equal(decoded.length, 4);
    assert.deepEqual(decoded[0], ['ping', 'between']);
    assert.deepEqual(decoded[1], ['text', 'Hello']);
    assert.deepEqual([decoded[2][0], (decoded[2][1] as Buffer).length], ['binary', 200]);
    assert.deepEqual(decoded[3], ['close', 1000, '']);
  });

  const hostile: [what: string, frame: Buffer, error: string, message: string, options?: ServerOptions][] = [
    ['an unmasked frame', clientFrame(Opcode.BINARY, 'abc', { maskKey: null }), 'WS_ERR_EXPECTED_MASK', 'Invalid WebSocket frame: MASK must be set'],
    ['RSV1 set', clientFrame(Opcode.BINARY, 'abc', { rsv: 4 }), 'WS_ERR_UNEXPECTED_RSV_1', 'Invalid WebSocket frame: RSV1 must be clear'],
    ['RSV3 set', clientFrame(Opcode.BINARY, 'abc', { rsv: 1 }), 'WS_ERR_UNEXPECTED_RSV_2_3', 'Invalid WebSocket frame: RSV2 and RSV3 must be clear'],
    ['a reserved opcode', clientFrame(0x3, ''), 'WS_ERR_INVALID_OPCODE', 'Invalid WebSocket frame: invalid opcode 3'],
    ['a fragmented ping', clientFrame(Opcode.PING, 'x', { fin: false }), 'WS_ERR_EXPECTED_FIN', 'Invalid WebSocket frame: FIN must be set'],
    ['a ping of 126 bytes', clientFrame(Opcode.PING, Buffer.alloc(126)), 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH', 'Invalid WebSocket frame: invalid payload length 126'],
    ['a 64-bit length with its top bit set', frameHeader({ opcode: Opcode.BINARY, length: 2n ** 63n }), 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', 'Unsupported WebSocket frame: payload length > 2^53 - 1'],
    ['a header declaring 2 MiB to a 1 MiB limit', frameHeader({ opcode: Opcode.BINARY, length: 2 * 1024 * 1024 }), 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'Max payload size exceeded', { maxPayload: 1024 * 1024 }],
  ];
  for (const [what, frame, error, message, options] of hostile) {
    it(`expresses ${what}, and a ws server refuses it for just that`, async () => {
      assert.deepEqual(await decodedByWs([frame], options), [['error', error, message]]);
    });
  }

  it('refuses a field its bits cannot hold', () => {
    assert.throws(() => clientFrame(Opcode.BINARY, Buffer.alloc(126), { lengthBits: 7 }), RangeError);
    assert.throws(() => clientFrame(Opcode.BINARY, Buffer.alloc(65536), { lengthBits: 16 }), RangeError);
    assert.throws(() => frameHeader({ opcode: Opcode.BINARY, length: 2n ** 64n }), RangeError);
    assert.throws(() => frameHeader({ opcode: Opcode.BINARY, length: -1 }), RangeError);
    assert.throws(() => clientFrame(0x10, ''), RangeError);
    assert.throws(() => clientFrame(Opcode.BINARY, '', { rsv: 8 }), RangeError);
    assert.throws(() => clientFrame(Opcode.BINARY, '', { maskKey: [1, 2, 3] }), RangeError);
  });
});
