import { after, before, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { WebSocket } from 'ws';
import type { Socket } from 'node:net';
import { RelayService } from '../src/relay/relay.service.js';
import { ResumeService } from '../src/resume/resume.service.js';
import { DrainService } from '../src/lifecycle/drain.service.js';
import { WsproxyEvents } from '../src/common/events.js';
import { LimitsService } from '../src/limits/limits.service.js';
import { NO_PONG_REASON, PAUSED_SILENT_INTERVALS } from '../src/upgrade/keepalive.service.js';
import { startApp, type TestApp } from './support/app.js';
import { within } from './support/within.js';
import { UPGRADE_HEADERS, rawExchange, rawRequest, writeThenReset } from './support/raw-http.js';
import { MAX_REQUESTS_PER_CONNECTION } from '../src/upgrade/http-server.adapter.js';
import { FLOOD_PING_BYTES, floodPings } from './support/ping-flood.js';
import { Opcode, clientFrame, frameHeader } from './support/ws-frames.js';
import {
  echoTarget,
  randomPayload,
  sha256,
  sinkTarget,
  sourceTarget,
  stalledTarget,
  startTarget,
  type TestTarget,
} from './support/targets.js';
import { closed, expectRefusal, openWs, receiveAll, receiveBytes, sendChunked } from './support/ws-client.js';
import { waitFor } from './support/wait.js';

const MiB = 1024 * 1024;

async function slotsInUse(app: TestApp): Promise<number> {
  const snap = await app.app.get(LimitsService).snapshot();
  return Object.values(snap.perIp).reduce((a, b) => a + b, 0);
}

describe('relay data path', () => {
  let app: TestApp;
  let echo: TestTarget;

  before(async () => {
    app = await startApp({ MAX_CONNS_PER_IP: '100', MAX_CONNS_PER_USER: '100' });
    echo = await echoTarget();
  });
  after(async () => {
    await app.close();
    await echo.close();
  });

  it('echoes 1 MiB byte-exactly', async () => {
    const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`);
    const payload = randomPayload(MiB);
    const got = receiveBytes(ws, payload.length);
    await sendChunked(ws, payload, 16 * 1024);
    const data = await got;
    assert.equal(data.length, payload.length);
    assert.equal(sha256(data), sha256(payload));
    ws.close(1000);
    await closed(ws);
  });

  it('relays a text frame as its bytes', async () => {
    const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`);
    const got = receiveBytes(ws, 5);
    ws.send('héllo'.slice(0, 5));
    const data = await got;
    assert.equal(data.toString('utf8').slice(0, 4), 'héll'.slice(0, 4));
    ws.close(1000);
    await closed(ws);
  });

  it('delivers all 8 MiB a target sends before it closes, then closes 1000', async () => {
    const payload = randomPayload(8 * MiB);
    const source = await sourceTarget(payload);
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${source.port}`);
      const { data, code } = await receiveAll(ws);
      assert.equal(data.length, payload.length);
      assert.equal(sha256(data), sha256(payload));
      assert.equal(code, 1000);
    } finally {
      await source.close();
    }
  });

  it('writes all 8 MiB a client sends before it closes, then FIN', async () => {
    const payload = randomPayload(8 * MiB);
    const sink = await sinkTarget();
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${sink.port}`);
      await sendChunked(ws, payload);
      ws.close(1000);
      const received = await sink.received;
      assert.equal(received.length, payload.length);
      assert.equal(sha256(received), sha256(payload));
      await closed(ws);
    } finally {
      await sink.close();
    }
  });

  it('writes every byte a client sent before its close to a target that reads slowly', async () => {
    const payload = randomPayload(4 * MiB);
    let received: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
    // Reads a chunk, then pauses 5 ms: the proxy still has bytes queued for it when the close frame arrives.
    const slow = await startTarget((socket) => {
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => {
        chunks.push(c);
        socket.pause();
        setTimeout(() => socket.resume(), 5);
      });
      received = new Promise((resolve) => socket.on('end', () => resolve(Buffer.concat(chunks))));
    });
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${slow.port}`);
      await sendChunked(ws, payload);
      ws.close(1000);
      const got = await received;
      assert.equal(got.length, payload.length);
      assert.equal(sha256(got), sha256(payload));
      await closed(ws);
    } finally {
      await slow.close();
    }
  });

  it('bounds buffering towards a target that never reads', async () => {
    const stalled = await stalledTarget();
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${stalled.port}`);
      const chunk = randomPayload(64 * 1024);
      // Push 48 MiB without waiting; kernel buffers absorb a few MiB, then the proxy must stop reading.
      for (let i = 0; i < 768; i++) ws.send(chunk);
      await new Promise((r) => setTimeout(r, 1500));
      const relays = [...app.app.get(RelayService).liveRelays()];
      const mine = relays.find((r) => r.socket.remotePort === stalled.port);
      assert.ok(mine, 'relay is live');
      assert.ok(mine.socket.writableLength < 512 * 1024, `proxy holds ${mine.socket.writableLength} bytes for the target`);
      assert.ok(ws.bufferedAmount > 16 * MiB, `client still holds ${ws.bufferedAmount} bytes: the proxy stopped reading`);
      ws.terminate();
    } finally {
      await stalled.close();
    }
  });

  it('holds no write per empty message for a target that has stopped reading', async () => {
    const stalled = await stalledTarget();
    try {
      const { ws, target, handled } = await congestedRelay(app, stalled.port);
      // An empty frame costs the client 6 bytes: as a write, a few hundred bytes of the proxy's heap that the
      // socket's high-water mark (it counts bytes) never sees, so nothing would ever pause the client.
      for (let i = 0; i < 20_000; i++) ws.send(Buffer.alloc(0));
      await handled();
      const queued = queuedWrites(target).length;
      assert.ok(queued < 100, `the proxy queued ${queued} writes for the target`);
      ws.terminate();
    } finally {
      await stalled.close();
    }
  });

  for (const [relay, query] of [
    ['a relay', ''],
    ['a resumable relay', '&resume=1'],
  ]) {
    it(`${relay} holds a small message for a target that has stopped reading in about its bytes, not the whole read it came in`, async () => {
      const stalled = await stalledTarget();
      try {
        const { ws, target, handled } = await congestedRelay(app, stalled.port, query);
        // A 1-byte message in each 64 KiB the client sends, the rest pongs (which the proxy reads and drops): each
        // read the proxy makes holds about one message. The socket's high-water mark counts 1 byte for it.
        const pad = Buffer.alloc(125);
        for (let i = 0; i < 200; i++) {
          ws.send(Buffer.of(i));
          for (let j = 0; j < 500; j++) ws.pong(pad);
        }
        await handled();
        const held = new Set(queuedWrites(target).map((w) => (w.chunk as Buffer).buffer));
        const pinned = [...held].reduce((n, b) => n + b.byteLength, 0);
        assert.ok(pinned < 1024 * 1024, `the proxy holds ${pinned} bytes of memory for the target's queue of ${target.writableLength} bytes`);
        ws.terminate();
      } finally {
        await stalled.close();
      }
    });
  }

  it('bounds buffering towards a client that never reads', async () => {
    const flood = await startTarget((s) => {
      const chunk = randomPayload(64 * 1024);
      const pump = (): void => {
        while (s.write(chunk));
        s.once('drain', pump);
      };
      pump();
    });
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${flood.port}`);
      ws.pause();
      await new Promise((r) => setTimeout(r, 1500));
      const mine = [...app.app.get(RelayService).liveRelays()].find((r) => r.socket.remotePort === flood.port);
      assert.ok(mine, 'relay is live');
      assert.ok(mine.ws.bufferedAmount < 1024 * 1024, `proxy holds ${mine.ws.bufferedAmount} bytes for the client`);
      ws.terminate();
    } finally {
      await flood.close();
    }
  });

  it('closes with 1011 when the target resets, and destroys the target when the client vanishes', async () => {
    const resetter = await startTarget((s) => setTimeout(() => s.resetAndDestroy(), 50));
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${resetter.port}`);
      const { code, reason } = await closed(ws);
      assert.equal(code, 1011);
      assert.match(reason, /target error/);
    } finally {
      await resetter.close();
    }
    let targetClosed!: () => void;
    const targetGone = new Promise<void>((r) => (targetClosed = r));
    const holder = await startTarget((s) => s.on('close', () => targetClosed()));
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${holder.port}`);
      await waitFor(() => holder.connections.size === 1, 2000, 'target connection');
      ws.terminate();
      await targetGone;
    } finally {
      await holder.close();
    }
  });
});

/**
 * A target that records how its connection ended: 'FIN' (a clean end: it has the whole upload) or the
 * error code (ECONNRESET: the proxy told it the upload was cut short), with the bytes it got.
 */
async function endingTarget(): Promise<TestTarget & { ending: Promise<{ how: string; bytes: Buffer }> }> {
  let resolve!: (e: { how: string; bytes: Buffer }) => void;
  const ending = new Promise<{ how: string; bytes: Buffer }>((r) => (resolve = r));
  const target = await startTarget((s) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => {
      resolve({ how: 'FIN', bytes: Buffer.concat(chunks) });
      s.end();
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve({ how: err.code ?? 'error', bytes: Buffer.concat(chunks) }));
  });
  return Object.assign(target, { ending });
}

describe('how a relay ends its target: a FIN for a whole upload, a reset for a truncated one', () => {
  let app: TestApp;

  before(async () => {
    app = await startApp({ MAX_CONNS_PER_IP: '100', MAX_CONNS_PER_USER: '100' });
  });
  after(async () => {
    await app.close();
  });

  it('a client that closes cleanly: the target gets every byte, then a FIN', async () => {
    const target = await endingTarget();
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${target.port}`);
      const payload = randomPayload(4 * MiB);
      await sendChunked(ws, payload, 64 * 1024);
      ws.close(1000);
      const { how, bytes } = await within(target.ending, 10_000, 'the target ended');
      assert.equal(how, 'FIN');
      assert.equal(sha256(bytes), sha256(payload));
    } finally {
      await target.close();
    }
  });

  it('a client that vanishes without a close frame (1006): the target gets a reset, not a FIN', async () => {
    const target = await endingTarget();
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${target.port}`);
      ws.send(Buffer.from('the first half of an upload'));
      await waitFor(() => [...target.connections].some((s) => s.bytesRead > 0), 5000, 'bytes at the target');
      ws.terminate();
      const { how, bytes } = await within(target.ending, 10_000, 'the target ended');
      assert.equal(how, 'ECONNRESET', 'a FIN would pass the prefix for the whole upload');
      assert.equal(bytes.toString(), 'the first half of an upload');
    } finally {
      await target.close();
    }
  });

  it('a client whose frames break the protocol (1002): the target gets a reset, not a FIN', async () => {
    const target = await endingTarget();
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${target.port}`);
      ws.send(Buffer.from('before the bad frame'));
      await waitFor(() => [...target.connections].some((s) => s.bytesRead > 0), 5000, 'bytes at the target');
      const raw = (ws as unknown as { _socket: import('node:net').Socket })._socket;
      const done = closed(ws);
      raw.write(clientFrame(Opcode.BINARY, 'abc', { maskKey: null })); // unmasked: its bytes never reach the target
      assert.equal((await done).code, 1002);
      const { how } = await within(target.ending, 10_000, 'the target ended');
      assert.equal(how, 'ECONNRESET');
    } finally {
      await target.close();
    }
  });
});

describe('relay lifetime (MAX_CONNECTION_S)', () => {
  it('closes a relay with 4408 at its maximum age and gives its slot back', async () => {
    const app = await startApp({ MAX_CONNECTION_S: '1' });
    const echo = await echoTarget();
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`);
      const { code, reason } = await closed(ws);
      assert.equal(code, 4408);
      assert.equal(reason, 'maximum connection age reached');
      await waitFor(async () => (await slotsInUse(app)) === 0, 5000, 'slot released');
    } finally {
      await app.close();
      await echo.close();
    }
  });

  it('lets a client paused for a target that never reads go at its maximum age at once, not at the close timeout', async () => {
    const app = await startApp({ MAX_CONNECTION_S: '2' });
    const stalled = await stalledTarget();
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${stalled.port}`);
      const chunk = randomPayload(64 * 1024);
      // The proxy stops reading the client: its answer to the 4408 would wait behind this upload.
      for (let i = 0; i < 512; i++) ws.send(chunk);
      const done = closed(ws);
      await waitFor(() => ws.readyState === WebSocket.CLOSING, 5000, 'the 4408 close frame');
      // (Its slot waits for the target, which gets what was written and a FIN, as after any clean close.)
      const { code } = await within(done, 5000, 'the client let go');
      assert.equal(code, 4408);
    } finally {
      await app.close();
      await stalled.close();
    }
  });

  it('at its maximum age, a client paused for a congested target gets a prefix of its upload to the target, never one with a hole', async () => {
    const app = await startApp({ MAX_CONNECTION_S: '2' });
    const MSG = 16 * 1024;
    const parts: Buffer[] = [];
    let reader: import('node:net').Socket | null = null;
    let targetClosed!: () => void;
    const targetDone = new Promise<void>((r) => (targetClosed = r));
    let targetEnd = '';
    const target = await startTarget((s) => {
      reader = s;
      s.pause(); // congested until the 4408 is out
      s.on('data', (c: Buffer) => parts.push(c));
      s.on('end', () => {
        targetEnd ||= 'FIN';
        s.end();
      });
      s.on('error', (err: NodeJS.ErrnoException) => (targetEnd ||= err.code ?? 'error'));
      s.on('close', () => targetClosed());
    });
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${target.port}`);
      // Numbered messages, far more than the target's socket takes: most wait in the client's send buffer.
      for (let i = 0; i < 4096; i++) {
        const b = Buffer.alloc(MSG);
        for (let o = 0; o < MSG; o += 4) b.writeUInt32BE(i, o);
        ws.send(b);
      }
      const done = closed(ws);
      await waitFor(() => ws.readyState === WebSocket.CLOSING, 5000, 'the 4408 close frame');
      // The target reads again while the proxy reads on towards the client's answer.
      reader!.resume();
      assert.equal((await within(done, 10_000, 'the client let go')).code, 4408);
      await within(targetDone, 10_000, 'the target closed');
      const all = Buffer.concat(parts);
      // Messages dropped, the proxy resets the target (a FIN would pass the prefix for the whole upload), and the
      // reset may cut anywhere. How this target (a Node socket) sees it is not asserted: libuv reports a reset that
      // comes behind unread bytes as an EOF (after a partial read, a hang-up ends the stream without reading the
      // error); a reader calling read() itself gets ECONNRESET. The reset's own test is in "how a relay ends its target".
      if (all.length === 4096 * MSG) assert.equal(targetEnd, 'FIN', 'the whole upload, then a FIN');
      for (let o = 0; o + 4 <= all.length; o += 4) {
        if (all.readUInt32BE(o) !== Math.floor(o / MSG)) assert.fail(`byte ${o} of the ${all.length} the target got is from message ${all.readUInt32BE(o)}`);
      }
    } finally {
      await app.close();
      await target.close();
    }
  });

  it('keeps relaying under a year-long maximum age (longer than one setTimeout can wait)', async () => {
    const app = await startApp({ MAX_CONNECTION_S: '31536000' });
    const echo = await echoTarget();
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(ws.readyState, WebSocket.OPEN);
      const got = receiveBytes(ws, 4);
      ws.send(Buffer.from('ping'));
      assert.equal((await got).toString(), 'ping');
      ws.close(1000);
      assert.equal((await closed(ws)).code, 1000);
    } finally {
      await app.close();
      await echo.close();
    }
  });
});

describe('relay admission', () => {
  let app: TestApp;
  let echo: TestTarget;

  before(async () => {
    app = await startApp({
      MAX_CONNS_PER_IP: '3',
      ALLOWED_ORIGINS: 'https://app.example.com,https://*.example.org,http://localhost:*',
      DIAL_TIMEOUT_MS: '500',
    });
    echo = await echoTarget();
  });
  after(async () => {
    await app.close();
    await echo.close();
  });

  const badParams: [string, string][] = [
    ['port=22', 'missing host'],
    ['host=127.0.0.1', 'missing port'],
    ['host=127.0.0.1&port=0', 'invalid port'],
    ['host=127.0.0.1&port=65536', 'invalid port'],
    ['host=127.0.0.1&port=22a', 'invalid port'],
    ['host=127.0.0.1&port=022', 'invalid port'],
    ['host=127.0.0.1&port=00', 'invalid port'],
    ['host=127.0.0.1&port=-1', 'invalid port'],
    ['host=bad_host!&port=22', 'invalid host'],
    ['host=a..b&port=22', 'invalid host'],
  ];
  for (const [query, reason] of badParams) {
    it(`400 for ${query}`, async () => {
      const r = await expectRefusal(`${app.wsUrl}/relay?${query}`);
      assert.equal(r.status, 400);
      assert.equal(r.body, reason);
      const c = await closedAfterOpen(`${app.wsUrl}/relay?${query}&errors=close`);
      assert.deepEqual(c, { code: 4400, reason });
    });
  }

  it('accepts IPv6 with and without brackets, and logs the target as [address]:port either way', async () => {
    const echo6 = await echoTarget('::1');
    const targets: string[] = [];
    const onOpened = (e: { target: string }): void => void targets.push(e.target);
    app.app.get(WsproxyEvents).on('relay.opened', onOpened);
    try {
      for (const host of ['::1', '[::1]']) {
        const ws = await openWs(`${app.wsUrl}/relay?host=${encodeURIComponent(host)}&port=${echo6.port}`);
        const got = receiveBytes(ws, 3);
        ws.send(Buffer.from('abc'));
        assert.equal((await got).toString(), 'abc');
        ws.close(1000);
        await closed(ws);
      }
      // `::1:22` would be ambiguous (it is itself an IPv6 address): the relay_start / relay_end target is bracketed.
      assert.deepEqual(targets, [`[::1]:${echo6.port}`, `[::1]:${echo6.port}`]);
    } finally {
      app.app.get(WsproxyEvents).off('relay.opened', onOpened);
      await echo6.close();
    }
  });

  it('checks Origin: exact, subdomain wildcard, port wildcard, absent passes', async () => {
    const url = `${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`;
    for (const origin of ['https://app.example.com', 'https://a.b.example.org', 'http://localhost:5173', undefined]) {
      const ws = await openWs(url, origin ? { origin } : {});
      ws.close(1000);
      await closed(ws);
    }
    for (const origin of ['https://evil.com', 'https://example.org', 'http://app.example.com', 'https://app.example.com.evil.com', 'null']) {
      const r = await expectRefusal(url, { origin });
      assert.equal(r.status, 403, origin);
      assert.equal(r.body, 'origin not allowed');
    }
    assert.deepEqual(await closedAfterOpen(url + '&errors=close', { origin: 'https://evil.com' }), {
      code: 4403,
      reason: 'origin not allowed',
    });
  });

  it('429 beyond MAX_CONNS_PER_IP, and the slot returns when a relay ends', async () => {
    const url = `${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`;
    const open = await Promise.all([openWs(url), openWs(url), openWs(url)]);
    const r = await expectRefusal(url);
    assert.equal(r.status, 429);
    assert.equal(r.body, 'too many connections from this IP');
    assert.deepEqual(await closedAfterOpen(url + '&errors=close'), { code: 4429, reason: 'too many connections from this IP' });
    open[0].close(1000);
    await closed(open[0]);
    await waitFor(async () => (await slotsInUse(app)) === 2, 2000, 'slot release');
    const again = await openWs(url);
    for (const ws of [again, open[1], open[2]]) ws.close(1000);
    await Promise.all([again, open[1], open[2]].map(closed));
    await waitFor(async () => (await slotsInUse(app)) === 0, 2000, 'all slots released');
  });

  it('502 when the target refuses, and slots are back to zero after 50 failed dials', async () => {
    const closedPort = await freePort();
    const url = `${app.wsUrl}/relay?host=127.0.0.1&port=${closedPort}`;
    const r = await expectRefusal(url);
    assert.equal(r.status, 502);
    assert.equal(r.body, 'target refused the connection');
    assert.deepEqual(await closedAfterOpen(url + '&errors=close'), { code: 4502, reason: 'target refused the connection' });
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => (i % 2 ? expectRefusal(url) : closedAfterOpen(url + '&errors=close'))),
    );
    assert.equal(results.length, 50);
    await waitFor(async () => (await slotsInUse(app)) === 0, 2000, 'slots back to zero');
  });

  it('502 target unreachable when the dial fails for another reason than a refusal, and the slot comes back', async () => {
    // Loopback's broadcast address: Linux refuses a TCP connect to it (ENETUNREACH) without sending anything.
    const url = `${app.wsUrl}/relay?host=127.255.255.255&port=${echo.port}`;
    assert.deepEqual(await expectRefusal(url), { status: 502, body: 'target unreachable' });
    assert.deepEqual(await closedAfterOpen(url + '&errors=close'), { code: 4502, reason: 'target unreachable' });
    await waitFor(async () => (await slotsInUse(app)) === 0, 2000, 'slots back to zero');
  });

  it('504 when the dial times out', async () => {
    const { port, release } = await unresponsiveListener();
    try {
      const url = `${app.wsUrl}/relay?host=127.0.0.1&port=${port}`;
      const r = await expectRefusal(url);
      assert.equal(r.status, 504);
      assert.equal(r.body, 'target connect timeout');
      assert.deepEqual(await closedAfterOpen(url + '&errors=close'), { code: 4504, reason: 'target connect timeout' });
      await waitFor(async () => (await slotsInUse(app)) === 0, 2000, 'slots back to zero');
    } finally {
      release();
    }
  });

  it('404 for unknown paths, plain HTTP too', async () => {
    const r = await expectRefusal(`${app.wsUrl}/nope?host=127.0.0.1&port=22`);
    assert.equal(r.status, 404);
    const res = await fetch(`${app.baseUrl}/nope`);
    assert.equal(res.status, 404);
  });

  it('404 for a path that only ends in /relay, however many slashes start it (RFC 9112 3.2.1: an origin-form target is a path)', async () => {
    let dials = 0;
    const counted = await startTarget((s) => {
      dials++;
      s.destroy();
    });
    try {
      const key = { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13' };
      for (const path of ['//relay', '//evil.example/relay', '//evil.example:8080/relay', '///relay']) {
        const res = await rawUpgrade(app.port, `${path}?host=127.0.0.1&port=${counted.port}`, key);
        assert.match(res, /^HTTP\/1\.1 404 [^]*\r\n\r\nnot found\n$/, path);
        // Express reads the path as it is too.
        assert.equal((await fetch(`${app.baseUrl}${path}`)).status, 404, path);
      }
      assert.equal(dials, 0);
    } finally {
      await counted.close();
    }
  });

  it('400 for a malformed WebSocket handshake, 426 for another version, each with its reason', async () => {
    const res = await rawUpgrade(app.port, '/relay?host=127.0.0.1&port=22', { 'Sec-WebSocket-Key': 'short', 'Sec-WebSocket-Version': '13' });
    assert.match(res, /^HTTP\/1\.1 400 [^]*\r\n\r\ninvalid Sec-WebSocket-Key\n$/);
    const res2 = await rawUpgrade(app.port, '/relay?host=127.0.0.1&port=22', {
      'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Version': '8',
    });
    assert.match(res2, /^HTTP\/1\.1 426 [^]*\r\n\r\nunsupported Sec-WebSocket-Version\n$/);
    // WebSocket offered among other protocols: a handshake, but not one RFC 6455 §4.1 describes.
    const res3 = await rawExchange(
      app.port,
      'GET /relay?host=127.0.0.1&port=22 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c, websocket\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    assert.match(res3, /^HTTP\/1\.1 400 [^]*\r\n\r\nUpgrade must be websocket\n$/);
  });
});

describe('relay target policy (default blocklist; loopback forms only, never dialled)', () => {
  let app: TestApp;
  let dials = 0;
  let echo: TestTarget;

  before(async () => {
    app = await startApp({ BLOCKED_TARGETS: '' });
    echo = await startTarget((s) => {
      dials++;
      s.destroy();
    });
  });
  after(async () => {
    await app.close();
    await echo.close();
  });

  for (const host of ['127.0.0.1', '127.0.0.2', '2130706433', '0x7f.1', '127.1', '[::1]', '::1', '::ffff:127.0.0.1', 'localhost']) {
    it(`403 for ${host}`, async () => {
      const url = `${app.wsUrl}/relay?host=${encodeURIComponent(host)}&port=${echo.port}`;
      const r = await expectRefusal(url);
      assert.equal(r.status, 403);
      assert.equal(r.body, 'target blocked');
      assert.deepEqual(await closedAfterOpen(url + '&errors=close'), { code: 4403, reason: 'target blocked' });
    });
  }

  it('dialled nothing', () => {
    assert.equal(dials, 0);
  });
});

describe('ALLOWED_TARGETS', () => {
  let app: TestApp;
  let echo: TestTarget;
  let other: TestTarget;

  before(async () => {
    echo = await echoTarget();
    other = await echoTarget();
    app = await startApp({ ALLOWED_TARGETS: `127.0.0.1/32:${echo.port}` });
  });
  after(async () => {
    await app.close();
    await echo.close();
    await other.close();
  });

  it('allows only matching address and port', async () => {
    const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`);
    ws.close(1000);
    await closed(ws);
    const r = await expectRefusal(`${app.wsUrl}/relay?host=127.0.0.1&port=${other.port}`);
    assert.equal(r.status, 403);
    assert.equal(r.body, 'target not allowed');
  });
});

describe('admission gives back what it took when the handshake cannot complete', () => {
  let app: TestApp;
  let dials = 0;
  let quiet: TestTarget;

  before(async () => {
    app = await startApp({ MAX_CONNS_PER_IP: '1', MAX_CONNS_PER_USER: '100' });
    // Accepts and stays silent: a dialled connection lives until the proxy closes it.
    quiet = await startTarget(() => dials++);
  });
  after(async () => {
    await app.close();
    await quiet.close();
  });

  it('400 for a malformed Sec-WebSocket-Protocol, before any slot is taken or any target dialled', async () => {
    for (const protocols of ['a b', 'a, a', 'a,,b', 'a;b']) {
      const res = await rawUpgrade(app.port, `/relay?host=127.0.0.1&port=${quiet.port}`, {
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Protocol': protocols,
      });
      assert.match(res, /^HTTP\/1\.1 400 /, protocols);
      assert.match(res, /invalid Sec-WebSocket-Protocol/);
    }
    assert.equal(dials, 0);
    assert.equal(await slotsInUse(app), 0);
  });

  it('a client that half-closes right after its request gets its slot back and its target closed', async () => {
    const { connect } = await import('node:net');
    const dialsBefore = dials;
    const s = connect(app.port, '127.0.0.1');
    s.on('error', () => undefined);
    await once(s, 'connect');
    s.end(
      [`GET /relay?host=127.0.0.1&port=${quiet.port} HTTP/1.1`, `Host: 127.0.0.1:${app.port}`, 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', '', ''].join('\r\n'),
    );
    s.resume();
    await once(s, 'close');
    await waitFor(() => dials > dialsBefore, 2000, 'the target dialled');
    await waitFor(() => quiet.connections.size === 0, 3000, 'the target connection closed');
    await waitFor(async () => (await slotsInUse(app)) === 0, 3000, 'the slot back');
    // The one slot of this IP is free again.
    const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${quiet.port}`);
    ws.close(1000);
    await closed(ws);
  });
});

describe('a client that leaves while its dial is slow', () => {
  let app: TestApp;
  before(async () => {
    // A dial timeout far past the wait for the slot below: a stalled test process cannot make the timeout look like the FIN.
    app = await startApp({ MAX_CONNS_PER_IP: '1', DIAL_TIMEOUT_MS: '60000' });
  });
  after(async () => {
    await app.close();
  });

  it('gets its slot back when it closes normally (FIN), not when the dial times out; no dial outcome is recorded', async () => {
    const { port, release } = await unresponsiveListener();
    const dials: boolean[] = [];
    app.app.get(WsproxyEvents).on('dial', (e) => dials.push(e.ok));
    try {
      const { connect } = await import('node:net');
      const s = connect(app.port, '127.0.0.1');
      s.on('error', () => undefined);
      await once(s, 'connect');
      s.write(
        [`GET /relay?host=127.0.0.1&port=${port} HTTP/1.1`, `Host: 127.0.0.1:${app.port}`, 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', '', ''].join('\r\n'),
      );
      await waitFor(async () => (await slotsInUse(app)) === 1, 2000, 'the slot taken by the dial');
      await new Promise((r) => setTimeout(r, 400));
      const startedAt = Date.now();
      const clientClosed = once(s, 'close');
      s.end();
      s.resume();
      await waitFor(async () => (await slotsInUse(app)) === 0, 30_000, 'the slot back');
      assert.ok(Date.now() - startedAt < 30_000, 'long before the 60 s dial timeout');
      await clientClosed;
      assert.deepEqual(dials, [], 'a dial the client cut short is neither ok nor error in wsproxy_dial_duration_seconds');
    } finally {
      release();
    }
  });
});

describe('a client that leaves while its target name is being resolved', () => {
  it('gets its slot back when it closes normally (FIN), not when the lookup settles (DNS_TIMEOUT_MS)', async () => {
    const { promises: dns } = await import('node:dns');
    const lookup = dns.lookup.bind(dns);
    // A name that never resolves; every other lookup as usual.
    const slow = mock.method(dns, 'lookup', (name: string, options: object) =>
      name === 'never.slow.test' ? new Promise(() => undefined) : lookup(name, options as { all: true }),
    );
    // A lookup timeout (DNS_TIMEOUT_MS's largest) far past the wait for the slot below: a stalled test process cannot make it look like the FIN.
    const app = await startApp({ MAX_CONNS_PER_IP: '1', DNS_TIMEOUT_MS: '60000' });
    try {
      const { connect } = await import('node:net');
      const s = connect(app.port, '127.0.0.1');
      s.on('error', () => undefined);
      await once(s, 'connect');
      s.write(
        [`GET /relay?host=never.slow.test&port=22 HTTP/1.1`, `Host: 127.0.0.1:${app.port}`, 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', '', ''].join('\r\n'),
      );
      await waitFor(async () => (await slotsInUse(app)) === 1 && slow.mock.callCount() === 1, 2000, 'the slot taken while the name resolves');
      await new Promise((r) => setTimeout(r, 400));
      const startedAt = Date.now();
      const clientClosed = once(s, 'close');
      s.end();
      s.resume();
      await waitFor(async () => (await slotsInUse(app)) === 0, 30_000, 'the slot back');
      assert.ok(Date.now() - startedAt < 30_000, 'long before the 60 s DNS timeout');
      await clientClosed;
    } finally {
      slow.mock.restore();
      await app.close();
    }
  });
});

describe('a target that half-closes', () => {
  it('still gets what the client sent before it answered the close that the FIN became, then the FIN; the relay ends 1000', async () => {
    const app = await startApp();
    const { createServer } = await import('node:net');
    let received = '';
    let targetGotFin!: (got: string) => void;
    const finAt = new Promise<string>((resolve) => (targetGotFin = resolve));
    // Answers the client's first bytes with its last ones and its FIN at once, and reads on until the proxy's FIN.
    const target = createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      s.on('data', (d: Buffer) => {
        if (received === '') s.end('bye');
        received += d.toString();
      });
      s.on('end', () => {
        targetGotFin(received);
        s.destroy();
      });
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const ends: { closeCode: number; bytesUp: number }[] = [];
    app.app.get(WsproxyEvents).on('relay.closed', (e) => ends.push(e));
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${(target.address() as import('node:net').AddressInfo).port}`);
      // The client answers the target's last bytes before it reads the close frame behind them.
      ws.on('message', () => ws.send(Buffer.from(' late answer')));
      ws.send(Buffer.from('hello'));
      const { code } = await within(closed(ws), 5000, 'the relay closed');
      assert.equal(code, 1000);
      assert.equal(await within(finAt, 5000, "the proxy's FIN at the target"), 'hello late answer', 'the bytes before the FIN');
      await waitFor(() => ends.length === 1, 5000, 'relay_end');
      assert.deepEqual(ends.map((e) => [e.closeCode, e.bytesUp]), [[1000, 17]]);
    } finally {
      await app.close();
      target.close();
    }
  });
});

describe('a target that closes while the proxy has stopped reading the client', () => {
  it('reads on to the close handshake: the relay ends at once, not at the close timeout', async () => {
    const app = await startApp();
    const target = await stalledTarget();
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${target.port}`);
      const chunk = randomPayload(64 * 1024);
      for (let i = 0; i < 768; i++) ws.send(chunk);
      await waitFor(() => [...app.app.get(RelayService).liveRelays()].some((r) => r.ws.isPaused), 5000, 'the proxy stops reading the client');
      const done = closed(ws);
      for (const s of target.connections) s.destroy();
      await within(done, 5000, 'the client closed');
      await waitFor(async () => (await slotsInUse(app)) === 0, 2000, 'the slot released');
    } finally {
      await app.close();
      await target.close();
    }
  });
});

describe('a drain with relays that only wait for their targets', () => {
  it("ends them at once instead of waiting out SHUTDOWN_TIMEOUT_MS: the client closed, its bytes and the FIN reached a target that keeps its side open", async () => {
    const app = await startApp({ SHUTDOWN_TIMEOUT_MS: '20000' });
    const { createServer } = await import('node:net');
    let targetEnded!: () => void;
    const targetGotFin = new Promise<void>((resolve) => (targetEnded = resolve));
    const target = createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      s.resume();
      s.on('end', () => targetEnded());
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const ends: { closeCode: number }[] = [];
    app.app.get(WsproxyEvents).on('relay.closed', (e) => ends.push(e));
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${(target.address() as import('node:net').AddressInfo).port}`);
      ws.close(1000, 'bye');
      await within(targetGotFin, 5000, 'the FIN at the target');
      const started = Date.now();
      await app.close();
      assert.ok(Date.now() - started < 5000, `the drain took ${Date.now() - started} ms`);
      assert.deepEqual(ends.map((e) => e.closeCode), [1000]);
    } finally {
      target.close();
    }
  });

  it('does not throw away the tail of a whole upload still in the kernel for a slow target: it gets every byte and a clean end, not a reset', async () => {
    const app = await startApp({ SHUTDOWN_TIMEOUT_MS: '20000' });
    const { createServer } = await import('node:net');
    let targetSocket!: import('node:net').Socket;
    let accept!: () => void;
    const accepted = new Promise<void>((resolve) => (accept = resolve));
    const target = createServer({ allowHalfOpen: true }, (s) => {
      targetSocket = s;
      // Not reading yet: the whole upload fits in the kernel's buffers, so the proxy has written it and its FIN.
      s.pause();
      accept();
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${(target.address() as import('node:net').AddressInfo).port}`);
      await within(accepted, 5000, 'the target connection');
      const upload = randomPayload(1024 * 1024);
      for (let off = 0; off < upload.length; off += 64 * 1024) ws.send(upload.subarray(off, off + 64 * 1024));
      ws.close(1000, 'done');
      await within(closed(ws), 5000, 'the close handshake');
      await waitFor(() => app.app.get(RelayService).liveRelays().every((r) => r.pipe.settled()), 5000, 'every byte and the FIN handed to the kernel');
      // The drain ends the relay at once (it only waits for its target), with the upload still in the kernel.
      await app.close();
      let bytes = 0;
      targetSocket.on('data', (c: Buffer) => (bytes += c.length));
      const how = new Promise<string>((resolve) => {
        targetSocket.once('end', () => resolve('end'));
        targetSocket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      });
      targetSocket.resume();
      assert.equal(await within(how, 5000, 'the end of the upload at the target'), 'end');
      assert.equal(bytes, upload.length, 'the whole upload');
    } finally {
      targetSocket?.destroy();
      target.close();
    }
  });
});

describe('clients that reset right after their request', () => {
  let app: TestApp;
  before(async () => {
    app = await startApp({ MAX_CONNS_PER_IP: '5' });
  });
  after(async () => {
    await app.close();
  });

  it('are dropped without admission: no target dialled, no refusal counted under an empty address', async () => {
    const { createServer } = await import('node:net');
    let dialled = 0;
    const target = createServer((s) => {
      dialled++;
      s.destroy();
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const targetPort = (target.address() as import('node:net').AddressInfo).port;
    const refused: string[] = [];
    const onRefused = (e: { kind: string; clientIp: string }): void => void refused.push(`${e.kind} from '${e.clientIp}'`);
    app.app.get(WsproxyEvents).on('admission.refused', onRefused);
    try {
      const request = `GET /relay?host=127.0.0.1&port=${targetPort} HTTP/1.1\r\nHost: 127.0.0.1:${app.port}\r\n${UPGRADE_HEADERS}\r\n`;
      // The request and the reset arrive together: Node reads the request, and the peer is gone when admission asks for its address.
      await writeThenReset(app.port, request, 50);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(refused, []);
      assert.equal(dialled, 0, 'no target dialled for a client already gone');
      assert.equal(await slotsInUse(app), 0);
    } finally {
      app.app.get(WsproxyEvents).off('admission.refused', onRefused);
      target.close();
    }
  });
});

describe('admissions in flight when the drain starts', () => {
  let app: TestApp;
  before(async () => {
    app = await startApp({ MAX_CONNS_PER_IP: '4', DIAL_TIMEOUT_MS: '8000' });
  });
  after(async () => {
    await app.close();
  });

  it('are refused at once with 503 server is draining (4503 with errors=close), and give back their slots long before their dial would time out', async () => {
    const { port, release } = await unresponsiveListener();
    const { connect } = await import('node:net');
    // A client that reads the refusal and keeps its side open: its leaving does not end the dial, the refusal does.
    const stays = connect({ port: app.port, host: '127.0.0.1', allowHalfOpen: true });
    stays.on('error', () => undefined);
    try {
      await once(stays, 'connect');
      stays.write(`GET /relay?host=127.0.0.1&port=${port} HTTP/1.1\r\nHost: 127.0.0.1\r\n${UPGRADE_HEADERS}\r\n`);
      let text = '';
      stays.on('data', (c: Buffer) => (text += c.toString()));
      const plain = once(stays, 'end').then(() => text);
      const asClose = openWs(`ws://127.0.0.1:${app.port}/relay?host=127.0.0.1&port=${port}&errors=close`);
      await waitFor(async () => (await slotsInUse(app)) === 2, 3000, 'both dials pending');
      const startedAt = Date.now();
      app.app.get(DrainService).startDraining();
      const res = await within(plain, 3000, 'the refusal');
      assert.match(res, /^HTTP\/1\.1 503 /);
      assert.match(res, /\r\nRetry-After: 5\r\n/);
      assert.match(res, /server is draining\n$/);
      const ws = await within(asClose, 3000, 'the WebSocket for errors=close');
      assert.deepEqual(await within(closed(ws), 3000, 'its close'), { code: 4503, reason: 'server is draining' });
      await waitFor(async () => (await slotsInUse(app)) === 0, 3000, 'the slots back');
      assert.ok(Date.now() - startedAt < 3000, 'long before the 8 s dial timeout');
      assert.equal(stays.destroyed, false, 'the client is still there');
    } finally {
      stays.destroy();
      release();
    }
  });
});

describe('client IP and trusted proxies', () => {
  let echo: TestTarget;
  before(async () => {
    echo = await echoTarget();
  });
  after(async () => {
    await echo.close();
  });

  it('ignores X-Forwarded-For and X-Real-IP from an untrusted peer', async () => {
    const app = await startApp({ MAX_CONNS_PER_IP: '1' });
    try {
      const url = `${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`;
      const a = await openWs(url, { headers: { 'X-Forwarded-For': '203.0.113.1' } });
      const r = await expectRefusal(url, { headers: { 'X-Forwarded-For': '203.0.113.2', 'X-Real-IP': '203.0.113.3' } });
      assert.equal(r.status, 429);
      const snap = await app.app.get(LimitsService).snapshot();
      assert.deepEqual(Object.keys(snap.perIp), ['127.0.0.1']);
      a.close(1000);
      await closed(a);
    } finally {
      await app.close();
    }
  });

  it('uses the rightmost X-Forwarded-For address that is not a trusted proxy, X-Real-IP as fallback', async () => {
    const app = await startApp({ MAX_CONNS_PER_IP: '1', TRUSTED_PROXIES: '127.0.0.0/8,10.0.0.0/8' });
    try {
      const url = `${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`;
      // What the client wrote left of the trusted proxies' entries is not believed.
      const a = await openWs(url, { headers: { 'X-Forwarded-For': 'garbage, 198.51.100.9, 203.0.113.1, 10.0.0.1' } });
      const b = await openWs(url, { headers: { 'X-Forwarded-For': '203.0.113.2' } });
      const c = await openWs(url, { headers: { 'X-Real-IP': '203.0.113.3' } });
      // A spoofed entry on the left does not get the same client a second slot.
      const r = await expectRefusal(url, { headers: { 'X-Forwarded-For': '198.51.100.10, 203.0.113.1' } });
      assert.equal(r.status, 429);
      const snap = await app.app.get(LimitsService).snapshot();
      assert.deepEqual(Object.keys(snap.perIp).sort(), ['203.0.113.1', '203.0.113.2', '203.0.113.3']);
      for (const ws of [a, b, c]) ws.close(1000);
      await Promise.all([a, b, c].map(closed));
    } finally {
      await app.close();
    }
  });

  it('counts an IPv6 client per IPV6_LIMIT_PREFIX (a /64 by default), each address alone at 128', async () => {
    const url = (app: { wsUrl: string }): string => `${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`;
    // Header values only: nothing is dialled at these documentation addresses.
    const from = (ip: string): { headers: Record<string, string> } => ({ headers: { 'X-Forwarded-For': ip } });
    const app = await startApp({ MAX_CONNS_PER_IP: '1', TRUSTED_PROXIES: '127.0.0.0/8' });
    try {
      const a = await openWs(url(app), from('2001:db8:1:2::1'));
      // Another address of the same /64 is the same client.
      const r = await expectRefusal(url(app), from('2001:db8:1:2:ffff::9'));
      assert.equal(r.status, 429);
      assert.equal(r.body, 'too many connections from this IP');
      const b = await openWs(url(app), from('2001:db8:1:3::1'));
      const snap = await app.app.get(LimitsService).snapshot();
      assert.deepEqual(Object.keys(snap.perIp).sort(), ['2001:db8:1:2::/64', '2001:db8:1:3::/64']);
      for (const ws of [a, b]) ws.close(1000);
      await Promise.all([a, b].map(closed));
      await waitFor(async () => Object.keys((await app.app.get(LimitsService).snapshot()).perIp).length === 0, 5000, 'the slots back');
    } finally {
      await app.close();
    }
    const perAddress = await startApp({ MAX_CONNS_PER_IP: '1', TRUSTED_PROXIES: '127.0.0.0/8', IPV6_LIMIT_PREFIX: '128' });
    try {
      const a = await openWs(url(perAddress), from('2001:db8:1:2::1'));
      const b = await openWs(url(perAddress), from('2001:db8:1:2::2'));
      for (const ws of [a, b]) ws.close(1000);
      await Promise.all([a, b].map(closed));
    } finally {
      await perAddress.close();
    }
  });
});

/**
 * A relay (`query`: more of its query) to `port`, a target that has stopped reading, once the kernel's buffers towards
 * the target are full and the proxy holds a write of its own; `target`: the proxy's socket to it; `handled` resolves
 * once the proxy has handled every frame sent before it (it answers a ping after them). The buffers are filled in
 * steps under the socket's high-water mark, so that the proxy still reads the client.
 */
async function congestedRelay(app: TestApp, port: number, query = ''): Promise<{ ws: WebSocket; target: Socket; handled: () => Promise<void> }> {
  const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${port}${query}`);
  const target = [...app.app.get(RelayService).liveRelays().map((r) => r.socket), ...app.app.get(ResumeService).liveSessions().map((s) => s.setup.socket)].find(
    (s) => s.remotePort === port,
  );
  assert.ok(target, 'relay is live');
  const handled = async (): Promise<void> => {
    const pong = once(ws, 'pong');
    ws.ping();
    await pong;
  };
  const step = randomPayload(8 * 1024);
  while (target.writableLength === 0) {
    ws.send(step);
    await handled();
  }
  return { ws, target, handled };
}

/** The writes `socket` holds, not yet handed to the kernel: Node's `writableBuffer` (not in its types). */
function queuedWrites(socket: Socket): readonly { readonly chunk: unknown }[] {
  return (socket as Socket & { readonly writableBuffer: readonly { readonly chunk: unknown }[] }).writableBuffer;
}

/** Opens with `errors=close` and returns the close code and reason the server sent. */
async function closedAfterOpen(url: string, options: { origin?: string } = {}): Promise<{ code: number; reason: string }> {
  const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
  ws.on('error', () => undefined);
  const [code, reason] = (await once(ws, 'close')) as [number, Buffer];
  return { code, reason: reason.toString() };
}

async function freePort(): Promise<number> {
  const t = await startTarget(() => undefined);
  const port = t.port;
  await t.close();
  return port;
}

/**
 * A loopback listener whose accept queue is full, so further SYNs are dropped
 * and a connect attempt hangs until its timeout.
 */
async function unresponsiveListener(): Promise<{ port: number; release: () => void }> {
  const { spawn } = await import('node:child_process');
  const py = spawn(
    'python3',
    [
      '-c',
      [
        'import socket,sys,time',
        's=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(0)',
        'print(s.getsockname()[1], flush=True)',
        'fill=[]',
        'for i in range(8):',
        '  c=socket.socket(); c.setblocking(False)',
        '  try: c.connect(("127.0.0.1", s.getsockname()[1]))',
        '  except BlockingIOError: pass',
        '  fill.append(c)',
        'print("ready", flush=True)',
        'sys.stdin.read()',
      ].join('\n'),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  let out = '';
  await new Promise<void>((resolve) => {
    py.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('ready')) resolve();
    });
  });
  return { port: Number(out.split('\n')[0]), release: () => py.kill() };
}

/** Sends a hand-written upgrade request and returns the raw response head. */
async function rawUpgrade(port: number, path: string, headers: Record<string, string>): Promise<string> {
  const { connect } = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => {
      const lines = [`GET ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Connection: Upgrade', 'Upgrade: websocket'];
      for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
      s.write(lines.join('\r\n') + '\r\n\r\n');
    });
    let data = '';
    s.on('data', (c: Buffer) => (data += c.toString()));
    s.on('end', () => resolve(data));
    s.on('error', reject);
  });
}

describe('hostile input', () => {
  let app: TestApp;
  let echo: TestTarget;

  before(async () => {
    app = await startApp({ HANDSHAKE_TIMEOUT_MS: '1000', MAX_MESSAGE_BYTES: '65536' });
    echo = await echoTarget();
  });
  after(async () => {
    await app.close();
    await echo.close();
  });

  it('answers a 404 without echoing the query (a token in it stays out of the body)', async () => {
    const res = await fetch(`${app.baseUrl}/nope?token=SECRET-TOKEN-VALUE&x=1`);
    assert.equal(res.status, 404);
    const body = await res.text();
    assert.ok(!body.includes('SECRET-TOKEN-VALUE'), body);
    assert.deepEqual(JSON.parse(body), { message: 'Cannot GET /nope', error: 'Not Found', statusCode: 404 });
    // Nor a fragment.
    for (const target of ['http://h.example/nope#SECRET3', '/nope#SECRET4']) {
      const r = await rawRequest(app.port, `GET ${target} HTTP/1.1`);
      assert.equal(r.status, 404, target);
      assert.ok(!/SECRET/.test(r.text), r.text);
      assert.match(r.text, /"message":"Cannot GET \/nope"/, target);
    }
    // An absolute-form target's user info is refused (RFC 9110 §4.2.4), and not echoed either.
    // Also where the URL parser finds it past extra slashes (`http:///user@host/`: user info at that host to it).
    for (const target of ['http://user:SECRET1@h.example/nope?token=SECRET2', 'http:///user:SECRET1@h.example/nope?token=SECRET2']) {
      const r = await rawRequest(app.port, `GET ${target} HTTP/1.1`);
      assert.equal(r.status, 400, target);
      assert.ok(!/SECRET/.test(r.text), r.text);
    }
  });

  it('ends a keep-alive connection after MAX_REQUESTS_PER_CONNECTION requests: the last response says close, and the connection closes with it', async () => {
    const burst = 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(MAX_REQUESTS_PER_CONNECTION);
    const started = Date.now();
    const answer = await rawExchange(app.port, burst);
    const statuses = [...answer.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
    assert.equal(statuses.filter((s) => s === '200').length, MAX_REQUESTS_PER_CONNECTION);
    assert.equal(statuses.length, MAX_REQUESTS_PER_CONNECTION);
    assert.equal((answer.match(/\r\nConnection: close\r\n/gi) ?? []).length, 1);
    // Closed by the server after that response, not left to the keep-alive timeout (5 s).
    assert.ok(Date.now() - started < 4000, `closed after ${Date.now() - started} ms`);
  });

  it('serves a request that asks for another protocol than WebSocket as the request it is (RFC 9110 7.8: curl --http2 offers h2c)', async () => {
    const h2c = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n';
    const health = await rawExchange(app.port, `GET /health HTTP/1.1\r\nHost: x\r\n${h2c}\r\n`);
    assert.match(health, /^HTTP\/1\.1 200 /);
    assert.match(health, /\r\nConnection: close\r\n/i);
    assert.match(health, /"status":"ok"/);
    assert.match(await rawExchange(app.port, `GET /nope HTTP/1.1\r\nHost: x\r\n${h2c}\r\n`), /^HTTP\/1\.1 404 [^]*Cannot GET \/nope/);
    // Its body could no longer be read: refused, not left hanging.
    const withBody = await rawExchange(app.port, `POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n${h2c}\r\nhi`);
    assert.match(withBody, /^HTTP\/1\.1 400 [^]*Upgrade not supported on a request with a body/);
    // Pipelined behind a response still being made (readiness answers asynchronously): the connection is dropped,
    // since no answer could go out without cutting into that response; the process goes on.
    const pipelined = await rawExchange(app.port, `GET /health/ready HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n${h2c}\r\n`);
    assert.ok((pipelined.match(/HTTP\/1\.1 /g) ?? []).length <= 1, pipelined);
    assert.match(await rawExchange(app.port, 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 200 /);
    // Nor does a WebSocket upgrade pipelined the same way get a 101 in the middle of that response.
    const ws = await rawExchange(app.port, `GET /health/ready HTTP/1.1\r\nHost: x\r\n\r\nGET /relay?host=127.0.0.1&port=${echo.port} HTTP/1.1\r\nHost: x\r\n${UPGRADE_HEADERS}\r\n`);
    assert.doesNotMatch(ws, /101 Switching Protocols/);
  });

  it('answers CONNECT 405 instead of dropping it', async () => {
    const r = await rawRequest(app.port, 'CONNECT 127.0.0.1:22 HTTP/1.1', { host: '127.0.0.1:22' });
    assert.equal(r.status, 405);
    assert.match(r.text, /\r\nAllow: GET, HEAD\r\n/);
    assert.match(r.text, /CONNECT is not supported/);
  });

  it('answers an unsupported WebSocket version 426 with the version it speaks (RFC 6455 4.4)', async () => {
    const res = await rawUpgrade(app.port, `/relay?host=127.0.0.1&port=${echo.port}`, { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '8' });
    assert.match(res, /^HTTP\/1\.1 426 Upgrade Required\r\n/);
    assert.match(res, /\r\nSec-WebSocket-Version: 13\r\n/);
  });

  it('refuses an upgrade that is not a GET before admission: 400, and the target is never dialled', async () => {
    let dialled = 0;
    const counted = await startTarget(() => dialled++);
    try {
      const { connect } = await import('node:net');
      const s = connect(app.port, '127.0.0.1');
      await once(s, 'connect');
      let text = '';
      s.on('data', (c: Buffer) => (text += c.toString()));
      s.write(
        `POST /relay?host=127.0.0.1&port=${counted.port} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 0\r\n\r\n',
      );
      await once(s, 'close');
      assert.match(text, /^HTTP\/1\.1 400 [^]*WebSocket handshake must be GET/);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(dialled, 0);
    } finally {
      await counted.close();
    }
  });

  it('answers a bad handshake with its HTTP status even with errors=close (no WebSocket to close)', async () => {
    const res = await rawUpgrade(app.port, `/relay?host=127.0.0.1&port=${echo.port}&errors=close`, { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '8' });
    assert.match(res, /^HTTP\/1\.1 426 Upgrade Required\r\n/);
    assert.match(res, /\r\nSec-WebSocket-Version: 13\r\n/);
  });

  it('tells a client refused while draining when to retry (503, Retry-After)', async () => {
    const draining = await startApp();
    try {
      draining.app.get(DrainService).startDraining();
      const res = await rawUpgrade(draining.port, `/relay?host=127.0.0.1&port=${echo.port}`, { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13' });
      assert.match(res, /^HTTP\/1\.1 503 /);
      assert.match(res, /\r\nRetry-After: 5\r\n/);
      // errors=close asks for a WebSocket closed with 4503; a handshake that cannot become one keeps the 503.
      const bad = await rawUpgrade(draining.port, `/relay?host=127.0.0.1&port=${echo.port}&errors=close`, { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '8' });
      assert.match(bad, /^HTTP\/1\.1 503 /);
    } finally {
      await draining.close();
    }
  });

  it('closes keep-alive connections after their next response while draining (Connection: close)', async () => {
    const draining = await startApp();
    try {
      const { connect } = await import('node:net');
      const s = connect(draining.port, '127.0.0.1');
      s.on('error', () => undefined);
      await once(s, 'connect');
      let text = '';
      s.on('data', (c: Buffer) => (text += c.toString('latin1')));
      const get = `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
      s.write(get);
      await waitFor(() => text.includes('\r\n\r\n'), 5000, 'the first response');
      assert.match(text, /^HTTP\/1\.1 200 /);
      assert.match(text, /\r\nConnection: keep-alive\r\n/i);
      text = '';
      draining.app.get(DrainService).startDraining();
      const ended = once(s, 'end');
      s.write(get);
      await within(ended, 5000, 'the connection closed after the response');
      assert.match(text, /^HTTP\/1\.1 200 /, 'liveness still answers');
      assert.match(text, /\r\nConnection: close\r\n/i);
      s.destroy();
    } finally {
      await draining.close();
    }
  });

  it('answers 400 to a request with two Host lines, upgrade or not (RFC 9112 3.2)', async () => {
    const plain = await rawRequest(app.port, 'GET /health HTTP/1.1', { headers: 'Host: other.example\r\n' });
    assert.equal(plain.status, 400);
    assert.match(plain.text, /repeated Host header/);
    const upgrade = await rawUpgrade(app.port, `/relay?host=127.0.0.1&port=${echo.port}`, {
      Host: 'other.example',
      'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Version': '13',
    });
    assert.match(upgrade, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(upgrade, /repeated Host header/);
  });

  it('answers 400 to an HTTP/1.1 request or upgrade without Host (RFC 9112 3.2), and dials nothing', async () => {
    let dialled = 0;
    const target = await startTarget(() => void dialled++);
    const key = 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n';
    for (const head of [`GET /relay?host=127.0.0.1&port=${target.port} HTTP/1.1\r\n${key}\r\n`, 'GET /health HTTP/1.1\r\nConnection: close\r\n\r\n']) {
      const answer = await rawExchange(app.port, head);
      assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n[^]*\r\n\r\nmissing Host header\n$/, head);
    }
    // HTTP/1.0 has no Host requirement.
    assert.match(await rawExchange(app.port, 'GET /health HTTP/1.0\r\n\r\n'), /^HTTP\/1\.1 200 /);
    await target.close();
    assert.equal(dialled, 0, 'no dial');
  });

  it('sees a second Host line however many fields come first: a head past MAX_REQUEST_HEADER_FIELDS is 431, never read in part', async () => {
    let dialled = 0;
    const target = await startTarget(() => void dialled++);
    // Node 20 keeps about a thousand fields of a head; a second Host past them went unseen. Node 22's
    // parser refuses a head of over a thousand fields itself, as too large.
    const filler = Array.from({ length: 1100 }, (_, i) => `x-${i}: 1\r\n`).join('');
    for (const head of [
      `GET /relay?host=127.0.0.1&port=${target.port} HTTP/1.1\r\nHost: a\r\n${UPGRADE_HEADERS}${filler}Host: b\r\n\r\n`,
      `GET /health HTTP/1.1\r\nHost: a\r\n${filler}Host: b\r\nConnection: close\r\n\r\n`,
    ]) {
      assert.match(await rawExchange(app.port, head), /^HTTP\/1\.1 431 [^]*\r\n\r\n(too many header fields|request head too large)\n$/);
    }
    // Under every parser: more than MAX_REQUEST_HEADER_FIELDS fields, well within MAX_HEADER_BYTES.
    const many = Array.from({ length: 250 }, (_, i) => `x-${i}: 1\r\n`).join('');
    for (const head of [
      `GET /relay?host=127.0.0.1&port=${target.port} HTTP/1.1\r\nHost: a\r\n${UPGRADE_HEADERS}${many}\r\n`,
      `GET /health HTTP/1.1\r\nHost: a\r\n${many}Connection: close\r\n\r\n`,
    ]) {
      assert.match(await rawExchange(app.port, head), /^HTTP\/1\.1 431 [^]*\r\n\r\ntoo many header fields\n$/);
    }
    const fits = Array.from({ length: 190 }, (_, i) => `x-${i}: 1\r\n`).join('');
    assert.match(await rawExchange(app.port, `GET /health HTTP/1.1\r\nHost: a\r\n${fits}Connection: close\r\n\r\n`), /^HTTP\/1\.1 200 /);
    await target.close();
    assert.equal(dialled, 0, 'no dial');
  });

  it('refuses a WebSocket handshake that is not HTTP/1.1 (RFC 6455 4.1), a request line of another HTTP version (505), and an invalid Host (400)', async () => {
    let dialled = 0;
    const target = await startTarget(() => void dialled++);
    const ws = `GET /relay?host=127.0.0.1&port=${target.port}`;
    assert.match(await rawExchange(app.port, `${ws} HTTP/1.0\r\nHost: a\r\n${UPGRADE_HEADERS}\r\n`), /^HTTP\/1\.1 400 [^]*WebSocket handshake requires HTTP\/1\.1/);
    assert.match(await rawExchange(app.port, `${ws}&errors=close HTTP/1.0\r\n${UPGRADE_HEADERS}\r\n`), /^HTTP\/1\.1 400 /);
    assert.match(await rawExchange(app.port, `${ws} HTTP/2.0\r\n${UPGRADE_HEADERS}\r\n`), /^HTTP\/1\.1 505 [^]*HTTP version not supported/);
    assert.match(await rawExchange(app.port, 'GET /health HTTP/2.0\r\n\r\n'), /^HTTP\/1\.1 505 /);
    // Versions Node's parser refuses itself: well formed, 505; malformed, 400.
    for (const v of ['HTTP/3.0', 'HTTP/1.2']) {
      assert.match(await rawExchange(app.port, `GET /health ${v}\r\nHost: a\r\n\r\n`), /^HTTP\/1\.1 505 [^]*HTTP version not supported/, v);
      assert.match(await rawExchange(app.port, `${ws} ${v}\r\nHost: a\r\n${UPGRADE_HEADERS}\r\n`), /^HTTP\/1\.1 505 /, v);
    }
    assert.match(await rawExchange(app.port, 'GET /health HTTP/1.10\r\nHost: a\r\n\r\n'), /^HTTP\/1\.1 400 [^]*malformed HTTP request/);
    // A handshake with a body: refused before anything is dialled, where the body used to reach the relay as frames.
    assert.match(await rawExchange(app.port, `${ws} HTTP/1.1\r\nHost: a\r\n${UPGRADE_HEADERS}Content-Length: 5\r\n\r\nhello`), /^HTTP\/1\.1 400 [^]*WebSocket handshake must not have a body/);
    for (const host of ['a b', 'u@a', 'a/b?c', 'a:999999']) {
      assert.match(await rawExchange(app.port, `GET /health HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`), /^HTTP\/1\.1 400 [^]*invalid Host header/, host);
      assert.match(await rawExchange(app.port, `${ws} HTTP/1.1\r\nHost: ${host}\r\n${UPGRADE_HEADERS}\r\n`), /^HTTP\/1\.1 400 [^]*invalid Host header/, host);
    }
    // What RFC 9112 allows still passes: an empty Host, an IPv6 literal with a port.
    assert.match(await rawExchange(app.port, 'GET /health HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 200 /);
    assert.match(await rawExchange(app.port, 'GET /health HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 200 /);
    await target.close();
    assert.equal(dialled, 0, 'no dial');
  });

  it('closes a slowloris handshake after HANDSHAKE_TIMEOUT_MS', async () => {
    const { connect } = await import('node:net');
    const s = connect(app.port, '127.0.0.1');
    await once(s, 'connect');
    const started = Date.now();
    s.write('GET /relay?host=127.0.0.1&port=22 HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => s.write('X-Drip: 1\r\n'), 200);
    let data = '';
    s.on('data', (c: Buffer) => (data += c.toString()));
    await Promise.race([once(s, 'close'), new Promise((r) => setTimeout(r, 8000))]);
    clearInterval(drip);
    const elapsed = Date.now() - started;
    assert.ok(s.destroyed || s.readableEnded, 'the server closed the connection');
    assert.ok(elapsed < 5000, `closed after ${elapsed} ms`);
    assert.match(data, /^HTTP\/1\.1 408 [^]*\r\n\r\nrequest head not received in time\n$|^$/);
    s.destroy();
  });

  it('says why when Node\'s parser refuses a request (a malformed request line)', async () => {
    const { connect } = await import('node:net');
    const s = connect(app.port, '127.0.0.1');
    await once(s, 'connect');
    let data = '';
    s.on('data', (c: Buffer) => (data += c.toString()));
    s.write('GET /\x01bad HTTP/1.1\r\nHost: x\r\n\r\n');
    await once(s, 'close');
    assert.match(data, /^HTTP\/1\.1 400 Bad Request\r\n[^]*\r\n\r\nmalformed HTTP request\n$/);
  });

  it('answers a request pipelined before one the parser refuses, then 400, then closes', async () => {
    const text = await rawExchange(app.port, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n[^]*"status":"ok"[^]*HTTP\/1\.1 400 Bad Request\r\n[^]*Connection: close\r\n\r\nmalformed HTTP request\n$/);
    assert.equal(text.match(/HTTP\/1\.1 /g)?.length, 2, text);
  });

  it('answers a request that asked to close, and ignores what the client pipelined behind it (RFC 9112 9.6)', async () => {
    const refused: string[] = [];
    const events = app.app.get(WsproxyEvents);
    const onRefused = (e: { reason: string }): void => void refused.push(e.reason);
    events.on('request.refused', onRefused);
    try {
      const text = await rawExchange(app.port, 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n\x01 garbage\r\n');
      assert.match(text, /^HTTP\/1\.1 200 [^]*"status":"ok"[^]*$/);
      assert.equal(text.match(/HTTP\/1\.1 /g)?.length, 1, text);
      assert.deepEqual(refused, []);
    } finally {
      events.off('request.refused', onRefused);
    }
  });

  it('answers a header flood with 431', async () => {
    const res = await rawUpgrade(app.port, '/relay?host=127.0.0.1&port=22', {
      'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Version': '13',
      'X-Flood': 'a'.repeat(32 * 1024),
    });
    assert.match(res, /^HTTP\/1\.1 431 [^]*\r\n\r\nrequest head too large\n$/);
  });

  /** The close code the end-of-relay event (and log line) reports for the next relay to end. */
  function nextRelayEnd(): Promise<number> {
    return new Promise((resolve) => app.app.get(WsproxyEvents).once('relay.closed', (e) => resolve(e.closeCode)));
  }

  it('closes 1009 on a message over MAX_MESSAGE_BYTES, and the slot comes back', async () => {
    const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`);
    const ended = nextRelayEnd();
    ws.send(randomPayload(65537));
    const { code, reason } = await closed(ws);
    assert.equal(code, 1009);
    assert.equal(reason, 'Max payload size exceeded');
    assert.equal(await ended, 1009, 'relay_end says 1009, not 1006');
    await waitFor(async () => (await slotsInUse(app)) === 0, 2000, 'slot release');
  });

  /** Writes `frames` on a fresh relay's socket and returns its close and what relay_end says. */
  async function closeAfterRawFrames(frames: Buffer[]): Promise<{ code: number; reason: string; ended: number }> {
    const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`);
    const raw = (ws as unknown as { _socket: import('node:net').Socket })._socket;
    const done = closed(ws);
    const ended = nextRelayEnd();
    raw.write(Buffer.concat(frames));
    const { code, reason } = await done;
    return { code, reason, ended: await ended };
  }

  it('closes 1007 on a text message that is not UTF-8, and the slot comes back', async () => {
    const got = await closeAfterRawFrames([clientFrame(Opcode.TEXT, Buffer.from([0x61, 0xff, 0xfe]))]);
    assert.deepEqual(got, { code: 1007, reason: 'Invalid WebSocket frame: invalid UTF-8 sequence', ended: 1007 });
    await waitFor(async () => (await slotsInUse(app)) === 0, 2000, 'slot release');
  });

  it('closes 1008 on a message split into more fragments than ws buffers (16 384), and the slot comes back', async () => {
    const fragments = [clientFrame(Opcode.BINARY, 'a', { fin: false })];
    for (let i = 0; i < 16_384; i++) fragments.push(clientFrame(Opcode.CONTINUATION, 'a', { fin: false }));
    const got = await closeAfterRawFrames(fragments);
    assert.deepEqual(got, { code: 1008, reason: 'Too many message fragments', ended: 1008 });
    await waitFor(async () => (await slotsInUse(app)) === 0, 2000, 'slot release');
  });

  it('closes 1009 on a frame whose length field is over 2^53, and the slot comes back', async () => {
    const got = await closeAfterRawFrames([frameHeader({ opcode: Opcode.BINARY, length: 2n ** 53n })]);
    assert.equal(got.code, 1009);
    assert.equal(got.ended, 1009, 'relay_end says 1009, not 1006');
    assert.match(got.reason, /2\^53/);
    await waitFor(async () => (await slotsInUse(app)) === 0, 2000, 'slot release');
  });

  it('closes 1002 on frames that break RFC 6455 (unmasked client frame, reserved opcode)', async () => {
    for (const [frame, expectedReason] of [
      [clientFrame(Opcode.BINARY, 'abc', { maskKey: null }), 'Invalid WebSocket frame: MASK must be set'],
      [clientFrame(0x3, ''), 'Invalid WebSocket frame: invalid opcode 3'], // a reserved opcode, masked, empty
    ] as const) {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`);
      const raw = (ws as unknown as { _socket: import('node:net').Socket })._socket;
      const done = closed(ws);
      const ended = nextRelayEnd();
      raw.write(frame);
      const { code, reason } = await done;
      assert.equal(code, 1002);
      assert.equal(reason, expectedReason, 'the close frame says what broke');
      assert.equal(await ended, 1002, 'relay_end says 1002, not 1006');
    }
    await waitFor(async () => (await slotsInUse(app)) === 0, 2000, 'slot release');
  });
});

describe('keepalive', () => {
  it('pings every PING_INTERVAL_MS and terminates a peer that misses two pongs; a ponging peer stays', async () => {
    const app = await startApp({ PING_INTERVAL_MS: '1000' });
    const echo = await echoTarget();
    try {
      const url = `${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`;
      const silent = await openWs(url, { autoPong: false });
      let unanswered = 0;
      silent.on('ping', () => unanswered++);
      const healthy = await openWs(url);
      let pings = 0;
      healthy.on('ping', () => pings++);
      const started = Date.now();
      const { code } = await closed(silent);
      const elapsed = Date.now() - started;
      assert.equal(code, 1006, 'terminated without a close frame');
      assert.ok(elapsed >= 1500 && elapsed < 6000, `terminated after ${elapsed} ms`);
      // The time window alone would also pass a third missed pong: the pings it got say how many it missed.
      assert.equal(unanswered, 2, 'terminated at the interval after its second unanswered ping');
      assert.ok(pings >= 2, `healthy peer saw ${pings} pings`);
      assert.equal(healthy.readyState, WebSocket.OPEN, 'a peer that answers pongs stays');
      await waitFor(async () => (await slotsInUse(app)) === 1, 2000, 'the silent relay slot released');
      healthy.close(1000);
      await closed(healthy);
    } finally {
      await app.close();
      await echo.close();
    }
  });

  it("reports a keepalive termination as the server's end (keepalive timeout), not as the client's bare 1006", async () => {
    const app = await startApp({ PING_INTERVAL_MS: '1000' });
    const echo = await echoTarget();
    try {
      const ended = new Promise<{ closeCode: number; closeReason: string }>((resolve) => app.app.get(WsproxyEvents).once('relay.closed', resolve));
      const silent = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`, { autoPong: false });
      const { code } = await within(closed(silent), 6000, 'terminated');
      assert.equal(code, 1006);
      const end = await within(ended, 2000, 'relay.closed');
      assert.deepEqual([end.closeCode, end.closeReason], [1006, NO_PONG_REASON]);
    } finally {
      await app.close();
      await echo.close();
    }
  });

  it('keeps a peer whose pongs are late while its data keeps coming, and ends it once it goes silent', async () => {
    const app = await startApp({ PING_INTERVAL_MS: '1000' });
    const echo = await echoTarget();
    try {
      // Pongs that never come stand for pongs queued behind a browser's upload on a slow link: the proxy reads on.
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`, { autoPong: false });
      let unanswered = 0;
      ws.on('ping', () => unanswered++);
      const received: Buffer[] = [];
      ws.on('message', (data: Buffer) => received.push(data));
      const ended = new Promise<{ closeCode: number; closeReason: string }>((resolve) => app.app.get(WsproxyEvents).once('relay.closed', resolve));
      const done = closed(ws);
      const sent: Buffer[] = [];
      // Past the third interval, where two missed pongs alone end a peer, and one more: counted by the pings the
      // peer got, not by the clock, so a stalled test process (whose lost intervals the timer does not make up) only
      // makes it send longer. A cap of a minute's sends keeps a keepalive that never pings from hanging the test.
      while (unanswered < 4 && ws.readyState === WebSocket.OPEN && sent.length < 240) {
        const chunk = randomPayload(512);
        sent.push(chunk);
        ws.send(chunk);
        await delay(250);
      }
      assert.equal(ws.readyState, WebSocket.OPEN, 'a peer still sending is not cut off for late pongs');
      assert.ok(unanswered >= 3, `the peer left ${unanswered} pings unanswered`);
      const total = Buffer.concat(sent);
      await waitFor(() => Buffer.concat(received).length === total.length, 30_000, 'every byte echoed');
      assert.ok(Buffer.concat(received).equals(total), 'the relayed bytes are intact');
      // Generous deadlines: the silent peer ends about three intervals on, unless the process stalls meanwhile.
      const { code } = await within(done, 30_000, 'the silent peer terminated');
      assert.equal(code, 1006);
      const end = await within(ended, 10_000, 'relay.closed');
      assert.deepEqual([end.closeCode, end.closeReason], [1006, NO_PONG_REASON]);
    } finally {
      await app.close();
      await echo.close();
    }
  });

  it('still ends a relay it has stopped reading whose peer stays silent, after PAUSED_SILENT_INTERVALS', async () => {
    const app = await startApp({ PING_INTERVAL_MS: '1000' });
    const target = await stalledTarget();
    try {
      // A client that answers no ping, fills the proxy's buffers towards a target that never reads, then goes quiet.
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${target.port}`, { autoPong: false });
      const chunk = randomPayload(64 * 1024);
      for (let i = 0; i < 768; i++) ws.send(chunk);
      await waitFor(() => [...app.app.get(RelayService).liveRelays()].some((r) => r.ws.isPaused), 5000, 'the proxy stops reading the client');
      const started = Date.now();
      const { code } = await within(closed(ws), (PAUSED_SILENT_INTERVALS + 6) * 1000, 'the relay ended');
      const elapsed = Date.now() - started;
      assert.equal(code, 1006);
      assert.ok(elapsed > (PAUSED_SILENT_INTERVALS - 3) * 1000 && elapsed < (PAUSED_SILENT_INTERVALS + 4) * 1000, `terminated after ${elapsed} ms`);
      await waitFor(async () => (await slotsInUse(app)) === 0, 2000, 'the slot released');
    } finally {
      await app.close();
      await target.close();
    }
  });

  it('answers pings with their payload; a client that floods pings and never reads gets the latest answered, not a pong queued per ping', async () => {
    const app = await startApp();
    const echo = await echoTarget();
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`);
      const first = once(ws, 'pong');
      ws.ping(Buffer.from('hello'));
      assert.equal(((await first) as [Buffer])[0].toString(), 'hello');

      // 200 000 pings of 125 bytes (26 MB): one pong each would be 25 MB queued for a client that reads nothing.
      const count = 200_000;
      const { raw, pongs } = await floodPings(ws, count);
      const mine = [...app.app.get(RelayService).liveRelays()].find((r) => r.socket.remotePort === echo.port)!;
      const serverSocket = (mine.ws as unknown as { _socket: import('node:net').Socket })._socket;
      await waitFor(() => serverSocket.bytesRead >= count * FLOOD_PING_BYTES, 20_000, 'the proxy has read every ping');
      assert.ok(mine.ws.bufferedAmount < 64 * 1024, `the proxy holds ${mine.ws.bufferedAmount} bytes of pongs`);
      raw.resume();
      await waitFor(() => pongs.at(-1) === `p${count - 1}`, 10_000, 'the latest ping answered');
      assert.ok(pongs.length < count / 10, `${pongs.length} pongs for ${count} pings`);
      ws.close(1000);
      await closed(ws);
    } finally {
      await app.close();
      await echo.close();
    }
  });

  it('keeps a relay whose target stops reading for several intervals (its paused WebSocket cannot read pongs), and delivers every byte once it reads again', async () => {
    const app = await startApp({ PING_INTERVAL_MS: '1000' });
    let targetSocket: import('node:net').Socket | null = null;
    const received: Buffer[] = [];
    const target = await startTarget((s) => {
      targetSocket = s;
      s.pause();
      s.on('data', (c: Buffer) => received.push(c));
    });
    try {
      const ws = await openWs(`${app.wsUrl}/relay?host=127.0.0.1&port=${target.port}`);
      const payload = randomPayload(48 * MiB);
      for (let off = 0; off < payload.length; off += 64 * 1024) ws.send(payload.subarray(off, off + 64 * 1024));
      await new Promise((r) => setTimeout(r, 4500));
      const mine = [...app.app.get(RelayService).liveRelays()].find((r) => r.socket.remotePort === target.port);
      assert.ok(mine, 'relay is live after four ping intervals');
      assert.ok(mine.ws.isPaused, 'the proxy had stopped reading the client');
      assert.equal(ws.readyState, WebSocket.OPEN);
      targetSocket!.resume();
      // About a second on an idle machine; a loaded one (other processes on both cores) has taken over 20 s.
      await waitFor(() => received.reduce((n, c) => n + c.length, 0) >= payload.length, 60_000, 'every byte at the target');
      assert.equal(sha256(Buffer.concat(received)), sha256(payload));
      // Reading again, the relay answers keepalive as before: still open two intervals later.
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal(ws.readyState, WebSocket.OPEN);
      ws.close(1000);
      await closed(ws);
    } finally {
      await app.close();
      await target.close();
    }
  });
});
