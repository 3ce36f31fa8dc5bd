/**
 * The client's sending side against a loopback `ws` server that plays the
 * proxy's part of the protocol, so the test decides when acks arrive.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { ResumableRelay } from './resumable-relay.js';

const KiB = 1024;

interface FakeProxy {
  readonly messages: Buffer[];
  readonly events: string[];
  ack(received: number): void;
  /** Sends target bytes to the client (text control mode: a binary frame is data). */
  sendData(bytes: Uint8Array): Promise<void>;
  /** The `received` of every ack the client sent. */
  readonly acks: number[];
}

describe('ResumableRelay sending', () => {
  let server: WebSocketServer;
  let url: string;
  let current: FakeProxy | null = null;
  /** What the fake proxy's session frame announces as its message limit (undefined: nothing, as an older proxy). */
  let announce: number | undefined = 4 * 1024 * KiB;

  before(async () => {
    server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => server.once('listening', () => r()));
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/relay?host=127.0.0.1&port=22&resume=1`;
    server.on('connection', (ws, req) => {
      // control=binary: control frames are binary with a 0x01 marker, data frames carry a 0x00 marker.
      const binary = new URL(req.url ?? '/', 'http://x').searchParams.get('control') === 'binary';
      const control = (m: object): void => (binary ? ws.send(Buffer.concat([Buffer.from([1]), Buffer.from(JSON.stringify(m))])) : ws.send(JSON.stringify(m)));
      const proxy: FakeProxy = {
        messages: [],
        events: [],
        ack: (received) => control({ type: 'ack', received }),
        sendData: (bytes) => new Promise<void>((resolve, reject) => ws.send(bytes, { binary: true }, (err) => (err ? reject(err) : resolve()))),
        acks: [],
      };
      ws.on('message', (data: RawData, isBinary) => {
        if (isBinary && (!binary || (data as Buffer)[0] === 0)) {
          proxy.messages.push(data as Buffer);
          proxy.events.push(`data:${(data as Buffer).length}`);
        } else if (!isBinary) {
          const m = JSON.parse(data.toString()) as { type: string; received?: number };
          if (m.type === 'ack') proxy.acks.push(m.received!);
        }
      });
      ws.on('close', (code) => proxy.events.push(`close:${code}`));
      control({ type: 'session', id: 'a'.repeat(32), windowS: 60, maxMessageBytes: announce });
      current = proxy;
    });
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const open = async (highWaterMark = 1024 * KiB, control: 'text' | 'binary' = 'text'): Promise<{ relay: ResumableRelay; proxy: FakeProxy }> => {
    current = null;
    const relay = new ResumableRelay({ url, WebSocket, token: () => null, highWaterMark, control });
    await relay.opened;
    assert.ok(current, 'the fake proxy saw the connection');
    return { relay, proxy: current };
  };
  const until = async (cond: () => boolean, what: string): Promise<void> => {
    for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(cond(), `timed out waiting for ${what}`);
  };
  const chunk = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);

  it('sends what is sent in one task as one message, in order', async () => {
    const { relay, proxy } = await open();
    for (let i = 0; i < 4; i++) relay.send(chunk(64 * KiB, i + 1));
    await until(() => proxy.messages.length > 0, 'the message');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(proxy.events, [`data:${256 * KiB}`]);
    const got = proxy.messages[0]!;
    for (let i = 0; i < 4; i++) assert.equal(got[i * 64 * KiB], i + 1, `part ${i} in place`);
    relay.close();
  });

  it('never merges beyond the limit the proxy announced, marker byte included', async () => {
    announce = 64 * KiB;
    try {
      const { relay, proxy } = await open(1024 * KiB, 'binary');
      for (let i = 0; i < 5; i++) relay.send(chunk(30 * KiB, i + 1));
      relay.send(chunk(100 * KiB, 9));
      await until(() => proxy.messages.reduce((n, m) => n + m.length - 1, 0) === 250 * KiB, 'every byte');
      for (const m of proxy.messages) assert.ok(m.length <= 64 * KiB, `a message of ${m.length} bytes`);
      assert.ok(proxy.messages.length < 6, `pairs of sends merged: ${proxy.events.join(' ')}`);
      relay.close();
    } finally {
      announce = 4 * 1024 * KiB;
    }
  });

  it('refuses a session frame announcing a message limit under the smallest a proxy can have (1024): no send cut into byte-sized messages', async () => {
    announce = 2;
    try {
      current = null;
      const relay = new ResumableRelay({ url, WebSocket, token: () => null });
      const ended = new Promise<{ code: number; reason: string }>((r) => relay.on('close', r));
      await assert.rejects(relay.opened, /1002 session frame with maxMessageBytes 2 \(under 1024\)/);
      assert.deepEqual(await ended, { code: 1002, reason: 'session frame with maxMessageBytes 2 (under 1024)' });
      assert.throws(() => relay.send(chunk(64 * KiB, 1)), /send after close/);
      await until(() => current !== null && current.events.includes('close:4000'), 'the socket to be dropped');
      assert.equal(current!.messages.length, 0);
    } finally {
      announce = 4 * 1024 * KiB;
    }
  });

  it('sends one message per send to a proxy that announced no limit', async () => {
    announce = undefined;
    try {
      const { relay, proxy } = await open();
      for (let i = 0; i < 3; i++) relay.send(chunk(10 * KiB, i + 1));
      await until(() => proxy.messages.length === 3, 'three messages');
      assert.deepEqual(proxy.events, [`data:${10 * KiB}`, `data:${10 * KiB}`, `data:${10 * KiB}`]);
      relay.close();
    } finally {
      announce = 4 * 1024 * KiB;
    }
  });

  it('sends data queued in the same task before its close frame', async () => {
    const { relay, proxy } = await open();
    relay.send(chunk(10, 7));
    relay.close();
    await until(() => proxy.events.some((e) => e.startsWith('close:')), 'the close');
    assert.deepEqual(proxy.events, ['data:10', 'close:1000']);
  });

  it('emits drain once acks bring the unacknowledged bytes down to half the high-water mark', async () => {
    const { relay, proxy } = await open(256 * KiB);
    let drains = 0;
    relay.on('drain', () => drains++);
    assert.equal(relay.send(chunk(128 * KiB, 1)), true);
    assert.equal(relay.send(chunk(128 * KiB, 2)), false, 'at the high-water mark');
    await until(() => proxy.messages.length > 0, 'the data');

    proxy.ack(64 * KiB);
    await until(() => relay.bufferedAmount === 192 * KiB, 'the first ack');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(drains, 0, 'below the mark but above half: no drain yet');

    proxy.ack(128 * KiB);
    await until(() => drains === 1, 'the drain');
    assert.equal(relay.bufferedAmount, 128 * KiB);
    relay.close();
  });

  it('takes an ack of everything it sent, and ends the relay 1002 on an ack of one byte more', async () => {
    const { relay, proxy } = await open();
    const ended = new Promise<{ code: number; reason: string }>((r) => relay.on('close', r));
    relay.send(chunk(10, 1));
    await until(() => proxy.messages.length === 1, 'the data');
    proxy.ack(10);
    await until(() => relay.bufferedAmount === 0, 'the ack of everything sent');
    assert.equal(relay.state, 'open');

    // A proxy acknowledging bytes that were never sent has lost count: nothing it says about the stream can be trusted.
    proxy.ack(11);
    const timeout = new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000).unref());
    const end = await Promise.race([ended, timeout]);
    if (end === null) relay.close();
    assert.deepEqual(end, { code: 1002, reason: 'ack beyond the bytes sent' });
    assert.equal(relay.state, 'closed');
    await until(() => proxy.events.includes('close:4000'), 'the socket to be dropped');
  });

  it('a paused reader takes up to the largest proxy window unacknowledged, and ends the relay 1008 past it', async () => {
    const { relay, proxy } = await open();
    const MiB = 1024 * KiB;
    let received = 0;
    relay.on('data', (b) => (received += b.length));
    const ended = new Promise<{ code: number; reason: string }>((r) => relay.on('close', r));
    relay.pause();
    const piece = new Uint8Array(MiB);
    // RESUME_BUFFER_BYTES at its largest (64 MiB) plus one message: what a proxy keeping to its window can send.
    for (let i = 0; i < 65; i++) await proxy.sendData(piece);
    await until(() => received === 65 * MiB, 'the whole window');
    assert.equal(relay.state, 'open', 'a full window is within flow control');
    assert.deepEqual(proxy.acks, [], 'acks held while paused');
    await proxy.sendData(new Uint8Array(1));
    const timeout = new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000).unref());
    const end = await Promise.race([ended, timeout]);
    if (end === null) relay.close();
    assert.ok(end, 'the relay ended past the window');
    const { code, reason } = end;
    assert.equal(code, 1008);
    assert.equal(reason, 'proxy sent past its window');
    assert.equal(received, 65 * MiB, 'the byte past the window is not delivered');
  });

  it('a reader that resumes acknowledges what it held, and the count starts over', async () => {
    const { relay, proxy } = await open();
    const MiB = 1024 * KiB;
    let received = 0;
    relay.on('data', (b) => (received += b.length));
    relay.pause();
    for (let i = 0; i < 40; i++) await proxy.sendData(new Uint8Array(MiB));
    await until(() => received === 40 * MiB, 'the held bytes');
    relay.resume();
    await until(() => proxy.acks.at(-1) === 40 * MiB, 'the ack of everything held');
    relay.pause();
    for (let i = 0; i < 40; i++) await proxy.sendData(new Uint8Array(MiB));
    await until(() => received === 80 * MiB, 'the second batch');
    assert.equal(relay.state, 'open', '80 MiB in all, but never more than 40 MiB unacknowledged');
    relay.close();
  });
});

describe('ResumableRelay and a session window no proxy can have', () => {
  it('takes a windowS over 3600 (the largest RESUME_WINDOW_S) as 3600: reattach attempts end within the hour', async () => {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => server.once('listening', () => r()));
    server.on('connection', (ws) => ws.send(JSON.stringify({ type: 'session', id: 'b'.repeat(32), windowS: Number.MAX_SAFE_INTEGER, maxMessageBytes: 4 * 1024 * KiB })));
    try {
      const relay = new ResumableRelay({ url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/relay?host=h&port=22`, WebSocket, token: () => null });
      const info = await relay.opened;
      assert.equal(info.windowS, 3600);
      assert.equal(relay.sessionInfo?.windowS, 3600);
      const closed = new Promise<{ code: number }>((r) => relay.on('close', r));
      relay.close();
      assert.equal((await closed).code, 1000);
    } finally {
      for (const c of server.clients) c.terminate();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('ResumableRelay and an oversized message from the proxy', () => {
  const MiB = 1024 * KiB;
  let server: WebSocketServer;
  let url: string;
  let size = 0;

  before(async () => {
    server = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 64 * MiB });
    await new Promise<void>((r) => server.once('listening', () => r()));
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/relay?host=127.0.0.1&port=22`;
    server.on('connection', (ws) => {
      ws.send(JSON.stringify({ type: 'session', id: 'b'.repeat(32), windowS: 60, maxMessageBytes: 4 * MiB }));
      setTimeout(() => ws.send(new Uint8Array(size).fill(7)), 20);
    });
  });
  after(async () => {
    for (const c of server.clients) c.terminate();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const watch = (relay: ResumableRelay) => {
    const seen = { data: 0, detached: 0 };
    relay.on('data', (b) => (seen.data += b.length));
    relay.on('detach', () => seen.detached++);
    const end = Promise.race([
      new Promise<{ code: number; reason: string }>((r) => relay.on('close', r)),
      new Promise<null>((r) => setTimeout(() => r(null), 5000).unref()),
    ]);
    return { seen, end };
  };

  it('with the ws class: over 4 MiB (the default) is refused before it is buffered, and the relay ends 1009 without reattaching', async () => {
    size = 4 * MiB + 1;
    const relay = new ResumableRelay({ url, WebSocket, token: () => null });
    const { seen, end } = watch(relay);
    const closed = await end;
    if (closed === null) relay.close();
    assert.deepEqual(closed, { code: 1009, reason: 'Max payload size exceeded' });
    assert.deepEqual(seen, { data: 0, detached: 0 });
    assert.equal(relay.state, 'closed');
  });

  it("with a socket that has no limit of its own (a browser's): ends 1009 once the message is in, delivering none of it", async () => {
    size = 4 * MiB + 1;
    const relay = new ResumableRelay({ url, token: () => null, createWebSocket: (u, p) => new WebSocket(u, p, { maxPayload: 0 }) as never });
    const { seen, end } = watch(relay);
    const closed = await end;
    if (closed === null) relay.close();
    assert.equal(closed?.code, 1009);
    assert.match(closed!.reason, /^message of 4194305 bytes from the proxy \(over 4194304\)$/);
    assert.deepEqual(seen, { data: 0, detached: 0 });
  });

  it('maxMessageBytes raises the limit', async () => {
    size = 5 * MiB;
    const relay = new ResumableRelay({ url, WebSocket, token: () => null, maxMessageBytes: 6 * MiB });
    const { seen } = watch(relay);
    for (let i = 0; i < 300 && seen.data < size; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(seen.data, size);
    assert.equal(relay.state, 'open');
    relay.close();
  });
});
