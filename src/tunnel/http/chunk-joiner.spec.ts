import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkJoiner } from './chunk-joiner.js';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('ChunkJoiner', () => {
  it('joins the small chunks of one turn into one write, at the end of the turn', async () => {
    const writes: string[] = [];
    const joiner = new ChunkJoiner((chunk) => writes.push(chunk.toString()));
    for (const c of 'hello') joiner.push(Buffer.from(c));
    assert.deepEqual(writes, []);
    await tick();
    assert.deepEqual(writes, ['hello']);
    joiner.push(Buffer.from('!'));
    await tick();
    assert.deepEqual(writes, ['hello', '!']);
  });

  it('writes what it holds before a large chunk, which goes on as it is, and at flush()', async () => {
    const writes: Buffer[] = [];
    const joiner = new ChunkJoiner((chunk) => writes.push(chunk));
    const large = Buffer.alloc(8192, 'L');
    joiner.push(Buffer.from('a'));
    joiner.push(Buffer.from('b'));
    joiner.push(large);
    joiner.push(Buffer.from('c'));
    joiner.flush();
    assert.deepEqual(writes.map((w) => (w === large ? 'large' : w.toString())), ['ab', 'large', 'c']);
    await tick();
    assert.equal(writes.length, 3, 'nothing written twice');
  });

  it('writes once it holds 16 KiB, and keeps every byte in order', async () => {
    const writes: Buffer[] = [];
    const joiner = new ChunkJoiner((chunk) => writes.push(chunk));
    const bytes = Buffer.from(Array.from({ length: 40_000 }, (_, i) => i % 251));
    for (let i = 0; i < bytes.length; i++) joiner.push(bytes.subarray(i, i + 1));
    await tick();
    assert.deepEqual(writes.map((w) => w.length), [16384, 16384, 40_000 - 2 * 16384]);
    assert.deepEqual(Buffer.concat(writes), bytes);
  });
});
