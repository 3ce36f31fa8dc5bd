import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ACK_EVERY_BYTES, AckScheduler, encodeControl, parseControl, ProtocolError, ReplayBuffer } from './wire.js';

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);

describe('ReplayBuffer', () => {
  it('holds [start, end) and trims on acks, across and inside chunks', () => {
    const b = new ReplayBuffer();
    b.push(bytes(0, 1, 2));
    b.push(bytes(3, 4));
    b.push(new Uint8Array(0));
    b.push(bytes(5, 6, 7, 8));
    assert.deepEqual([b.start, b.end, b.size], [0, 9, 9]);
    b.ackTo(4);
    assert.deepEqual([b.start, b.end, b.size], [4, 9, 5]);
    assert.deepEqual(b.chunksFrom(4).map((c) => [...c]), [[4], [5, 6, 7, 8]]);
    assert.deepEqual(b.chunksFrom(6).map((c) => [...c]), [[6, 7, 8]]);
    assert.deepEqual(b.chunksFrom(9), []);
    b.ackTo(2); // stale: no effect
    assert.equal(b.start, 4);
    b.ackTo(9);
    assert.deepEqual([b.start, b.end, b.size], [9, 9, 0]);
  });

  it('keeps chunks by reference and stays compact over many acks', () => {
    const b = new ReplayBuffer();
    const chunk = bytes(1, 2, 3, 4);
    b.push(chunk);
    assert.equal(b.chunksFrom(0)[0], chunk);
    for (let i = 0; i < 5000; i++) {
      b.push(bytes(i & 0xff));
      b.ackTo(b.end - 1);
    }
    assert.equal(b.size, 1);
    assert.deepEqual([...b.chunksFrom(b.start)[0]], [4999 & 0xff]);
  });
});

describe('ReplayBuffer bookkeeping', () => {
  it('extends the last chunk with one that continues it in the same memory: one entry per region, not per push', () => {
    const memory = Uint8Array.from({ length: 64 }, (_, i) => i);
    const b = new ReplayBuffer();
    for (let i = 0; i < 32; i++) b.push(memory.subarray(i, i + 1));
    assert.equal(b.chunkCount, 1, 'adjacent views of one buffer are one chunk');
    b.push(bytes(100, 101)); // other memory
    b.push(memory.subarray(32, 34)); // continues the first region, but not the last chunk
    assert.equal(b.chunkCount, 3);
    assert.deepEqual([b.start, b.end], [0, 36]);
    assert.deepEqual(b.chunksFrom(30).map((c) => [...c]), [[30, 31], [100, 101], [32, 33]]);
    b.ackTo(5);
    b.push(memory.subarray(34, 40)); // extends the last chunk after a trim of the first
    assert.deepEqual(b.chunksFrom(5).map((c) => [...c]), [[...memory.subarray(5, 32)], [100, 101], [32, 33, 34, 35, 36, 37, 38, 39]]);
    b.ackTo(b.end);
    b.push(memory.subarray(40, 41)); // nothing held: a new chunk, not an extension of an acked one
    assert.equal(b.chunkCount, 1);
    assert.deepEqual(b.chunksFrom(b.start).map((c) => [...c]), [[40]]);
  });
});

describe('AckScheduler', () => {
  it('acks at once after 64 KiB, otherwise after 250 ms, and only when something is unacked', async () => {
    const sent: number[] = [];
    const a = new AckScheduler((n) => sent.push(n));
    a.add(ACK_EVERY_BYTES - 1);
    assert.deepEqual(sent, []);
    a.add(1);
    assert.deepEqual(sent, [ACK_EVERY_BYTES]);
    a.add(10);
    assert.deepEqual(sent, [ACK_EVERY_BYTES]);
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(sent, [ACK_EVERY_BYTES, ACK_EVERY_BYTES + 10]);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sent.length, 2, 'nothing new, no ack');
    a.stop();
  });

  it('holds acks while held and sends the total on release', () => {
    const sent: number[] = [];
    const a = new AckScheduler((n) => sent.push(n));
    a.hold();
    a.add(3 * ACK_EVERY_BYTES);
    assert.deepEqual(sent, []);
    a.release();
    assert.deepEqual(sent, [3 * ACK_EVERY_BYTES]);
    a.resetAcked(a.total);
    a.stop();
  });
});

describe('control frames', () => {
  it('parses session and ack frames, ignores unknown types, rejects malformed ones', () => {
    const id = 'a'.repeat(32);
    assert.deepEqual(parseControl(`{"type":"session","id":"${id}","windowS":60}`), { type: 'session', id, windowS: 60 });
    assert.deepEqual(parseControl(`{"type":"session","id":"${id}","windowS":60,"received":5}`), { type: 'session', id, windowS: 60, received: 5 });
    assert.deepEqual(parseControl('{"type":"session","id":null,"windowS":0}'), { type: 'session', id: null, windowS: 0 });
    assert.deepEqual(parseControl(`{"type":"session","id":"${id}","windowS":60,"maxMessageBytes":65536}`), { type: 'session', id, windowS: 60, maxMessageBytes: 65536 });
    assert.deepEqual(parseControl('{"type":"ack","received":0}'), { type: 'ack', received: 0 });
    assert.equal(parseControl('{"type":"future-thing"}'), null);
    for (const bad of ['nope', '[]', 'null', '{"type":"ack"}', '{"type":"ack","received":-1}', '{"type":"ack","received":1.5}', '{"type":"session","id":"xyz","windowS":1}', '{"type":"session","id":null,"windowS":0,"maxMessageBytes":0}', '{"type":"session","id":null,"windowS":0,"maxMessageBytes":"1"}']) {
      assert.throws(() => parseControl(bad), ProtocolError, bad);
    }
  });

  it('encodes as text, or as binary behind the 0x01 marker', () => {
    assert.equal(encodeControl({ type: 'ack', received: 7 }, 'text'), '{"type":"ack","received":7}');
    const bin = encodeControl({ type: 'ack', received: 7 }, 'binary') as Uint8Array;
    assert.equal(bin[0], 0x01);
    assert.equal(new TextDecoder().decode(bin.subarray(1)), '{"type":"ack","received":7}');
  });
});
