import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { socketPair } from '../../test/support/socket-pair.js';
import { within } from '../../test/support/within.js';
import { TARGET_END_TIMEOUT_MS, WS_SEND_HIGH_FRAMES, WS_SEND_HIGH_WATER, pipeRelay, type PipeEnd, type RelayPipe } from './relay-pipe.js';

/** A WebSocket connection over loopback: `ws` the server side (what the relay gets), `client` the other. */
async function wsPair(): Promise<{ ws: WebSocket; client: WebSocket; close(): void }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const serverSide = once(wss, 'connection') as Promise<[WebSocket]>;
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  client.on('error', () => undefined);
  const [ws] = await serverSide;
  await once(client, 'open');
  return {
    ws,
    client,
    close: () => {
      client.terminate();
      wss.close();
    },
  };
}

/**
 * A relay between a fresh WebSocket pair and a target that writes 64 KiB blocks as fast as they are
 * taken until it gets the relay's FIN, then closes its side. `ended`: how the relay ended, and its bytes down.
 */
async function floodingRelay(): Promise<{
  proxySide: Socket;
  /** The relay's WebSocket (the server side). */
  ws: WebSocket;
  client: WebSocket;
  pipe: RelayPipe;
  ended: Promise<[PipeEnd, number]>;
  close(): void;
}> {
  const { client: proxySide, peer: target, close } = await socketPair();
  const pair = await wsPair();
  target.on('error', () => undefined);
  const block = Buffer.alloc(64 * 1024, 0x5a);
  let flooding = true;
  const pump = (): void => {
    while (flooding && target.writable && target.write(block));
  };
  target.on('drain', pump);
  pump();
  target.on('end', () => {
    flooding = false;
    target.end();
  });
  target.resume();
  let pipe!: RelayPipe;
  const ended = new Promise<[PipeEnd, number]>((resolve) => {
    pipe = pipeRelay(pair.ws, proxySide, (end) => resolve([end, pipe.bytesDown()]));
  });
  return {
    proxySide,
    ws: pair.ws,
    client: pair.client,
    pipe,
    ended,
    close: () => {
      flooding = false;
      pair.close();
      close();
    },
  };
}

/** Resolves once `condition` holds, checking every few milliseconds; rejects after `ms`. */
async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('pipeRelay', () => {
  it('after a clean close from the client, a target that never closes its side is destroyed TARGET_END_TIMEOUT_MS after its FIN, and the relay ends', async () => {
    // The target: half-open allowed, it never answers the FIN.
    const { client: proxySide, peer: target } = await socketPair({ server: { allowHalfOpen: true } });
    target.on('error', () => undefined);

    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    const serverSide = once(wss, 'connection') as Promise<[WebSocket]>;
    const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
    const [ws] = await serverSide;
    await once(client, 'open');
    let ended: PipeEnd | null = null;
    const relayEnded = new Promise<PipeEnd>((resolve) => pipeRelay(ws, proxySide, (end) => resolve((ended = end))));
    try {
      const received: Buffer[] = [];
      target.on('data', (c: Buffer) => received.push(c));
      // The deadline is a 30 s timer: mocked here so the test does not wait for it.
      mock.timers.enable({ apis: ['setTimeout'] });
      try {
        client.send(Buffer.from('last bytes'));
        client.close(1000, 'bye');
        await once(target, 'end');
        assert.equal(Buffer.concat(received).toString(), 'last bytes', 'pending writes go before the FIN');
        assert.equal(proxySide.destroyed, false);
        mock.timers.tick(TARGET_END_TIMEOUT_MS - 1);
        assert.equal(proxySide.destroyed, false, 'not before the deadline');
        assert.equal(ended, null);
        mock.timers.tick(1);
        assert.equal(proxySide.destroyed, true, 'destroyed at the deadline');
      } finally {
        mock.timers.reset();
      }
      assert.deepEqual(await within(relayEnded, 5000, 'the relay ended'), { closeCode: 1000, closeReason: 'bye', endedBy: 'client' });
    } finally {
      client.terminate();
      proxySide.destroy();
      target.destroy();
      wss.close();
    }
  });

  it('a client that vanishes (no close frame) drops a target that keeps its side open at once, not TARGET_END_TIMEOUT_MS later', async () => {
    // The target: half-open allowed, it never answers a FIN. Ended gracefully instead of destroyed, the relay
    // (and its slot) would last TARGET_END_TIMEOUT_MS after the client was gone.
    const { client: proxySide, peer: target, close: closePair } = await socketPair({ server: { allowHalfOpen: true } });
    target.on('error', () => undefined);
    target.resume();
    const { ws, client, close } = await wsPair();
    try {
      const relayEnded = new Promise<PipeEnd>((resolve) => pipeRelay(ws, proxySide, resolve));
      client.terminate();
      const end = await within(relayEnded, 5000, 'the relay ended');
      assert.equal(end.closeCode, 1006);
      assert.equal(end.endedBy, 'client');
      assert.equal(proxySide.destroyed, true);
    } finally {
      close();
      closePair();
    }
  });

  it('a keepalive timeout drops both sides (the target with a reset: its upload is cut short) and reports the end as the server\'s 1006 with its reason', async () => {
    const { ws, client, close } = await wsPair();
    const { client: proxySide, peer: target, close: closePair } = await socketPair();
    try {
      const targetDropped = new Promise((resolve) => target.once('close', resolve));
      const targetError = new Promise<string | undefined>((resolve) => target.once('error', (err: NodeJS.ErrnoException) => resolve(err.code)));
      let targetEnded = false;
      target.once('end', () => (targetEnded = true));
      target.resume();
      const clientClosed = once(client, 'close') as Promise<[number]>;
      const relayEnded = new Promise<PipeEnd>((resolve) => pipeRelay(ws, proxySide, resolve).timedOut('keepalive timeout: no pong'));
      const [code] = await within(clientClosed, 5000, 'the client dropped');
      assert.equal(code, 1006);
      await within(targetDropped, 5000, 'the target dropped');
      assert.equal(await within(targetError, 5000, 'the target reset'), 'ECONNRESET');
      assert.equal(targetEnded, false, 'no FIN: the target must not take what it got for the whole upload');
      assert.deepEqual(await within(relayEnded, 5000, 'the relay ended'), { closeCode: 1006, closeReason: 'keepalive timeout: no pong', endedBy: 'server' });
    } finally {
      close();
      closePair();
    }
  });

  it("a server's close sends every byte already read from the target before its close frame, and reports only the bytes sent", async () => {
    const { proxySide, client, pipe, ended, close } = await floodingRelay();
    try {
      // A client that stops reading: the relay's send buffer fills and it pauses the target, with a read held.
      client.pause();
      await until(() => proxySide.isPaused() && proxySide.readableLength > 0, 10_000, 'the target paused with bytes held');
      const readBeforeClose = proxySide.bytesRead;
      let received = 0;
      client.on('message', (data: Buffer) => (received += data.length));
      const closed = once(client, 'close') as Promise<[number, Buffer]>;
      pipe.close(4408, 'maximum connection age reached');
      client.resume();
      const [code] = await within(closed, 10_000, 'the client closed');
      assert.equal(code, 4408);
      assert.equal(received, readBeforeClose, 'every byte read from the target before the close reached the client');
      const [end, bytesDown] = await within(ended, 10_000, 'the relay ended');
      assert.deepEqual(end, { closeCode: 4408, closeReason: 'maximum connection age reached', endedBy: 'server' });
      assert.equal(bytesDown, received, 'bytes down are the bytes the client got');
      assert.ok(proxySide.bytesRead > readBeforeClose, 'the target was read on after the close, to its FIN');
    } finally {
      close();
    }
  });

  it('counts in bytes down what went out to the client, not what waits in the send buffer for a client that then vanishes', async () => {
    const { proxySide, ws, client, pipe, ended, close } = await floodingRelay();
    try {
      // A client that stops reading: up to WS_SEND_HIGH_WATER and a read wait in the relay's send buffer.
      client.pause();
      await until(() => proxySide.isPaused() && ws.bufferedAmount > 64 * 1024, 10_000, 'the send buffer backed up');
      const socket = (ws as unknown as { _socket: Socket })._socket;
      // What left the proxy for the client's connection: whole frames, their headers included.
      const wireOut = socket.bytesWritten - socket.writableLength;
      assert.ok(pipe.bytesDown() <= wireOut, `bytes down ${pipe.bytesDown()} counted, ${wireOut} bytes written (${ws.bufferedAmount} waiting)`);
      (client as unknown as { _socket: Socket })._socket.resetAndDestroy();
      const [end, bytesDown] = await within(ended, 10_000, 'the relay ended');
      assert.equal(end.closeCode, 1006);
      // At most the block being written as the reset lands goes out after that measure; what waited is lost, not counted.
      assert.ok(bytesDown <= wireOut + 64 * 1024, `bytes down ${bytesDown}, ${wireOut} bytes written before the reset`);
    } finally {
      close();
    }
  });

  it('stops reading a target that sends 1-byte segments once WS_SEND_HIGH_FRAMES frames wait for a client that does not read, long before their bytes reach WS_SEND_HIGH_WATER', async () => {
    const { client: proxySide, peer: target, close } = await socketPair();
    const pair = await wsPair();
    target.on('error', () => undefined);
    target.setNoDelay(true);
    const socket = (pair.ws as unknown as { _socket: Socket })._socket;
    // A client that never reads, its connection full: nothing handed to the socket leaves the proxy.
    socket.cork();
    pipeRelay(pair.ws, proxySide, () => undefined);
    try {
      // 1-byte segments, one per turn of the event loop, so the relay reads (and frames) them one by one.
      const limit = 4 * WS_SEND_HIGH_FRAMES + 10_000;
      let sent = 0;
      await new Promise<void>((resolve) => {
        const tick = (): void => {
          if (proxySide.isPaused() || sent >= limit) return resolve();
          target.write(Buffer.of(sent++ & 0xff));
          setImmediate(tick);
        };
        tick();
      });
      await new Promise((r) => setTimeout(r, 100));
      const frames = (socket as unknown as { _writableState: { getBuffer(): unknown[] } })._writableState.getBuffer().length / 2;
      assert.ok(proxySide.isPaused(), `the target is still read with ${frames} frames (${pair.ws.bufferedAmount} bytes) queued for the client`);
      assert.ok(frames <= WS_SEND_HIGH_FRAMES + 1, `${frames} frames queued for the client`);
      assert.ok(pair.ws.bufferedAmount < WS_SEND_HIGH_WATER / 8, `${pair.ws.bufferedAmount} bytes queued`);
      // The client reads again: every byte arrives, in order, and the target is read on.
      let received = 0;
      let inOrder = true;
      pair.client.on('message', (data: Buffer) => {
        for (const b of data) if (b !== (received++ & 0xff)) inOrder = false;
      });
      socket.uncork();
      await until(() => received === sent && !proxySide.isPaused(), 10_000, 'every byte delivered and the target read again');
      assert.ok(inOrder, 'bytes in order');
    } finally {
      pair.close();
      close();
    }
  });

  it("after a client's clean close, a target paused for backpressure is read to its FIN: the relay ends without waiting for the deadline", async () => {
    const { proxySide, client, ended, close } = await floodingRelay();
    try {
      client.pause();
      await until(() => proxySide.isPaused(), 10_000, 'the target paused');
      let received = 0;
      client.on('message', (data: Buffer) => (received += data.length));
      client.close(1000, 'bye');
      client.resume();
      // The deadline (TARGET_END_TIMEOUT_MS, 30 s) would end it too: well before it, the FIN was seen.
      const [end, bytesDown] = await within(ended, 10_000, 'the relay ended');
      assert.deepEqual(end, { closeCode: 1000, closeReason: 'bye', endedBy: 'client' });
      assert.equal(bytesDown, received);
    } finally {
      close();
    }
  });

  it("after a server's close, what a client sends to a target that is not reading is dropped, not queued in memory until the client answers", async () => {
    // The target never reads: the relay paused the client for it. The server's close reads the client on to
    // its answer; the 16 MiB waiting behind it must not all go into the target socket's write buffer.
    const { client: proxySide, peer: target, close } = await socketPair({ server: { allowHalfOpen: true } });
    target.on('error', () => undefined);
    target.pause();
    const pair = await wsPair();
    let pipe!: RelayPipe;
    const relayEnded = new Promise<PipeEnd>((resolve) => {
      pipe = pipeRelay(pair.ws, proxySide, resolve);
    });
    try {
      const MSG = 16 * 1024;
      for (let i = 0; i < 1024; i++) pair.client.send(Buffer.alloc(MSG, i & 0xff));
      await until(() => proxySide.writableNeedDrain, 10_000, 'the target congested');
      const clientClosed = once(pair.client, 'close') as Promise<[number]>;
      pipe.close(4408, 'maximum connection age reached');
      const [code] = await within(clientClosed, 10_000, 'the client answered the close');
      assert.equal(code, 4408);
      assert.ok(proxySide.writableLength < 1024 * 1024, `${proxySide.writableLength} bytes queued towards a target that does not read`);
      proxySide.destroy();
      assert.equal((await within(relayEnded, 5000, 'the relay ended')).closeCode, 4408);
    } finally {
      pair.close();
      close();
    }
  });

  it("is settled once the client has closed and its bytes and the FIN reached the target, while the target keeps its side open; a server's close then ends it with the client's code", async () => {
    const { client: proxySide, peer: target, close } = await socketPair({ server: { allowHalfOpen: true } });
    const pair = await wsPair();
    target.on('error', () => undefined);
    target.resume();
    let pipe: RelayPipe | undefined;
    const relayEnded = new Promise<PipeEnd>((resolve) => {
      pipe = pipeRelay(pair.ws, proxySide, resolve);
    });
    try {
      assert.equal(pipe!.settled(), false, 'open');
      pair.client.send(Buffer.from('last'));
      pair.client.close(1000, 'bye');
      await within(once(target, 'end'), 5000, 'the FIN at the target');
      await until(() => pipe!.settled(), 5000, 'settled');
      pipe!.close(1001, 'server shutting down');
      assert.deepEqual(await within(relayEnded, 5000, 'the relay ended'), { closeCode: 1000, closeReason: 'bye', endedBy: 'client' });
    } finally {
      pair.close();
      close();
    }
  });
});
