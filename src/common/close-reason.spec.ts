import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fitCloseReason, MAX_CLOSE_REASON_BYTES } from './close-reason.js';

const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

describe('fitCloseReason', () => {
  it('keeps a reason that fits, up to exactly 123 bytes', () => {
    assert.equal(fitCloseReason('origin not allowed'), 'origin not allowed');
    const exact = 'x'.repeat(MAX_CLOSE_REASON_BYTES);
    assert.equal(fitCloseReason(exact), exact);
    const multi = 'é'.repeat(61) + 'x'; // 123 bytes in 62 characters
    assert.equal(fitCloseReason(multi), multi);
  });

  it('cuts a longer reason to at most 123 bytes at a character boundary', () => {
    assert.equal(fitCloseReason('x'.repeat(500)), 'x'.repeat(MAX_CLOSE_REASON_BYTES));
    const cut = fitCloseReason('é'.repeat(100));
    assert.equal(cut, 'é'.repeat(61));
    const emoji = fitCloseReason('🙂'.repeat(40)); // 4 bytes each, surrogate pairs in JS
    assert.equal(bytes(emoji), 120);
    assert.equal(emoji, '🙂'.repeat(30));
  });

  it('cuts a reason one or two bytes over the limit (ws throws on a close reason over 123 bytes)', () => {
    assert.equal(fitCloseReason('x'.repeat(MAX_CLOSE_REASON_BYTES + 1)), 'x'.repeat(MAX_CLOSE_REASON_BYTES));
    assert.equal(fitCloseReason('é'.repeat(62)), 'é'.repeat(61)); // 124 bytes
    assert.equal(fitCloseReason('x'.repeat(MAX_CLOSE_REASON_BYTES) + 'é'), 'x'.repeat(MAX_CLOSE_REASON_BYTES)); // 125 bytes
  });
});
