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
