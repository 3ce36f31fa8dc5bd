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
    a.releaseBefore(SLAB_BYTES); // the first slab is acked
    const b = new SlabStore();
    const reused = b.append(Buffer.alloc(4, 3))[0]!;
    assert.equal(reused.buffer, first.buffer, 'the acked slab was reused');

    const c = new SlabStore();
    const owned = c.append(Buffer.alloc(100 * KiB, 7));
    c.disown();
    c.releaseBefore(100 * KiB);
    const d = new SlabStore();
    d.append(Buffer.alloc(SLAB_BYTES, 9));
    d.append(Buffer.alloc(SLAB_BYTES, 9));
    assert.ok(owned[0]!.every((x) => x === 7), 'bytes a replaced socket may still write are never overwritten');
  });

  it('holds no slab once everything is acked', () => {
    const s = new SlabStore();
    s.append(Buffer.alloc(1000, 1));
    s.releaseBefore(1000);
    const next = s.append(Buffer.alloc(1000, 2))[0]!;
    assert.equal(next.byteOffset, 0, 'the next byte starts a fresh slab');
  });
});
