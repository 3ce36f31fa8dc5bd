import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { queueable } from './socket-bounds.js';

/** A writable whose first write never completes, so every later one waits in its queue. */
function stuckWritable(): Writable {
  return new Writable({ write: () => undefined });
}

describe('queueable', () => {
  const read = Buffer.alloc(64 * 1024, 7);

  it('writes a view as it is when nothing waits in the socket', () => {
    const tiny = read.subarray(10, 11);
    assert.equal(queueable(stuckWritable(), tiny), tiny);
  });

  it('copies a small view that would wait, so it does not pin the read it came in', () => {
    const socket = stuckWritable();
    socket.write(Buffer.from('first'));
    const tiny = read.subarray(10, 11);
    const queued = queueable(socket, tiny);
    assert.notEqual(queued, tiny);
    assert.deepEqual(queued, tiny);
    assert.equal(queued.buffer.byteLength, 1);
  });

  it('writes a bulk message as it is even when it would wait: a view of 8 KiB or more of a 64 KiB read is not copied', () => {
    const socket = stuckWritable();
    socket.write(Buffer.from('first'));
    const bulk = read.subarray(0, 16 * 1024);
    assert.equal(queueable(socket, bulk), bulk);
    const eighth = read.subarray(0, 8 * 1024);
    assert.equal(queueable(socket, eighth), eighth);
    const less = read.subarray(0, 8 * 1024 - 1);
    assert.notEqual(queueable(socket, less), less);
  });
});
