import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { socketPair } from '../../test/support/socket-pair.js';
import { within } from '../../test/support/within.js';
import { endTarget } from './end-target.js';

describe('endTarget', () => {
  it('sends the pending writes, then FIN; a target that closes in time is not destroyed', async () => {
    const { client: proxySide, peer: target, close } = await socketPair();
    try {
      proxySide.on('data', () => undefined);
      proxySide.write('last bytes');
      endTarget(proxySide, 60_000);
      const chunks: Buffer[] = [];
      target.on('data', (c: Buffer) => chunks.push(c));
      await once(target, 'end');
      assert.equal(Buffer.concat(chunks).toString(), 'last bytes');
      target.end();
      await once(proxySide, 'close');
      assert.equal(proxySide.errored, null);
    } finally {
      close();
    }
  });

  it('destroys a target that ignores the FIN and keeps sending, at the deadline', async () => {
    // The target half-closes nothing: it keeps its side open and writing after the FIN.
    const { client: proxySide, peer: target, close } = await socketPair({ server: { allowHalfOpen: true } });
    try {
      target.on('error', () => undefined);
      target.on('data', () => undefined);
      // Keeps the socket busy: an idle timeout would never fire.
      const chatter = setInterval(() => target.writable && target.write('x'), 10);
      proxySide.on('data', () => undefined);
      const started = Date.now();
      endTarget(proxySide, 300);
      await within(once(proxySide, 'close'), 5000, 'the target destroyed');
      clearInterval(chatter);
      assert.ok(Date.now() - started >= 250, 'not before the deadline');
      assert.ok(proxySide.destroyed);
    } finally {
      close();
    }
  });

  it('reads on a paused target, so the FIN behind its unread bytes is seen and it closes', async () => {
    const { client: proxySide, peer: target, close } = await socketPair();
    try {
      proxySide.pause();
      target.on('end', () => target.end());
      // More than the paused socket takes in before it stops reading: the FIN waits behind it in the kernel.
      target.write(Buffer.alloc(4 * 1024 * 1024));
      await new Promise((resolve) => setTimeout(resolve, 50));
      endTarget(proxySide, 60_000);
      await within(once(proxySide, 'close'), 10_000, 'the target closed');
      assert.equal(proxySide.bytesRead, 4 * 1024 * 1024);
    } finally {
      close();
    }
  });

  it('leaves an already destroyed socket alone', async () => {
    const { client: proxySide, close } = await socketPair();
    proxySide.destroy();
    assert.doesNotThrow(() => endTarget(proxySide, 10));
    close();
  });
});
