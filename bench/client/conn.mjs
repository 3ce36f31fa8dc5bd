/**
 * One connection to a target through a competitor, with the same small surface
 * whatever carries it: a WebSocket relay (binary messages) or plain TCP.
 * Data arriving before `onData` is set is kept, so nothing is lost between the
 * handshake and the caller's first listener.
 */
import { connect } from 'node:net';
import { WebSocket } from 'ws';

const BINARY = { binary: true };

/**
 * Opens a connection to target `port` through `endpoint` (see
 * proxies/registry.mjs); `token` fills the URL's `{token}` (default: the
 * endpoint's). Rejects on refusal or timeout.
 */
export function openConn(endpoint, port, { localAddress, timeoutMs = 15_000, token } = {}) {
  if (endpoint.kind === 'ws') return openWs(endpoint, port, localAddress, timeoutMs, token ?? endpoint.token);
  if (endpoint.kind === 'tcp') return openTcp(endpoint, port, localAddress, timeoutMs);
  if (endpoint.kind === 'resumable') return openResumable(endpoint, port, localAddress, timeoutMs, token ?? endpoint.token);
  return Promise.reject(new Error(`endpoint kind ${endpoint.kind} carries no stream`));
}

function openWs(endpoint, port, localAddress, timeoutMs, token) {
  const url = endpoint.url.replace('{port}', String(port)).replace('{token}', token ?? '');
  const ws = new WebSocket(url, endpoint.protocols ?? [], {
    perMessageDeflate: false,
    handshakeTimeout: timeoutMs,
    localAddress,
    headers: endpoint.headers,
    maxPayload: 256 * 1024 * 1024,
  });
  let handler = null;
  let early = [];
  ws.on('message', (d) => (handler ? handler(d) : early.push(d)));
  const conn = {
    raw: ws,
    send: (buf, cb) => ws.send(buf, BINARY, cb),
    get buffered() {
      return ws.bufferedAmount;
    },
    onData(fn) {
      handler = fn;
      const queued = early;
      early = [];
      for (const d of queued) fn(d);
    },
    onClose: (fn) => ws.once('close', () => fn()),
    get closed() {
      return ws.readyState === WebSocket.CLOSED;
    },
    close: () => ws.close(1000),
    destroy: () => ws.terminate(),
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.off('error', reject);
      ws.on('error', () => ws.terminate());
      resolve(conn);
    });
    ws.once('unexpected-response', (req, res) => {
      res.resume();
      req.destroy();
      reject(new Error(`HTTP ${res.statusCode}`));
    });
    ws.once('error', reject);
  });
}

function openTcp(endpoint, port, localAddress, timeoutMs) {
  const s = connect({ host: endpoint.host, port: endpoint.port ?? port, localAddress, noDelay: true });
  let handler = null;
  let early = [];
  s.on('data', (d) => (handler ? handler(d) : early.push(d)));
  const conn = {
    raw: s,
    send: (buf, cb) => s.write(buf, cb),
    get buffered() {
      return s.writableLength;
    },
    onData(fn) {
      handler = fn;
      const queued = early;
      early = [];
      for (const d of queued) fn(d);
    },
    onClose: (fn) => s.once('close', () => fn()),
    get closed() {
      return s.closed;
    },
    close: () => s.end(),
    destroy: () => s.destroy(),
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => (s.destroy(), reject(new Error('connect timeout'))), timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.off('error', reject);
      s.on('error', () => s.destroy());
      resolve(conn);
    });
    s.once('error', (e) => (clearTimeout(timer), reject(e)));
  });
}

/**
 * A resumable relay (`resume=1`) through the shipped client, `ResumableRelay`
 * from dist: it keeps every sent byte until the proxy acknowledges it and
 * acknowledges what it receives, as a browser would.
 */
async function openResumable(endpoint, port, localAddress, timeoutMs, token) {
  const { ResumableRelay } = await import('../../dist/resume/client/resumable-relay.js');
  const url = endpoint.url.replace('{port}', String(port)).replace(/[?&]token=\{token\}/, '');
  const relay = new ResumableRelay({
    url,
    token: () => token ?? null,
    attachTimeoutMs: timeoutMs,
    highWaterMark: 1024 * 1024,
    createWebSocket: (u, protocols) => new WebSocket(u, protocols, { perMessageDeflate: false, localAddress, maxPayload: 256 * 1024 * 1024 }),
  });
  let handler = null;
  let early = [];
  let closed = false;
  relay.on('data', (u8) => {
    const d = Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
    handler ? handler(d) : early.push(d);
  });
  relay.on('close', () => (closed = true));
  const drainWaiters = [];
  relay.on('drain', () => {
    for (const cb of drainWaiters.splice(0)) cb();
  });
  const conn = {
    raw: relay,
    highWater: 1024 * 1024,
    send(buf, cb) {
      const below = relay.send(buf);
      if (!cb) return;
      if (below) queueMicrotask(() => cb());
      else drainWaiters.push(cb);
    },
    get buffered() {
      return relay.bufferedAmount;
    },
    onData(fn) {
      handler = fn;
      const queued = early;
      early = [];
      for (const d of queued) fn(d);
    },
    onClose: (fn) => relay.on('close', () => fn()),
    get closed() {
      return closed;
    },
    close: () => relay.close(),
    destroy: () => relay.close(),
  };
  await relay.opened;
  return conn;
}
