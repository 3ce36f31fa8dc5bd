import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { bridgeStdio, INPUT_HIGH_WATER } from './stdio-bridge.js';

/** A loopback WebSocket server whose per-connection behaviour each test sets. */
class Peer {
  onConnection: (ws: WebSocket) => void = () => undefined;
  private constructor(readonly wss: WebSocketServer) {
    wss.on('connection', (ws) => this.onConnection(ws));
  }
  static async start(): Promise<Peer> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    return new Peer(wss);
  }
  get url(): string {
    return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}`;
  }
  /** Opens a client, and resolves with it and the server side of the same connection. */
  async connect(): Promise<{ client: WebSocket; server: WebSocket }> {
    const server = new Promise<WebSocket>((r) => (this.onConnection = r));
    const client = new WebSocket(this.url, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      client.once('open', () => resolve());
      client.once('error', reject);
    });
    return { client, server: await server };
  }
  close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    return new Promise((r) => this.wss.close(() => r()));
  }
}

/** An output that keeps every chunk and, while `stalled`, completes no write. */
class CollectingOutput extends Writable {
  readonly chunks: Buffer[] = [];
  private held: (() => void)[] = [];
  stalled = false;
  constructor(highWaterMark = 64 * 1024) {
    super({ highWaterMark });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(chunk);
    if (this.stalled) this.held.push(() => cb());
    else cb();
  }
  release(): void {
    this.stalled = false;
    const held = this.held;
    this.held = [];
    for (const cb of held) cb();
  }
  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Collects what `ws` receives until it has `bytes`. */
function collect(ws: WebSocket, bytes: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let total = 0;
    ws.on('message', (d: Buffer) => {
      chunks.push(d);
      total += d.length;
      if (total >= bytes) resolve(Buffer.concat(chunks));
    });
  });
}

/** Sends `payload` on `ws` in 64 KiB frames, waiting for its buffer between bursts. */
async function sendAll(ws: WebSocket, payload: Buffer): Promise<void> {
  for (let off = 0; off < payload.length; off += 64 * 1024) {
    await new Promise<void>((r, j) => ws.send(payload.subarray(off, off + 64 * 1024), (e) => (e ? j(e) : r())));
  }
}

describe('bridgeStdio', () => {
  let peer: Peer;
  before(async () => {
    peer = await Peer.start();
  });
  after(() => peer.close());

  it('copies bytes both ways, byte-exact', async () => {
    const { client, server } = await peer.connect();
    server.on('message', (d: Buffer) => server.send(d));
    const input = new PassThrough();
    const output = new CollectingOutput();
    const bridge = bridgeStdio({ ws: client, input, output });

    const payload = randomBytes(1024 * 1024);
    const echoed = collect(client, payload.length);
    input.write(payload);
    await echoed;
    server.close(1000, 'target closed');
    const end = await bridge.done;

    assert.equal(end.code, 1000);
    assert.equal(end.endedBy, 'remote');
    assert.equal(end.bytesOut, payload.length);
    assert.equal(end.bytesIn, payload.length);
    assert.equal(sha(output.data), sha(payload));
    assert.equal(output.writableFinished, true, 'output ended after the close');
  });

  it('on input EOF sends everything, then closes with 1000', async () => {
    const { client, server } = await peer.connect();
    const payload = randomBytes(4 * 1024 * 1024);
    const received: Buffer[] = [];
    server.on('message', (d: Buffer) => received.push(d));
    const serverClose = new Promise<number>((r) => server.once('close', (code) => r(code)));
    const input = new PassThrough();
    const bridge = bridgeStdio({ ws: client, input, output: new CollectingOutput(), lingerMs: 50 });

    input.end(payload);
    const end = await bridge.done;

    assert.equal(await serverClose, 1000);
    assert.equal(end.code, 1000);
    assert.equal(end.endedBy, 'input-end');
    assert.equal(sha(Buffer.concat(received)), sha(payload), 'every byte arrived before the close frame');
  });

  it('after input EOF, still delivers what the far end answers, and closes once nothing more comes for the linger time', async () => {
    const { client, server } = await peer.connect();
    // A service that answers 300 ms after the request, then again 300 ms later, and stays open.
    server.on('message', () => {
      setTimeout(() => server.send(Buffer.from('answer-1;')), 300);
      setTimeout(() => server.send(Buffer.from('answer-2')), 600);
    });
    const serverClose = new Promise<number>((r) => server.once('close', (code) => r(code)));
    const input = new PassThrough();
    const output = new CollectingOutput();
    const started = Date.now();
    const bridge = bridgeStdio({ ws: client, input, output, lingerMs: 500 });

    input.end(Buffer.from('request'));
    const end = await bridge.done;

    assert.equal(output.data.toString(), 'answer-1;answer-2');
    assert.equal(end.code, 1000);
    assert.equal(end.endedBy, 'input-end');
    assert.equal(await serverClose, 1000);
    assert.ok(Date.now() - started >= 1000, 'the linger restarted with each answer');
  });

  it('after input EOF, does not count as quiet the time it holds the WebSocket for a slow reader', async () => {
    const { client, server } = await peer.connect();
    const answer = randomBytes(2 * 1024 * 1024);
    server.on('message', () => void sendAll(server, answer));
    const input = new PassThrough();
    const output = new CollectingOutput(16 * 1024);
    output.stalled = true;
    const bridge = bridgeStdio({ ws: client, input, output, lingerMs: 200, outputBacklog: 64 * 1024 });

    input.end(Buffer.from('go'));
    await tick(1000);
    assert.equal(client.readyState, WebSocket.OPEN, 'still open after five linger periods of a stalled reader');
    assert.ok(client.isPaused);
    output.release();
    const drainLoop = setInterval(() => output.release(), 5);
    const end = await bridge.done;
    clearInterval(drainLoop);

    assert.equal(end.code, 1000);
    assert.equal(end.endedBy, 'input-end');
    assert.equal(sha(output.data), sha(answer), 'the whole answer arrived');
  });

  it('keeps reading, and answering pings, while less than the output backlog waits for a stalled reader', async () => {
    const { client, server } = await peer.connect();
    const output = new CollectingOutput(64 * 1024);
    output.stalled = true;
    const bridge = bridgeStdio({ ws: client, input: new PassThrough(), output });

    await sendAll(server, randomBytes(2 * 1024 * 1024));
    const pong = new Promise<void>((r) => server.once('pong', () => r()));
    server.ping();
    await Promise.race([pong, tick(2000).then(() => assert.fail('no pong while the reader was stalled'))]);
    assert.equal(client.isPaused, false);

    output.release();
    server.close(1000);
    await bridge.done;
  });

  it('flushes everything received before a remote close, and reports its code and reason', async () => {
    const { client, server } = await peer.connect();
    const payload = randomBytes(8 * 1024 * 1024);
    const output = new CollectingOutput();
    const bridge = bridgeStdio({ ws: client, input: new PassThrough(), output });

    await sendAll(server, payload);
    server.close(1011, 'target error: ECONNRESET');
    const end = await bridge.done;

    assert.equal(end.code, 1011);
    assert.equal(end.reason, 'target error: ECONNRESET');
    assert.equal(end.endedBy, 'remote');
    assert.equal(sha(output.data), sha(payload));
  });

  it('stops reading the WebSocket once the output backlog waits, then delivers everything', async () => {
    const { client, server } = await peer.connect();
    const payload = randomBytes(8 * 1024 * 1024);
    const output = new CollectingOutput(64 * 1024);
    output.stalled = true;
    const bridge = bridgeStdio({ ws: client, input: new PassThrough(), output, outputBacklog: 1024 * 1024 });

    const sent = sendAll(server, payload);
    // Give loopback ample time to move all 8 MiB if nothing held it back.
    await tick(500);
    const taken = output.data.length + output.writableLength;
    assert.ok(taken < 2 * 1024 * 1024, `bridge pulled ${taken} bytes from the socket while its output was stalled past the backlog`);
    assert.ok(client.isPaused, 'the WebSocket is paused');

    output.release();
    const drainLoop = setInterval(() => output.release(), 5);
    await sent;
    server.close(1000);
    const end = await bridge.done;
    clearInterval(drainLoop);

    assert.equal(end.code, 1000);
    assert.equal(sha(output.data), sha(payload));
  });

  it('stops reading the input while the WebSocket buffer is high, then sends everything', async () => {
    const { client, server } = await peer.connect();
    // The server does not read: the client's socket fills up.
    server.pause();
    const payload = randomBytes(16 * 1024 * 1024);
    const input = new PassThrough({ highWaterMark: 64 * 1024 });
    const bridge = bridgeStdio({ ws: client, input, output: new CollectingOutput() });
    let accepted = 0;
    const feed = (async () => {
      for (let off = 0; off < payload.length; off += 64 * 1024) {
        accepted = off;
        if (!input.write(payload.subarray(off, off + 64 * 1024))) await new Promise((r) => input.once('drain', r));
      }
      input.end();
    })();

    await tick(500);
    assert.ok(client.bufferedAmount <= INPUT_HIGH_WATER + 64 * 1024, `bufferedAmount ${client.bufferedAmount}`);
    assert.ok(input.isPaused(), 'input is paused');
    assert.ok(accepted < payload.length - 1024 * 1024, `the input kept being read: ${accepted} bytes taken`);

    const received = collect(server, payload.length);
    server.resume();
    await feed;
    assert.equal(sha(await received), sha(payload));
    const end = await bridge.done;
    assert.equal(end.code, 1000);
    assert.equal(end.endedBy, 'input-end');
  });

  it('stop() closes with 1000 and ignores further input', async () => {
    const { client, server } = await peer.connect();
    const got: Buffer[] = [];
    server.on('message', (d: Buffer) => got.push(d));
    const serverClose = new Promise<{ code: number; reason: string }>((r) =>
      server.once('close', (code, reason) => r({ code, reason: reason.toString() })),
    );
    const input = new PassThrough();
    const bridge = bridgeStdio({ ws: client, input, output: new CollectingOutput() });
    input.write('before');
    await tick(50);
    bridge.stop('client SIGHUP');
    input.write('after');

    const end = await bridge.done;
    assert.deepEqual(await serverClose, { code: 1000, reason: 'client SIGHUP' });
    assert.equal(end.endedBy, 'stopped');
    assert.equal(Buffer.concat(got).toString(), 'before');
  });

  it('closes the WebSocket when the output fails, and reports the error', async () => {
    const { client, server } = await peer.connect();
    const serverClose = new Promise<number>((r) => server.once('close', (code) => r(code)));
    const output = new Writable({
      write(_c, _e, cb) {
        cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const bridge = bridgeStdio({ ws: client, input: new PassThrough(), output });
    server.send(Buffer.from('hello'));

    const end = await bridge.done;
    assert.equal(await serverClose, 1000);
    assert.equal(end.endedBy, 'output-error');
    assert.equal((end.error as NodeJS.ErrnoException).code, 'EPIPE');
  });

  it('reports a connection that drops without a close frame as 1006', async () => {
    const { client, server } = await peer.connect();
    const bridge = bridgeStdio({ ws: client, input: new PassThrough(), output: new CollectingOutput() });
    server.terminate();
    const end = await bridge.done;
    assert.equal(end.code, 1006);
    assert.equal(end.endedBy, 'remote');
  });
});
