// A small tunnel protocol v1 client written for the browser (docs/tunnel-protocol.md),
// independent of the Node reference client: JSON control messages, and TCP payload
// in binary frames (4-byte big-endian connId length, connId bytes, payload).
// It answers every HTTP request with a description of what it received, and
// echoes every raw TCP connection.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Hex SHA-256 of bytes, computed by the browser. */
export async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

function base64ToBytes(text) {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

function bytesToBase64(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

function encodeData(connId, payload) {
  const id = encoder.encode(connId);
  const out = new Uint8Array(4 + id.length + payload.length);
  new DataView(out.buffer).setUint32(0, id.length, false);
  out.set(id, 4);
  out.set(payload, 4 + id.length);
  return out;
}

function decodeData(bytes) {
  if (bytes.length < 4) return null;
  const idLen = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, false);
  if (idLen === 0 || 4 + idLen > bytes.length) return null;
  return { connId: decoder.decode(bytes.subarray(4, 4 + idLen)), payload: bytes.subarray(4 + idLen) };
}

export class PageTunnelClient {
  /**
   * @param {string} url the /tunnel URL (with `control=binary` or not)
   * @param {'text'|'binary'} control how this client sends its own control messages
   */
  constructor(url, control) {
    this.url = url;
    this.control = control;
    this.ws = null;
    this.ready = null;
    this.conns = new Map();
    this.closeEvent = null;
    this.stats = {
      textFrames: 0,
      binaryControlFrames: 0,
      dataFrames: 0,
      nonArrayBufferBinary: 0,
      controlTypes: {},
      httpRequests: 0,
      tcpOpened: 0,
      tcpClosedByProxy: 0,
      tcpClosedByPage: 0,
      tcpBytesEchoed: 0,
      openConns: 0,
    };
  }

  /** Connects and resolves with the `tunnel_ready` message. */
  start(timeoutMs = 15000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no tunnel_ready within ${timeoutMs} ms`)), timeoutMs);
      const ws = new WebSocket(this.url);
      ws.binaryType = 'arraybuffer';
      this.ws = ws;
      this.onReady = (msg) => {
        clearTimeout(timer);
        resolve(msg);
      };
      ws.onmessage = (ev) => this.onMessage(ev).catch((err) => console.error('tunnel client:', err));
      ws.onclose = (ev) => {
        clearTimeout(timer);
        this.closeEvent = { code: ev.code, reason: ev.reason };
        if (!this.ready) reject(new Error(`tunnel closed before tunnel_ready: ${ev.code} ${ev.reason}`));
        this.onClosed?.(this.closeEvent);
      };
    });
  }

  snapshot() {
    return { ...this.stats, controlTypes: { ...this.stats.controlTypes }, openConns: this.conns.size, closed: this.closeEvent };
  }

  async onMessage(ev) {
    if (typeof ev.data === 'string') {
      this.stats.textFrames++;
      return this.onControl(JSON.parse(ev.data));
    }
    if (!(ev.data instanceof ArrayBuffer)) {
      this.stats.nonArrayBufferBinary++;
      return;
    }
    const bytes = new Uint8Array(ev.data);
    // A data frame starts with the connId length (first byte 0); JSON starts with "{".
    if (bytes[0] === 0x7b) {
      this.stats.binaryControlFrames++;
      return this.onControl(JSON.parse(decoder.decode(bytes)));
    }
    this.stats.dataFrames++;
    const frame = decodeData(bytes);
    if (!frame || !this.conns.has(frame.connId)) return;
    // Echo: the raw TCP connection gets back exactly what it sent.
    this.ws.send(encodeData(frame.connId, frame.payload));
    this.conns.get(frame.connId).bytes += frame.payload.length;
    this.stats.tcpBytesEchoed += frame.payload.length;
  }

  async onControl(msg) {
    this.stats.controlTypes[msg.type] = (this.stats.controlTypes[msg.type] ?? 0) + 1;
    switch (msg.type) {
      case 'tunnel_ready':
        this.ready = msg;
        this.onReady?.(msg);
        return;
      case 'http_request':
        this.stats.httpRequests++;
        return this.answerHttp(msg);
      case 'tcp_open':
        this.stats.tcpOpened++;
        this.conns.set(msg.connId, { bytes: 0 });
        return;
      case 'tcp_close':
        if (this.conns.delete(msg.connId)) this.stats.tcpClosedByProxy++;
        return;
      default:
        return;
    }
  }

  /** Answers with a JSON description of the request; `/plain…` paths get a UTF-8 text body, others base64. */
  async answerHttp(msg) {
    const body = msg.body === undefined ? new Uint8Array(0) : msg.bodyEncoding === 'base64' ? base64ToBytes(msg.body) : encoder.encode(msg.body);
    const description = {
      servedBy: 'chromium-page',
      control: this.control,
      id: msg.id,
      method: msg.method,
      path: msg.path,
      headers: msg.headers,
      bodyEncoding: msg.bodyEncoding ?? null,
      bodyBytes: body.length,
      bodySha256: await sha256Hex(body),
    };
    const text = JSON.stringify(description);
    const headers = {
      'content-type': 'application/json',
      'x-served-by': 'wsproxy-browser-page',
      'set-cookie': 'tunnel_session=must-not-pass',
    };
    const response = msg.path.startsWith('/plain')
      ? { type: 'http_response', id: msg.id, status: 200, headers, body: text }
      : { type: 'http_response', id: msg.id, status: 200, headers, body: bytesToBase64(encoder.encode(text)), bodyEncoding: 'base64' };
    this.sendControl(response);
  }

  sendControl(msg) {
    const json = JSON.stringify(msg);
    this.ws.send(this.control === 'binary' ? encoder.encode(json) : json);
  }

  /** Ends every raw TCP connection from this side (`tcp_close` to the proxy). */
  closeConnections() {
    for (const connId of [...this.conns.keys()]) {
      this.sendControl({ type: 'tcp_close', connId });
      this.conns.delete(connId);
      this.stats.tcpClosedByPage++;
    }
  }

  /** Closes the tunnel WebSocket and resolves with the close event. */
  stop(timeoutMs = 10000) {
    if (this.closeEvent) return Promise.resolve(this.closeEvent);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('tunnel did not close')), timeoutMs);
      this.onClosed = (ev) => {
        clearTimeout(timer);
        resolve(ev);
      };
      this.ws.close(1000, 'page done');
    });
  }
}
