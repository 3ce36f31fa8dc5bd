import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_CLIENT_STREAMS, V2Mux, type V2MuxHandler } from './v2-mux.js';
import { FLAG_BINARY, FLAG_BODY, FLAG_END, FLAG_FIN, R, T, V2_DATA_CHUNK, V2_INITIAL_WINDOW, V2_MAX_WINDOW, V2_MIN_SPLIT, decodeFrame, encodeData, encodeFrame, encodeOpen, encodeReady, encodeResponse, encodeWindowUpdate } from './v2.js';

type Log = { ev: string; id: number; data?: Uint8Array; extra?: unknown }[];

function recorder(log: Log, extra: Partial<V2MuxHandler> = {}): V2MuxHandler {
  return {
    open: (id, head) => log.push({ ev: 'open', id, extra: head }),
    response: (id, head) => log.push({ ev: 'response', id, extra: head }),
    data: (id, chunk) => log.push({ ev: 'data', id, data: Uint8Array.from(chunk) }),
    end: (id) => log.push({ ev: 'end', id }),
    message: (id, chunk, binary, fin) => log.push({ ev: 'message', id, data: Uint8Array.from(chunk), extra: { binary, fin } }),
    close: (id, code, reason) => log.push({ ev: 'close', id, extra: { code, reason } }),
    reset: (id, code, reason) => log.push({ ev: 'reset', id, extra: { code, reason } }),
    malformed: (id, reason) => log.push({ ev: 'malformed', id, extra: reason }),
    writable: (id) => log.push({ ev: 'writable', id }),
    ...extra,
  };
}

/** A proxy mux and a client mux joined by in-memory queues; `pump()` delivers until both are quiet. */
/** One mux with nobody on the other side: the frames it sends and what its handler hears. */
function alone(role: 'proxy' | 'client'): { mux: V2Mux; sent: Uint8Array[]; log: Log } {
  const sent: Uint8Array[] = [];
  const log: Log = [];
  const mux = new V2Mux({ role, send: (f) => sent.push(f) });
  mux.attach(recorder(log));
  return { mux, sent, log };
}

function pair(clientWindow?: number) {
  const toClient: Uint8Array[] = [];
  const toProxy: Uint8Array[] = [];
  const sentToClient: Uint8Array[] = [];
  const proxy = new V2Mux({ role: 'proxy', send: (f) => (toClient.push(f), sentToClient.push(f)) });
  const client = new V2Mux({ role: 'client', send: (f) => toProxy.push(f), window: clientWindow });
  const proxyLog: Log = [];
  const clientLog: Log = [];
  proxy.attach(recorder(proxyLog));
  client.attach(recorder(clientLog));
  const pump = (): void => {
    while (toClient.length || toProxy.length) {
      while (toClient.length) client.receive(toClient.shift()!);
      while (toProxy.length) proxy.receive(toProxy.shift()!);
    }
  };
  return { proxy, client, proxyLog, clientLog, pump, sentToClient, toClient, toProxy };
}

const bytes = (n: number, seed = 1): Uint8Array => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
};
const join = (log: Log, ev: string, id: number): Buffer => Buffer.concat(log.filter((e) => e.ev === ev && e.id === id).map((e) => e.data!));

describe('V2Mux', () => {
  it('carries an http exchange: request body, response head and body, END both ways, then forgets the stream', () => {
    const { proxy, client, proxyLog, clientLog, pump } = pair();
    proxy.open(1, { kind: 'http', method: 'POST', path: '/x', headers: [['host', 'h']] });
    assert.equal(proxy.data(1, bytes(1000)), true);
    proxy.end(1);
    pump();
    assert.deepEqual(clientLog.map((e) => e.ev), ['open', 'data', 'end']);
    client.respond(1, { status: 200, headers: [], length: 3 });
    client.data(1, Buffer.from('abc'));
    client.end(1);
    pump();
    assert.deepEqual(proxyLog.map((e) => e.ev), ['response', 'data', 'end']);
    assert.equal(proxy.size, 0);
    assert.equal(client.size, 0);
  });

  it('carries END with the head of a bodyless request and on the last DATA frame', () => {
    const { proxy, client, clientLog, proxyLog, pump, sentToClient, toProxy } = pair();
    proxy.open(1, { kind: 'http', method: 'GET', path: '/', headers: [] }, true);
    assert.equal(sentToClient.length, 1);
    assert.equal(sentToClient[0][1], 0x01);
    pump();
    assert.deepEqual(clientLog.map((e) => e.ev), ['open', 'end']);
    client.respond(1, { status: 200, headers: [] });
    client.data(1, Buffer.from('ok'), true);
    assert.equal(toProxy.length, 2, 'RESPONSE and one DATA with END');
    pump();
    assert.deepEqual(proxyLog.map((e) => e.ev), ['response', 'data', 'end']);
    assert.equal(proxy.size, 0);
    assert.equal(client.size, 0);
  });

  it('END rides on the last DATA chunk also when the bytes end exactly on a chunk boundary', () => {
    for (const n of [V2_DATA_CHUNK, 2 * V2_DATA_CHUNK, 2 * V2_DATA_CHUNK + 1]) {
      const { proxy, client, clientLog, proxyLog, pump, toProxy } = pair();
      proxy.open(1, { kind: 'http', method: 'GET', path: '/', headers: [] }, true);
      pump();
      client.respond(1, { status: 200, headers: [] });
      const body = bytes(n);
      client.data(1, body, true);
      const data = toProxy.filter((f) => f[0] === T.DATA);
      const frames = Math.ceil(n / V2_DATA_CHUNK);
      const expected = Array.from({ length: frames }, (_: unknown, i: number) => [Math.min(V2_DATA_CHUNK, n - i * V2_DATA_CHUNK), i === frames - 1 ? FLAG_END : 0]);
      assert.deepEqual(data.map((f) => [f.length - 6, f[1]]), expected, `${n} bytes: full chunks, END on the last, no empty END frame`);
      pump();
      assert.deepEqual(join(proxyLog, 'data', 1), Buffer.from(body));
      assert.equal(proxyLog.at(-1)!.ev, 'end', `${n} bytes: the proxy saw the end`);
      assert.equal(proxy.size, 0);
      assert.equal(client.size, 0);
      assert.equal(clientLog.filter((e) => e.ev === 'malformed' || e.ev === 'reset').length, 0);
    }
  });

  it('after a READY with inlineBody, a small complete response is one frame: head, body and END', () => {
    const { proxy, client, proxyLog, pump, toProxy } = pair();
    proxy.ready('http://x.tunnel.test', 0);
    proxy.open(1, { kind: 'http', method: 'GET', path: '/', headers: [] }, true);
    pump();
    const body = bytes(1000);
    assert.equal(client.respond(1, { status: 200, headers: [], length: 1000 }, true, body), true);
    assert.equal(toProxy.length, 1);
    assert.equal(toProxy[0]![0], T.RESPONSE);
    assert.equal(toProxy[0]![1], FLAG_END | FLAG_BODY);
    pump();
    assert.deepEqual(proxyLog.map((e) => e.ev), ['response', 'data', 'end']);
    assert.deepEqual(join(proxyLog, 'data', 1), Buffer.from(body));
    assert.equal(proxy.size, 0);
    assert.equal(client.size, 0);
  });

  it('an inline body spends credit; one beyond a DATA chunk, or a proxy that did not offer inlineBody, gets DATA frames', () => {
    const { proxy, client, proxyLog, pump, toProxy } = pair();
    proxy.ready('http://x.tunnel.test', 0);
    proxy.open(1, { kind: 'http', method: 'GET', path: '/', headers: [] }, true);
    proxy.open(2, { kind: 'http', method: 'GET', path: '/', headers: [] }, true);
    pump();
    // Not ended: the head and the first bytes now, the rest later, within the window.
    assert.equal(client.respond(1, { status: 200, headers: [] }, false, bytes(V2_DATA_CHUNK)), true);
    assert.equal(client.data(1, bytes(V2_INITIAL_WINDOW - V2_DATA_CHUNK, 2)), false, 'the inline bytes counted against the credit');
    client.end(1);
    const big = bytes(V2_DATA_CHUNK + 1, 3);
    client.respond(2, { status: 200, headers: [] }, true, big);
    assert.deepEqual(
      toProxy.filter((f) => f[2] === 0 && f[5] === 2).map((f) => [f[0], f[1]]),
      [[T.RESPONSE, 0], [T.DATA, 0], [T.DATA, FLAG_END]],
      'too large to inline: head, then DATA',
    );
    pump();
    assert.deepEqual(join(proxyLog, 'data', 1), Buffer.concat([bytes(V2_DATA_CHUNK), bytes(V2_INITIAL_WINDOW - V2_DATA_CHUNK, 2)]));
    assert.deepEqual(join(proxyLog, 'data', 2), Buffer.from(big));

    const plain = pair();
    plain.proxy.open(1, { kind: 'http', method: 'GET', path: '/', headers: [] }, true);
    plain.pump();
    plain.client.respond(1, { status: 200, headers: [] }, true, bytes(10));
    assert.deepEqual(plain.toProxy.map((f) => [f[0], f[1]]), [[T.RESPONSE, 0], [T.DATA, FLAG_END]], 'no READY with inlineBody: no FLAG_BODY');
    plain.pump();
    assert.deepEqual(plain.proxyLog.map((e) => e.ev), ['response', 'data', 'end']);
  });

  it('proxy: an inline body beyond the credit, or on a 101, resets the stream', () => {
    const { mux: proxy, sent, log } = alone('proxy');
    proxy.open(1, { kind: 'http', method: 'GET', path: '/', headers: [] }, true);
    proxy.receive(encodeResponse(1, { status: 200, headers: [] }, false, bytes(V2_INITIAL_WINDOW + 1)));
    assert.deepEqual(log.at(-1), { ev: 'malformed', id: 1, extra: 'flow control violated' });
    assert.equal(proxy.has(1), false);
    proxy.open(2, { kind: 'websocket', method: 'GET', path: '/', headers: [] }, true);
    proxy.receive(encodeResponse(2, { status: 101, headers: [] }, false, bytes(3)));
    assert.deepEqual(log.at(-1), { ev: 'malformed', id: 2, extra: 'body on a 101 RESPONSE' });
    assert.equal(log.filter((e) => e.ev === 'response').length, 0, 'neither head was handed on');
  });

  it('never sends beyond the credit; the rest waits for WINDOW_UPDATE and arrives byte-exact', () => {
    const { proxy, client, clientLog, pump, toClient } = pair();
    client.attach(recorder(clientLog, { data: (id, c) => (clientLog.push({ ev: 'data', id, data: Uint8Array.from(c) }), client.pause(id)) }));
    proxy.open(1, { kind: 'tcp' });
    const payload = bytes(4 * V2_INITIAL_WINDOW);
    assert.equal(proxy.data(1, payload), false, 'credit spent: told to wait');
    const inFlight = toClient.filter((f) => f[0] === T.DATA).reduce((n, f) => n + f.length - 6, 0);
    assert.equal(inFlight, V2_INITIAL_WINDOW);
    pump();
    // The client paused after the first chunk: credit came back only for that chunk, and what
    // arrived since is held (never more than the window); the rest waits at the sender.
    assert.equal(client.buffered().inbound, V2_INITIAL_WINDOW);
    assert.equal(proxy.buffered().outbound, 3 * V2_INITIAL_WINDOW - V2_DATA_CHUNK);
    let rounds = 0;
    while (join(clientLog, 'data', 1).length < payload.length && rounds++ < 1000) {
      client.resume(1);
      pump();
    }
    assert.deepEqual(join(clientLog, 'data', 1), Buffer.from(payload));
  });

  it('a client whose proxy announced creditByHalf splits to fit its credit only when V2_MIN_SPLIT is left; the proxy always splits', () => {
    const KiB = 1024;
    const dataSizes = (frames: Uint8Array[]): number[] => frames.filter((f) => f[0] === T.DATA).map((f) => f.length - 6);
    const opened = (ready: boolean) => {
      const p = pair();
      if (ready) p.client.receive(encodeReady('http://x.tunnel.example.com', 0));
      p.proxy.open(1, { kind: 'tcp' });
      p.pump();
      return p;
    };
    /** Spends all but `left` of stream 1's credit from `side`, then sends `size` bytes: the DATA payloads that go out for them. */
    const framesFor = (ready: boolean, side: 'client' | 'proxy', left: number, size: number): number[] => {
      const p = opened(ready);
      const out = side === 'client' ? p.toProxy : p.toClient;
      p[side].data(1, bytes(V2_INITIAL_WINDOW - left));
      out.length = 0;
      p[side].data(1, bytes(size, 2));
      return dataSizes(out);
    };

    // 40 KiB of credit left (at least V2_MIN_SPLIT): a 64 KiB chunk is split to use it.
    assert.deepEqual(framesFor(true, 'client', 40 * KiB, 64 * KiB), [40 * KiB]);

    // 10 KiB left: nothing goes out until credit returns, then the chunk goes whole.
    const b = opened(true);
    b.client.data(1, bytes(V2_INITIAL_WINDOW - 10 * KiB));
    const mark = b.toProxy.length;
    assert.ok(10 * KiB < V2_MIN_SPLIT);
    assert.equal(b.client.data(1, bytes(40 * KiB, 3)), false, 'told to wait');
    assert.equal(b.toProxy.length, mark, 'no frame for a sliver of credit');
    b.pump();
    const received = b.proxyLog.filter((e) => e.ev === 'data' && e.id === 1).map((e) => e.data!.length);
    assert.equal(received.at(-1), 40 * KiB, `received ${received.join(',')}`);
    assert.equal(join(b.proxyLog, 'data', 1).length, V2_INITIAL_WINDOW + 30 * KiB);

    // Without the announcement (an older proxy), and always on the proxy's side, the sliver is used.
    assert.deepEqual(framesFor(false, 'client', 10 * KiB, 40 * KiB), [10 * KiB]);
    assert.deepEqual(framesFor(true, 'proxy', 10 * KiB, 40 * KiB), [10 * KiB]);
  });

  it('a paused stream does not hold up another one', () => {
    const { proxy, client, clientLog, pump } = pair();
    client.attach(recorder(clientLog, { data: (id, c) => (clientLog.push({ ev: 'data', id, data: Uint8Array.from(c) }), id === 1 && client.pause(id)) }));
    proxy.open(1, { kind: 'tcp' });
    proxy.open(2, { kind: 'tcp' });
    proxy.data(1, bytes(10 * V2_INITIAL_WINDOW));
    pump();
    for (let i = 0; i < 20; i++) {
      proxy.data(2, bytes(V2_INITIAL_WINDOW, i));
      pump();
    }
    assert.equal(join(clientLog, 'data', 2).length, 20 * V2_INITIAL_WINDOW);
    assert.ok(join(clientLog, 'data', 1).length <= V2_INITIAL_WINDOW);
  });

  it('a paused stream holds many small frames and hands them all on in order when resumed', () => {
    const { proxy, client, clientLog, pump } = pair();
    proxy.open(1, { kind: 'tcp' });
    pump();
    client.pause(1);
    const n = 12_000;
    for (let i = 0; i < n; i++) client.receive(encodeData(1, Uint8Array.of(i & 0xff)));
    assert.equal(join(clientLog, 'data', 1).length, 0);
    client.resume(1);
    const got = join(clientLog, 'data', 1);
    assert.equal(got.length, n);
    assert.ok(got.every((b, i) => b === (i & 0xff)));
  });

  it('resets a paused stream sent more frames than it may hold (frames that cost no credit included)', () => {
    const { proxy, client, proxyLog, pump, sentToClient } = pair();
    proxy.open(1, { kind: 'websocket', method: 'GET', path: '/ws', headers: [] });
    pump();
    client.respond(1, { status: 101, headers: [] });
    pump();
    proxy.pause(1);
    // Empty fragments that do not end a message carry nothing: dropped, never held.
    for (let i = 0; i < 50_000; i++) proxy.receive(encodeFrame(T.MESSAGE, 0, 1, new Uint8Array(0)));
    assert.equal(proxy.size, 1);
    assert.equal(proxyLog.filter((e) => e.ev === 'reset' || e.ev === 'malformed').length, 0);
    // Empty complete messages cost no credit either, but are messages: held, up to the bound.
    for (let i = 0; i < 50_000 && proxy.size > 0; i++) proxy.receive(encodeFrame(T.MESSAGE, FLAG_FIN, 1, new Uint8Array(0)));
    assert.equal(proxy.size, 0, 'the stream was reset');
    assert.deepEqual(
      proxyLog.filter((e) => e.ev === 'malformed').map((e) => e.extra),
      ['too many frames held for a paused stream'],
    );
    const reset = decodeFrame(sentToClient.at(-1)!);
    assert.ok(reset.ok && reset.frame.type === 'reset' && reset.frame.code === R.FLOW_CONTROL_ERROR);
  });

  it('holds a paused stream\'s run of small DATA payloads in about their bytes, not a Buffer (and an event) each, and hands them on in order', () => {
    const { proxy, proxyLog, pump } = pair();
    proxy.open(1, { kind: 'tcp' });
    pump();
    proxy.pause(1);
    // 16 000 one-byte DATA frames, each decoded from its own WebSocket message (a read of its own).
    const payload = bytes(16_000, 7);
    for (let i = 0; i < payload.length; i++) proxy.receive(Uint8Array.from(encodeData(1, payload.subarray(i, i + 1))));
    const held = (proxy as unknown as { streams: { get(id: number): { inbox: { length: number } } } }).streams.get(1).inbox.length;
    assert.ok(held <= 64, `${held} events held for ${payload.length} bytes`);
    assert.equal(proxy.buffered().inbound, payload.length);
    proxy.resume(1);
    assert.ok(join(proxyLog, 'data', 1).equals(payload));
  });

  it("holds a paused WebSocket stream's small messages in about their bytes, not a Buffer (and an event) each, and hands each on with its boundary, opcode and FIN", () => {
    const { proxy, client, proxyLog, pump } = pair();
    proxy.open(1, { kind: 'websocket', method: 'GET', path: '/ws', headers: [] });
    pump();
    client.respond(1, { status: 101, headers: [] });
    pump();
    proxy.pause(1);
    // 16 000 messages and fragments of 0 to 3 bytes, each decoded from its own WebSocket message (a read of its own).
    const sent: { data: Uint8Array; binary: boolean; fin: boolean }[] = [];
    for (let i = 0; i < 16_000; i++) {
      const m = { data: bytes(i % 4, i), binary: i % 3 !== 0, fin: i % 5 !== 1 || i % 4 === 0 };
      sent.push(m);
      proxy.receive(Uint8Array.from(encodeFrame(T.MESSAGE, (m.fin ? FLAG_FIN : 0) | (m.binary ? FLAG_BINARY : 0), 1, m.data)));
    }
    const held = (proxy as unknown as { streams: { get(id: number): { inbox: { length: number } } } }).streams.get(1).inbox.length;
    assert.ok(held <= 64, `${held} events held for ${sent.length} messages`);
    const total = sent.reduce((n, m) => n + m.data.length, 0);
    assert.equal(proxy.buffered().inbound, total);
    proxy.resume(1);
    const got = proxyLog.filter((e) => e.ev === 'message' && e.id === 1);
    assert.equal(got.length, sent.length);
    got.forEach((e, i) => assert.deepEqual({ data: e.data, ...(e.extra as object) }, { data: sent[i].data, binary: sent[i].binary, fin: sent[i].fin }, `message ${i}`));
    assert.equal(proxy.buffered().inbound, 0);
  });

  it('a paused stream resumed and paused again in the middle of a run of small messages hands on the rest in order later', () => {
    const { proxy, client, pump } = pair();
    const got: number[] = [];
    let pauseAt = 0;
    proxy.attach(recorder([], { message: (id, chunk) => (got.push(chunk[0]), got.length === pauseAt && proxy.pause(id)) }));
    proxy.open(1, { kind: 'websocket', method: 'GET', path: '/ws', headers: [] });
    pump();
    client.respond(1, { status: 101, headers: [] });
    pump();
    proxy.pause(1);
    for (let i = 0; i < 100; i++) proxy.receive(encodeFrame(T.MESSAGE, FLAG_FIN | FLAG_BINARY, 1, Uint8Array.of(i)));
    pauseAt = 40;
    proxy.resume(1);
    assert.equal(got.length, 40);
    // Messages that come while the run is half handed on wait behind it.
    for (let i = 100; i < 150; i++) proxy.receive(encodeFrame(T.MESSAGE, FLAG_FIN | FLAG_BINARY, 1, Uint8Array.of(i)));
    proxy.resume(1);
    assert.deepEqual(got, Array.from({ length: 150 }, (_, i) => i));
    assert.equal(proxy.buffered().inbound, 0);
  });

  it('a paused stream keeps a larger payload that shares its read with other frames as a copy of its bytes, not a view pinning the read', () => {
    const { proxy, client, proxyLog, pump } = pair();
    proxy.open(1, { kind: 'websocket', method: 'GET', path: '/ws', headers: [] });
    proxy.open(3, { kind: 'tcp' });
    pump();
    client.respond(1, { status: 101, headers: [] });
    pump();
    proxy.pause(1);
    proxy.pause(3);
    const inbox = (id: number): { chunk?: Uint8Array }[] =>
      [...(proxy as unknown as { streams: { get(id: number): { inbox: Iterable<{ chunk?: Uint8Array }> } } }).streams.get(id).inbox];
    // Each frame a view of a 64 KiB read whose other bytes (frames for other streams) are long gone.
    const inRead = (frame: Uint8Array): Uint8Array => {
      const read = new Uint8Array(64 * 1024);
      read.set(frame);
      return read.subarray(0, frame.length);
    };
    const payload = bytes(2048, 5);
    proxy.receive(inRead(encodeFrame(T.MESSAGE, FLAG_FIN | FLAG_BINARY, 1, payload)));
    proxy.receive(inRead(encodeData(3, payload)));
    for (const id of [1, 3]) {
      const [held] = inbox(id);
      assert.ok(held.chunk && held.chunk.buffer.byteLength <= 2 * payload.length, `stream ${id}: ${held.chunk?.buffer.byteLength} bytes pinned for ${payload.length}`);
    }
    proxy.resume(1);
    proxy.resume(3);
    const messages = proxyLog.filter((e) => e.ev === 'message' && e.id === 1);
    assert.equal(messages.length, 1);
    assert.deepEqual({ data: messages[0].data, ...(messages[0].extra as object) }, { data: payload, binary: true, fin: true });
    assert.ok(join(proxyLog, 'data', 3).equals(payload));
    assert.equal(proxy.buffered().inbound, 0);
  });

  it('reports writable once credit returns', () => {
    const { proxy, proxyLog, pump } = pair();
    proxy.open(1, { kind: 'tcp' });
    assert.equal(proxy.data(1, bytes(V2_INITIAL_WINDOW)), false);
    pump();
    assert.ok(proxyLog.some((e) => e.ev === 'writable' && e.id === 1));
  });

  it('a larger receive window is announced at once', () => {
    const { proxy, pump, toClient } = pair(1024 * 1024);
    proxy.open(1, { kind: 'tcp' });
    pump();
    assert.equal(proxy.data(1, bytes(1024 * 1024 - 1)), true);
    assert.equal(toClient.length > 0, true);
  });

  it('fragments WebSocket messages with their opcode and FIN on the last fragment; CLOSE codes pass', () => {
    const { proxy, client, proxyLog, clientLog, pump, sentToClient } = pair();
    proxy.open(1, { kind: 'websocket', method: 'GET', path: '/ws', headers: [] });
    pump();
    client.respond(1, { status: 101, headers: [['sec-websocket-protocol', 'chat']] });
    pump();
    assert.deepEqual(proxyLog[0].extra, { status: 101, headers: [['sec-websocket-protocol', 'chat']] });
    const msg = bytes(200_000);
    proxy.message(1, msg, true);
    proxy.message(1, Buffer.from('hé'), false);
    pump();
    const frames = sentToClient.filter((f) => f[0] === T.MESSAGE);
    assert.equal(frames.length, 5);
    assert.ok(frames.every((f) => f.length - 6 <= V2_DATA_CHUNK));
    assert.deepEqual(
      frames.map((f) => f[1]),
      [FLAG_BINARY, FLAG_BINARY, FLAG_BINARY, FLAG_BINARY | FLAG_FIN, FLAG_FIN],
    );
    assert.deepEqual(join(clientLog, 'message', 1).subarray(0, msg.length), Buffer.from(msg));
    client.close(1, 4321, 'bye');
    pump();
    assert.deepEqual(proxyLog.at(-1), { ev: 'close', id: 1, extra: { code: 4321, reason: 'bye' } });
    proxy.close(1, 4321, 'bye');
    pump();
    assert.equal(proxy.size, 0);
    assert.equal(client.size, 0);
  });

  it('a refused WebSocket stream carries its body as DATA and ends', () => {
    const { proxy, client, proxyLog, pump } = pair();
    proxy.open(1, { kind: 'websocket', method: 'GET', path: '/ws', headers: [] });
    pump();
    client.respond(1, { status: 403, headers: [] });
    client.data(1, Buffer.from('no'));
    client.end(1);
    pump();
    assert.deepEqual(proxyLog.map((e) => e.ev), ['response', 'data', 'end']);
    assert.equal(proxy.size, 0);
    assert.equal(client.size, 0);
  });

  it('END goes out after queued data, never before', () => {
    const { proxy, client, clientLog, pump } = pair();
    proxy.open(1, { kind: 'tcp' });
    proxy.data(1, bytes(3 * V2_INITIAL_WINDOW));
    proxy.end(1);
    pump();
    assert.equal(clientLog.at(-1)!.ev, 'end');
    assert.equal(join(clientLog, 'data', 1).length, 3 * V2_INITIAL_WINDOW);
    client.end(1);
    pump();
    assert.equal(proxy.size, 0);
  });

  it('resets a stream whose peer sends beyond its credit, or breaks the order', () => {
    const { mux: proxy, sent, log } = alone('proxy');
    proxy.open(1, { kind: 'tcp' });
    // Paused: nothing is handed on, so no credit goes back.
    proxy.pause(1);
    proxy.receive(encodeData(1, bytes(V2_INITIAL_WINDOW)));
    proxy.receive(encodeData(1, bytes(1)));
    assert.deepEqual(log.at(-1), { ev: 'malformed', id: 1, extra: 'flow control violated' });
    const reset = decodeFrame(sent.at(-1)!);
    assert.ok(reset.ok && reset.frame.type === 'reset' && reset.frame.code === R.FLOW_CONTROL_ERROR);
    assert.equal(proxy.has(1), false);

    proxy.open(2, { kind: 'http', method: 'GET', path: '/', headers: [] });
    proxy.receive(encodeData(2, bytes(10)));
    assert.deepEqual(log.at(-1), { ev: 'malformed', id: 2, extra: 'DATA before RESPONSE' });

    proxy.open(3, { kind: 'http', method: 'GET', path: '/', headers: [] });
    proxy.receive(encodeResponse(3, { status: 200, headers: [] }, true));
    proxy.receive(encodeData(3, bytes(1)));
    assert.deepEqual(log.at(-1), { ev: 'malformed', id: 3, extra: 'DATA after END' });
  });

  it('resets a stream whose peer grants more than the largest window (2^31 - 1) in all', () => {
    const { mux: proxy, sent, log } = alone('proxy');
    proxy.open(1, { kind: 'tcp' });
    // The initial window plus this increment is exactly the largest: allowed.
    proxy.receive(encodeWindowUpdate(1, V2_MAX_WINDOW - V2_INITIAL_WINDOW));
    assert.equal(proxy.has(1), true);
    assert.equal(log.filter((e) => e.ev === 'malformed').length, 0);
    proxy.receive(encodeWindowUpdate(1, 1));
    assert.deepEqual(log.at(-1), { ev: 'malformed', id: 1, extra: 'window overflow' });
    const reset = decodeFrame(sent.at(-1)!);
    assert.ok(reset.ok && reset.frame.type === 'reset' && reset.frame.code === R.FLOW_CONTROL_ERROR);
    assert.equal(proxy.has(1), false);
  });

  it('client: ignores a reopened or lower stream id, refuses an unreadable OPEN', () => {
    const { mux: client, sent, log } = alone('client');
    client.receive(encodeOpen(5, { kind: 'tcp' }));
    client.receive(encodeOpen(5, { kind: 'tcp' }));
    client.receive(encodeOpen(3, { kind: 'tcp' }));
    assert.deepEqual(log.map((e) => `${e.ev}${e.id}`), ['open5']);
    client.receive(encodeFrame(T.OPEN, 0, 6, Buffer.from('{"kind":')));
    const reset = decodeFrame(sent.at(-1)!);
    assert.ok(reset.ok && reset.frame.type === 'reset' && reset.frame.stream === 6);
  });

  it('client: refuses OPENs beyond MAX_CLIENT_STREAMS open at once (each would be a local connection)', () => {
    const { mux: client, sent, log } = alone('client');
    for (let id = 1; id <= MAX_CLIENT_STREAMS; id++) client.receive(encodeOpen(id, { kind: 'tcp' }));
    assert.equal(log.filter((e) => e.ev === 'open').length, MAX_CLIENT_STREAMS);
    const before = sent.length;
    client.receive(encodeOpen(MAX_CLIENT_STREAMS + 1, { kind: 'tcp' }));
    assert.equal(log.filter((e) => e.ev === 'open').length, MAX_CLIENT_STREAMS);
    assert.equal(sent.length, before + 1);
    const reset = decodeFrame(sent.at(-1)!);
    assert.ok(reset.ok && reset.frame.type === 'reset' && reset.frame.stream === MAX_CLIENT_STREAMS + 1 && reset.frame.code === R.REFUSED);
  });

  it('fuzz: random frames into both roles never throw, and never hold more than the window per stream', () => {
    let seed = 7;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    for (const role of ['proxy', 'client'] as const) {
      const mux = new V2Mux({ role, send: () => undefined });
      mux.attach(recorder([], { data: (id) => rnd() < 0.5 && mux.pause(id), message: (id) => rnd() < 0.5 && mux.pause(id) }));
      if (role === 'proxy') for (let id = 1; id <= 4; id++) mux.open(id, id === 4 ? { kind: 'websocket', method: 'GET', path: '/', headers: [] } : { kind: id === 3 ? 'tcp' : 'http', method: 'GET', path: '/', headers: [] } as never);
      for (let i = 0; i < 20_000; i++) {
        const type = 1 + Math.floor(rnd() * 9);
        const stream = Math.floor(rnd() * 6);
        const len = Math.floor(rnd() * (rnd() < 0.05 ? 70_000 : 300));
        const payload = new Uint8Array(len);
        for (let j = 0; j < Math.min(len, 8); j++) payload[j] = Math.floor(rnd() * 256);
        if (type === T.OPEN && rnd() < 0.5) payload.set(Buffer.from('{"kind":"tcp"}').subarray(0, len));
        if (type === T.RESPONSE && rnd() < 0.5) payload.set(Buffer.from('{"status":101}').subarray(0, len));
        const frame = encodeFrame(type, Math.floor(rnd() * 4), stream, payload);
        assert.doesNotThrow(() => mux.receive(rnd() < 0.1 ? frame.subarray(0, Math.floor(rnd() * frame.length)) : frame));
        if (rnd() < 0.05) for (const id of mux.ids()) mux.resume(id);
        assert.ok(mux.buffered().inbound <= V2_INITIAL_WINDOW * Math.max(1, mux.size));
      }
    }
  });
  it('whenSent: bytes of a tcp stream queued for credit, then END, are reported sent only once the END is out; releasing then sends no RESET', () => {
    const { mux, sent } = alone('proxy');
    mux.open(1, { kind: 'tcp' });
    // The client ends its side (its local service closed first).
    mux.receive(encodeData(1, new Uint8Array(0), true));
    assert.equal(mux.data(1, bytes(V2_INITIAL_WINDOW + 1000)), false, 'beyond the credit');
    mux.end(1);
    let reported = 0;
    assert.equal(mux.whenSent(1, () => reported++), true, 'the END waits behind 1000 bytes');
    assert.equal(reported, 0);
    sent.length = 0;
    mux.receive(encodeWindowUpdate(1, 4096));
    assert.equal(reported, 1, 'reported once the END went');
    const frames = sent.map((f) => decodeFrame(f)).map((d) => (d.ok ? d.frame : null));
    assert.deepEqual(frames.map((f) => f?.type), ['data', 'data']);
    assert.equal(frames.reduce((n, f) => n + (f?.type === 'data' ? f.payload.length : 0), 0), 1000);
    assert.ok(frames[1]?.type === 'data' && frames[1].end);
    sent.length = 0;
    mux.release(1);
    assert.equal(sent.length, 0, 'no RESET after a stream that finished both ways');
    assert.equal(mux.whenSent(1, () => reported++), false, 'nothing waits any more');
  });
});
