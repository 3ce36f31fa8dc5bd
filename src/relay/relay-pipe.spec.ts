import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { socketPair } from '../../test/support/socket-pair.js';
import { within } from '../../test/support/within.js';
import { TARGET_END_TIMEOUT_MS, pipeRelay, type PipeEnd } from './relay-pipe.js';

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
});
