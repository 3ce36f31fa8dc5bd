import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { socketPair } from '../../test/support/socket-pair.js';
import { SocketGoneSignal } from './client-gone.js';

describe('SocketGoneSignal', () => {
  it('is aborted once the socket is destroyed; its listeners hear the close and can be removed', async () => {
    const pair = await socketPair();
    try {
      const signal = new SocketGoneSignal(pair.client);
      const baseline = pair.client.listenerCount('close');
      let heard = 0;
      const listener = (): void => {
        heard++;
      };
      signal.addEventListener('abort', listener);
      signal.removeEventListener('abort', listener);
      assert.equal(pair.client.listenerCount('close'), baseline);
      signal.addEventListener('abort', listener);
      assert.equal(signal.aborted, false);
      pair.client.destroy();
      assert.equal(signal.aborted, true);
      await once(pair.client, 'close');
      assert.equal(heard, 1);
    } finally {
      pair.close();
    }
  });
});
