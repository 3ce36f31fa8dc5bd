import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import type { HttpResponseSink } from './http-exchange.js';
import type { TunnelWire } from './stream-types.js';
import { TunnelSession } from './tunnel-session.js';
import type { WebSocketSink } from './websocket-stream.js';

/** A v2-like wire whose WebSocket close handshake has not completed: `close` is recorded, `onClose` never comes. */
function closingWire(opened: string[]): TunnelWire {
  let next = 0;
  return {
    version: 2,
    carriesWebSockets: true,
    bufferedAmount: 0,
    attach: () => undefined,
    ready: () => undefined,
    allocateStreamId: () => String(++next),
    open: (id) => void opened.push(id),
    data: () => true,
    end: () => undefined,
    release: () => undefined,
    pauseInbound: () => undefined,
    resumeInbound: () => undefined,
    close: () => undefined,
    message: () => true,
    closeWebSocket: () => undefined,
  } as TunnelWire;
}

const sink: HttpResponseSink = { head: () => true, data: () => true, whenDrained: () => undefined, end: () => undefined, fail: () => undefined, complete: false };

describe('TunnelSession', () => {
  it('once it has closed its WebSocket, opens no new stream: a request is refused at once instead of waiting, unsent, for the close handshake', () => {
    const opened: string[] = [];
    const gate = { acquired: 0, tryAcquire: () => (gate.acquired++, true), release: () => void gate.acquired-- };
    const session = new TunnelSession(
      { subdomain: '0123456789abcdef', user: 'u', clientIp: '127.0.0.1', rawPort: 0, tunnelUrl: '' },
      closingWire(opened),
      { responseTimeoutMs: 60_000, maxTcpConns: 10, tcpGate: gate, halfClosedIdleMs: 60_000 },
      () => undefined,
    );
    session.start();
    session.close(4408, 'maximum connection age reached');
    assert.equal(session.openHttp({ method: 'GET', path: '/', headers: [], bodyless: true }, sink), null);
    assert.equal(session.openWebSocket({ method: 'GET', path: '/', headers: [] }, {} as WebSocketSink), null);
    const socket = new Socket();
    session.acceptTcp(socket);
    assert.equal(socket.destroyed, true);
    assert.equal(gate.acquired, 0);
    assert.deepEqual(opened, []);
    assert.deepEqual(session.counts(), { http: 0, tcp: 0 });
  });
});
