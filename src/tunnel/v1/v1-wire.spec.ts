import { constants } from 'node:buffer';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { V1_MAX_BODY_BYTES, v1MaxMessageBytes } from './v1-limits.js';
import { ByteBudget } from './byte-budget.js';
import { V1Wire } from './v1-wire.js';

const MiB = 1024 * 1024;

describe('v1 message limits', () => {
  it('fit a whole body of the configured size, base64-encoded, plus 1 MiB', () => {
    assert.equal(v1MaxMessageBytes(10 * MiB), Math.ceil((10 * MiB) / 3) * 4 + MiB);
    assert.equal(v1MaxMessageBytes(0), MiB);
  });

  it('stay below the longest string V8 can make, whatever TUNNEL_MAX_BODY_BYTES allows', () => {
    // A v1 message is decoded into one string and its body base64-encoded into another.
    const most = v1MaxMessageBytes(1024 * MiB);
    assert.equal(most, v1MaxMessageBytes(V1_MAX_BODY_BYTES), 'capped at V1_MAX_BODY_BYTES');
    assert.ok(most < constants.MAX_STRING_LENGTH, `${most} >= ${constants.MAX_STRING_LENGTH}`);
    assert.ok(Math.ceil(V1_MAX_BODY_BYTES / 3) * 4 + 4096 < constants.MAX_STRING_LENGTH, 'an http_request of the largest body is a string V8 can hold');
  });
});

describe('V1Wire after a server close', () => {
  it("turns the tcp_close of a stream whose bytes were dropped into a reset, so that its reader is not handed the prefix as the whole stream; another stream's stays a close", async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
    const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
    client.on('error', () => undefined);
    const [ws] = await accepted;
    await once(client, 'open');
    try {
      const wire = new V1Wire(ws, { controlBinary: false, inboundStallMs: 30_000, requestBacklogBytes: MiB, bodyBudget: new ByteBudget(MiB, MiB) });
      const events: string[] = [];
      const closed = new Promise<void>((resolve) =>
        wire.attach({ onStreamEvent: (id, ev) => events.push(`${id}:${ev.type}`), onWritable: () => undefined, onClose: () => resolve() }),
      );
      const slow = wire.allocateStreamId('tcp');
      const fast = wire.allocateStreamId('tcp');
      wire.open(slow, { kind: 'tcp' });
      wire.open(fast, { kind: 'tcp' });
      // The reader of `slow` is not keeping up: the WebSocket is paused, and what the client sends waits.
      wire.pauseInbound(slow);
      const frame = (id: string, text: string): Buffer => {
        const len = Buffer.alloc(4);
        len.writeUInt32BE(id.length);
        return Buffer.concat([len, Buffer.from(id), Buffer.from(text)]);
      };
      client.send(frame(slow, 'lost'));
      client.send(JSON.stringify({ type: 'tcp_close', connId: slow }));
      client.send(frame(fast, 'kept'));
      client.send(JSON.stringify({ type: 'tcp_close', connId: fast }));
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(events, [], 'nothing read while paused');
      // The server's close reads on to the client's answer: `slow`'s bytes are dropped from now on.
      wire.close(4408, 'maximum connection age reached');
      await closed;
      assert.deepEqual(events, [`${slow}:reset`, `${fast}:data`, `${fast}:close`]);
    } finally {
      client.terminate();
      wss.close();
    }
  });
});
