import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeData } from '../protocol/v1.js';
import { TunnelClientSession, type LocalConnection, type TunnelConnection } from './client-session.js';
import { MAX_CLIENT_STREAMS } from '../protocol/v2-mux.js';

function harness() {
  const sent: (string | Uint8Array)[] = [];
  const conns: { conn: TunnelConnection; written: Uint8Array[]; closed: boolean }[] = [];
  const session = new TunnelClientSession(
    { send: (f) => sent.push(f) },
    {
      http: async (req) => ({ status: 200, headers: { 'x-path': req.path }, body: req.body }),
      tcp: (conn): LocalConnection => {
        const entry = { conn, written: [] as Uint8Array[], closed: false };
        conns.push(entry);
        return { write: (p) => entry.written.push(p), close: () => (entry.closed = true) };
      },
    },
  );
  return { sent, conns, session };
}

describe('TunnelClientSession', () => {
  it('resolves ready from tunnel_ready, in text or binary frames', async () => {
    const { session } = harness();
    session.receive(Buffer.from('{"type":"tunnel_ready","tunnelUrl":"https://a.b","rawPort":7}'), true);
    assert.deepEqual(await session.ready, { tunnelUrl: 'https://a.b', rawPort: 7, version: 1 });
  });

  it('answers http_request with http_response of the same id', async () => {
    const { session, sent } = harness();
    session.receive('{"type":"http_request","id":"abc","method":"POST","path":"/p","headers":{},"body":"aGk=","bodyEncoding":"base64"}', false);
    await new Promise((r) => setImmediate(r));
    assert.equal(sent[0], '{"type":"http_response","id":"abc","status":200,"headers":{"x-path":"/p"},"body":"aGk=","bodyEncoding":"base64"}');
  });

  it('answers 400 at once to a request whose body is not base64, without calling the local service', async () => {
    const { sent } = harness();
    const calls: string[] = [];
    const session = new TunnelClientSession(
      { send: (f) => sent.push(f) },
      { http: async (req) => (calls.push(req.path), { status: 200, headers: {}, body: null }), tcp: () => ({ write: () => undefined, close: () => undefined }) },
    );
    session.receive('{"type":"http_request","id":"x1","method":"POST","path":"/p","headers":{"content-length":"5"},"body":"a*b!","bodyEncoding":"base64"}', false);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(calls, []);
    const answer = JSON.parse(sent[0] as string) as { id: string; status: number; body: string };
    assert.equal(answer.id, 'x1');
    assert.equal(answer.status, 400);
    assert.equal(Buffer.from(answer.body, 'base64').toString(), 'request body is not base64\n');
  });

  it('opens, feeds and closes local connections; tcp_close goes out once', () => {
    const { session, sent, conns } = harness();
    session.receive('{"type":"tcp_open","connId":"c1"}', false);
    assert.equal(conns.length, 1);
    session.receive(encodeData('c1', new Uint8Array([1, 2])), true);
    session.receive(encodeData('nope', new Uint8Array([3])), true);
    assert.deepEqual(conns[0].written.map((w) => [...w]), [[1, 2]]);
    conns[0].conn.send(new Uint8Array([5]));
    assert.deepEqual([...(sent[0] as Uint8Array)], [0, 0, 0, 2, 99, 49, 5]);
    conns[0].conn.close();
    conns[0].conn.close();
    assert.deepEqual(sent.slice(1), ['{"type":"tcp_close","connId":"c1"}']);
    session.receive('{"type":"tcp_open","connId":"c2"}', false);
    session.receive('{"type":"tcp_close","connId":"c2"}', false);
    assert.equal(conns[1].closed, true);
    conns[1].conn.close();
    assert.equal(sent.length, 2, 'no tcp_close echoed for a proxy-closed connection');
  });

  it('closes every local connection when the transport closes, and ignores garbage', () => {
    const { session, conns } = harness();
    session.receive('garbage', false);
    session.receive('{"type":"tcp_open","connId":"c1"}', false);
    session.transportClosed(1006, '');
    assert.equal(conns[0].closed, true);
  });
  it('keeps at most MAX_CLIENT_STREAMS local connections and requests in flight, as v2 does: a flood of tcp_open and http_request is refused beyond', async () => {
    const sent: (string | Uint8Array)[] = [];
    let tcpOpened = 0;
    let httpCalls = 0;
    const answers: (() => void)[] = [];
    const session = new TunnelClientSession(
      { send: (f) => sent.push(f) },
      {
        http: () => {
          httpCalls++;
          return new Promise((resolve) => answers.push(() => resolve({ status: 200, headers: {}, body: null })));
        },
        tcp: (): LocalConnection => {
          tcpOpened++;
          return { write: () => undefined, close: () => undefined };
        },
      },
    );
    for (let i = 0; i < MAX_CLIENT_STREAMS - 10; i++) session.receive(`{"type":"tcp_open","connId":"c${i}"}`, false);
    for (let i = 0; i < 20; i++) session.receive(`{"type":"http_request","id":"r${i}","method":"GET","path":"/","headers":{}}`, false);
    for (let i = 0; i < 20; i++) session.receive(`{"type":"tcp_open","connId":"x${i}"}`, false);
    await new Promise((r) => setImmediate(r));
    assert.equal(tcpOpened, MAX_CLIENT_STREAMS - 10);
    assert.equal(httpCalls, 10);
    assert.equal(session.connectionCount + session.pendingHttpCount, MAX_CLIENT_STREAMS);
    const refused = sent.map((f) => JSON.parse(String(f)) as { type: string; id?: string; connId?: string; status?: number });
    assert.equal(refused.filter((m) => m.type === 'http_response' && m.status === 503).length, 10);
    assert.equal(refused.filter((m) => m.type === 'tcp_close').length, 20);
    // Answered requests make room again.
    for (const answer of answers.splice(0)) answer();
    await new Promise((r) => setImmediate(r));
    assert.equal(session.pendingHttpCount, 0);
    session.receive('{"type":"http_request","id":"later","method":"GET","path":"/","headers":{}}', false);
    assert.equal(httpCalls, 11);
  });
});
