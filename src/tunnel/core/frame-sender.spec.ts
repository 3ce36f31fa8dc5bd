import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { FrameSender } from './frame-sender.js';

/**
 * A WebSocket whose send buffer the test drives: `bufferedAmount` grows by
 * each frame, and a frame's flush callback runs (after its bytes leave) only
 * when the test calls `flushNext`.
 */
class HeldSocket {
  readyState: number = WebSocket.OPEN;
  bufferedAmount = 0;
  readonly sent: { frame: Uint8Array | string; binary: boolean; withCallback: boolean }[] = [];
  private readonly callbacks: { size: number; cb: () => void }[] = [];

  send(frame: Uint8Array | string, options: { binary: boolean }, cb?: () => void): void {
    this.bufferedAmount += frame.length;
    this.sent.push({ frame, binary: options.binary, withCallback: cb !== undefined });
    if (cb) this.callbacks.push({ size: frame.length, cb });
  }

  /** Bytes of frames sent without a callback leave the buffer. */
  flushUncounted(bytes: number): void {
    this.bufferedAmount -= bytes;
  }

  /** The oldest frame with a callback leaves the buffer; its callback runs. Returns false when none is held. */
  flushNext(): boolean {
    const next = this.callbacks.shift();
    if (!next) return false;
    this.bufferedAmount -= next.size;
    next.cb();
    return true;
  }

  get held(): number {
    return this.callbacks.length;
  }
}

function senderOn(socket: HeldSocket, highWater: number, onDrained: () => void): FrameSender {
  return new FrameSender(socket as unknown as WebSocket, highWater, onDrained);
}

describe('FrameSender, on a socket the test drives', () => {
  it('counts the frame being sent against the mark', () => {
    const socket = new HeldSocket();
    const frames = senderOn(socket, 100, () => assert.fail('no drain expected'));
    socket.bufferedAmount = 60;
    frames.send(new Uint8Array(39));
    assert.equal(frames.ready, true);
    frames.send(new Uint8Array(1));
    assert.equal(frames.ready, false, '99 buffered + 1 reaches the mark of 100');
    assert.deepEqual(
      socket.sent.map((s) => s.withCallback),
      [false, true],
    );
  });

  it('gives every frame sent while congested a flush callback, and reports one drain, only below the mark', () => {
    const socket = new HeldSocket();
    let drained = 0;
    const frames = senderOn(socket, 100, () => drained++);
    for (let i = 0; i < 8; i++) frames.send(new Uint8Array(40));
    // 0 + 40, 40 + 40 stay below 100; the third frame reaches it, and every one after it is congested too.
    assert.deepEqual(
      socket.sent.map((s) => s.withCallback),
      [false, false, true, true, true, true, true, true],
    );
    assert.equal(frames.ready, false);
    socket.flushUncounted(80);
    while (socket.bufferedAmount >= 100) {
      assert.ok(socket.flushNext());
      if (socket.bufferedAmount >= 100) assert.equal(drained, 0, 'no drain while the buffer is still at or above the mark');
    }
    assert.equal(drained, 1);
    assert.equal(frames.ready, true);
    while (socket.flushNext());
    assert.equal(drained, 1, 'one drain per congestion');
  });

  it('after a drain, congests and drains again', () => {
    const socket = new HeldSocket();
    let drained = 0;
    const frames = senderOn(socket, 100, () => drained++);
    frames.send(new Uint8Array(100));
    assert.equal(frames.ready, false);
    socket.flushNext();
    assert.equal(drained, 1);
    frames.send('x'.repeat(100));
    assert.equal(frames.ready, false);
    assert.equal(socket.sent[1]!.binary, false);
    assert.equal(socket.sent[1]!.withCallback, true);
    socket.flushNext();
    assert.equal(drained, 2);
  });

  it('sends nothing unless the WebSocket is open', () => {
    for (const state of [WebSocket.CONNECTING, WebSocket.CLOSING, WebSocket.CLOSED]) {
      const socket = new HeldSocket();
      socket.readyState = state;
      const frames = senderOn(socket, 100, () => undefined);
      frames.send(new Uint8Array(10));
      frames.send('text');
      assert.equal(socket.sent.length, 0, `state ${state}`);
      assert.equal(frames.ready, true);
    }
  });
});

describe('FrameSender, on a real WebSocket pair', () => {
  const HIGH_WATER = 256 * 1024;
  const FRAME = 64 * 1024;
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

  it('is not ready once a few thousand tiny frames wait, long before their bytes reach the mark, and drains once they are written', async () => {
    await pair();
    let received = 0;
    receiver.on('message', (data: Buffer) => (received += data.length));
    // A peer whose connection takes nothing: every frame sent stays in the sender's socket.
    const socket = (sender as unknown as { _socket: import('node:net').Socket })._socket;
    socket.cork();
    let drained = 0;
    const frames = new FrameSender(sender, 1024 * 1024, () => drained++);
    let sent = 0;
    while (frames.ready && sent < 200_000) {
      frames.send(Buffer.of(sent & 0xff));
      sent++;
    }
    assert.equal(frames.ready, false, `${sent} one-byte frames (${sender.bufferedAmount} bytes) queued and still ready`);
    assert.ok(sent <= 4096 + 256, `${sent} frames queued before it stopped`);
    assert.ok(sender.bufferedAmount < 64 * 1024);
    socket.uncork();
    const deadline = Date.now() + 10_000;
    while ((drained === 0 || received < sent) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal(received, sent, 'every frame arrived');
    assert.equal(drained, 1, 'one drain');
    assert.equal(frames.ready, true);
  });

  it('is not ready past the mark, and reports the drain once the peer reads everything sent meanwhile', async () => {
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
    // Frames sent while congested still go out (flow-controlled senders wait on `ready`, control frames do not).
    for (let i = 0; i < (2 * HIGH_WATER) / FRAME; i++) {
      frames.send(Buffer.alloc(FRAME));
      sent += FRAME;
    }
    receiver.resume();
    const deadline = Date.now() + 20_000;
    while (received < sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal(received, sent);
    assert.equal(drained, 1);
    assert.equal(frames.ready, true);
  });
});
