import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { openRawWebSocket } from '../../test/support/raw-websocket.js';
import { Opcode, ZERO_MASK_KEY, frameHeader } from '../../test/support/ws-frames.js';
import { SMALL_READ_BYTES, TRICKLE_RUN_CHUNKS, coalesceTrickledFrames, mergeSmallRun, tidyFragments, type ReceiverInternals } from './coalesce-trickle.js';

describe('mergeSmallRun', () => {
  it('merges a trailing run of small reads into one Buffer, keeping the bytes and their order', () => {
    const big = Buffer.alloc(4096, 1);
    const small = Array.from({ length: 8 }, (_, i) => Buffer.from([i, i + 1]));
    const buffers = [big, ...small];
    assert.equal(mergeSmallRun(buffers, 8), true);
    assert.equal(buffers.length, 2);
    assert.equal(buffers[0], big, 'what precedes the run is not copied');
    assert.deepEqual(buffers[1], Buffer.concat(small));
    assert.equal(buffers[1].buffer.byteLength, 16, "the merged Buffer is its own, not a slice pinning Node's 8 KiB pool");
  });

  it('leaves a run of reads averaging SMALL_READ_BYTES or more as it is', () => {
    const buffers = Array.from({ length: 4 }, () => Buffer.alloc(SMALL_READ_BYTES));
    const before = [...buffers];
    assert.equal(mergeSmallRun(buffers, 4), false);
    assert.deepEqual(buffers, before);
  });
});

describe('tidyFragments', () => {
  it('copies a fragment that is a small view of a large read, leaves a whole one, and looks at each once', () => {
    const read = Buffer.alloc(65536, 7);
    const whole = Buffer.alloc(100, 1);
    const fragments: Buffer[] = [read.subarray(10, 11), whole];
    assert.equal(tidyFragments(fragments), 1);
    assert.equal(fragments[0].buffer.byteLength < 65536, true, 'the copy does not pin the read');
    assert.deepEqual(fragments[0], Buffer.from([7]));
    assert.equal(fragments[1], whole);
    fragments.push(read.subarray(20, 21));
    assert.equal(tidyFragments(fragments), 1, 'only the new fragment is looked at');
  });

  it('merges each run of TRICKLE_RUN_CHUNKS small fragments into one, keeping the bytes', () => {
    const all = Array.from({ length: TRICKLE_RUN_CHUNKS + 3 }, (_, i) => Buffer.from([i & 0xff]));
    const fragments: Buffer[] = [];
    for (const f of all) {
      fragments.push(f);
      tidyFragments(fragments);
    }
    assert.equal(fragments.length, 4);
    assert.deepEqual(Buffer.concat(fragments), Buffer.concat(all));
  });
});

describe('coalesceTrickledFrames', () => {
  /**
   * Trickles one frame of `bytes` payload a byte per write into a `ws` server;
   * returns the most chunks its receiver held and the message it delivered.
   */
  async function trickle(coalesce: boolean, bytes: number): Promise<{ maxHeld: number; reads: number; message: Buffer }> {
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
    await once(server, 'listening');
    try {
      const payload = randomBytes(bytes);
      let maxHeld = 0;
      let reads = 0;
      const message = new Promise<Buffer>((resolve) => {
        server.on('connection', (ws) => {
          const receiver = (ws as unknown as { _receiver: ReceiverInternals & Writable })._receiver;
          assert.ok(receiver instanceof Writable, 'ws keeps its frame receiver in _receiver');
          assert.ok(Array.isArray(receiver._buffers), 'the receiver holds the reads of a frame in _buffers');
          assert.equal(typeof receiver._bufferedBytes, 'number', 'the receiver counts them in _bufferedBytes');
          assert.ok(Object.hasOwn(Object.getPrototypeOf(receiver) as object, '_write'), "the receiver's _write is its class's");
          if (coalesce) assert.equal(coalesceTrickledFrames(ws), true);
          (ws as unknown as { _socket: NodeJS.EventEmitter })._socket.on('data', () => {
            reads++;
            maxHeld = Math.max(maxHeld, receiver._buffers.length);
          });
          ws.on('message', (data: Buffer) => resolve(data));
        });
      });
      const socket = await openRawWebSocket((server.address() as AddressInfo).port, '/');
      // Under a zero key the payload goes on the wire as it is.
      socket.write(frameHeader({ opcode: Opcode.BINARY, length: bytes, lengthBits: 64, maskKey: ZERO_MASK_KEY }));
      for (let i = 0; i < bytes; i++) {
        socket.write(payload.subarray(i, i + 1));
        await new Promise((r) => setImmediate(r));
      }
      const got = await message;
      socket.destroy();
      assert.deepEqual(got, payload, 'the frame arrives whole and byte-exact');
      return { maxHeld, reads, message: got };
    } finally {
      server.close();
    }
  }

  it('holds a frame trickled a byte per read in a bounded number of Buffers, and delivers it whole', async () => {
    const bytes = 16 * TRICKLE_RUN_CHUNKS;
    const without = await trickle(false, bytes);
    // Without: ws holds a Buffer per read (else this guard is no longer needed, or the reads were coalesced by TCP).
    assert.ok(without.maxHeld > 3 * TRICKLE_RUN_CHUNKS, `ws held ${without.maxHeld} reads of ${without.reads}`);
    const withIt = await trickle(true, bytes);
    assert.ok(withIt.reads > 3 * TRICKLE_RUN_CHUNKS, `the frame came in ${withIt.reads} reads`);
    assert.ok(withIt.maxHeld <= TRICKLE_RUN_CHUNKS + withIt.reads / TRICKLE_RUN_CHUNKS + 1, `held ${withIt.maxHeld} Buffers for ${withIt.reads} reads`);
  });

  /** Distinct backing stores the receiver's fragments pin, in bytes. */
  function pinned(fragments: Buffer[]): number {
    return [...new Set(fragments.map((f) => f.buffer))].reduce((a, b) => a + b.byteLength, 0);
  }

  /**
   * Sends a message of `count` 1-byte fragments, each in a 64 KiB write padded with unsolicited
   * pongs; returns the bytes its fragments pinned before the last one and the message delivered.
   */
  async function padded(coalesce: boolean, count: number): Promise<{ pinned: number; message: Buffer }> {
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
    await once(server, 'listening');
    try {
      let receiver: ReceiverInternals | null = null;
      const message = new Promise<Buffer>((resolve) => {
        server.on('connection', (ws) => {
          receiver = (ws as unknown as { _receiver: ReceiverInternals })._receiver;
          assert.ok(Array.isArray(receiver._fragments), 'the receiver keeps a fragmented message in _fragments');
          if (coalesce) coalesceTrickledFrames(ws);
          ws.on('message', (data: Buffer) => resolve(data));
        });
      });
      const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`, { perMessageDeflate: false });
      await once(client, 'open');
      const pong = Buffer.alloc(125, 0x70);
      for (let i = 0; i < count; i++) {
        for (let j = 0; j < 500; j++) client.pong(pong);
        client.send(Buffer.from([i]), { binary: true, fin: false });
        await new Promise((r) => setTimeout(r, 1));
      }
      await new Promise((r) => setTimeout(r, 50));
      const before = pinned(receiver!._fragments);
      client.send(Buffer.alloc(0), { binary: true, fin: true });
      const got = await message;
      client.terminate();
      assert.deepEqual(got, Buffer.from(Array.from({ length: count }, (_, i) => i)), 'the message arrives whole');
      return { pinned: before, message: got };
    } finally {
      server.close();
    }
  }

  it("keeps a fragmented message's fragments as copies, not as views pinning whole socket reads", async () => {
    const without = await padded(false, 32);
    assert.ok(without.pinned > 16 * 65536, `ws pins ${without.pinned} bytes for 32 fragments (else this guard is no longer needed)`);
    const withIt = await padded(true, 32);
    assert.ok(withIt.pinned <= 1024, `32 one-byte fragments pin ${withIt.pinned} bytes`);
  });

  it('leaves a connection without a receiver alone', () => {
    assert.equal(coalesceTrickledFrames({} as WebSocket), false);
  });
});
