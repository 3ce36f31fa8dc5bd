import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { socketPair } from '../../test/support/socket-pair.js';
import { within } from '../../test/support/within.js';
import { resetSocket } from './reset-socket.js';

describe('resetSocket', () => {
  it('resets a live connection: its peer reads ECONNRESET', async () => {
    const { client, peer, close } = await socketPair();
    try {
      const peerError = new Promise<string | undefined>((resolve) => peer.once('error', (err: NodeJS.ErrnoException) => resolve(err.code)));
      peer.resume();
      resetSocket(client);
      assert.equal(await within(peerError, 5000, 'the peer saw the reset'), 'ECONNRESET');
    } finally {
      close();
    }
  });

  it('closes a socket whose FIN is still being sent (a pending shutdown), which a reset would leave open for good', async () => {
    // Node's resetAndDestroy during a pending shutdown fails with EINVAL and marks the handle closing without
    // closing it: no 'close', and the process spins at exit waiting for that handle.
    const { client, peer, close } = await socketPair();
    try {
      peer.resume();
      const errors: string[] = [];
      client.on('error', (err: NodeJS.ErrnoException) => errors.push(`${err.code ?? ''} ${err.syscall ?? ''}`));
      client.end();
      resetSocket(client);
      await within(once(client, 'close'), 5000, 'the socket closed');
      assert.deepEqual(errors, []);
    } finally {
      close();
    }
  });
});
