import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { socketPair } from '../../test/support/socket-pair.js';
import { isRefusal } from '../common/refusal.js';
import { SocketGoneSignal } from '../upgrade/client-gone.js';
import { TcpDialer } from './tcp-dialer.js';

const clientWentAway = (err: unknown): boolean => isRefusal(err) && err.status === 400 && err.reason === 'client went away';

describe('TcpDialer and the client going away', () => {
  it('connects and leaves no listener on the client socket; gives up a dial when the client goes, or has gone', async () => {
    const target = createServer((s) => s.destroy());
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    const port = (target.address() as AddressInfo).port;
    const pair = await socketPair();
    const dialer = new TcpDialer();
    try {
      const baseline = pair.client.listenerCount('close');
      const socket = await dialer.dial('127.0.0.1', port, 5000, new SocketGoneSignal(pair.client));
      socket.destroy();
      assert.equal(pair.client.listenerCount('close'), baseline, 'the abort listener is removed once connected');

      // The client's close comes (next tick) before the connect can complete (a later poll).
      const inFlight = dialer.dial('127.0.0.1', port, 5000, new SocketGoneSignal(pair.client));
      pair.client.destroy();
      await assert.rejects(inFlight, clientWentAway);
      await assert.rejects(dialer.dial('127.0.0.1', port, 5000, new SocketGoneSignal(pair.client)), clientWentAway);
    } finally {
      pair.close();
      target.close();
    }
  });
});

describe('TcpDialer sockets paused for backpressure', () => {
  it('stop reading at the next read: a target sending 1-byte segments does not pile up 16 KiB of 1-byte reads (~2.5 MiB of heap) in a paused relay', async () => {
    let stop = false;
    let sent = 0;
    const target = createServer((s) => {
      s.setNoDelay(true);
      s.on('error', () => undefined);
      const tick = (): void => {
        if (stop || s.destroyed) return;
        s.write(Buffer.of(sent++ & 0xff));
        setImmediate(tick);
      };
      tick();
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    const pair = await socketPair();
    let socket: import('node:net').Socket | undefined;
    try {
      socket = await new TcpDialer().dial('127.0.0.1', (target.address() as AddressInfo).port, 5000, new SocketGoneSignal(pair.client));
      let received = 0;
      socket.on('data', (d: Buffer) => (received += d.length));
      while (received < 100) await new Promise((r) => setTimeout(r, 5));
      // Paused as the relay pauses a target whose client is backed up, while the target keeps sending.
      socket.pause();
      const from = sent;
      while (sent < from + 5000) await new Promise((r) => setTimeout(r, 10));
      const state = (socket as unknown as { _readableState: { buffer: { length: number } } })._readableState;
      assert.ok(state.buffer.length <= 2, `${state.buffer.length} reads (${socket.readableLength} bytes) held by the paused socket`);
      // Resumed, it delivers every byte, in order.
      stop = true;
      const total = sent;
      socket.resume();
      const deadline = Date.now() + 10_000;
      while (received < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      assert.equal(received, total);
    } finally {
      stop = true;
      socket?.destroy();
      pair.close();
      target.close();
    }
  });
});
