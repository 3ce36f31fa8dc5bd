import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Utf8Stream } from './utf8-stream.js';

describe('Utf8Stream', () => {
  it('accepts text split anywhere, inside characters too', () => {
    const text = Buffer.from('a€𝄞é z');
    for (let cut = 0; cut <= text.length; cut++) {
      for (let cut2 = cut; cut2 <= text.length; cut2++) {
        const s = new Utf8Stream();
        assert.equal(s.push(text.subarray(0, cut), false), true, `first ${cut}`);
        assert.equal(s.push(text.subarray(cut, cut2), false), true, `middle ${cut}-${cut2}`);
        assert.equal(s.push(text.subarray(cut2), true), true, `last ${cut2}`);
      }
    }
  });

  it('refuses invalid bytes, an overlong form, a surrogate, and a message that ends inside a character', () => {
    for (const bad of [[0xff], [0x61, 0xfe], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0x80]]) {
      assert.equal(new Utf8Stream().push(Buffer.from(bad), true), false, JSON.stringify(bad));
    }
    const s = new Utf8Stream();
    assert.equal(s.push(Buffer.from([0x61, 0xe2, 0x82]), false), true);
    assert.equal(s.push(Buffer.alloc(0), true), false, 'ends inside €');
    const t = new Utf8Stream();
    assert.equal(t.push(Buffer.from([0xe2]), false), true);
    assert.equal(t.push(Buffer.from([0x41]), true), false, 'a lead byte followed by ASCII');
  });

  it('starts clean after each message', () => {
    const s = new Utf8Stream();
    assert.equal(s.push(Buffer.from([0xff]), true), false);
    assert.equal(s.push(Buffer.from('ok'), true), true);
  });
});
