import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { socketPair } from '../../../test/support/socket-pair.js';
import { within } from '../../../test/support/within.js';
import { waitFor } from '../../../test/support/wait.js';
import { countPauses, jitter } from '../../../test/support/jitter.js';
import { randomPayload, sha256 } from '../../../test/support/targets.js';
import type { TunnelWire } from './stream-types.js';
import { SOCKET_HIGH_WRITES } from '../../common/socket-bounds.js';
import { TcpStream } from './tcp-stream.js';

const MiB = 1024 * 1024;

/** A connection on a tunnel's TCP port as the proxy accepts it (half-open allowed), and its peer, which never answers a FIN. */
async function portConnection(): Promise<{ proxySide: Socket; peer: Socket; close(): void }> {
  const { client: peer, peer: proxySide, close } = await socketPair({ server: { allowHalfOpen: true }, client: { allowHalfOpen: true } });
  peer.on('error', () => undefined);
  return { proxySide, peer, close };
}

/** A wire that takes everything and records what the stream told it. */
function recordingWire(calls: string[]): TunnelWire {
  return {
    version: 1,
    carriesWebSockets: false,
    bufferedAmount: 0,
    attach: () => undefined,
    ready: () => undefined,
    allocateStreamId: () => '1',
    open: () => void calls.push('open'),
    data: () => true,
    end: () => void calls.push('end'),
    release: () => void calls.push('release'),
    pauseInbound: () => undefined,
    resumeInbound: () => undefined,
    close: () => undefined,
  };
}

describe('TcpStream', () => {
  it('after the client closes the connection, queued bytes and a FIN reach the peer; a peer that never closes its side is dropped after a linger, and the stream released', async () => {
    const { proxySide, peer, close } = await portConnection();
    const calls: string[] = [];
    let done = 0;
    const stream = new TcpStream('1', proxySide, recordingWire(calls), 60_000, () => done++);
    stream.start();
    const received: Buffer[] = [];
    peer.on('data', (c: Buffer) => received.push(c));
    // The linger is a 30 s timer: mocked here so the test does not wait for it.
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      stream.onEvent({ type: 'data', chunk: Buffer.from('last bytes') });
      stream.onEvent({ type: 'close' });
      await once(peer, 'end');
      assert.equal(Buffer.concat(received).toString(), 'last bytes');
      // The peer keeps its side open (and may still send: dropped by the client, not by the socket).
      peer.write('still here');
      assert.equal(proxySide.destroyed, false, 'not dropped at once');
      assert.equal(done, 0);
      mock.timers.tick(60 * 60_000);
      assert.equal(proxySide.destroyed, true, 'dropped once the linger is over');
    } finally {
      mock.timers.reset();
    }
    try {
      await within(once(proxySide, 'close'), 5000, 'the proxy side closed');
      assert.equal(done, 1, 'the stream is done (its slot on the tunnel comes back)');
      assert.deepEqual(calls, ['open', 'release']);
    } finally {
      close();
    }
  });

  it('keeps a requester that sent its FIN while the client answers, and drops it once the client has sent nothing for halfClosedIdleMs', async () => {
    const { proxySide, peer, close } = await portConnection();
    const calls: string[] = [];
    let done = 0;
    const stream = new TcpStream('1', proxySide, recordingWire(calls), 1000, () => done++);
    stream.start();
    const received: Buffer[] = [];
    peer.on('data', (c: Buffer) => received.push(c));
    try {
      peer.end();
      await within(new Promise<void>((resolve) => proxySide.once('end', () => setImmediate(resolve))), 5000, 'the FIN at the proxy');
      assert.deepEqual(calls, ['open', 'end'], 'the FIN went to the client');
      // The client's answer keeps coming, slower than nothing but faster than the idle bound: the requester stays.
      for (let i = 0; i < 25; i++) {
        stream.onEvent({ type: 'data', chunk: Buffer.from('x') });
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(proxySide.destroyed, false, 'kept while answered');
      await within(once(proxySide, 'close'), 5000, 'dropped once the client went quiet');
      assert.equal(Buffer.concat(received).toString(), 'x'.repeat(25));
      assert.equal(done, 1, 'the stream is done (its slots come back)');
      assert.deepEqual(calls, ['open', 'end', 'release']);
    } finally {
      close();
    }
  });
});

describe('TcpStream: the client ends its side after the requester sent its FIN', () => {
  /** The requester's FIN read, then the client's answer queued in the socket behind a requester that does not read (the client's END still to come). */
  async function answeredBehindFin(halfClosedIdleMs: number): Promise<{ stream: TcpStream; proxySide: Socket; peer: Socket; calls: string[]; done: () => number; queued: number; close(): void }> {
    const { proxySide, peer, close } = await portConnection();
    const calls: string[] = [];
    let done = 0;
    const stream = new TcpStream('1', proxySide, recordingWire(calls), halfClosedIdleMs, () => done++);
    stream.start();
    peer.pause();
    peer.end();
    await within(new Promise<void>((resolve) => proxySide.once('end', () => setImmediate(resolve))), 5000, 'the FIN at the proxy');
    // Until the kernel's buffers are full and writes wait in the socket.
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    let queued = 0;
    while (proxySide.writableLength === 0 && queued < 256 * 1024 * 1024) {
      stream.onEvent({ type: 'data', chunk });
      queued += chunk.length;
      await new Promise((r) => setTimeout(r, 5));
    }
    return { stream, proxySide, peer, calls, done: () => done, queued, close };
  }

  it('does not reset the stream, whole once the END came, when halfClosedIdleMs pass while the requester still takes its tail: it gets every byte and the FIN', async () => {
    const { stream, proxySide, peer, calls, done, queued, close } = await answeredBehindFin(1000);
    try {
      stream.onEvent({ type: 'end' });
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(proxySide.destroyed, false, 'the half-closed wait dropped the requester after the client had ended the stream');
      let received = 0;
      peer.on('data', (c: Buffer) => (received += c.length));
      const ended = once(peer, 'end');
      const proxyClosed = once(proxySide, 'close');
      peer.resume();
      await within(ended, 10_000, 'the FIN at the requester');
      assert.equal(received, queued, 'every byte of the answer');
      await within(proxyClosed, 5000, 'the proxy side closed');
      assert.equal(done(), 1, 'the stream is done (its slots come back)');
      assert.deepEqual(calls, ['open', 'end', 'release']);
    } finally {
      close();
    }
  });

  it('drops a requester that does not take its tail within the linger (30 s), as after a close', async () => {
    const { stream, proxySide, close } = await answeredBehindFin(60 * 60_000);
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      stream.onEvent({ type: 'end' });
      mock.timers.tick(29_999);
      assert.equal(proxySide.destroyed, false, 'not dropped before the linger is over');
      mock.timers.tick(1);
      assert.equal(proxySide.destroyed, true, 'dropped once the linger is over');
    } finally {
      mock.timers.reset();
      close();
    }
  });
});

describe('TcpStream: the client ends its side while the requester\'s is still open', () => {
  /** The client's answer queued in the socket behind a requester that does not read (the client's END still to come). */
  async function answeredBehindSlowReader(): Promise<{ stream: TcpStream; proxySide: Socket; peer: Socket; received: () => number; close(): void }> {
    const { proxySide, peer, close } = await portConnection();
    let received = 0;
    const wire = { ...recordingWire([]), data: (_id: string, chunk: Buffer) => ((received += chunk.length), true) };
    const stream = new TcpStream('1', proxySide, wire, 60 * 60_000, () => undefined);
    stream.start();
    peer.pause();
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    for (let queued = 0; proxySide.writableLength === 0 && queued < 256 * 1024 * 1024; queued += chunk.length) {
      stream.onEvent({ type: 'data', chunk });
      await new Promise((r) => setTimeout(r, 5));
    }
    return { stream, proxySide, peer, received: () => received, close };
  }

  it('drops a requester that does not take its tail within the linger (30 s), whether or not it sends its FIN', async () => {
    for (const requesterFin of [false, true]) {
      const { stream, proxySide, peer, close } = await answeredBehindSlowReader();
      try {
        mock.timers.enable({ apis: ['setTimeout'] });
        stream.onEvent({ type: 'end' });
        if (requesterFin) {
          peer.end();
          await new Promise<void>((resolve) => proxySide.once('end', resolve));
        }
        mock.timers.tick(29_999);
        assert.equal(proxySide.destroyed, false, 'not dropped before the linger is over');
        mock.timers.tick(1);
        assert.equal(proxySide.destroyed, true, `dropped once the linger is over (requester FIN: ${requesterFin})`);
      } finally {
        mock.timers.reset();
        close();
      }
    }
  });

  it('keeps a requester that took its tail and goes on sending (a half-close) past the linger', async () => {
    const { stream, proxySide, peer, received, close } = await answeredBehindSlowReader();
    try {
      mock.timers.enable({ apis: ['setTimeout'] });
      stream.onEvent({ type: 'end' });
      peer.resume();
      await new Promise<void>((resolve) => peer.once('end', resolve));
      mock.timers.tick(60_000);
      mock.timers.reset();
      assert.equal(proxySide.destroyed, false, 'the requester was dropped after taking its tail');
      peer.write(Buffer.alloc(1000, 0x62));
      await waitFor(() => received() === 1000, 5000, 'what the requester sent after the linger');
    } finally {
      mock.timers.reset();
      close();
    }
  });
});

describe('TcpStream paused for a congested wire', () => {
  it('stops reading at the next read: a requester sending 1-byte segments does not pile up 16 KiB of 1-byte reads (~2.5 MiB of heap), and every byte comes once the wire is writable', async () => {
    const { proxySide, peer, close } = await portConnection();
    peer.setNoDelay(true);
    const got: number[] = [];
    let taking = true;
    const wire: TunnelWire = {
      ...recordingWire([]),
      data: (_id: string, chunk: Uint8Array) => {
        for (const b of chunk) got.push(b);
        return taking;
      },
    };
    const stream = new TcpStream('1', proxySide, wire, 60_000, () => undefined);
    stream.start();
    let sent = 0;
    let stop = false;
    const tick = (): void => {
      if (stop || peer.destroyed) return;
      peer.write(Buffer.of(sent++ & 0xff));
      setImmediate(tick);
    };
    try {
      taking = false;
      tick();
      while (sent < 5000) await new Promise((r) => setTimeout(r, 10));
      const state = (proxySide as unknown as { _readableState: { buffer: { length: number } } })._readableState;
      assert.ok(got.length < 100, `${got.length} bytes taken by a wire that said stop`);
      assert.ok(state.buffer.length <= 2, `${state.buffer.length} reads (${proxySide.readableLength} bytes) held by the paused socket`);
      stop = true;
      taking = true;
      stream.writable();
      const deadline = Date.now() + 10_000;
      while (got.length < sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      assert.equal(got.length, sent);
      assert.ok(got.every((b, i) => b === (i & 0xff)), 'in order');
    } finally {
      stop = true;
      close();
    }
  });
});

describe('TcpStream writing to a requester that does not read', () => {
  it('asks the wire to stop after SOCKET_HIGH_WRITES queued writes, not after 16 KiB of 1-byte writes (~2.8 MiB of heap), and to go on once they are out', async () => {
    const { proxySide, peer, close } = await portConnection();
    const calls: string[] = [];
    const wire: TunnelWire = {
      ...recordingWire([]),
      pauseInbound: () => void calls.push('pause'),
      resumeInbound: () => void calls.push('resume'),
    };
    const stream = new TcpStream('1', proxySide, wire, 60_000, () => undefined);
    stream.start();
    const received: Buffer[] = [];
    peer.on('data', (c: Buffer) => received.push(c));
    try {
      // Corked, every write waits in the socket as behind a full kernel buffer.
      proxySide.cork();
      for (let i = 0; i < 2 * SOCKET_HIGH_WRITES; i++) {
        stream.onEvent({ type: 'data', chunk: Buffer.of(0x41) });
        if (calls.includes('pause')) break;
      }
      assert.ok(proxySide.writableLength < 16 * 1024, 'under the byte mark');
      assert.deepEqual(calls, ['pause'], `${proxySide.writableLength} 1-byte writes queued without a pause`);
      assert.equal(proxySide.writableLength, SOCKET_HIGH_WRITES);
      proxySide.uncork();
      await within(
        (async () => {
          while (!calls.includes('resume')) await new Promise((r) => setTimeout(r, 5));
        })(),
        5000,
        'resume',
      );
      assert.deepEqual(calls, ['pause', 'resume']);
      while (Buffer.concat(received).length < SOCKET_HIGH_WRITES) await within(once(peer, 'data'), 5000, 'bytes');
      assert.equal(Buffer.concat(received).length, SOCKET_HIGH_WRITES);
    } finally {
      close();
    }
  });

  it('holds a small write that waits for the requester in about its bytes, not the whole tunnel read it is a view of', async () => {
    const { proxySide, peer, close } = await portConnection();
    const calls: string[] = [];
    const wire: TunnelWire = { ...recordingWire([]), pauseInbound: () => void calls.push('pause') };
    const stream = new TcpStream('1', proxySide, wire, 60_000, () => undefined);
    stream.start();
    const received: Buffer[] = [];
    peer.on('data', (c: Buffer) => received.push(c));
    try {
      proxySide.cork();
      // Each a 1-byte data frame in a 64 KiB read of the tunnel's socket, the rest of it pings (read and dropped).
      const sent: number[] = [];
      while (!calls.includes('pause')) {
        const read = Buffer.alloc(64 * 1024);
        read[100] = sent.length & 0xff;
        sent.push(read[100]);
        stream.onEvent({ type: 'data', chunk: read.subarray(100, 101) });
      }
      const queued = (proxySide as Socket & { readonly writableBuffer: readonly { readonly chunk: Uint8Array }[] }).writableBuffer;
      const pinned = [...new Set(queued.map((w) => w.chunk.buffer))].reduce((n, b) => n + b.byteLength, 0);
      assert.ok(pinned < 1024 * 1024, `${sent.length} queued bytes hold ${pinned} bytes of memory`);
      proxySide.uncork();
      await waitFor(() => Buffer.concat(received).length === sent.length, 5000, 'every byte');
      assert.deepEqual([...Buffer.concat(received)], sent, 'every byte, in order');
    } finally {
      close();
    }
  });
});

describe('TcpStream paused and resumed for a wire that keeps stopping', () => {
  it('delivers every byte in order through hundreds of stops, its socket at readable mark 0 all its life: no resume is lost', async () => {
    const { proxySide, peer, close } = await portConnection();
    peer.setNoDelay(true);
    const j = jitter();
    const payload = randomPayload(8 * MiB);
    const chunks: Buffer[] = [];
    let got = 0;
    let stream: TcpStream | null = null;
    // A wire that says stop after half the reads, and is writable again a tick, a turn or a timer later.
    const wire: TunnelWire = {
      ...recordingWire([]),
      data: (_id: string, chunk: Uint8Array) => {
        chunks.push(chunk as Buffer);
        got += chunk.length;
        if (j.random() < 0.5) return true;
        j.soon(() => stream?.writable());
        return false;
      },
    };
    stream = new TcpStream('1', proxySide, wire, 60_000, () => undefined);
    const pauses = countPauses(proxySide);
    stream.start();
    try {
      // Not awaited: a writer held back for good by a stall would never finish.
      void j.writeInPieces(peer, payload);
      const deadline = Date.now() + 20_000;
      while (got < payload.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      assert.equal(got, payload.length, `${got} of ${payload.length} bytes after ${pauses()} pauses: stalled (${j.replay})`);
      assert.equal(sha256(Buffer.concat(chunks)), sha256(payload), `every byte, in order (${j.replay})`);
      assert.ok(pauses() >= 100, `paused ${pauses()} times (${j.replay})`);
      assert.equal(proxySide.readableHighWaterMark, 0, `read at mark 0 throughout (${j.replay})`);
    } finally {
      close();
    }
  });
});
