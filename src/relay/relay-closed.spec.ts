import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { socketPair } from '../../test/support/socket-pair.js';
import { bytesUpOf } from './relay-closed.js';

describe('bytesUpOf', () => {
  it('counts what was written to a target that stopped reading, not what waits for it, and never steps back when the socket is destroyed', async () => {
    const { client: proxySide, peer: target, close } = await socketPair();
    try {
      target.pause();
      const chunk = Buffer.alloc(2_000_000);
      for (let i = 0; i < 10; i++) proxySide.write(chunk);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const live = bytesUpOf(proxySide);
      assert.ok(proxySide.bytesWritten === 20_000_000, 'bytesWritten counts the queued writes too');
      assert.ok(live > 0 && live < 20_000_000, `written so far: ${live}`);
      proxySide.destroy();
      assert.ok(bytesUpOf(proxySide) >= live);
      await once(proxySide, 'close');
      const final = bytesUpOf(proxySide);
      assert.ok(final >= live, `${final} after the close, ${live} before`);
      // At most the write that was under way when the socket closed counts on top.
      assert.ok(final <= live + chunk.length, `the discarded writes are not counted: ${final} after the close, ${live} before`);
    } finally {
      close();
    }
  });
});
