import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { HeldBody, SMALL_BODY_CHUNK } from './held-body.js';

/** `bytes` cut by `cut` into chunks that are each a view of a larger "read" (as a request's chunks are). */
function feed(body: HeldBody, bytes: Buffer, cut: (i: number) => number, readPadding = 0): void {
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = Math.min(cut(i), bytes.length - at);
    const read = Buffer.alloc(n + readPadding);
    bytes.copy(read, readPadding, at, at + n);
    body.push(read.subarray(readPadding));
    at += n;
  }
}

describe('HeldBody', () => {
  it('keeps the bytes in order however they are cut, in a few Buffers about their size', () => {
    const cuts: ((i: number) => number)[] = [() => 1, (i) => (i % 2 ? 1 : SMALL_BODY_CHUNK), (i) => 1 + (i % 3000), () => 64 * 1024];
    for (const cut of cuts) {
      const bytes = randomBytes(300_000);
      const body = new HeldBody();
      feed(body, bytes, cut);
      assert.equal(body.bytes, bytes.length);
      assert.ok(body.pinnedBytes <= 2 * bytes.length + 64 * 1024, `${body.pinnedBytes} pinned`);
      // Each Buffer (~340 bytes of objects) holds a few hundred bytes at least.
      assert.ok(body.pieces <= bytes.length / 256 + 8, `${body.pieces} pieces`);
      assert.ok(body.take()!.equals(bytes));
      assert.equal(body.take(), null);
    }
  });

  it('does not keep a small chunk as a view of the much larger read it came in', () => {
    const body = new HeldBody();
    feed(body, randomBytes(10 * SMALL_BODY_CHUNK), () => SMALL_BODY_CHUNK, 60 * 1024);
    assert.ok(body.pinnedBytes <= 2 * 10 * SMALL_BODY_CHUNK, `${body.pinnedBytes} pinned`);
  });

  it('keeps a small body small', () => {
    const body = new HeldBody();
    body.push(Buffer.from('a'));
    assert.ok(body.pinnedBytes <= 256);
    assert.equal(body.take()!.toString(), 'a');
  });

  it('forgets everything it held on clear, and holds what comes after', () => {
    const body = new HeldBody();
    body.push(Buffer.from('abc'));
    body.push(Buffer.alloc(SMALL_BODY_CHUNK, 1));
    body.clear();
    assert.equal(body.bytes, 0);
    assert.equal(body.pieces, 0);
    assert.equal(body.take(), null);
    body.push(Buffer.from('d'));
    assert.equal(body.take()!.toString(), 'd');
  });
});
