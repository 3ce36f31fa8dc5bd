import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { FrameSender } from './frame-sender.js';

const HIGH_WATER = 256 * 1024;
const FRAME = 64 * 1024;

describe('FrameSender', () => {
  let wss: WebSocketServer;
  let sender: WebSocket;
  let receiver: WebSocket;

  before(async () => {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
    await new Promise<void>((r) => wss.once('listening', () => r()));
  });
  afterEach(() => {
    receiver.terminate();
    sender.terminate();
  });
  after(() => new Promise<void>((r) => wss.close(() => r())));

  async function pair(): Promise<void> {
    const accepted = new Promise<WebSocket>((r) => wss.once('connection', r));
    receiver = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      receiver.once('open', () => resolve());
      receiver.once('error', reject);
    });
    sender = await accepted;
  }

  it('sends strings as text messages and bytes as binary ones, in order', async () => {
    await pair();
    const got: [string, boolean][] = [];
    const all = new Promise<void>((resolve) =>
      receiver.on('message', (data: Buffer, isBinary: boolean) => {
        got.push([data.toString(), isBinary]);
        if (got.length === 3) resolve();
      }),
    );
    const frames = new FrameSender(sender, HIGH_WATER, () => assert.fail('not congested'));
    frames.send('{"type":"hello"}');
    frames.send(Buffer.from('bytes'));
    frames.send(new Uint8Array([0x41, 0x42]));
    await all;
    assert.deepEqual(got, [
      ['{"type":"hello"}', false],
      ['bytes', true],
      ['AB', true],
    ]);
    assert.equal(frames.ready, true);
  });

  it('is not ready past the high-water mark, and reports the drain once the peer reads again', async () => {
    await pair();
    let received = 0;
    receiver.on('message', (data: Buffer) => (received += data.length));
    receiver.pause();
    let drained = 0;
    const frames = new FrameSender(sender, HIGH_WATER, () => drained++);
    let sent = 0;
    // The kernel's loopback buffers take a few MiB before anything queues in the process.
    while (frames.ready && sent < 256 * 1024 * 1024) {
      frames.send(Buffer.alloc(FRAME, sent & 0xff));
      sent += FRAME;
    }
    assert.equal(frames.ready, false);
    assert.ok(sender.bufferedAmount >= HIGH_WATER - FRAME);
    // Frames sent while congested still go out; only `ready` tells flow-controlled senders to wait.
    frames.send(Buffer.alloc(FRAME));
    sent += FRAME;
    assert.equal(drained, 0);
    receiver.resume();
    while (received < sent) await new Promise((r) => setTimeout(r, 5));
    assert.equal(received, sent);
    assert.equal(drained, 1);
    assert.equal(frames.ready, true);
  });

  it('drops frames once the WebSocket is no longer open', async () => {
    await pair();
    const closed = new Promise<void>((r) => sender.once('close', () => r()));
    receiver.close();
    await closed;
    const frames = new FrameSender(sender, HIGH_WATER, () => undefined);
    assert.doesNotThrow(() => frames.send(Buffer.alloc(10)));
    assert.doesNotThrow(() => frames.send('text'));
    assert.equal(sender.bufferedAmount, 0);
  });
});
