import { once } from 'node:events';
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { socketPair } from '../../../test/support/socket-pair.js';
import { within } from '../../../test/support/within.js';
import { countPauses, jitter } from '../../../test/support/jitter.js';
import { randomPayload, sha256 } from '../../../test/support/targets.js';
import { SOCKET_HIGH_WRITES } from '../../common/socket-bounds.js';
import { FLUSH_GRACE_MS, spliceToOwner } from './internal-upgrade.js';

const MiB = 1024 * 1024;

const until = async (pred: () => boolean, ms: number, what: string): Promise<void> => {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

/** Sends 1-byte segments from `sender`, one per turn of the loop, until `stop()` or `limit` of them; resolves with the count. */
function dribble(sender: Socket, stop: () => boolean, limit: number): Promise<number> {
  let sent = 0;
  return new Promise((resolve) => {
    const tick = (): void => {
      if (stop() || sent >= limit || sender.destroyed) return resolve(sent);
      sender.write(Buffer.of(sent++ & 0xff));
      setImmediate(tick);
    };
    tick();
  });
}

/** A spliced connection: requester ⇄ entry (the replica's accepted socket) ⇄ upstream ⇄ owner. */
async function spliced(): Promise<{ requester: Socket; entry: Socket; upstream: Socket; owner: Socket; close(): void }> {
  const front = await socketPair({ server: { allowHalfOpen: true } });
  const back = await socketPair({ server: { allowHalfOpen: true }, client: { allowHalfOpen: true } });
  front.client.setNoDelay(true);
  back.peer.setNoDelay(true);
  front.peer.pause();
  spliceToOwner(front.peer, back.client, Buffer.alloc(0));
  return {
    requester: front.client,
    entry: front.peer,
    upstream: back.client,
    owner: back.peer,
    close: () => {
      front.close();
      back.close();
    },
  };
}

const writes = (s: Socket): number => (s as unknown as { _writableState: { getBuffer(): unknown[] } })._writableState.getBuffer().length;

describe('spliceToOwner: a piped connection whose far side does not read', () => {
  it('stops reading the requester once SOCKET_HIGH_WRITES 1-byte writes wait for the owner, and reads no further; every byte arrives in order once the owner reads', async () => {
    const { requester, entry, upstream, owner, close } = await spliced();
    try {
      // An owner that does not read, its connection full: nothing handed to the socket leaves the entry.
      upstream.cork();
      const sent = await dribble(requester, () => entry.isPaused() && upstream.writableLength > 0 && entry.readableLength > 0, 4 * SOCKET_HIGH_WRITES + 20_000);
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(entry.isPaused(), `the requester is still read with ${writes(upstream)} writes (${upstream.writableLength} bytes) queued for the owner`);
      assert.ok(writes(upstream) <= SOCKET_HIGH_WRITES, `${writes(upstream)} writes queued for the owner`);
      assert.ok(entry.readableLength <= 1, `${entry.readableLength} bytes read from the paused requester and held`);
      let received = 0;
      let inOrder = true;
      owner.on('data', (data: Buffer) => {
        for (const b of data) if (b !== (received++ & 0xff)) inOrder = false;
      });
      upstream.uncork();
      await until(() => received === sent, 10_000, 'every byte delivered');
      assert.ok(inOrder, 'bytes in order');
    } finally {
      close();
    }
  });

  it('stops reading the owner once SOCKET_HIGH_WRITES 1-byte writes wait for the requester; every byte arrives in order once it reads', async () => {
    const { requester, entry, upstream, owner, close } = await spliced();
    try {
      entry.cork();
      const sent = await dribble(owner, () => upstream.isPaused() && entry.writableLength > 0 && upstream.readableLength > 0, 4 * SOCKET_HIGH_WRITES + 20_000);
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(upstream.isPaused(), `the owner is still read with ${writes(entry)} writes queued for the requester`);
      assert.ok(writes(entry) <= SOCKET_HIGH_WRITES, `${writes(entry)} writes queued for the requester`);
      assert.ok(upstream.readableLength <= 1, `${upstream.readableLength} bytes read from the paused owner and held`);
      let received = 0;
      let inOrder = true;
      requester.on('data', (data: Buffer) => {
        for (const b of data) if (b !== (received++ & 0xff)) inOrder = false;
      });
      entry.uncork();
      await until(() => received === sent, 10_000, 'every byte delivered');
      assert.ok(inOrder, 'bytes in order');
    } finally {
      close();
    }
  });

  it('carries a FIN that reached the entry before the splice (a requester that half-closed without sending a byte)', async () => {
    const front = await socketPair({ server: { allowHalfOpen: true } });
    const back = await socketPair({ server: { allowHalfOpen: true }, client: { allowHalfOpen: true } });
    try {
      // As TunnelTcpForwarding holds an accepted connection while the owner's answer is awaited: paused.
      front.peer.pause();
      front.client.end();
      // A paused socket with nothing buffered emits 'end' as soon as the FIN is read, with no reader.
      await within(once(front.peer, 'end'), 5000, 'the entry reads the FIN');
      spliceToOwner(front.peer, back.client, Buffer.alloc(0));
      await within(once(back.peer, 'end'), 5000, 'the owner sees the requester’s FIN');
      const atRequester: Buffer[] = [];
      front.client.on('data', (d: Buffer) => atRequester.push(d));
      const requesterSawEnd = once(front.client, 'end');
      back.peer.end('answer');
      await within(requesterSawEnd, 5000, 'the answer and its FIN reach the requester');
      assert.equal(Buffer.concat(atRequester).toString(), 'answer');
    } finally {
      front.close();
      back.close();
    }
  });

  it('delivers what the requester sent last when its FIN closes the entry (the owner had ended first) while those bytes still wait for the owner', async () => {
    // A requester that goes on sending after the owner's FIN (half-open on its side too).
    const front = await socketPair({ server: { allowHalfOpen: true }, client: { allowHalfOpen: true } });
    const back = await socketPair({ server: { allowHalfOpen: true }, client: { allowHalfOpen: true } });
    const [requester, entry, upstream, owner] = [front.client, front.peer, back.client, back.peer];
    const close = (): void => {
      front.close();
      back.close();
    };
    entry.pause();
    spliceToOwner(entry, upstream, Buffer.alloc(0));
    try {
      requester.resume();
      const requesterSawEnd = once(requester, 'end');
      owner.end();
      await within(requesterSawEnd, 5000, 'the owner’s FIN at the requester');
      // The owner does not read: fill the kernel's buffers until writes to it wait in the entry.
      owner.pause();
      const filler = Buffer.alloc(256 * 1024, 0x66);
      let filled = 0;
      while (upstream.writableLength === 0 && filled < 256 * 1024 * 1024 && !upstream.destroyed) {
        upstream.write(filler);
        filled += filler.length;
        await new Promise((r) => setTimeout(r, 5));
      }
      const entryClosed = once(entry, 'close');
      requester.end('tail');
      await within(entryClosed, 5000, 'the entry closed both ways');
      let received = 0;
      let last = Buffer.alloc(0);
      owner.on('data', (d: Buffer) => {
        received += d.length;
        last = Buffer.concat([last, d]).subarray(-4);
      });
      const ownerDone = new Promise<void>((r) => {
        owner.once('end', () => r());
        owner.once('close', () => r());
      });
      owner.resume();
      await within(ownerDone, 10_000, 'the owner’s end');
      assert.equal(received, filled + 4, 'every byte reached the owner');
      assert.equal(last.toString(), 'tail');
    } finally {
      close();
    }
  });

  it('leaves no flush-grace timer behind once both sides have closed cleanly, whichever closed first', async (t: TestContext) => {
    // The grace timers are unref'd and reset only sockets not yet destroyed: one left pending changes nothing
    // a test can see but keeps both sockets (and what they hold) alive for FLUSH_GRACE_MS. Seam: the globals.
    const armed = t.mock.method(globalThis, 'setTimeout');
    const cleared = t.mock.method(globalThis, 'clearTimeout');
    for (const ownerFirst of [true, false]) {
      const { requester, entry, upstream, owner, close } = await spliced();
      try {
        const closes = Promise.all([once(entry, 'close'), once(upstream, 'close')]);
        requester.resume();
        owner.resume();
        if (ownerFirst) {
          owner.end('answer');
          await within(once(requester, 'end'), 5000, 'the owner’s FIN at the requester');
          // Not half-open: the requester's socket answers a FIN with its own.
          if (!requester.writableEnded) requester.end();
        } else {
          requester.end('request');
          await within(once(owner, 'end'), 5000, 'the requester’s FIN at the owner');
          owner.end('answer');
        }
        await within(closes, 5000, 'both spliced sockets closed');
        await new Promise((r) => setImmediate(r));
        const graces = armed.mock.calls.filter((c) => c.arguments[1] === FLUSH_GRACE_MS).map((c) => c.result);
        const clearedTimers = new Set(cleared.mock.calls.map((c) => c.arguments[0]));
        const pending = graces.filter((g) => !clearedTimers.has(g)).length;
        assert.equal(pending, 0, `${pending} of ${graces.length} grace timers still pending (${ownerFirst ? 'owner' : 'requester'} ended first)`);
      } finally {
        close();
      }
      armed.mock.resetCalls();
      cleared.mock.resetCalls();
    }
  });

  it('carries a half-close each way, as pipe did', async () => {
    const { requester, owner, close } = await spliced();
    try {
      const atOwner: Buffer[] = [];
      owner.on('data', (d: Buffer) => atOwner.push(d));
      const ownerSawEnd = new Promise<void>((r) => owner.once('end', () => r()));
      requester.end('request');
      await ownerSawEnd;
      assert.equal(Buffer.concat(atOwner).toString(), 'request');
      const atRequester: Buffer[] = [];
      requester.on('data', (d: Buffer) => atRequester.push(d));
      const requesterSawEnd = new Promise<void>((r) => requester.once('end', () => r()));
      owner.end('answer');
      await requesterSawEnd;
      assert.equal(Buffer.concat(atRequester).toString(), 'answer');
    } finally {
      close();
    }
  });
});

describe('spliceToOwner: a requester and an owner that keep pausing', () => {
  it('carries every byte in order both ways, its sockets at readable mark 0 all their lives, paused and resumed hundreds of times: no resume is lost', async () => {
    const { requester, entry, upstream, owner, close } = await spliced();
    try {
      const j = jitter();
      const up = randomPayload(24 * MiB);
      const down = randomPayload(24 * MiB);
      const atOwner = j.readWithPauses(owner, 0.5);
      const atRequester = j.readWithPauses(requester, 0.5);
      const pauses = [countPauses(entry), countPauses(upstream)];
      // The connections out of the splice fill now and then, so that each side's writer says wait.
      const uncork = [j.corkNowAndThen(upstream), j.corkNowAndThen(entry)];
      // Not awaited: a writer held back for good by a stall would never finish.
      void j.writeInPieces(requester, up, 64 * 1024);
      void j.writeInPieces(owner, down, 64 * 1024);
      const deadline = Date.now() + 20_000;
      while ((atOwner.bytes() < up.length || atRequester.bytes() < down.length) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      for (const stop of uncork) stop();
      const paused = pauses.map((p) => p());
      assert.equal(atOwner.bytes(), up.length, `up: ${atOwner.bytes()} of ${up.length} bytes after ${paused[0]} pauses of the entry: stalled (${j.replay})`);
      assert.equal(atRequester.bytes(), down.length, `down: ${atRequester.bytes()} of ${down.length} bytes after ${paused[1]} pauses of the upstream: stalled (${j.replay})`);
      assert.equal(sha256(atOwner.received()), sha256(up), `every byte up, in order (${j.replay})`);
      assert.equal(sha256(atRequester.received()), sha256(down), `every byte down, in order (${j.replay})`);
      assert.ok(paused[0] >= 50 && paused[1] >= 50, `entry paused ${paused[0]} times, upstream ${paused[1]} (${j.replay})`);
      assert.deepEqual([entry.readableHighWaterMark, upstream.readableHighWaterMark], [0, 0], `read at mark 0 throughout (${j.replay})`);
    } finally {
      close();
    }
  });
});
