import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Duplex, Writable } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { endUnlessEnded, quietRedundantEnds } from './quiet-ends.js';

/** Counts `end()` calls that reach Node's implementation on an already ended or destroyed stream among `watched`. */
function spyRedundantEnds(watched: Set<object>): { readonly count: number; restore(): void } {
  const originals = [Writable.prototype.end, Duplex.prototype.end] as const;
  let count = 0;
  const wrap = (original: (typeof originals)[number]) =>
    function (this: Writable, ...args: unknown[]) {
      if (watched.has(this) && (this.writableEnded || this.destroyed)) count++;
      return (original as (...a: unknown[]) => Writable).apply(this, args);
    };
  Writable.prototype.end = wrap(originals[0]) as Writable['end'];
  Duplex.prototype.end = wrap(originals[1]) as Duplex['end'];
  return {
    get count() {
      return count;
    },
    restore() {
      Writable.prototype.end = originals[0];
      Duplex.prototype.end = originals[1];
    },
  };
}

function sink(): Writable {
  return new Writable({ write: (_chunk, _enc, cb) => cb() });
}

describe('endUnlessEnded', () => {
  it('ends a stream that has not ended', async () => {
    const w = sink();
    w.end = endUnlessEnded as Writable['end'];
    w.end();
    await once(w, 'finish');
    assert.equal(w.writableFinished, true);
  });

  it('skips a repeated call without arguments, and passes one with a callback through', async () => {
    const w = sink();
    w.end();
    await once(w, 'finish');
    w.end = endUnlessEnded as Writable['end'];
    const spy = spyRedundantEnds(new Set([w]));
    try {
      assert.equal(w.end(), w);
      assert.equal(spy.count, 0);
      const err = await new Promise<Error | null | undefined>((resolve) => w.end(resolve));
      assert.equal((err as NodeJS.ErrnoException).code, 'ERR_STREAM_ALREADY_FINISHED');
      assert.equal(spy.count, 1);
    } finally {
      spy.restore();
    }
  });

  it('passes a call on a stream destroyed before it ended through, as Node builds no error for it', () => {
    const w = sink();
    w.destroy();
    w.end = endUnlessEnded as Writable['end'];
    const spy = spyRedundantEnds(new Set([w]));
    try {
      w.end();
      assert.equal(spy.count, 1);
      assert.equal(w.writableEnded, true);
    } finally {
      spy.restore();
    }
  });
});

describe('quietRedundantEnds', () => {
  async function cleanClose(quiet: boolean): Promise<number> {
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await once(server, 'listening');
    const watched = new Set<object>();
    const closed = new Promise<void>((resolve) => {
      server.on('connection', (ws) => {
        const internals = ws as unknown as { _receiver: unknown; _socket: unknown };
        assert.ok(internals._receiver instanceof Writable, 'ws keeps its frame receiver in _receiver');
        assert.ok(internals._socket instanceof Duplex, 'ws keeps its socket in _socket');
        watched.add(internals._receiver as object).add(internals._socket as object);
        if (quiet) quietRedundantEnds(ws);
        ws.on('close', () => resolve());
      });
    });
    const spy = spyRedundantEnds(watched);
    try {
      const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
      await once(client, 'open');
      client.close(1000);
      await Promise.all([closed, once(client, 'close')]);
      await new Promise((r) => setImmediate(r));
      return spy.count;
    } finally {
      spy.restore();
      server.close();
    }
  }

  it('leaves no redundant end of the receiver or socket after a clean close', async () => {
    assert.ok((await cleanClose(false)) > 0, 'ws ends them again (else this guard is no longer needed)');
    assert.equal(await cleanClose(true), 0);
  });
});
