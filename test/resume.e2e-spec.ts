/**
 * Resumable relays end to end: the real app on loopback, real targets, the
 * wire protocol spoken by hand and through `ResumableRelay`, and drops made by
 * a loopback middlebox the test cuts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { WsproxyEvents, type RelayClosedEvent } from '../src/common/events.js';
import { LimitsService } from '../src/limits/limits.service.js';
import { DIRECT_READ_BYTES } from '../src/relay/direct-reader.js';
import { WS_SEND_HIGH_FRAMES, WS_SEND_HIGH_WATER } from '../src/relay/relay-pipe.js';
import { ResumableRelay } from '../src/resume/client/resumable-relay.js';
import { ResumeService } from '../src/resume/resume.service.js';
import { DrainService } from '../src/lifecycle/drain.service.js';
import { UNACKED_UPLOAD_MAX, type ResumableSession } from '../src/resume/resumable-session.js';
import { startApp, type TestApp } from './support/app.js';
import { duplexTarget } from './support/duplex-target.js';
import { startMiddlebox } from './support/middlebox.js';
import { startServiceProcess, type ServiceProcess } from './support/process.js';
import { RawResumeClient, type SessionFrame } from './support/resume-client.js';
import { echoTarget, floodTarget, sha256, sourceTarget, startTarget, type TestTarget } from './support/targets.js';
import { closed, expectCloseRefusal, expectRefusal, receiveBytes, track } from './support/ws-client.js';
import { within } from './support/within.js';
import { UPGRADE_HEADERS, rawExchange } from './support/raw-http.js';
import { waitFor } from './support/wait.js';
import { mulberry32, testSeed } from './support/seeded-random.js';
import { Opcode, clientFrame } from './support/ws-frames.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Opens a socket with a message listener from the start (frames can come with the handshake response). */
function openListening(url: string, onMessage: (data: Buffer, isBinary: boolean) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    track(ws);
    ws.on('message', onMessage);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function sessionsOf(app: TestApp): ResumableSession[] {
  return app.app.get(ResumeService).liveSessions();
}

function onlySession(app: TestApp): ResumableSession {
  const all = sessionsOf(app);
  assert.equal(all.length, 1, `expected one live session, found ${all.length}`);
  return all[0];
}

async function slotsInUse(app: TestApp): Promise<number> {
  return Object.values((await app.app.get(LimitsService).snapshot()).perIp).reduce((a, b) => a + b, 0);
}

/** The TCP socket under a client WebSocket, to write frames `ws` would never send or to stop reading. */
function rawSocket(ws: WebSocket): Socket {
  return (ws as unknown as { _socket: Socket })._socket;
}

/** Sends `payload` through `relay` honouring `send`'s backpressure signal. */
function sendAll(relay: ResumableRelay, payload: Buffer, chunk = 64 * KiB): Promise<void> {
  return new Promise((resolve, reject) => {
    let off = 0;
    const pump = (): void => {
      try {
        while (off < payload.length) {
          const piece = payload.subarray(off, off + chunk);
          off += piece.length;
          if (!relay.send(piece)) {
            relay.on('drain', onDrain);
            return;
          }
        }
        resolve();
      } catch (err) {
        reject(err as Error);
      }
    };
    const onDrain = (): void => {
      relay.off('drain', onDrain);
      pump();
    };
    pump();
  });
}

describe('resumable relays', () => {
  let app: TestApp;
  let echo: TestTarget;
  const BUFFER = 256 * KiB;

  before(async () => {
    app = await startApp({ RESUME_BUFFER_BYTES: String(BUFFER), MAX_CONNS_PER_IP: '100', MAX_CONNS_PER_USER: '100', SHUTDOWN_TIMEOUT_MS: '0' });
    echo = await echoTarget();
  });
  after(async () => {
    await app?.close();
    await echo?.close();
  });

  const openUrl = (port: number, extra = ''): string => `${app.wsUrl}/relay?host=127.0.0.1&port=${port}&resume=1${extra}`;
  const reattachUrl = (id: string, received: number, extra = ''): string => `${app.wsUrl}/relay?resume=${id}&received=${received}${extra}`;

  describe('the wire protocol', () => {
    it('delivers what the target sends before the handshake ends, in frames larger than a socket read, then its FIN', async () => {
      // The target writes 600 KiB and its FIN the moment it accepts: while the
      // proxy is still completing the handshake, before the session exists.
      const payload = randomBytes(600 * KiB);
      const source = await sourceTarget(payload);
      try {
        const frameSizes: number[] = [];
        const relay = new ResumableRelay({
          url: openUrl(source.port),
          token: () => null,
          createWebSocket: (u, protocols) => {
            const ws = new WebSocket(u, protocols, { perMessageDeflate: false });
            ws.on('message', (data: Buffer, isBinary: boolean) => isBinary && frameSizes.push(data.length));
            return ws;
          },
        });
        const got: Buffer[] = [];
        relay.on('data', (u8) => got.push(Buffer.from(u8)));
        const end = await new Promise<{ code: number; reason: string }>((r) => relay.on('close', r));
        assert.equal(end.code, 1000);
        assert.equal(sha256(Buffer.concat(got)), sha256(payload));
        // Read through the shared 256 KiB buffer, not the socket's own 64 KiB reads.
        assert.ok(Math.max(...frameSizes) > 64 * KiB, `frames of ${frameSizes.join(',')} bytes`);
        assert.ok(Math.max(...frameSizes) <= DIRECT_READ_BYTES, `frames of ${frameSizes.join(',')} bytes`);
        await waitFor(() => sessionsOf(app).length === 0, 10_000, 'the session to end');
      } finally {
        await source.close();
      }
    });

    it('sends the session frame first, relays binary data and acks after 64 KiB or 250 ms', async () => {
      const { client, session } = await RawResumeClient.open(openUrl(echo.port));
      assert.equal(session.type, 'session');
      assert.match(String(session.id), /^[0-9a-f]{32}$/);
      assert.equal(session.windowS, 60);
      assert.equal(session.received, undefined);
      assert.equal(session.maxMessageBytes, 4 * 1024 * KiB, 'the proxy announces MAX_MESSAGE_BYTES (default 4 MiB)');

      // 200 KiB in one go: acks at 64 KiB steps come at once, the rest within 250 ms.
      const up = randomBytes(200 * KiB);
      for (let off = 0; off < up.length; off += 16 * KiB) client.send(up.subarray(off, off + 16 * KiB));
      await client.until(() => client.bytes >= up.length, 'the echo');
      assert.equal(sha256(client.data()), sha256(up));
      const acks: number[] = [];
      await client.until(() => {
        for (let m = client.controls.shift(); m; m = client.controls.shift()) if (m.type === 'ack') acks.push(Number(m.received));
        return acks.at(-1) === up.length;
      }, 'an ack of everything');
      assert.ok(acks.length >= 3, `expected acks at 64 KiB steps, got ${acks.join(',')}`);
      for (let i = 1; i < acks.length; i++) assert.ok(acks[i] > acks[i - 1], `acks must grow: ${acks.join(',')}`);

      // A few bytes alone: acked by the timer.
      client.send(Buffer.from('tiny'));
      const ack = await client.nextControl('ack');
      assert.equal(ack.received, up.length + 4);

      client.ack();
      client.ws.close(1000);
      await client.closed();
      await waitFor(() => sessionsOf(app).length === 0, 10_000, 'the session to end');
    });

    it('reattaches after a drop, replaying from the counts of each side, once and in order', async () => {
      const down = randomBytes(100 * KiB);
      const target = await duplexTarget({ down });
      try {
        const { client, session } = await RawResumeClient.open(openUrl(target.port));
        await client.until(() => client.bytes === down.length, 'the target greeting');
        client.ack(30_000);
        const up1 = randomBytes(5000);
        client.send(up1);
        const ack = await client.nextControl('ack');
        assert.equal(ack.received, 5000);
        client.drop();
        await waitFor(() => onlySession(app).state === 'detached', 10_000, 'the proxy to detach');

        // Out of range: below what the client acked, or beyond what was sent.
        const outOfRange = { status: 400, body: 'received count out of range' };
        assert.deepEqual(await expectRefusal(reattachUrl(session.id!, 20_000)), outOfRange);
        // One byte below the ack already is: the proxy no longer holds byte 29999, and replaying from 30000 would skip it.
        assert.deepEqual(await expectRefusal(reattachUrl(session.id!, 29_999)), outOfRange);
        assert.deepEqual(await expectRefusal(reattachUrl(session.id!, down.length + 1)), outOfRange);
        assert.deepEqual(await expectCloseRefusal(reattachUrl(session.id!, down.length + 1, '&errors=close')), { code: 4400, reason: outOfRange.body });

        // The client claims 60000 bytes received; the proxy says it has 5000.
        const again = await RawResumeClient.connect(reattachUrl(session.id!, 60_000));
        const s2 = await again.nextControl('session');
        assert.deepEqual(s2, { type: 'session', id: session.id, windowS: 60, received: 5000, maxMessageBytes: 4 * 1024 * KiB });
        await again.until(() => again.bytes === down.length - 60_000, 'the replay');
        assert.ok(again.data().equals(down.subarray(60_000)), 'replay must start at byte 60000');

        const up2 = randomBytes(7000);
        again.send(up2);
        await waitFor(() => target.receivedBytes() === 12_000, 10_000, 'the target to get the new bytes');
        assert.ok(target.received().equals(Buffer.concat([up1, up2])));

        again.ws.close(1000);
        assert.equal(await target.ended, 'end', 'a client 1000 ends the target with a FIN');
        await waitFor(() => sessionsOf(app).length === 0, 10_000, 'the session to end');
        assert.equal((await expectRefusal(reattachUrl(session.id!, down.length))).status, 404, 'an ended session is gone');
      } finally {
        await target.close();
      }
    });

    it('closes a replaced socket with 4409', async () => {
      const { client, session } = await RawResumeClient.open(openUrl(echo.port));
      const second = await RawResumeClient.connect(reattachUrl(session.id!, 0));
      const s2 = await second.nextControl('session');
      assert.equal(s2.received, 0);
      assert.equal((await within(client.closed(), 10_000, 'the 4409 close')).code, 4409);
      second.send(Buffer.from('still here'));
      await second.until(() => second.bytes === 10, 'the echo on the new socket');
      assert.equal(second.data().toString(), 'still here');
      second.ws.close(1000);
      await second.closed();
      await waitFor(() => sessionsOf(app).length === 0, 10_000, 'the session to end');
    });

    it('gives one replaced socket at a time its close handshake: reattaches in a row that never answer 4409 do not pile sockets up', async () => {
      const server = app.app.getHttpServer() as import('node:http').Server;
      const connections = (): Promise<number> => new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
      const base = await connections();
      const { client: first, session } = await RawResumeClient.open(openUrl(echo.port));
      // A paused client never reads the 4409, so never answers it.
      first.ws.pause();
      const clients = [first];
      for (let i = 0; i < 10; i++) {
        const next = await RawResumeClient.connect(reattachUrl(session.id!, 0));
        await next.nextControl('session');
        next.ws.pause();
        clients.push(next);
      }
      // The attached socket and the last one replaced; the others are terminated at once, not after 5 s each.
      await waitFor(async () => (await connections()) <= base + 2, 2000, 'the earlier replaced sockets to be terminated');
      const last = clients.at(-1)!;
      last.ws.resume();
      last.ws.close(1000);
      for (const c of clients) c.ws.terminate();
      await waitFor(() => sessionsOf(app).length === 0, 10_000, 'the session to end');
    });

    it('ends with 1011 target error when the target resets, after the bytes it had sent; the session and its slot are gone', async () => {
      const down = randomBytes(10 * KiB);
      const t = await duplexTarget();
      try {
        const { client, session } = await RawResumeClient.open(openUrl(t.port));
        const s = await t.socket;
        s.write(down);
        await client.until(() => client.bytes === down.length, 'the bytes sent before the reset');
        s.resetAndDestroy();
        const end = await within(client.closed(), 10_000, 'the close');
        assert.equal(end.code, 1011);
        assert.match(end.reason, /^target error: /);
        assert.ok(client.data().equals(down));
        await waitFor(() => sessionsOf(app).length === 0, 10_000, 'the session to end');
        assert.deepEqual(await expectRefusal(reattachUrl(session.id!, down.length)), { status: 404, body: 'unknown session' });
        await waitFor(async () => (await slotsInUse(app)) === 0, 10_000, 'the slot back');
      } finally {
        await t.close();
      }
    });

    it('ends with 1000 after the last target bytes, and keeps them for a client that was away', async () => {
      const down = randomBytes(50 * KiB);
      // Attached: every byte, then 1000.
      const t1 = await duplexTarget({ down, endAfterDown: true });
      try {
        const { client } = await RawResumeClient.open(openUrl(t1.port));
        const end = await client.closed();
        assert.equal(end.code, 1000);
        assert.ok(client.data().equals(down));
        await waitFor(() => sessionsOf(app).length === 0, 10_000, 'the session to end');
      } finally {
        await t1.close();
      }

      // Detached when the target finishes: the reattach gets the tail, then 1000.
      const gate = await duplexTarget();
      try {
        const { client, session } = await RawResumeClient.open(openUrl(gate.port));
        client.drop();
        await waitFor(() => sessionsOf(app)[0]?.state === 'detached', 10_000, 'the proxy to detach');
        const s = await gate.socket;
        s.end(down);
        await waitFor(() => sessionsOf(app)[0]?.sentBytes === down.length, 10_000, 'the proxy to read the tail');
        const again = await RawResumeClient.connect(reattachUrl(session.id!, 0));
        const end = await again.closed();
        assert.equal(end.code, 1000);
        assert.ok(again.data().equals(down));
        await waitFor(() => sessionsOf(app).length === 0, 10_000, 'the session to end');
        assert.equal(await slotsInUse(app), 0);
      } finally {
        await gate.close();
      }
    });

    it('keeps the tail for a client that drops during the final close handshake (1006), and ends once one completes it', async () => {
      const down = randomBytes(50 * KiB);
      const gate = await duplexTarget();
      try {
        const { client, session } = await RawResumeClient.open(openUrl(gate.port));
        const proxied = onlySession(app);
        // The client stops reading: the tail and the proxy's close frame wait unread, so the handshake cannot complete.
        client.ws.pause();
        const s = await gate.socket;
        s.end(down);
        await waitFor(() => proxied.sentBytes === down.length && proxied.setup.socket.readableEnded, 10_000, 'the proxy to read the tail and the FIN');
        // The connection dies before the client has seen the close frame: the proxy sees 1006, not a completed close.
        client.drop();
        await waitFor(() => proxied.state !== 'attached', 10_000, 'the proxy to see the drop');
        assert.equal(proxied.state, 'detached', 'a drop during the final close is not a delivery: the session waits for a reattach');
        const again = await RawResumeClient.connect(reattachUrl(session.id!, 0));
        const end = await again.closed();
        assert.deepEqual(end, { code: 1000, reason: 'target closed' });
        assert.ok(again.data().equals(down), 'the reattached client gets the whole tail');
        await waitFor(() => sessionsOf(app).length === 0, 10_000, 'the session to end');
        assert.equal(await slotsInUse(app), 0);
        assert.equal((await expectRefusal(reattachUrl(session.id!, down.length))).status, 404, 'delivered: the session is gone');
      } finally {
        await gate.close();
      }
    });

    it('keeps the tail for a client whose own close (4000, a detach) is still under way when the target ends', async () => {
      const down = randomBytes(50 * KiB);
      const gate = await duplexTarget();
      try {
        const { client, session } = await RawResumeClient.open(openUrl(gate.port));
        const proxied = onlySession(app);
        const proxySide = (): WebSocket | null => (proxied as unknown as { ws: WebSocket | null }).ws;
        // The client detaches with a close code of its own, and its end of the TCP close lags (it reads nothing more).
        rawSocket(client.ws).pause();
        client.ws.close(4000, 'abandoned');
        await waitFor(() => proxySide()?.readyState === WebSocket.CLOSING, 10_000, 'the proxy to answer the close');
        const s = await gate.socket;
        s.end(down);
        await waitFor(() => proxied.sentBytes === down.length && proxied.setup.socket.readableEnded, 10_000, 'the proxy to read the tail and the FIN');
        rawSocket(client.ws).resume();
        await client.closed();
        await waitFor(() => proxied.state !== 'attached', 10_000, 'the proxy to see the close');
        assert.equal(proxied.state, 'detached', 'the tail never went out on a socket already closing: the session waits for a reattach');
        const again = await RawResumeClient.connect(reattachUrl(session.id!, 0));
        const end = await again.closed();
        assert.deepEqual(end, { code: 1000, reason: 'target closed' });
        assert.ok(again.data().equals(down), 'the reattached client gets the whole tail');
        await waitFor(() => sessionsOf(app).length === 0, 10_000, 'the session to end');
        assert.equal(await slotsInUse(app), 0);
      } finally {
        await gate.close();
      }
    });

    it('frames control in binary with control=binary: 0x01 + JSON, data 0x00 + bytes', async () => {
      const frames: { data: Buffer; isBinary: boolean }[] = [];
      const ws = await openListening(openUrl(echo.port, '&control=binary'), (data, isBinary) => frames.push({ data, isBinary }));
      await waitFor(() => frames.length >= 1, 10_000, 'the session frame');
      assert.equal(frames[0].isBinary, true);
      assert.equal(frames[0].data[0], 0x01);
      const session = JSON.parse(frames[0].data.subarray(1).toString()) as { type: string; id: string };
      assert.equal(session.type, 'session');

      ws.send(Buffer.concat([Buffer.from([0x00]), Buffer.from('hello')]));
      await waitFor(() => frames.some((f) => f.data[0] === 0x00), 10_000, 'the echo');
      const data = frames.filter((f) => f.data[0] === 0x00).map((f) => f.data.subarray(1));
      assert.equal(Buffer.concat(data).toString(), 'hello');
      await waitFor(() => frames.some((f) => f.data[0] === 0x01 && f.data.includes('"ack"')), 10_000, 'the ack');
      const ack = frames.find((f) => f.data[0] === 0x01 && f.data.includes('"ack"'))!;
      assert.deepEqual(JSON.parse(ack.data.subarray(1).toString()), { type: 'ack', received: 5 });
      assert.ok(frames.every((f) => f.isBinary), 'nothing but binary frames');

      ws.send(Buffer.concat([Buffer.from([0x01]), Buffer.from(JSON.stringify({ type: 'ack', received: 5 }))]));
      ws.close(1000);
      await closed(ws);
      await waitFor(() => sessionsOf(app).length === 0, 10_000, 'the session to end');
    });

    it('refuses malformed resume parameters with 400 and unknown ids with 404 (4404 with errors=close)', async () => {
      const bad: [url: string, reason: string][] = [
        [`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}&resume=yes`, 'invalid resume (expected 1 or a session id)'],
        [`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}&resume=1&control=morse`, 'invalid control (expected text or binary)'],
        [`${app.wsUrl}/relay?resume=${'a'.repeat(32)}`, 'missing received'],
        [`${app.wsUrl}/relay?resume=${'a'.repeat(32)}&received=-1`, 'invalid received'],
        [`${app.wsUrl}/relay?resume=${'a'.repeat(32)}&received=0&host=127.0.0.1&port=${echo.port}`, 'a reattach takes no host or port'],
        [`${app.wsUrl}/relay?resume=${'A'.repeat(32)}&received=0`, 'invalid resume (expected 1 or a session id)'],
      ];
      for (const [url, reason] of bad) {
        assert.deepEqual(await expectRefusal(url), { status: 400, body: reason }, url);
        assert.deepEqual(await expectCloseRefusal(`${url}&errors=close`), { code: 4400, reason }, url);
      }
      const unknown = await expectRefusal(reattachUrl(randomBytes(16).toString('hex'), 0));
      assert.deepEqual(unknown, { status: 404, body: 'unknown session' });
      const viaClose = await expectCloseRefusal(reattachUrl(randomBytes(16).toString('hex'), 0, '&errors=close'));
      assert.deepEqual(viaClose, { code: 4404, reason: 'unknown session' });
    });

    it('ends the session on a malformed control frame (1008), ended by the client', async () => {
      const ended = new Promise<RelayClosedEvent>((resolve) => app.app.get(WsproxyEvents).once('relay.closed', resolve));
      const { client } = await RawResumeClient.open(openUrl(echo.port));
      client.ws.send(JSON.stringify({ type: 'ack', received: 10 ** 9 }));
      assert.equal((await within(client.closed(), 10_000, 'the 1008 close')).code, 1008);
      await waitFor(() => sessionsOf(app).length === 0, 10_000, 'the session to end');
      await waitFor(async () => (await slotsInUse(app)) === 0, 10_000, 'the slot to be released');
      const end = await ended;
      assert.deepEqual([end.closeCode, end.closeReason, end.endedBy], [1008, 'ack beyond the bytes sent', 'client']);
    });

    it('a malformed control frame cuts the upload short: the target gets what came before it, then a reset, not a FIN', async () => {
      const target = await duplexTarget();
      const ended = new Promise<RelayClosedEvent>((resolve) => app.app.get(WsproxyEvents).once('relay.closed', resolve));
      try {
        const { client } = await RawResumeClient.open(openUrl(target.port));
        const targetSocket = await target.socket;
        const how = new Promise<string>((resolve) => {
          targetSocket.once('end', () => resolve('FIN'));
          targetSocket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
        });
        client.send(Buffer.from('the first half'));
        await waitFor(() => target.receivedBytes() === 14, 10_000, 'the bytes at the target');
        client.ws.send(JSON.stringify({ type: 'ack', received: 10 ** 9 }));
        assert.equal((await client.closed()).code, 1008);
        assert.equal(await within(how, 5000, 'the target ended'), 'ECONNRESET');
        assert.equal(target.received().toString(), 'the first half');
        const end = await within(ended, 5000, 'the relay ended');
        assert.deepEqual([end.closeCode, end.closeReason, end.endedBy], [1008, 'ack beyond the bytes sent', 'client']);
      } finally {
        await target.close();
      }
    });

    it('ends the session on a control frame over MAX_CONTROL_BYTES before parsing it, even one of an unknown type (1008)', async () => {
      const ended = new Promise<RelayClosedEvent>((resolve) => app.app.get(WsproxyEvents).once('relay.closed', resolve));
      const { client } = await RawResumeClient.open(openUrl(echo.port));
      // Ignored as an unknown type if parsed; a megabyte of nesting would hold the event loop for about a second.
      const depth = 512 * KiB;
      const frame = `{"type":"later-addition","x":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      const stalls: number[] = [];
      let last = performance.now();
      const tick = setInterval(() => {
        const now = performance.now();
        stalls.push(now - last);
        last = now;
      }, 10);
      try {
        client.ws.send(frame);
        assert.deepEqual(await within(client.closed(), 5000, 'the close'), { code: 1008, reason: 'control frame too large' });
        await sleep(50);
      } finally {
        clearInterval(tick);
      }
      assert.ok(Math.max(...stalls) < 150, `the event loop stalled ${Math.round(Math.max(...stalls))} ms`);
      const end = await ended;
      assert.deepEqual([end.closeCode, end.closeReason, end.endedBy], [1008, 'control frame too large', 'client']);
      await waitFor(() => sessionsOf(app).length === 0, 10_000, 'the session to end');
    });

    const violations: [code: number, what: string, breakIt: (client: RawResumeClient, session: SessionFrame) => void][] = [
      [1009, 'a message over the announced maxMessageBytes', (client, session) => client.send(Buffer.alloc(session.maxMessageBytes! + 1))],
      [1007, 'a text frame that is not UTF-8', (client) => rawSocket(client.ws).write(clientFrame(Opcode.TEXT, Buffer.from([0xff, 0xfe])))],
      [1002, 'an unmasked frame', (client) => rawSocket(client.ws).write(clientFrame(Opcode.BINARY, 'abc', { maskKey: null }))],
    ];
    for (const [code, what, breakIt] of violations) {
      it(`ends the session, not detaches it, when ws closes ${code} on ${what}: target closed, slot free, reattach 404, relay_end ${code}`, async () => {
        const target = await duplexTarget();
        const ends: RelayClosedEvent[] = [];
        const onEnd = (e: RelayClosedEvent): number => ends.push(e);
        app.app.get(WsproxyEvents).on('relay.closed', onEnd);
        let id = '';
        try {
          const { client, session } = await RawResumeClient.open(openUrl(target.port));
          id = session.id!;
          breakIt(client, session);
          assert.equal((await within(client.closed(), 10_000, `the ${code} close`)).code, code);
          // Detached, it would be held for the whole window (60 s): a few seconds tell the two apart.
          await waitFor(() => !sessionsOf(app).some((s) => s.id === session.id), 3000, 'the session to end (not detach)');
          await target.closed;
          await waitFor(() => ends.some((e) => e.id === session.id!.slice(0, 8)), 10_000, 'relay.closed');
          const end = ends.find((e) => e.id === session.id!.slice(0, 8))!;
          assert.equal(end.closeCode, code, `relay_end says ${code}: ${end.closeReason}`);
          assert.notEqual(end.closeReason, '', 'the reason is the error ws found');
          assert.equal(end.endedBy, 'client');
          await waitFor(async () => (await slotsInUse(app)) === 0, 10_000, 'the slot to be released');
          assert.deepEqual(await expectRefusal(reattachUrl(session.id!, 0)), { status: 404, body: 'unknown session' });
        } finally {
          // A session left detached would hold its slot through the next tests.
          sessionsOf(app).find((s) => s.id === id)?.shutdown(1001, 'test over');
          app.app.get(WsproxyEvents).off('relay.closed', onEnd);
          await target.close();
        }
      });
    }
  });

  describe('memory', () => {
    it('stops reading the target when a client never acks: the proxy holds at most the buffer', async () => {
      const target = await duplexTarget({ endless: true });
      try {
        const { client } = await RawResumeClient.open(openUrl(target.port));
        const session = onlySession(app);
        // Wait until nothing more is read from the target.
        let last = -1;
        await waitFor(async () => {
          const now = session.sentBytes;
          const still = now === last;
          last = now;
          if (!still) await sleep(200);
          return still;
        }, 10_000, 'the proxy to stop reading the target');
        // One read (up to DIRECT_READ_BYTES) may land on top of the limit before the pause.
        assert.ok(session.bufferedBytes <= BUFFER + DIRECT_READ_BYTES, `held ${session.bufferedBytes} bytes`);
        assert.equal(session.bufferedBytes, session.sentBytes, 'nothing acked');
        // The target is blocked: its kernel buffers are full and its own write buffer holds the rest.
        assert.ok(target.written() > session.sentBytes, 'the target is the one left holding its bytes');
        assert.ok(target.writableLength() > 0, 'the target cannot write: the proxy stopped reading');
        await client.until(() => client.bytes === session.sentBytes, 'the client to get what was sent');

        // Still bounded while detached.
        client.drop();
        await waitFor(() => session.state === 'detached', 10_000, 'the detach');
        await sleep(300);
        assert.ok(session.bufferedBytes <= BUFFER + DIRECT_READ_BYTES, `held ${session.bufferedBytes} bytes while detached`);

        // An ack lets data flow again.
        const before = session.sentBytes;
        const again = await RawResumeClient.connect(reattachUrl(session.id, session.sentBytes));
        await again.nextControl('session');
        await waitFor(() => session.sentBytes > before, 10_000, 'reading to resume after the ack in the reattach');
        again.ws.close(1000);
        await again.closed();
        await waitFor(() => sessionsOf(app).length === 0, 10_000, 'the session to end');
      } finally {
        await target.close();
      }
    });
  });

  describe('memory per byte', () => {
    it('keeps a target that sends one byte per segment as a few regions, not one object per byte, and replays it intact', async () => {
      const payload = randomBytes(40 * KiB);
      let sent = 0;
      const dribble = await startTarget((s) => {
        s.setNoDelay(true);
        const next = (): void => {
          if (s.destroyed || sent >= payload.length) return;
          s.write(payload.subarray(sent, sent + 1));
          sent++;
          setImmediate(next);
        };
        next();
      });
      try {
        const { client, session } = await RawResumeClient.open(openUrl(dribble.port));
        client.drop();
        const proxied = sessionsOf(app).find((s) => s.id === session.id)!;
        await waitFor(() => proxied.state === 'detached' && proxied.sentBytes === payload.length, 30_000, 'the proxy to read every byte while detached');
        const chunks = (proxied as unknown as { out: { chunkCount: number } }).out.chunkCount;
        // The bytes sit in one or two 256 KiB slabs: a view each, not one per read.
        assert.ok(chunks <= 2, `${chunks} chunks held for ${proxied.bufferedBytes} bytes`);
        const again = await RawResumeClient.connect(reattachUrl(session.id!, 0));
        await again.until(() => again.bytes === payload.length, 'the replay');
        assert.ok(again.data().equals(payload), 'every byte once, in order');
        again.ws.close(1000);
        await again.closed();
        await waitFor(() => sessionsOf(app).length === 0, 10_000, 'the session to end');
      } finally {
        await dribble.close();
      }
    });
  });

  describe('ResumableRelay through a middlebox that drops the connection', () => {
    it('moves 8 MiB each way across 5 cuts at random moments: every byte once, in order, both sides', async (t) => {
      const SIZE = 8 * MiB;
      const down = randomBytes(SIZE);
      const up = randomBytes(SIZE);
      const target = await duplexTarget({ down });
      const box = await startMiddlebox(app.port);
      const seed = testSeed();
      const random = mulberry32(seed);
      const cutsAt = Array.from({ length: 5 }, () => Math.floor(random() * SIZE * 2 * 0.9)).sort((a, b) => a - b);
      const events: string[] = [];
      try {
        const relay = new ResumableRelay({ url: `${box.wsUrl}/relay?host=127.0.0.1&port=${target.port}`, WebSocket, initialBackoffMs: 20 });
        const got: Buffer[] = [];
        let gotBytes = 0;
        let sent = 0;
        let cuts = 0;
        /** A cut was made and the relay has not reattached yet. */
        let cutPending = false;
        const progress = (): number => gotBytes + Math.min(sent, target.receivedBytes());
        const maybeCut = (): void => {
          if (cuts < cutsAt.length && progress() >= cutsAt[cuts] && !cutPending && relay.state === 'open') {
            cuts++;
            cutPending = true;
            events.push(`cut@${progress()}:${box.cut()}`);
          }
        };
        relay.on('data', (d) => {
          got.push(Buffer.from(d));
          gotBytes += d.length;
          maybeCut();
        });
        relay.on('detach', (e) => events.push(`detach:${e.code}`));
        relay.on('reattach', () => {
          cutPending = false;
          events.push('reattach');
        });
        const ended = new Promise<{ code: number; reason: string }>((r) => relay.on('close', r));
        await relay.opened;
        const timer = setInterval(maybeCut, 5);
        const upDone = (async () => {
          for (let off = 0; off < SIZE; off += 64 * KiB) {
            await sendAll(relay, up.subarray(off, off + 64 * KiB));
            sent = off + 64 * KiB;
            maybeCut();
            if (off % MiB === 0) await sleep(1);
          }
        })();
        await upDone;
        await waitFor(() => gotBytes === SIZE && target.receivedBytes() === SIZE, 120_000, `8 MiB each way (events: ${events.join(' ')})`);
        // Cuts that were due once both sides were done are made now, so all five happen.
        while (cuts < cutsAt.length) {
          await waitFor(() => !cutPending, 10_000, 'the relay to reattach');
          cuts++;
          cutPending = true;
          events.push(`late-cut:${box.cut()}`);
        }
        await waitFor(() => !cutPending, 10_000, 'the last reattach');
        clearInterval(timer);
        relay.close();
        const end = await ended;
        assert.equal(end.code, 1000, events.join(' '));
        assert.equal(await target.ended, 'end');

        const gotDown = Buffer.concat(got);
        assert.equal(gotDown.length, SIZE);
        assert.ok(gotDown.equals(down), 'client got the target bytes once, in order');
        const gotUp = target.received();
        assert.equal(gotUp.length, SIZE);
        assert.ok(gotUp.equals(up), 'target got the client bytes once, in order');
        assert.ok(box.accepted >= 6, `expected at least 6 connections (5 reattaches), got ${box.accepted}; ${events.join(' ')}`);
        assert.equal(events.filter((e) => e === 'reattach').length, 5, events.join(' '));
        await waitFor(() => sessionsOf(app).length === 0, 10_000, 'the session to end');
        await waitFor(async () => (await slotsInUse(app)) === 0, 10_000, 'the slot to be released');
        t.diagnostic(`cuts planned at ${cutsAt.join(',')} bytes of progress (TEST_SEED=${seed}); ${events.join(' ')}`);
      } finally {
        await box.close();
        await target.close();
      }
    });

    it('calls the token provider on every attach, and ends with 4404 when the session is gone', async () => {
      const box = await startMiddlebox(app.port);
      let calls = 0;
      let beforeThirdAttach: () => Promise<void> = async () => undefined;
      try {
        const relay = new ResumableRelay({
          url: `${box.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`,
          WebSocket,
          initialBackoffMs: 20,
          token: async () => {
            calls++;
            if (calls === 3) await beforeThirdAttach();
            return null;
          },
        });
        const ended = new Promise<{ code: number; reason: string }>((r) => relay.on('close', r));
        let reattaches = 0;
        relay.on('reattach', () => reattaches++);
        const info = await relay.opened;
        assert.match(String(info.id), /^[0-9a-f]{32}$/);
        box.cut();
        await waitFor(() => reattaches === 1, 10_000, 'the first reattach');
        assert.equal(calls, 2);

        // The proxy ends the session while the client is away: the next reattach is refused for good (4404), not retried.
        beforeThirdAttach = async () => {
          sessionsOf(app).find((s) => s.id === info.id)!.shutdown(4408, 'test');
          await waitFor(() => sessionsOf(app).length === 0, 10_000, 'the session to end');
        };
        box.cut();
        const end = await ended;
        assert.equal(end.code, 4404);
        assert.equal(calls, 3, 'no attempt after 4404');
        assert.equal(reattaches, 1);
      } finally {
        await box.close();
      }
    });
  });
});

describe('a target that stops reading', () => {
  let app: TestApp;
  let deaf: TestTarget;

  before(async () => {
    app = await startApp({ MAX_CONNS_PER_IP: '100', MAX_CONNS_PER_USER: '100', SHUTDOWN_TIMEOUT_MS: '0' });
    deaf = await startTarget((s) => s.pause());
  });
  after(async () => {
    await app?.close();
    await deaf?.close();
  });

  it('holds back every reattached socket too: what waits in front of the target does not grow per reattach', async () => {
    let id = '';
    const open = async (url: string): Promise<WebSocket> => {
      let resolveId!: () => void;
      const gotSession = new Promise<void>((r) => (resolveId = r));
      const ws = await openListening(url, (data, isBinary) => {
        if (isBinary) return;
        const m = JSON.parse(data.toString()) as { type: string; id?: string };
        if (m.type === 'session') {
          id = m.id ?? id;
          resolveId();
        }
      });
      await gotSession;
      return ws;
    };
    const message = Buffer.alloc(2 * MiB, 0x61);
    let ws = await open(`${app.wsUrl}/relay?host=127.0.0.1&port=${deaf.port}&resume=1`);
    const target = onlySession(app).setup.socket;
    // Fill the kernel's buffers towards the target until the proxy holds bytes in front of it.
    for (let i = 0; i < 16 && !target.writableNeedDrain; i++) {
      ws.send(message);
      await waitFor(() => target.writableNeedDrain || target.bytesWritten + target.writableLength >= (i + 1) * message.length, 10_000, 'the message reached the target socket');
      await sleep(50);
    }
    assert.ok(target.writableNeedDrain, 'the target stopped taking bytes');
    const heldBefore = target.writableLength;
    for (let i = 0; i < 10; i++) {
      const next = await open(`${app.wsUrl}/relay?resume=${id}&received=0`);
      ws.terminate();
      ws = next;
      ws.send(message);
      await sleep(100);
    }
    // This client ignores its window: the proxy reads on (for acks) up to UNACKED_UPLOAD_MAX, then pauses every socket.
    const bound = Math.max(heldBefore, UNACKED_UPLOAD_MAX) + message.length;
    assert.ok(target.writableLength <= bound, `held ${target.writableLength} bytes after 10 reattaches of 2 MiB, bound ${bound}`);
    ws.terminate();
  });

  it('queues tiny messages sent past the window as blocks, not a write each, and still delivers every byte in order, then the FIN', async () => {
    let held!: Socket;
    const received: Buffer[] = [];
    let ended = false;
    const gate = await startTarget((s) => {
      held = s;
      s.pause();
      s.on('data', (d: Buffer) => received.push(d));
      s.on('end', () => (ended = true));
    });
    try {
      let id = '';
      const ws = await openListening(`${app.wsUrl}/relay?host=127.0.0.1&port=${gate.port}&resume=1`, (data, isBinary) => {
        if (!isBinary && (JSON.parse(data.toString()) as { type: string }).type === 'session') id = (JSON.parse(data.toString()) as { id: string }).id;
      });
      await waitFor(() => id !== '', 10_000, 'the session frame');
      const target = sessionsOf(app).find((s) => s.id === id)!.setup.socket;
      const sent: Buffer[] = [];
      const send = (b: Buffer): void => {
        sent.push(b);
        ws.send(b);
      };
      for (let i = 0; i < 32 && !target.writableNeedDrain; i++) {
        send(randomBytes(MiB));
        await waitFor(() => target.writableNeedDrain || target.bytesWritten + target.writableLength >= sent.reduce((n, b) => n + b.length, 0), 10_000, 'the message to reach the target socket');
      }
      assert.ok(target.writableNeedDrain, 'the target stopped taking bytes');
      // A client ignoring its window: 20 000 one-byte messages, with a few larger ones among them.
      const raw = rawSocket(ws);
      const total = (): number => sent.reduce((n, b) => n + b.length, 0);
      for (let i = 0; i < 20_000; i++) {
        send(Buffer.from([i & 0xff]));
        if (i % 5000 === 4999) send(randomBytes(40 * KiB));
        if (raw.writableNeedDrain) await new Promise((r) => raw.once('drain', r));
      }
      const session = sessionsOf(app).find((s) => s.id === id)!;
      await waitFor(() => session.receivedBytes === total(), 10_000, 'the proxy to read every message');
      const state = (target as unknown as { _writableState: { getBuffer(): unknown[] } })._writableState;
      const entries = state.getBuffer().length;
      assert.ok(entries < 100, `${entries} writes queued in front of the target for ${target.writableLength} bytes`);
      // The target reads again; the client ends the relay: everything, in order, then the FIN.
      ws.close(1000);
      held.resume();
      await waitFor(() => ended, 30_000, 'the FIN');
      assert.ok(Buffer.concat(received).equals(Buffer.concat(sent)), 'every byte once, in order');
    } finally {
      await gate.close();
    }
  });

  it('withholds its acks while the target is not taking bytes, so a client keeping to its window stops', async () => {
    const acks: number[] = [];
    let id = '';
    const ws = await openListening(`${app.wsUrl}/relay?host=127.0.0.1&port=${deaf.port}&resume=1`, (data, isBinary) => {
      if (isBinary) return;
      const m = JSON.parse(data.toString()) as { type: string; received?: number; id?: string };
      if (m.type === 'ack') acks.push(m.received!);
      if (m.type === 'session') id = m.id!;
    });
    await waitFor(() => id !== '', 10_000, 'the session frame');
    const target = sessionsOf(app).find((s) => s.id === id)!.setup.socket;
    const message = Buffer.alloc(1 * MiB, 0x62);
    let sent = 0;
    for (let i = 0; i < 32 && !target.writableNeedDrain; i++) {
      ws.send(message);
      sent += message.length;
      await waitFor(() => target.writableNeedDrain || target.bytesWritten + target.writableLength >= sent, 10_000, 'the message reached the target socket');
    }
    assert.ok(target.writableNeedDrain, 'the target stopped taking bytes');
    ws.send(message);
    sent += message.length;
    await waitFor(() => target.bytesWritten + target.writableLength >= sent, 10_000, 'the last message reached the target socket');
    await sleep(600);
    const acked = acks.at(-1) ?? 0;
    assert.ok(acked < sent, `acked ${acked} of ${sent} bytes while the target took none of the last ones`);
    assert.ok(acked <= target.bytesWritten, `acked ${acked}, but only ${target.bytesWritten} bytes reached the target`);
    ws.terminate();
  });
});

describe('a detached session in front of a flooding target', () => {
  it('stops reading the target once its replay buffer is full', async () => {
    const app = await startApp({ MAX_CONNS_PER_IP: '100', MAX_CONNS_PER_USER: '100', SHUTDOWN_TIMEOUT_MS: '0', RESUME_WINDOW_S: '60' });
    const flood = await floodTarget();
    try {
      let id = '';
      const ws = await openListening(`${app.wsUrl}/relay?host=127.0.0.1&port=${flood.port}&resume=1`, (data, isBinary) => {
        if (!isBinary && (JSON.parse(data.toString()) as { type: string }).type === 'session') id = (JSON.parse(data.toString()) as { id: string }).id;
      });
      await waitFor(() => id !== '', 10_000, 'the session frame');
      ws.terminate();
      const session = (): ResumableSession => sessionsOf(app).find((s) => s.id === id)!;
      await waitFor(() => session().bufferedBytes >= MiB, 10_000, 'the replay buffer to fill');
      await sleep(500);
      // RESUME_BUFFER_BYTES (1 MiB) plus one read of up to 256 KiB: the target is no longer read.
      assert.ok(session().bufferedBytes <= MiB + 256 * 1024, `holds ${session().bufferedBytes} bytes for a detached client`);
    } finally {
      await app.close();
      await flood.close();
    }
  });
});

describe('resume window', () => {
  let app: TestApp;
  let echo: TestTarget;
  const seen: string[] = [];

  before(async () => {
    app = await startApp({ RESUME_WINDOW_S: '1', MAX_CONNS_PER_IP: '100', SHUTDOWN_TIMEOUT_MS: '0' });
    echo = await echoTarget();
    const events = app.app.get(WsproxyEvents);
    for (const e of ['resume.detached', 'resume.reattached', 'resume.expired'] as const) events.on(e, (x) => seen.push(`${e}:${x.id}`));
  });
  after(async () => {
    await app?.close();
    await echo?.close();
  });

  it('expires: the target sees its connection reset, the slot is free, a reattach gets 404, events and metrics fire', async () => {
    const target = await duplexTarget();
    try {
      const { client, session } = await RawResumeClient.open(`${app.wsUrl}/relay?host=127.0.0.1&port=${target.port}&resume=1`);
      assert.equal(session.windowS, 1);
      const targetSocket = await target.socket;
      // The client never came back to finish its upload: a reset, not a FIN.
      const how = new Promise<string>((resolve) => {
        targetSocket.once('end', () => resolve('FIN'));
        targetSocket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      });
      assert.equal(await slotsInUse(app), 1);
      // Detach and reattach once, then detach for good.
      client.drop();
      await waitFor(() => seen.some((e) => e.startsWith('resume.detached')), 10_000, 'resume.detached');
      const again = await RawResumeClient.connect(`${app.wsUrl}/relay?resume=${session.id}&received=0`);
      await again.nextControl('session');
      assert.ok(seen.some((e) => e.startsWith('resume.reattached')));
      assert.equal(await slotsInUse(app), 1, 'a reattach takes no new slot');
      again.drop();

      await target.closed;
      assert.ok(targetSocket.destroyed);
      assert.equal(await how, 'ECONNRESET');
      await waitFor(async () => (await slotsInUse(app)) === 0, 10_000, 'the slot to be freed');
      assert.ok(seen.some((e) => e.startsWith('resume.expired')));
      // Events carry a log-safe prefix of the id, never the id.
      for (const e of seen) assert.equal(e.split(':')[1], session.id!.slice(0, 8));
      assert.deepEqual(await expectRefusal(`${app.wsUrl}/relay?resume=${session.id}&received=0`), { status: 404, body: 'unknown session' });

      const metrics = await (await fetch(`${app.baseUrl}/metrics`)).text();
      for (const event of ['detached', 'reattached', 'expired']) {
        const m = new RegExp(`^wsproxy_resume_sessions_total\\{event="${event}"\\} (\\d+)`, 'm').exec(metrics);
        assert.ok(m && Number(m[1]) >= 1, `wsproxy_resume_sessions_total{event="${event}"} ≥ 1`);
      }
    } finally {
      await target.close();
    }
  });

  it('ends a detached session windowS seconds after the drop, not later', async () => {
    const target = await duplexTarget();
    try {
      const { client, session } = await RawResumeClient.open(`${app.wsUrl}/relay?host=127.0.0.1&port=${target.port}&resume=1`);
      assert.equal(session.windowS, 1);
      const proxied = sessionsOf(app).find((s) => s.id === session.id)!;
      client.drop();
      await waitFor(() => proxied.state === 'detached', 10_000, 'the detach');
      // The window's timer was armed at the detach, before this one: timers run in due order, so
      // when this sleep ends the window has been checked, however late the event loop wakes up.
      await sleep(1250);
      assert.equal(proxied.state, 'ended', 'the window (1 s) is over a quarter of a second ago');
      assert.deepEqual(await expectRefusal(`${app.wsUrl}/relay?resume=${session.id}&received=0`), { status: 404, body: 'unknown session' });
      await target.closed;
    } finally {
      await target.close();
    }
  });

  it('does not hold a shutdown for a detached session, and ends it', async () => {
    const other = await startApp({ RESUME_WINDOW_S: '600', SHUTDOWN_TIMEOUT_MS: '30000' });
    const target = await duplexTarget();
    try {
      const { client } = await RawResumeClient.open(`${other.wsUrl}/relay?host=127.0.0.1&port=${target.port}&resume=1`);
      client.drop();
      await waitFor(() => other.app.get(ResumeService).liveSessions()[0]?.state === 'detached', 10_000, 'the detach');
      const started = Date.now();
      await other.close();
      assert.ok(Date.now() - started < 10_000, 'shutdown did not wait for the window');
      await target.closed;
    } finally {
      await other.close();
      await target.close();
    }
  });
});

describe('resumption disabled (RESUME_WINDOW_S=0)', () => {
  let app: TestApp;
  let echo: TestTarget;

  before(async () => {
    app = await startApp({ RESUME_WINDOW_S: '0' });
    echo = await echoTarget();
  });
  after(async () => {
    await app?.close();
    await echo?.close();
  });

  it('serves resume=1 as a plain relay announced by a session frame with no id', async () => {
    const frames: { data: Buffer; isBinary: boolean }[] = [];
    const ws = await openListening(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}&resume=1`, (data, isBinary) => frames.push({ data, isBinary }));
    await waitFor(() => frames.length > 0, 10_000, 'the announcement');
    const first = frames[0];
    assert.equal(first.isBinary, false);
    assert.deepEqual(JSON.parse(first.data.toString()), { type: 'session', id: null, windowS: 0 });
    const got = receiveBytes(ws, 5);
    ws.send(Buffer.from('plain'));
    assert.equal((await got).toString(), 'plain');
    assert.equal(app.app.get(ResumeService).liveSessions().length, 0);
    ws.close(1000);
    await closed(ws);
  });

  it('ResumableRelay works over it as a plain relay', async () => {
    const relay = new ResumableRelay({ url: `${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`, WebSocket });
    const info = await relay.opened;
    assert.deepEqual(info, { id: null, windowS: 0 });
    const chunks: Uint8Array[] = [];
    relay.on('data', (d) => chunks.push(d));
    const payload = randomBytes(300 * KiB);
    await sendAll(relay, payload);
    await waitFor(() => chunks.reduce((n, c) => n + c.length, 0) === payload.length, 10_000, 'the echo');
    assert.ok(Buffer.concat(chunks).equals(payload));
    const ended = new Promise<{ code: number }>((r) => relay.on('close', r));
    relay.close();
    assert.equal((await ended).code, 1000);
  });

  it('ResumableRelay sends what was queued before the announcement in messages the proxy accepts (below MAX_MESSAGE_BYTES)', async () => {
    const relay = new ResumableRelay({ url: `${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`, WebSocket });
    let received = 0;
    relay.on('data', (d) => (received += d.length));
    let closedWith: { code: number } | null = null;
    relay.on('close', (c) => (closedWith = c));
    // One send, split by the client into 1 MiB messages, all kept until the session frame comes.
    const payload = randomBytes(6 * MiB);
    relay.send(payload);
    await relay.opened;
    await waitFor(() => received === payload.length || closedWith !== null, 10_000, 'the echo');
    assert.equal(closedWith, null);
    assert.equal(received, payload.length);
    const ended = new Promise<{ code: number }>((r) => relay.on('close', r));
    relay.close();
    assert.equal((await ended).code, 1000);
  });
});

describe('ResumableRelay over a plain fallback with a small MAX_MESSAGE_BYTES', () => {
  it('sends what was queued before the announcement as it was sent, each message within the limit, not merged past it', async () => {
    const app = await startApp({ RESUME_WINDOW_S: '0', MAX_MESSAGE_BYTES: String(64 * 1024) });
    const echo = await echoTarget();
    try {
      const relay = new ResumableRelay({ url: `${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`, WebSocket });
      let received = 0;
      relay.on('data', (d) => (received += d.length));
      let closedWith: { code: number } | null = null;
      relay.on('close', (c) => (closedWith = c));
      // 4 KiB sends, slices of one buffer (adjacent in memory), all kept until the session frame comes.
      const payload = randomBytes(256 * 1024);
      for (let off = 0; off < payload.length; off += 4096) relay.send(payload.subarray(off, off + 4096));
      await relay.opened;
      await waitFor(() => received === payload.length || closedWith !== null, 10_000, 'the echo');
      assert.equal(closedWith, null);
      assert.equal(received, payload.length);
      const ended = new Promise<{ code: number }>((r) => relay.on('close', r));
      relay.close();
      assert.equal((await ended).code, 1000);
    } finally {
      await app.close();
      await echo.close();
    }
  });
});

describe('ResumableRelay over a plain fallback (RESUME_WINDOW_S=0): flow control', () => {
  it('pause() stops reading the socket (Node ws), so a slow reader does not buffer the whole download', async () => {
    const app = await startApp({ RESUME_WINDOW_S: '0' });
    const source = await sourceTarget(randomBytes(64 * 1024 * 1024));
    try {
      const relay = new ResumableRelay({ url: `${app.wsUrl}/relay?host=127.0.0.1&port=${source.port}`, WebSocket });
      // The source ends after its last byte, so the relay may close before the test asks it to.
      const ended = new Promise<{ code: number }>((r) => relay.on('close', r));
      await relay.opened;
      let received = 0;
      let paused = false;
      relay.on('data', (d) => {
        received += d.length;
        if (!paused && received > 1024 * 1024) {
          paused = true;
          relay.pause();
        }
      });
      await new Promise((r) => setTimeout(r, 1500));
      const whilePaused = received;
      assert.ok(whilePaused < 16 * 1024 * 1024, `received ${whilePaused} bytes while paused`);
      relay.resume();
      await waitFor(() => received === 64 * 1024 * 1024, 20_000, 'the rest after resume()');
      relay.close();
      assert.equal((await ended).code, 1000);
    } finally {
      await app.close();
      await source.close();
    }
  });
});

describe('a resumable relay busy both ways', () => {
  it('does not deadlock when the client holds its acks while the target is congested, then lets them go', async () => {
    // The keepalive would end the stall with a 1006 after two intervals: keep it out of the way.
    const app = await startApp({ PING_INTERVAL_MS: '600000' });
    const echo = await echoTarget();
    try {
      const relay = new ResumableRelay({ url: `${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}`, WebSocket });
      await relay.opened;
      let detached = 0;
      relay.on('detach', () => detached++);
      let received = 0;
      relay.on('data', (d) => (received += d.length));
      const payload = randomBytes(64 * MiB);
      // A slow reader: no acks for what comes back, while the upload fills every buffer on the way.
      relay.pause();
      const sent = sendAll(relay, payload);
      await sleep(2000);
      const stalledAt = received;
      relay.resume();
      await waitFor(() => received === payload.length, 20_000, `the echo after the reader caught up (had ${stalledAt} while it held its acks)`);
      await sent;
      assert.equal(detached, 0, 'no reattach was needed');
      const ended = new Promise<{ code: number }>((r) => relay.on('close', r));
      relay.close();
      assert.equal((await ended).code, 1000);
    } finally {
      await app.close();
      await echo.close();
    }
  });
});

describe('a reattach from a browser origin', () => {
  it('is checked against ALLOWED_ORIGINS after its parameters: 403 origin not allowed (4403), a malformed one still 400; an allowed origin reattaches', async () => {
    const app = await startApp({ ALLOWED_ORIGINS: 'https://app.example.com' });
    const echo = await echoTarget();
    try {
      const { client, session } = await RawResumeClient.open(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}&resume=1`, { origin: 'https://app.example.com' });
      client.drop();
      const reattach = `${app.wsUrl}/relay?resume=${session.id!}&received=0`;
      const evil = { origin: 'https://evil.example' };
      assert.deepEqual(await expectRefusal(reattach, evil), { status: 403, body: 'origin not allowed' });
      assert.deepEqual(await expectCloseRefusal(`${reattach}&errors=close`, evil), { code: 4403, reason: 'origin not allowed' });
      assert.deepEqual(await expectRefusal(`${app.wsUrl}/relay?resume=${session.id!}`, evil), { status: 400, body: 'missing received' });
      const again = await RawResumeClient.connect(reattach, { origin: 'https://app.example.com' });
      assert.equal((await again.nextControl('session')).id, session.id);
      again.ws.close(1000);
      await again.closed();
    } finally {
      await app.close();
      await echo.close();
    }
  });
});

describe('a reattach while the service drains', () => {
  it('is refused 503 server is draining with Retry-After (4503 with errors=close), before its parameters are even read', async () => {
    const app = await startApp({ SHUTDOWN_TIMEOUT_MS: '60000' });
    const echo = await echoTarget();
    try {
      // An attached session keeps the drain waiting; its id is live, its client could come back.
      const { client, session } = await RawResumeClient.open(`${app.wsUrl}/relay?host=127.0.0.1&port=${echo.port}&resume=1`);
      app.app.get(DrainService).startDraining();
      const reattach = `/relay?resume=${session.id!}&received=0`;
      const draining = { status: 503, body: 'server is draining' };
      assert.deepEqual(await expectRefusal(`${app.wsUrl}${reattach}`), draining);
      assert.deepEqual(await expectCloseRefusal(`${app.wsUrl}${reattach}&errors=close`), { code: 4503, reason: draining.body });
      assert.match(await rawExchange(app.port, `GET ${reattach} HTTP/1.1\r\nHost: 127.0.0.1\r\n${UPGRADE_HEADERS}\r\n`), /^HTTP\/1\.1 503 [^]*\r\nRetry-After: 5\r\n/);
      // Checked before anything else: a malformed reattach is told to come back later too, not that it is malformed.
      assert.deepEqual(await expectRefusal(`${app.wsUrl}/relay?resume=${'A'.repeat(32)}`), draining);
      client.drop();
    } finally {
      await app.close();
      await echo.close();
    }
  });
});

describe('resumable sessions in a process that gets SIGTERM', () => {
  let echo: TestTarget;
  before(async () => {
    echo = await echoTarget();
  });
  after(async () => {
    await echo?.close();
  });

  /** The `relay_end` lines the process logged, parsed. */
  function relayEnds(svc: ServiceProcess): (RelayClosedEvent & { endedBy: string })[] {
    return svc.lines.filter((l) => l.includes('"event":"relay_end"')).map((l) => JSON.parse(l) as RelayClosedEvent & { endedBy: string });
  }

  /** Opens a session through `svc` that has had `hello` echoed both ways (5 bytes up, 5 down). */
  async function echoedSession(svc: ServiceProcess): Promise<{ client: RawResumeClient; session: SessionFrame }> {
    const opened = await RawResumeClient.open(`ws://127.0.0.1:${svc.port}/relay?host=127.0.0.1&port=${echo.port}&resume=1`);
    opened.client.send(Buffer.from('hello'));
    await opened.client.until(() => opened.client.bytes === 5, 'the echo');
    return opened;
  }

  it('ends a detached session when the drain starts and logs its relay_end (1001, byte counts) before exiting 0', async () => {
    const svc = await startServiceProcess({ RESUME_WINDOW_S: '600', SHUTDOWN_TIMEOUT_MS: '1500' });
    try {
      // The attached session holds the drain until the timeout; the detached one must not wait for the window.
      const attached = await echoedSession(svc);
      const detached = await echoedSession(svc);
      detached.client.drop();
      await waitFor(() => svc.lines.some((l) => l.includes('"event":"resume_detached"')), 10_000, 'resume_detached');
      svc.child.kill('SIGTERM');
      assert.equal((await attached.client.closed()).code, 1001);
      assert.equal(await svc.exited, 0);
      const ends = relayEnds(svc).map((e) => [e.id, e.closeCode, e.closeReason, e.endedBy, e.bytesUp, e.bytesDown]);
      assert.deepEqual(ends, [
        [detached.session.id!.slice(0, 8), 1001, 'server shutting down', 'server', 5, 5],
        [attached.session.id!.slice(0, 8), 1001, 'server shutting down', 'server', 5, 5],
      ]);
    } finally {
      svc.child.kill('SIGKILL');
    }
  });

  it('logs the relay_end of an attached session whose client never answers the 1001 before exiting 0', async () => {
    const svc = await startServiceProcess({ RESUME_WINDOW_S: '600', SHUTDOWN_TIMEOUT_MS: '300' });
    let silent: { client: RawResumeClient; session: SessionFrame } | undefined;
    try {
      silent = await echoedSession(svc);
      // From here on the client reads nothing and answers nothing: the close handshake never completes.
      rawSocket(silent.client.ws).pause();
      svc.child.kill('SIGTERM');
      assert.equal(await svc.exited, 0);
      const ends = relayEnds(svc).map((e) => [e.id, e.closeCode, e.endedBy, e.bytesUp, e.bytesDown]);
      assert.deepEqual(ends, [[silent.session.id!.slice(0, 8), 1001, 'server', 5, 5]]);
    } finally {
      svc.child.kill('SIGKILL');
      silent?.client.ws.terminate();
    }
  });
});

describe('a resumable session whose target closes while the proxy has stopped reading the client', () => {
  it('reads on to the close handshake: the session ends at once, not at the close timeout', async () => {
    const app = await startApp();
    const target = await startTarget((s) => s.pause());
    try {
      const ws = await openListening(`${app.wsUrl}/relay?host=127.0.0.1&port=${target.port}&resume=1`, () => undefined);
      // Past its window (UNACKED_UPLOAD_MAX unwritten to a target that does not read): the proxy pauses the client.
      const chunk = randomBytes(64 * KiB);
      for (let i = 0; i < (UNACKED_UPLOAD_MAX / chunk.length) * 3; i++) ws.send(chunk);
      await waitFor(() => sessionsOf(app).length === 1 && (onlySession(app) as unknown as { wsPaused: boolean }).wsPaused, 10_000, 'the proxy stops reading the client');
      const done = closed(ws);
      for (const s of target.connections) s.destroy();
      await waitFor(async () => (await slotsInUse(app)) === 0 && sessionsOf(app).length === 0, 5000, 'the session ended and its slot released');
      await done;
    } finally {
      await app.close();
      await target.close();
    }
  });
});

describe('a resumable relay at its maximum age', () => {
  it('lets a client paused for a congested target (past its window) go at once, not at the close timeout', async () => {
    const app = await startApp({ MAX_CONNECTION_S: '2' });
    const stalled = await startTarget((s) => s.pause());
    try {
      const { client } = await RawResumeClient.open(`${app.wsUrl}/relay?host=127.0.0.1&port=${stalled.port}&resume=1`);
      const ws = client.ws;
      // Past UNACKED_UPLOAD_MAX: the proxy pauses the socket, and the client's answer to the 4408 waits behind this.
      const chunk = Buffer.alloc(64 * 1024, 1);
      for (let i = 0; i < (4 * UNACKED_UPLOAD_MAX) / chunk.length; i++) ws.send(chunk);
      const done = closed(ws);
      await waitFor(() => ws.readyState === WebSocket.CLOSING, 10_000, 'the 4408 close frame');
      const { code } = await within(done, 5000, 'the client let go');
      assert.equal(code, 4408);
    } finally {
      await app.close();
      await stalled.close();
    }
  });
});

describe('a resumable session whose client stops reading while its target sends 1-byte segments', () => {
  it('stops reading the target once WS_SEND_HIGH_FRAMES frames wait for the client, long before their bytes reach WS_SEND_HIGH_WATER, and delivers every byte once the client reads', async () => {
    const app = await startApp();
    let stop = false;
    let sent = 0;
    const target = await startTarget((s) => {
      s.setNoDelay(true);
      const tick = (): void => {
        if (stop || s.destroyed) return;
        s.write(Buffer.of(sent++ & 0xff));
        setImmediate(tick);
      };
      tick();
    });
    try {
      let received = 0;
      let inOrder = true;
      const ws = await openListening(`${app.wsUrl}/relay?host=127.0.0.1&port=${target.port}&resume=1`, (data, isBinary) => {
        if (!isBinary) return;
        for (const b of data) if (b !== (received++ & 0xff)) inOrder = false;
      });
      await waitFor(() => sessionsOf(app).length === 1 && received > 0, 10_000, 'the first bytes');
      const session = onlySession(app) as unknown as { ws: WebSocket; frameEnds: { length: number }; setup: { socket: Socket } };
      // The client's connection takes nothing more: every frame the session sends stays in the proxy.
      const proxySide = (session.ws as unknown as { _socket: Socket })._socket;
      proxySide.cork();
      const from = sent;
      await waitFor(() => session.setup.socket.isPaused() || sent - from > 4 * WS_SEND_HIGH_FRAMES + 10_000, 30_000, 'the target paused, or sent enough to show it is not');
      assert.ok(session.setup.socket.isPaused(), `the target is still read with ${session.frameEnds.length} frames (${session.ws.bufferedAmount} bytes) queued for the client`);
      assert.ok(session.frameEnds.length <= WS_SEND_HIGH_FRAMES + 1, `${session.frameEnds.length} frames queued`);
      assert.ok(session.ws.bufferedAmount < WS_SEND_HIGH_WATER / 8, `${session.ws.bufferedAmount} bytes queued`);
      // The client reads again: the bytes arrive, in order, and the target is read on.
      stop = true;
      proxySide.uncork();
      await waitFor(() => received === sent, 30_000, 'every byte delivered');
      assert.ok(inOrder, 'bytes in order');
      ws.terminate();
    } finally {
      stop = true;
      await app.close();
      await target.close();
    }
  });
});
