import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SLAB_BYTES, SlabStore } from './slab-store.js';

const KiB = 1024;

describe('SlabStore', () => {
  it('keeps exact copies, splitting a chunk that crosses a slab boundary', () => {
    const store = new SlabStore();
    const chunks = Array.from({ length: 9 }, () => randomBytes(60 * KiB));
    const expected = Buffer.concat(chunks);
    const kept = chunks.map((c) => store.append(c));
    // The copies do not depend on the read buffers, which the caller may reuse.
    for (const c of chunks) c.fill(0);
    assert.ok(kept.some((views) => views.length === 2), 'a chunk crossing a slab boundary comes back as two views');
    assert.deepEqual(Buffer.concat(kept.flat()), expected);
  });

  it('recycles fully acked slabs into the shared pool, and never one a replaced socket may still write from', () => {
    const a = new SlabStore();
    const first = a.append(Buffer.alloc(SLAB_BYTES, 1))[0]!;
    a.append(Buffer.alloc(10, 2));
    a.releaseBefore(SLAB_BYTES); // the first slab is acked…
    a.flushedTo(SLAB_BYTES); // …and the socket has written all of it
    const b = new SlabStore();
    const reused = b.append(Buffer.alloc(4, 3))[0]!;
    assert.equal(reused.buffer, first.buffer, 'the acked slab was reused');

    const c = new SlabStore();
    const owned = c.append(Buffer.alloc(100 * KiB, 7));
    c.disown();
    c.releaseBefore(100 * KiB);
    // Whatever a later socket reports written, the replaced one may still be writing these bytes.
    c.flushedTo(SLAB_BYTES);
    const d = new SlabStore();
    d.append(Buffer.alloc(SLAB_BYTES, 9));
    d.append(Buffer.alloc(SLAB_BYTES, 9));
    assert.ok(owned[0]!.every((x) => x === 7), 'bytes a replaced socket may still write are never overwritten');
  });

  it('never hands another session a slab acked ahead of the writes, until the writes pass it', () => {
    // A client can ack bytes still queued in the proxy's send buffer: it knows what its own target sent.
    const attacker = new SlabStore();
    const queued = attacker.append(Buffer.alloc(SLAB_BYTES, 0x41))[0]!;
    attacker.append(Buffer.alloc(10, 0x41));
    attacker.flushedTo(1000);
    attacker.releaseBefore(SLAB_BYTES);
    assert.equal(attacker.retiredCount, 1);
    const victim = new SlabStore();
    for (let i = 0; i < 4; i++) {
      const view = victim.append(Buffer.alloc(SLAB_BYTES, 0x53))[0]!;
      assert.notEqual(view.buffer, queued.buffer, 'a slab with a pending write was handed out');
    }
    assert.ok(queued.every((x) => x === 0x41), 'the bytes still being written are intact');
    attacker.flushedTo(SLAB_BYTES);
    assert.equal(attacker.retiredCount, 0);
    assert.equal(new SlabStore().append(Buffer.alloc(1, 0))[0]!.buffer, queued.buffer, 'recycled once written');
  });

  it('gives acked slabs back when their socket closes, and drops them when it is replaced', () => {
    const closedSocket = new SlabStore();
    const a = closedSocket.append(Buffer.alloc(SLAB_BYTES, 1))[0]!;
    closedSocket.append(Buffer.alloc(1, 1));
    closedSocket.releaseBefore(SLAB_BYTES);
    closedSocket.socketClosed();
    assert.equal(new SlabStore().append(Buffer.alloc(1, 0))[0]!.buffer, a.buffer);

    const replaced = new SlabStore();
    const b = replaced.append(Buffer.alloc(SLAB_BYTES, 2))[0]!;
    replaced.append(Buffer.alloc(1, 2));
    replaced.releaseBefore(SLAB_BYTES);
    replaced.disown();
    replaced.flushedTo(10 * SLAB_BYTES);
    for (let i = 0; i < 4; i++) assert.notEqual(new SlabStore().append(Buffer.alloc(SLAB_BYTES, 3))[0]!.buffer, b.buffer);
    assert.ok(b.every((x) => x === 2));
  });

  it('counts a whole slab for each one held, however little of it a replaced socket left used', () => {
    const s = new SlabStore();
    for (let i = 0; i < 5; i++) {
      s.append(Buffer.alloc(1, i));
      s.disown();
    }
    assert.equal(s.heldBytes, 5 * SLAB_BYTES, 'five bytes, five slabs');
    s.releaseBefore(5);
    assert.equal(s.heldBytes, 0);
  });

  it('holds no slab once everything is acked', () => {
    const s = new SlabStore();
    s.append(Buffer.alloc(1000, 1));
    s.releaseBefore(1000);
    const next = s.append(Buffer.alloc(1000, 2))[0]!;
    assert.equal(next.byteOffset, 0, 'the next byte starts a fresh slab');
  });
});
