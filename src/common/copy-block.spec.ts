import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CopyBlock } from './copy-block.js';

describe('CopyBlock', () => {
  it('copies pieces one after another into one Buffer of its own, and lets it go when taken', () => {
    const block = new CopyBlock();
    assert.equal(block.fits(1), false, 'no block yet');
    block.start(8);
    const piece = Buffer.from('abc');
    block.append(piece);
    piece.fill(0);
    block.append(Buffer.from('defgh'));
    assert.equal(block.used, 8);
    assert.equal(block.fits(1), false);
    const copied = block.take()!;
    assert.equal(copied.toString(), 'abcdefgh');
    assert.equal(copied.buffer.byteLength, 8, 'not a slice of the shared pool');
    assert.equal(block.size, 0);
    assert.equal(block.take(), null);
  });

  it('takes only the bytes copied in, and nothing from an empty block', () => {
    const block = new CopyBlock();
    block.start(16);
    assert.equal(block.take(), null);
    block.start(16);
    block.append(Buffer.from('xy'));
    assert.equal(block.fits(14), true);
    assert.equal(block.fits(15), false);
    assert.deepEqual(block.take(), Buffer.from('xy'));
  });
});
